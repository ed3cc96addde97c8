package persist

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

func owner(secret string) ttlstore.Owner {
	sum := sha256.Sum256([]byte(secret))
	return ttlstore.Owner(sum[:])
}

// sampleItems covers the awkward cases: binary and empty values, owners,
// no expiry, negative and extreme integers.
func sampleItems() []ttlstore.Item {
	return []ttlstore.Item{
		{Key: "plain", Value: []byte("hello"), Version: 1},
		{Key: "binary", Value: []byte{0, 0xff, 0xc0, 0x90, '\n', 0}, Expires: 1_700_000_000_000_000_000, Version: 2},
		{Key: "empty", Value: []byte{}, Owner: owner("s3cret"), Version: 3},
		{Key: "", Value: []byte("empty key"), Version: 4},
		{Key: "ünïcødé/🔑", Value: bytes.Repeat([]byte{7}, 70_000), Expires: math.MaxInt64, Owner: owner("x"), Version: math.MaxUint64},
		{Key: "negative expiry", Value: []byte("v"), Expires: -1, Version: 0},
	}
}

// iterateOver adapts a slice to the iterate callback the store supplies.
func iterateOver(items []ttlstore.Item) func(func(ttlstore.Item) error) error {
	return func(yield func(ttlstore.Item) error) error {
		for _, it := range items {
			if err := yield(it); err != nil {
				return err
			}
		}
		return nil
	}
}

func collect(items *[]ttlstore.Item) func(ttlstore.Item) error {
	return func(it ttlstore.Item) error {
		*items = append(*items, it)
		return nil
	}
}

func encode(t testing.TB, items []ttlstore.Item) []byte {
	t.Helper()
	var buf bytes.Buffer
	_, err := Encode(&buf, iterateOver(items))
	require.NoError(t, err)
	return buf.Bytes()
}

func TestRoundTripFile(t *testing.T) {
	items := sampleItems()
	for i := range 10_000 {
		it := ttlstore.Item{
			Key:     fmt.Sprintf("key-%05d", i),
			Value:   []byte(strconv.Itoa(i * i)),
			Version: uint64(100 + i),
		}
		if i%3 == 0 {
			it.Expires = time.Now().Add(time.Duration(i) * time.Second).UnixNano()
		}
		if i%7 == 0 {
			it.Owner = owner(strconv.Itoa(i))
		}
		items = append(items, it)
	}

	path := filepath.Join(t.TempDir(), "rendezvous.db")
	before := time.Now()
	wst, err := WriteFile(path, iterateOver(items))
	require.NoError(t, err)

	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm())
	assert.Equal(t, len(items), wst.Keys)
	assert.Equal(t, fi.Size(), wst.Bytes)
	assert.Equal(t, uint64(math.MaxUint64), wst.MaxVersion)
	assert.Positive(t, wst.Duration)

	var got []ttlstore.Item
	rst, err := ReadFile(path, collect(&got))
	require.NoError(t, err)
	require.Equal(t, items, got)
	assert.Equal(t, len(items), rst.Keys)
	assert.Equal(t, fi.Size(), rst.Bytes)
	assert.Equal(t, uint64(math.MaxUint64), rst.MaxVersion)
	assert.False(t, rst.Created.Before(before.Truncate(0)) || rst.Created.After(time.Now()),
		"created %v should be when WriteFile ran", rst.Created)
	for _, it := range got {
		assert.NotNil(t, it.Value, "key %q", it.Key)
	}
}

func TestDecodedValuesDoNotAlias(t *testing.T) {
	items := []ttlstore.Item{
		{Key: "a", Value: []byte("aaaaaaaa")},
		{Key: "b", Value: []byte("bbbbbbbb")},
	}
	var got []ttlstore.Item
	_, err := Decode(bytes.NewReader(encode(t, items)), collect(&got))
	require.NoError(t, err)
	assert.Equal(t, items, got, "the reader's frame buffer is reused; values must be copies")
}

func TestNilValueDecodesAsEmpty(t *testing.T) {
	var got []ttlstore.Item
	_, err := Decode(bytes.NewReader(encode(t, []ttlstore.Item{{Key: "k"}})), collect(&got))
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.NotNil(t, got[0].Value)
	assert.Empty(t, got[0].Value)
}

func TestEmptySnapshot(t *testing.T) {
	data := encode(t, nil)
	st, err := Decode(bytes.NewReader(data), func(ttlstore.Item) error {
		t.Fatal("no items expected")
		return nil
	})
	require.NoError(t, err)
	assert.Zero(t, st.Keys)
	assert.Equal(t, int64(len(data)), st.Bytes)
}

