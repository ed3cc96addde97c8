package persist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// jnlForgedFrame returns a frame header claiming n payload bytes, with a
// valid header checksum, followed by payload.
func jnlForgedFrame(n uint32, payload []byte) []byte {
	var hdr [FrameHeaderSize]byte
	binary.BigEndian.PutUint32(hdr[0:4], n)
	binary.BigEndian.PutUint32(hdr[4:8], crc32.Checksum(payload, castagnoli))
	binary.BigEndian.PutUint32(hdr[8:12], crc32.Checksum(hdr[0:8], castagnoli))
	return append(hdr[:], payload...)
}

// jnlFramedPayload frames an arbitrary payload correctly.
func jnlFramedPayload(payload []byte) []byte {
	return jnlForgedFrame(uint32(len(payload)), payload)
}

// jnlRawRecord encodes a journal record field by field, so that seeds can
// hold records Append would never write.
func jnlRawRecord(tb testing.TB, fields ...any) []byte {
	tb.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := enc.EncodeArrayLen(len(fields)); err != nil {
		tb.Fatal(err)
	}
	for _, f := range fields {
		if err := enc.Encode(f); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.Bytes()
}

// jnlFuzzSeeds returns journal bodies (what follows the magic), valid and
// damaged.
func jnlFuzzSeeds(tb testing.TB) [][]byte {
	valid := jnlBody(tb,
		jnlSet("k", "v", 1),
		ttlstore.Change{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "owned", Value: []byte{0, 1, 2}, Owner: jnlOwner("o"), Expires: 1_800_000_000_000_000_000, Version: 2}},
		jnlDel("k", 3),
		ttlstore.Change{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "", Value: []byte{}, Expires: -1, Version: math.MaxUint64}},
	)
	flipped := bytes.Clone(valid)
	flipped[len(flipped)/2] ^= 0x04
	withTxn := jnlMixedBody(tb,
		jnlSet("k", "v", 1),
		jnlTxn{
			jnlSet("a", "1", 2),
			{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "o", Value: []byte{}, Owner: jnlOwner("o"), Expires: 5, Version: 2}},
			jnlDel("k", 2),
		},
		jnlSet("b", "2", 3),
	)
	change := func(op any, key string) []any { return []any{op, key, []byte("v"), 0, []byte{}} }
	rawTxn := func(changes any) []byte { return jnlFramedPayload(jnlRawRecord(tb, 3, changes, 9)) }
	return [][]byte{
		valid,
		valid[:len(valid)-7],                // torn inside the last record
		valid[:FrameHeaderSize/2],           // torn inside the first header
		flipped,                             // a checksum mismatch
		jnlForgedFrame(math.MaxUint32, nil), // a forged length over the limit
		jnlForgedFrame(MaxRecord, []byte("short")),                                    // within the limit, longer than the input
		jnlFramedPayload(jnlRawRecord(tb, 9, "k", []byte("v"), 0, []byte{}, 1)),       // unknown op
		jnlFramedPayload(jnlRawRecord(tb, 1, "k", []byte("v"), 0, []byte{}, 1, 2)),    // 7 fields
		jnlFramedPayload(jnlRawRecord(tb, 1, "k", []byte("v"), 0, []byte("ab"), 1)),   // bad owner
		jnlFramedPayload(jnlRawRecord(tb, 2, "k", []byte("v"), 0, []byte{}, -1)),      // negative version
		jnlFramedPayload(jnlRawRecord(tb, uint64(1), "k", nil, int8(5), []byte{}, 1)), // nil value
		jnlFramedPayload([]byte{0x96, 0x01}),                                          // cut short
		{},
		withTxn,                                                                 // a transaction between two changes
		withTxn[:len(withTxn)-30],                                               // torn inside the transaction
		jnlFramedPayload(jnlRawRecord(tb, 3, "k", []byte("v"), 0, []byte{}, 1)), // the transaction op, 6 fields
		jnlFramedPayload(jnlRawRecord(tb, 1, []any{change(1, "k")}, 1)),         // 3 fields, not the transaction op
		rawTxn([]any{change(1, "a"), change(2, "b")}),                           // valid, written by hand
		rawTxn([]any{}),                                                         // no change
		rawTxn([]any{change(1, "a"), change(2, "a")}),                           // a key twice
		rawTxn([]any{change(1, "a"), change(3, "b")}),                           // a nested transaction op
		rawTxn([]any{change(1, "a"), []any{1, "b", []byte("v"), 0}}),            // a change of 4 fields
		rawTxn("not an array"),                                                  // changes not an array
		jnlFramedPayload([]byte{0x93, 0x03, 0xdd, 0xff, 0xff, 0xff, 0xff}),      // forged change count
	}
}