// snapshotFile writes a small valid snapshot and returns its path and bytes.
func snapshotFile(t *testing.T) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rendezvous.db")
	_, err := WriteFile(path, iterateOver(sampleItems()[:4]))
	require.NoError(t, err)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return path, data
}

// frameStarts returns the offset of every frame in a valid snapshot.
func frameStarts(t *testing.T, data []byte) []int64 {
	t.Helper()
	fr := NewFrameReader(bytes.NewReader(data[len(Magic):]), int64(len(Magic)), 0)
	var starts []int64
	for {
		_, off, err := fr.ReadFrame()
		if err == io.EOF {
			return starts
		}
		require.NoError(t, err)
		starts = append(starts, off)
	}
}

func TestTruncatedAtEveryByte(t *testing.T) {
	path, data := snapshotFile(t)
	starts := frameStarts(t, data)
	for cut := 0; cut < len(data); cut++ {
		require.NoError(t, os.WriteFile(path, data[:cut], 0o600))
		n := 0
		_, err := ReadFile(path, func(ttlstore.Item) error { n++; return nil })
		require.Error(t, err, "cut at %d of %d", cut, len(data))
		assert.ErrorIs(t, err, ErrTruncated, "cut at %d", cut)
		assert.Contains(t, err.Error(), path)
		assert.Contains(t, err.Error(), "truncated")

		// The reported offset is where the incomplete frame starts, or the
		// end of the data when the cut falls on a frame boundary.
		want := int64(0)
		if cut >= len(Magic) {
			for _, s := range starts {
				if s <= int64(cut) {
					want = s
				}
			}
		}
		assert.Equal(t, fmt.Sprintf("snapshot %s: truncated at byte %d", path, want), err.Error())
	}
}

func TestTruncatedAtFrameBoundaries(t *testing.T) {
	path, data := snapshotFile(t)
	starts := frameStarts(t, data)
	require.Len(t, starts, 6, "header, 4 items, trailer")
	for _, cut := range starts {
		require.NoError(t, os.WriteFile(path, data[:cut], 0o600))
		_, err := ReadFile(path, func(ttlstore.Item) error { return nil })
		require.ErrorIs(t, err, ErrTruncated, "cut at frame boundary %d", cut)
		assert.Equal(t, fmt.Sprintf("snapshot %s: truncated at byte %d", path, cut), err.Error())
	}
}

func TestFlippedByteIsChecksumError(t *testing.T) {
	path, data := snapshotFile(t)
	starts := frameStarts(t, data)
	for i := len(Magic); i < len(data); i++ {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(data)
			bad[i] ^= mask
			require.NoError(t, os.WriteFile(path, bad, 0o600))
			_, err := ReadFile(path, func(ttlstore.Item) error { return nil })
			require.ErrorIs(t, err, ErrCorrupt, "byte %d", i)

			var frame int64
			for _, s := range starts {
				if s <= int64(i) {
					frame = s
				}
			}
			assert.Regexp(t, fmt.Sprintf(`^snapshot %s: (header )?checksum mismatch in record at byte %d$`,
				regexp.QuoteMeta(path), frame), err.Error(), "byte %d", i)
		}
	}
}

func TestBadMagic(t *testing.T) {
	path, data := snapshotFile(t)
	for _, bad := range [][]byte{
		append([]byte("RDVSNAP\x01"), data[len(Magic):]...),
		[]byte("{\"json\": true}"),
		[]byte("X"),
		[]byte("RDVSNAX"),
	} {
		require.NoError(t, os.WriteFile(path, bad, 0o600))
		_, err := ReadFile(path, func(ttlstore.Item) error { return nil })
		require.ErrorIs(t, err, ErrBadMagic, "%q", bad)
		assert.Equal(t, "snapshot "+path+": not a rendezvous snapshot (bad magic)", err.Error())
	}
}

// mp returns the msgpack produced by fn.
func mp(fn func(e *msgpack.Encoder)) []byte {
	var buf bytes.Buffer
	fn(msgpack.NewEncoder(&buf))
	return buf.Bytes()
}

// snapshot frames the given payloads behind the magic, for building files
// that Encode would never write.
func snapshot(t testing.TB, payloads ...[]byte) []byte {
	return append([]byte(Magic), framed(t, int64(len(Magic)), payloads...)...)
}

func header(version uint64) []byte {
	return mp(func(e *msgpack.Encoder) {
		_ = e.EncodeArrayLen(2)
		_ = e.EncodeUint(version)
		_ = e.EncodeInt(123)
	})
}

func trailer(count, maxVersion uint64) []byte {
	return mp(func(e *msgpack.Encoder) {
		_ = e.EncodeArrayLen(2)
		_ = e.EncodeUint(count)
		_ = e.EncodeUint(maxVersion)
	})
}

// itemPayload encodes an item record with arbitrary field values.
func itemPayload(key, value, expires, owner, version any) []byte {
	return mp(func(e *msgpack.Encoder) {
		_ = e.EncodeArrayLen(5)
		for _, v := range []any{key, value, expires, owner, version} {
			if err := e.Encode(v); err != nil {
				panic(err)
			}
		}
	})
}

func TestUnsupportedVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rendezvous.db")
	for _, v := range []uint64{0, 3, 7, math.MaxUint64} {
		require.NoError(t, os.WriteFile(path, snapshot(t, header(v), trailer(0, 0)), 0o600))
		_, err := ReadFile(path, func(ttlstore.Item) error { return nil })
		require.ErrorIs(t, err, ErrUnsupportedVersion)
		assert.Equal(t, fmt.Sprintf("snapshot %s: unsupported snapshot format version %d", path, v), err.Error())
	}

	// The version is checked before the rest of the header, so a future
	// format may reshape it.
	future := mp(func(e *msgpack.Encoder) {
		_ = e.EncodeArrayLen(4)
		_ = e.EncodeUint(3)
		_ = e.EncodeString("something new")
	})
	_, err := Decode(bytes.NewReader(snapshot(t, future)), nil)
	assert.EqualError(t, err, "unsupported snapshot format version 3")
}