// FuzzJournalDecode feeds arbitrary bytes to the journal decoder. It must
// never panic, must only fail with a *RecordError for a truncation or
// corruption at a frame boundary inside the input, and must report exactly
// the records it applied. A truncated input cut at the reported offset
// must decode cleanly, since that is what recovery leaves on disk; a
// decoded journal must survive re-encoding.
func FuzzJournalDecode(f *testing.F) {
	for _, seed := range jnlFuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		jnlCheckDecode(t, body)
		// Random bytes rarely get past the checksums, so the same input is
		// also tried as the payload of one correctly framed record.
		jnlCheckDecode(t, jnlFramedPayload(body))
	})
}

// jnlCheckDecode decodes a journal body and checks the properties every
// outcome must have.
func jnlCheckDecode(t *testing.T, body []byte) {
	t.Helper()
	const off = int64(len(JournalMagic))
	var rec jnlRecorder
	n, err := decodeJournal(bytes.NewReader(body), off, &rec)
	require.Equal(t, len(rec.records), n, "the count must match the records applied")
	for _, r := range rec.records {
		if r.Op == ttlstore.OpSet {
			require.NotNil(t, r.Item.Value)
			require.Contains(t, []int{0, ownerLen}, len(r.Item.Owner))
		}
	}
	if err != nil {
		var re *RecordError
		if !errors.As(err, &re) || (re.Err != ErrTruncated && re.Err != ErrCorrupt) {
			t.Fatalf("want a *RecordError for a truncation or corruption, got %T: %v", err, err)
		}
		require.GreaterOrEqual(t, re.Offset, off)
		require.LessOrEqual(t, re.Offset, off+int64(len(body)))
		if re.Err == ErrTruncated {
			var again jnlRecorder
			m, err := decodeJournal(bytes.NewReader(body[:re.Offset-off]), off, &again)
			require.NoError(t, err, "the prefix before a torn tail must be clean")
			require.Equal(t, n, m)
			require.Equal(t, rec.records, again.records)
		}
		return
	}
	var changes []ttlstore.Change
	for _, r := range rec.records {
		changes = append(changes, ttlstore.Change{Op: r.Op, Item: r.Item})
	}
	var again jnlRecorder
	m, err := decodeJournal(bytes.NewReader(jnlBody(t, changes...)), off, &again)
	require.NoError(t, err, "a decoded journal must encode again")
	require.Equal(t, n, m)
	require.Equal(t, rec.records, again.records)
}

// TestJournalDecodeSeeds pins what each fuzz seed decodes to.
func TestJournalDecodeSeeds(t *testing.T) {
	seeds := jnlFuzzSeeds(t)
	want := []struct {
		err     error
		records int
	}{
		{nil, 4},
		{ErrTruncated, 3},
		{ErrTruncated, 0},
		{ErrCorrupt, 1},
		{ErrCorrupt, 0},
		{ErrTruncated, 0},
		{ErrCorrupt, 0},
		{ErrCorrupt, 0},
		{ErrCorrupt, 0},
		{ErrCorrupt, 0},
		{ErrCorrupt, 0},
		{ErrCorrupt, 0},
		{nil, 0},
		{nil, 5},
		{ErrTruncated, 1},
		{ErrCorrupt, 0},
		{ErrCorrupt, 0},
		{nil, 2},
		{ErrCorrupt, 0},
		{ErrCorrupt, 0},
		{ErrCorrupt, 0},
		{ErrCorrupt, 0},
		{ErrCorrupt, 0},
		{ErrCorrupt, 0},
	}
	require.Len(t, seeds, len(want))
	for i, w := range want {
		var rec jnlRecorder
		n, err := decodeJournal(bytes.NewReader(seeds[i]), int64(len(JournalMagic)), &rec)
		assert.Equal(t, w.records, n, "seed %d", i)
		if w.err == nil {
			assert.NoError(t, err, "seed %d", i)
		} else {
			assert.ErrorIs(t, err, w.err, "seed %d", i)
		}
	}
}