// TestSnapshotVersions: version 2 files carry the covered generation;
// version 1 files, which have none, are still read.
func TestSnapshotVersions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rendezvous.db")
	items := []ttlstore.Item{{Key: "snap", Value: []byte("s"), Version: 1}}
	_, err := WriteFileCovering(path, 9, 41, iterateOver(items))
	require.NoError(t, err)
	var got []ttlstore.Item
	st, err := ReadFile(path, collect(&got))
	require.NoError(t, err)
	assert.Equal(t, 2, st.FormatVersion)
	assert.Equal(t, uint64(41), st.Covered)
	assert.Equal(t, uint64(9), st.MaxVersion)
	assert.Equal(t, items, got)

	v1 := snapshot(t, header(1), itemPayload("snap", []byte("s"), 0, []byte{}, 1), trailer(1, 9))
	got = nil
	st, err = Decode(bytes.NewReader(v1), collect(&got))
	require.NoError(t, err)
	assert.Equal(t, 1, st.FormatVersion)
	assert.Zero(t, st.Covered)
	assert.Equal(t, uint64(9), st.MaxVersion)
	assert.Equal(t, items, got)

	for _, tc := range []struct {
		name    string
		payload []byte
		want    string
	}{
		{"version 2 without covered", header(2), "bad header: 2 fields, want 3"},
		{"version 1 with covered", mp(func(e *msgpack.Encoder) {
			_ = e.EncodeArrayLen(3)
			_ = e.EncodeUint(1)
			_ = e.EncodeInt(5)
			_ = e.EncodeUint(5)
		}), "bad header: 3 fields, want 2"},
		{"covered is a string", mp(func(e *msgpack.Encoder) {
			_ = e.EncodeArrayLen(3)
			_ = e.EncodeUint(2)
			_ = e.EncodeInt(5)
			_ = e.EncodeString("5")
		}), "bad header: covered generation: not an integer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(bytes.NewReader(snapshot(t, tc.payload, trailer(0, 0))), nil)
			require.ErrorIs(t, err, ErrCorrupt)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestTrailerMismatch(t *testing.T) {
	item := itemPayload("k", []byte("v"), 0, []byte{}, 5)
	tests := []struct {
		name    string
		trailer []byte
		want    string
	}{
		{"count too high", trailer(2, 5), "trailer count 2, but 1 items were read"},
		{"count too low", trailer(0, 5), "trailer count 0, but 1 items were read"},
		{"max version below an item", trailer(1, 4), "trailer max version 4, but an item has version 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := snapshot(t, header(1), item, tt.trailer)
			_, err := Decode(bytes.NewReader(data), func(ttlstore.Item) error { return nil })
			require.ErrorIs(t, err, ErrCorrupt)
			assert.Contains(t, err.Error(), tt.want)
		})
	}

	t.Run("max version above items is the store counter", func(t *testing.T) {
		data := snapshot(t, header(1), item, trailer(1, 99))
		st, err := Decode(bytes.NewReader(data), func(ttlstore.Item) error { return nil })
		require.NoError(t, err)
		assert.Equal(t, uint64(99), st.MaxVersion)
	})
}

func TestDataAfterTrailer(t *testing.T) {
	good := encode(t, sampleItems())
	for _, extra := range [][]byte{{0}, framed(t, 0, trailer(0, 0))} {
		_, err := Decode(bytes.NewReader(append(bytes.Clone(good), extra...)), func(ttlstore.Item) error { return nil })
		require.ErrorIs(t, err, ErrCorrupt)
		assert.Equal(t, fmt.Sprintf("unexpected data after the trailer in record at byte %d", len(good)), err.Error())
	}
}

func TestMalformedRecords(t *testing.T) {
	own := []byte(owner("o"))
	tests := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"not an array", mp(func(e *msgpack.Encoder) { _ = e.EncodeString("hi") }), "not a msgpack array"},
		{"empty payload", []byte{}, "not a msgpack array"},
		{"nil array", []byte{0xc0}, "not a msgpack array"},
		{"wrong field count", mp(func(e *msgpack.Encoder) { _ = e.EncodeArrayLen(3); _ = e.EncodeUint(1) }), "record has 3 fields"},
		{"array longer than payload", mp(func(e *msgpack.Encoder) { _ = e.EncodeArrayLen(5) }), "cut short"},
		{"key is bin", itemPayload([]byte("k"), []byte("v"), 0, own, 1), "key: not a msgpack string"},
		{"key is nil", itemPayload(nil, []byte("v"), 0, own, 1), "key: not a msgpack string"},
		{"value is string", itemPayload("k", "v", 0, own, 1), "value: not a msgpack binary"},
		{"value is nil", itemPayload("k", nil, 0, own, 1), "value: not a msgpack binary"},
		{"expires is float", itemPayload("k", []byte("v"), 1.5, own, 1), "expires: not an integer"},
		{"expires is nil", itemPayload("k", []byte("v"), nil, own, 1), "expires: not an integer"},
		{"expires overflows int64", itemPayload("k", []byte("v"), uint64(math.MaxUint64), own, 1), "expires: integer out of range"},
		{"owner too short", itemPayload("k", []byte("v"), 0, []byte("short"), 1), "owner is 5 bytes, want 0 or 32"},
		{"owner too long", itemPayload("k", []byte("v"), 0, make([]byte, 33), 1), "owner is 33 bytes"},
		{"owner is string", itemPayload("k", []byte("v"), 0, string(own), 1), "owner: not a msgpack binary"},
		{"negative version", itemPayload("k", []byte("v"), 0, own, -1), "version: integer out of range"},
		{"version is bool", itemPayload("k", []byte("v"), 0, own, true), "version: not an integer"},
		{"stray bytes", append(itemPayload("k", []byte("v"), 0, own, 1), 0), "1 stray bytes after the item"},
		{"string length past end", append([]byte{0x95, 0xdb, 0xff, 0xff, 0xff, 0xff}, "abc"...), "key: length runs past the end"},
		{"bin length past end", append([]byte{0x95, 0xa1, 'k', 0xc6, 0x7f, 0xff, 0xff, 0xff}, "abc"...), "value: length runs past the end"},
		{"int cut short", []byte{0x95, 0xa1, 'k', 0xc4, 0, 0xd3, 1, 2}, "expires: record is cut short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := snapshot(t, header(1), tt.payload, trailer(1, 1))
			called := false
			_, err := Decode(bytes.NewReader(data), func(ttlstore.Item) error { called = true; return nil })
			require.ErrorIs(t, err, ErrCorrupt)
			assert.Contains(t, err.Error(), tt.want)
			assert.Contains(t, err.Error(), fmt.Sprintf("in record at byte %d", len(snapshot(t, header(1)))))
			assert.False(t, called)
		})
	}
}

func TestMalformedHeader(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"item first", itemPayload("k", []byte("v"), 0, []byte{}, 1), "bad header: format version: not an integer in record at byte 8"},
		{"empty array", []byte{0x90}, "bad header: no format version"},
		{"version is string", mp(func(e *msgpack.Encoder) { _ = e.EncodeArrayLen(2); _ = e.EncodeString("1") }), "format version: not an integer"},
		{"missing created", mp(func(e *msgpack.Encoder) { _ = e.EncodeArrayLen(1); _ = e.EncodeUint(1) }), "bad header: 1 fields, want 2"},
		{"created is nil", mp(func(e *msgpack.Encoder) { _ = e.EncodeArrayLen(2); _ = e.EncodeUint(1); _ = e.EncodeNil() }), "created: not an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(bytes.NewReader(snapshot(t, tt.payload, trailer(0, 0))), nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestNonCanonicalIntegersAccepted(t *testing.T) {
	// Any msgpack integer width is fine as long as the value fits: other
	// writers (or a later version of this one) need not pick the shortest.
	payload := []byte{0x95, 0xa1, 'k', 0xc4, 0, 0xd3, 0, 0, 0, 0, 0, 0, 0, 9, 0xc4, 0, 0xcf, 0, 0, 0, 0, 0, 0, 0, 3}
	var got []ttlstore.Item
	_, err := Decode(bytes.NewReader(snapshot(t, header(1), payload, trailer(1, 3))), collect(&got))
	require.NoError(t, err)
	assert.Equal(t, []ttlstore.Item{{Key: "k", Value: []byte{}, Expires: 9, Version: 3}}, got)
}

func TestDecodeCallbackErrorStops(t *testing.T) {
	errStop := errors.New("stop")
	n := 0
	_, err := Decode(bytes.NewReader(encode(t, sampleItems())), func(ttlstore.Item) error {
		n++
		if n == 2 {
			return errStop
		}
		return nil
	})
	assert.Same(t, errStop, err, "fn's error is passed through unchanged")
	assert.Equal(t, 2, n)
}

func TestEncodeRefusesUnreadableItems(t *testing.T) {
	for _, it := range []ttlstore.Item{
		{Key: "k", Value: []byte("v"), Owner: "not a hash"},
		{Key: "k", Value: make([]byte, MaxRecord)},
	} {
		_, err := Encode(io.Discard, iterateOver([]ttlstore.Item{it}))
		require.Error(t, err)
		assert.Contains(t, err.Error(), `key "k"`)
	}
}

func TestEncodeStopsEvenIfIterateIgnoresYieldError(t *testing.T) {
	calls := 0
	sloppy := func(yield func(ttlstore.Item) error) error {
		for _, it := range sampleItems() {
			calls++
			_ = yield(it) // wrongly ignored
		}
		return nil
	}
	_, err := Encode(&failingWriter{}, sloppy)
	require.ErrorIs(t, err, errDiskFull)
	assert.Equal(t, len(sampleItems()), calls)
}

func TestEncodeReturnsIterateError(t *testing.T) {
	errIter := errors.New("store closed")
	_, err := Encode(io.Discard, func(func(ttlstore.Item) error) error { return errIter })
	assert.Same(t, errIter, err)
}

// dirEntries lists names in dir, to catch stray temporary files.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileFailureLeavesOldFile(t *testing.T) {
	path, old := snapshotFile(t)
	dir := filepath.Dir(path)
	errMidway := errors.New("shard lock lost")

	failures := map[string]func(func(ttlstore.Item) error) error{
		"iterate fails midway": func(yield func(ttlstore.Item) error) error {
			for i := range 5000 { // enough to flush part of the file to disk
				if err := yield(ttlstore.Item{Key: strconv.Itoa(i), Value: make([]byte, 100)}); err != nil {
					return err
				}
			}
			return errMidway
		},
		"bad item midway": iterateOver(append(sampleItems(), ttlstore.Item{Key: "bad", Owner: "short"})),
	}
	for name, iterate := range failures {
		t.Run(name, func(t *testing.T) {
			_, err := WriteFile(path, iterate)
			require.Error(t, err)
			assert.Contains(t, err.Error(), path)

			now, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, old, now, "old snapshot must be untouched")
			assert.Equal(t, []string{"rendezvous.db"}, dirEntries(t, dir), "no temporary file may remain")
		})
	}
}

func TestWriteFileReplacesOld(t *testing.T) {
	path, _ := snapshotFile(t)
	items := []ttlstore.Item{{Key: "new", Value: []byte("state"), Version: 42}}
	_, err := WriteFile(path, iterateOver(items))
	require.NoError(t, err)

	var got []ttlstore.Item
	_, err = ReadFile(path, collect(&got))
	require.NoError(t, err)
	assert.Equal(t, items, got)
	assert.Equal(t, []string{"rendezvous.db"}, dirEntries(t, filepath.Dir(path)))
}

func TestWriteFileMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "rendezvous.db")
	_, err := WriteFile(path, iterateOver(sampleItems()))
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
}

func TestReadFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rendezvous.db")
	_, err := ReadFile(path, func(ttlstore.Item) error { return nil })
	require.ErrorIs(t, err, fs.ErrNotExist)
	assert.Equal(t, "snapshot "+path+": no such file or directory", err.Error())
}

func TestReadFileEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rendezvous.db")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	_, err := ReadFile(path, func(ttlstore.Item) error { return nil })
	require.ErrorIs(t, err, ErrTruncated, "an empty file is not an empty store")
	assert.NotErrorIs(t, err, fs.ErrNotExist)
}