// TestJournalFuzzSeedFiles checks that the hand-made corpus still means
// what its names say.
func TestJournalFuzzSeedFiles(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzJournalDecode")
	for name, want := range map[string]error{
		"seed-valid":              nil,
		"seed-torn-tail":          ErrTruncated,
		"seed-forged-huge-length": ErrCorrupt,
		"seed-transaction":        nil,
	} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, name))
			require.NoError(t, err)
			body := jnlParseCorpusFile(t, data)
			var rec jnlRecorder
			_, err = decodeJournal(bytes.NewReader(body), int64(len(JournalMagic)), &rec)
			if want == nil {
				require.NoError(t, err)
				assert.NotEmpty(t, rec.records)
				return
			}
			assert.ErrorIs(t, err, want)
		})
	}
}

// jnlParseCorpusFile reads a "go test fuzz v1" file holding one []byte
// written with only \x escapes inside the quotes.
func jnlParseCorpusFile(t *testing.T, data []byte) []byte {
	t.Helper()
	const head, open, end = "go test fuzz v1\n", "[]byte(\"", "\")\n"
	require.True(t, bytes.HasPrefix(data, []byte(head+open)), "bad corpus header")
	require.True(t, bytes.HasSuffix(data, []byte(end)), "bad corpus trailer")
	lit := data[len(head)+len(open) : len(data)-len(end)]
	var out []byte
	for i := 0; i < len(lit); {
		require.True(t, i+4 <= len(lit) && lit[i] == '\\' && lit[i+1] == 'x', "only \\x escapes expected")
		var b byte
		for _, c := range lit[i+2 : i+4] {
			b <<= 4
			switch {
			case c >= '0' && c <= '9':
				b |= c - '0'
			case c >= 'a' && c <= 'f':
				b |= c - 'a' + 10
			default:
				t.Fatalf("bad hex digit %q", c)
			}
		}
		out = append(out, b)
		i += 4
	}
	return out
}

// FuzzJournalRecover runs recovery on a journal file holding the magic
// and body: it must not panic, must never cut a file it refuses, and when
// it succeeds it must leave a file that recovers again to the same records
// with nothing more cut.
func FuzzJournalRecover(f *testing.F) {
	valid := jnlBody(f, jnlChanges(3)...)
	zeros := make([]byte, 100)
	f.Add(valid)
	f.Add(append(bytes.Clone(valid), zeros...))                     // preallocated space
	f.Add(append(bytes.Clone(valid[:len(valid)-5]), zeros...))      // a torn copy
	f.Add(append(append(bytes.Clone(valid), zeros...), valid...))   // records after zeros
	f.Add(append(append(bytes.Clone(valid), 0, 0, 0, 1), zeros...)) // a stray byte
	flipped := bytes.Clone(valid)
	flipped[len(flipped)-2] ^= 0x04
	f.Add(append(flipped, zeros...)) // a whole last record with a flipped bit
	withTxn := jnlMixedBody(f, jnlSet("a", "0", 1), jnlCommit(2, "a=1", "b=1"))
	f.Add(withTxn)
	f.Add(append(bytes.Clone(withTxn[:len(withTxn)-4]), zeros...)) // a torn transaction
	f.Fuzz(func(t *testing.T, body []byte) {
		path := filepath.Join(t.TempDir(), "data.db")
		name := journalName(path, 1)
		data := append([]byte(JournalMagic), body...)
		require.NoError(t, os.WriteFile(name, data, 0o600))
		var rec jnlRecorder
		st, err := Recover(path, &rec, false, nil)
		after, rerr := os.ReadFile(name)
		require.NoError(t, rerr)
		if err != nil {
			require.Equal(t, data, after, "a journal recovery refuses is left as it was")
			return
		}
		require.Equal(t, data[:len(after)], after, "recovery only cuts the end")
		var again jnlRecorder
		st2, err := Recover(path, &again, false, nil)
		require.NoError(t, err)
		require.Zero(t, st2.TornTails)
		require.Zero(t, st2.CorruptTails)
		require.Equal(t, st.JournalRecords, st2.JournalRecords)
		require.Equal(t, rec.records, again.records)
		final, rerr := os.ReadFile(name)
		require.NoError(t, rerr)
		require.Equal(t, after, final, "a recovered journal is not cut again")
	})
}
