package persist

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// jnlChanges returns n sets of distinct keys, versions 1..n.
func jnlChanges(n int) []ttlstore.Change {
	changes := make([]ttlstore.Change, n)
	for i := range changes {
		changes[i] = jnlSet(fmt.Sprintf("key-%02d", i), fmt.Sprintf("value number %d", i), uint64(i+1))
	}
	return changes
}

// jnlWriteJournal writes changes as journal generation gen beside path
// and returns its file name and content.
func jnlWriteJournal(t *testing.T, path string, gen uint64, changes ...ttlstore.Change) (string, []byte) {
	t.Helper()
	name := journalName(path, gen)
	data := append([]byte(JournalMagic), jnlBody(t, changes...)...)
	require.NoError(t, os.WriteFile(name, data, 0o600))
	return name, data
}

func jnlSize(t *testing.T, name string) int64 {
	t.Helper()
	info, err := os.Stat(name)
	require.NoError(t, err)
	return info.Size()
}

// jnlMovedAside checks that name was renamed to one of the names in aside
// with its content unchanged, and returns that name.
func jnlMovedAside(t *testing.T, name string, content []byte, aside []string) string {
	t.Helper()
	_, err := os.Stat(name)
	require.ErrorIs(t, err, fs.ErrNotExist, "the damaged file must not stay under its name")
	require.Len(t, aside, 1)
	moved := aside[0]
	assert.True(t, strings.HasPrefix(moved, name+".damaged-"), "moved to %s", moved)
	data, err := os.ReadFile(moved)
	require.NoError(t, err, "the damaged file must be kept")
	assert.Equal(t, content, data, "the damaged file must be kept as it was")
	return moved
}

func TestRecoverNothing(t *testing.T) {
	s, st := jnlRecover(t, jnlPath(t))
	assert.Equal(t, RecoverStats{Duration: st.Duration}, st)
	assert.Zero(t, s.Len())
}

func TestRecoverGenerationsInOrder(t *testing.T) {
	path := jnlPath(t)
	jnlWriteJournal(t, path, 3, jnlSet("k", "third", 5), jnlDel("gone", 6))
	jnlWriteJournal(t, path, 1, jnlSet("k", "first", 1), jnlSet("gone", "x", 2))
	jnlWriteJournal(t, path, 2, jnlDel("k", 3), jnlSet("k", "second", 4))
	// Files recovery must leave alone.
	require.NoError(t, os.WriteFile(path+".journal.0000000000000004.damaged-1", []byte("junk"), 0o600))
	require.NoError(t, os.WriteFile(path+".journal.backup", []byte("junk"), 0o600))

	s, st := jnlRecover(t, path)
	assert.Equal(t, 3, st.JournalFiles)
	assert.Equal(t, 6, st.JournalRecords)
	assert.Equal(t, map[string]ttlstore.Item{"k": {Key: "k", Value: []byte("third"), Version: 5}}, jnlState(t, s))
	assert.Equal(t, uint64(6), s.Version())
}

// TestRecoverJournalOverNewerSnapshot replays journal generations that a
// snapshot already covers (a crash between writing the snapshot and
// removing them): newer snapshot entries must win, and deleted keys must
// stay deleted.
func TestRecoverJournalOverNewerSnapshot(t *testing.T) {
	path := jnlPath(t)
	// Generation 1, covered by the snapshot.
	jnlWriteJournal(t, path, 1,
		jnlSet("a", "a1", 1),
		jnlSet("b", "b1", 2),
		jnlSet("c", "c1", 3),
		jnlDel("b", 4),
		jnlSet("d", "d1", 5),
		jnlDel("c", 6),
		jnlSet("e", "e1", 7),
	)
	// The snapshot, taken later: a and e changed, c created again, b and
	// d absent.
	snap := []ttlstore.Item{
		{Key: "a", Value: []byte("a9"), Version: 10},
		{Key: "c", Value: []byte("c9"), Owner: jnlOwner("c"), Version: 11},
		{Key: "e", Value: []byte("e9"), Version: 9},
	}
	_, err := WriteFileVersion(path, 12, jnlIterate(snap))
	require.NoError(t, err)
	// Generation 2, written during the snapshot: d deleted at version 12.
	jnlWriteJournal(t, path, 2, jnlDel("d", 12), jnlSet("a", "a8", 8))

	s, st := jnlRecover(t, path)
	assert.Equal(t, 3, st.SnapshotKeys)
	assert.Equal(t, 9, st.JournalRecords)
	want := make(map[string]ttlstore.Item)
	for _, it := range snap {
		want[it.Key] = it
	}
	assert.Equal(t, want, jnlState(t, s), "no older value may win, no deleted key may come back")
	assert.Equal(t, uint64(12), s.Version())
}

func jnlIterate(items []ttlstore.Item) func(func(ttlstore.Item) error) error {
	return func(yield func(ttlstore.Item) error) error {
		for _, it := range items {
			if err := yield(it); err != nil {
				return err
			}
		}
		return nil
	}
}

// TestRecoverTornTail cuts the journal at every offset inside its last
// record: recovery keeps the records before it, cuts the file back and
// logs the cut once.
func TestRecoverTornTail(t *testing.T) {
	const n = 6
	path := jnlPath(t)
	changes := jnlChanges(n)
	changes[n-1].Item.Owner = jnlOwner("last") // a longer last record
	name, data := jnlWriteJournal(t, path, 1, changes...)
	starts := jnlFrames(t, data, len(JournalMagic))
	require.Len(t, starts, n)
	last := starts[n-1]
	keep := jnlExpected(changes[:n-1])

	for cut := last; cut < int64(len(data)); cut++ {
		require.NoError(t, os.WriteFile(name, data[:cut], 0o600))
		var logged bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logged, nil))
		var rec jnlRecorder
		st, err := Recover(path, &rec, false, log)
		require.NoError(t, err, "cut at %d", cut)
		assert.Equal(t, keep, rec.records, "cut at %d", cut)
		assert.Equal(t, n-1, st.JournalRecords, "cut at %d", cut)
		assert.Equal(t, last, jnlSize(t, name), "cut at %d: the file must end at the last whole record", cut)
		if cut == last {
			// Exactly on a frame boundary: nothing is torn.
			assert.Zero(t, st.TornTails)
			assert.Empty(t, logged.String())
			continue
		}
		assert.Equal(t, 1, st.TornTails, "cut at %d", cut)
		assert.Contains(t, logged.String(), "torn write", "cut at %d", cut)
		assert.Contains(t, logged.String(), name, "cut at %d", cut)
		assert.Contains(t, logged.String(), fmt.Sprintf("offset=%d", last), "cut at %d", cut)

		// The cut file is clean now.
		rec = jnlRecorder{}
		st, err = Recover(path, &rec, false, nil)
		require.NoError(t, err)
		assert.Zero(t, st.TornTails, "cut at %d: the second recovery must find no torn tail", cut)
		assert.Equal(t, keep, rec.records)
	}
}

// TestRecoverTornTailThenNextGeneration: a torn tail in one generation is
// cut, and later generations still replay.
func TestRecoverTornTailThenNextGeneration(t *testing.T) {
	path := jnlPath(t)
	name, data := jnlWriteJournal(t, path, 1, jnlSet("a", "1", 1), jnlSet("b", "2", 2))
	require.NoError(t, os.WriteFile(name, data[:len(data)-3], 0o600))
	jnlWriteJournal(t, path, 2, jnlSet("c", "3", 3))
	s, st := jnlRecover(t, path)
	assert.Equal(t, 1, st.TornTails)
	assert.Equal(t, 2, st.JournalRecords)
	state := jnlState(t, s)
	assert.Contains(t, state, "a")
	assert.NotContains(t, state, "b")
	assert.Contains(t, state, "c")
}

// TestRecoverTailChecksumIsNotATornWrite: after a crash a mapped journal
// has zeros after its last record. A last record that is whole but fails
// its checksum is cut like a torn one, but the log says what it is, with
// its offset; a copy that was cut short is still a torn write.
func TestRecoverTailChecksumIsNotATornWrite(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version uint64                         // of the last record
		damage  func(rec []byte) (flipped int) // returns the byte with one flipped bit, or -1
		torn    bool
	}{
		{"one flipped bit", 7, func(rec []byte) int { rec[FrameHeaderSize+3] ^= 0x08; return FrameHeaderSize + 3 }, false},
		{"one flipped bit, record ending in a zero byte", 256, func(rec []byte) int {
			rec[FrameHeaderSize+5] ^= 0x40
			return FrameHeaderSize + 5
		}, false},
		{"two changed bytes", 7, func(rec []byte) int {
			rec[FrameHeaderSize+2] ^= 0x11
			rec[len(rec)-3] ^= 0x81
			return -1
		}, false},
		{"a copy cut short", 7, func(rec []byte) int { clear(rec[len(rec)-6:]); return -1 }, true},
		{"a header and nothing else", 7, func(rec []byte) int { clear(rec[FrameHeaderSize:]); return -1 }, true},
		{"part of a header", 7, func(rec []byte) int { clear(rec[5:]); return -1 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := jnlPath(t)
			changes := jnlChanges(4)
			last := jnlSet("last", "the last value written", tc.version)
			name, data := jnlWriteJournal(t, path, 1, append(changes, last)...)
			starts := jnlFrames(t, data, len(JournalMagic))
			at := starts[len(starts)-1]
			if tc.version == 256 {
				require.Zero(t, data[len(data)-1], "the record ends in a zero byte")
			}
			flipped := tc.damage(data[at:])
			data = append(data, make([]byte, 2*holePage)...) // the rest of the mapped window
			require.NoError(t, os.WriteFile(name, data, 0o600))

			var logged bytes.Buffer
			var rec jnlRecorder
			st, err := Recover(path, &rec, false, slog.New(slog.NewTextHandler(&logged, nil)))
			require.NoError(t, err)
			assert.Equal(t, jnlExpected(changes), rec.records)
			assert.Equal(t, at, jnlSize(t, name), "cut before the last record")
			out := logged.String()
			assert.Contains(t, out, fmt.Sprintf("offset=%d", at))
			if tc.torn {
				assert.Contains(t, out, "torn write")
				assert.NotContains(t, out, "checksum")
				assert.Equal(t, 1, st.TornTails)
				assert.Zero(t, st.CorruptTails)
				return
			}
			assert.Contains(t, out, "journal's last record is whole but fails its checksum")
			assert.NotContains(t, out, "torn")
			assert.Zero(t, st.TornTails)
			assert.Equal(t, 1, st.CorruptTails)
			if flipped >= 0 {
				assert.Contains(t, out, fmt.Sprintf("flipped_bit_in_byte=%d", at+int64(flipped)))
			} else {
				assert.NotContains(t, out, "flipped_bit")
			}
		})
	}
}

// TestFlippedBit: a single flipped bit is found in every position; no
// error, or two flipped bits, is not taken for one (CRC-32C tells one-
// and two-bit errors apart at this length).
func TestFlippedBit(t *testing.T) {
	payload := make([]byte, 300)
	for i := range payload {
		payload[i] = byte(i*7 + 3)
	}
	want := crc32.Checksum(payload, castagnoli)
	assert.Equal(t, -1, flippedBit(payload, want))
	for i := range payload {
		for b := range 8 {
			payload[i] ^= 1 << b
			require.Equal(t, i, flippedBit(payload, want), "bit %d of byte %d", b, i)
			payload[(i+37)%len(payload)] ^= 0x02
			require.Equal(t, -1, flippedBit(payload, want), "two bits")
			payload[(i+37)%len(payload)] ^= 0x02
			payload[i] ^= 1 << b
		}
	}
	big := make([]byte, flipSearchLimit+1)
	sum := crc32.Checksum(big, castagnoli)
	big[10] ^= 1
	assert.Equal(t, -1, flippedBit(big, sum), "over the limit, no search")
}

func TestRecoverShortJournals(t *testing.T) {
	t.Run("zero length", func(t *testing.T) {
		path := jnlPath(t)
		name := journalName(path, 1)
		require.NoError(t, os.WriteFile(name, nil, 0o600))
		s, st := jnlRecover(t, path)
		assert.Equal(t, RecoverStats{JournalFiles: 1, LastGeneration: 1, Duration: st.Duration}, st)
		assert.Zero(t, s.Len())
		assert.Zero(t, jnlSize(t, name))
	})
	t.Run("magic only", func(t *testing.T) {
		path := jnlPath(t)
		jnlWriteJournal(t, path, 1)
		_, st := jnlRecover(t, path)
		assert.Equal(t, RecoverStats{JournalFiles: 1, LastGeneration: 1, Duration: st.Duration}, st)
	})
	for k := 1; k < len(JournalMagic); k++ {
		t.Run(fmt.Sprintf("partial magic %d", k), func(t *testing.T) {
			path := jnlPath(t)
			name := journalName(path, 1)
			require.NoError(t, os.WriteFile(name, []byte(JournalMagic[:k]), 0o600))
			_, st := jnlRecover(t, path)
			assert.Equal(t, 1, st.TornTails)
			assert.Zero(t, st.JournalRecords)
			assert.Zero(t, jnlSize(t, name), "a partial magic is cut away")
			_, st = jnlRecover(t, path)
			assert.Zero(t, st.TornTails)
		})
	}
	t.Run("wrong magic", func(t *testing.T) {
		path := jnlPath(t)
		name := journalName(path, 1)
		require.NoError(t, os.WriteFile(name, []byte("RDVSNAP\x00"), 0o600))
		_, err := Recover(path, ttlstore.New(ttlstore.Options{}), false, nil)
		require.ErrorIs(t, err, ErrCorrupt)
		assert.Contains(t, err.Error(), name)
		assert.Contains(t, err.Error(), "byte 0")
		assert.Equal(t, int64(8), jnlSize(t, name), "damage is never cut off")
	})
}

// TestRecoverCorruptJournal flips one byte in a middle record: recovery
// stops with an error naming the file and the record's offset, and repair
// keeps the records before it, moves the file aside and goes on with the
// next generation.
func TestRecoverCorruptJournal(t *testing.T) {
	const n = 5
	for _, tc := range []struct {
		name   string
		record int // which record to damage
		at     func(start, end int64) int64
	}{
		{"payload of a middle record", 2, func(start, end int64) int64 { return (start + FrameHeaderSize + end) / 2 }},
		{"length of a middle record", 2, func(start, end int64) int64 { return start + 3 }},
		{"header checksum of a middle record", 2, func(start, end int64) int64 { return start + FrameHeaderSize - 1 }},
		{"payload of the last record", n - 1, func(start, end int64) int64 { return end - 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := jnlPath(t)
			changes := jnlChanges(n)
			name, data := jnlWriteJournal(t, path, 1, changes...)
			jnlWriteJournal(t, path, 2, jnlSet("after", "x", 100))
			starts := append(jnlFrames(t, data, len(JournalMagic)), int64(len(data)))
			start := starts[tc.record]
			data[tc.at(start, starts[tc.record+1])] ^= 0x10
			require.NoError(t, os.WriteFile(name, data, 0o600))

			_, err := Recover(path, ttlstore.New(ttlstore.Options{}), false, nil)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrCorrupt)
			assert.Contains(t, err.Error(), name)
			assert.Contains(t, err.Error(), fmt.Sprintf("byte %d", start))
			var re *RecordError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, start, re.Offset)
			var rep *RepairError
			require.ErrorAs(t, err, &rep, "repair gets past damage")
			assert.Contains(t, rep.Repair, "keep the records before it")
			got, err := os.ReadFile(name)
			require.NoError(t, err)
			assert.Equal(t, data, got, "without repair nothing is changed")

			var logged bytes.Buffer
			s := ttlstore.New(ttlstore.Options{})
			st, err := Recover(path, s, true, slog.New(slog.NewTextHandler(&logged, nil)))
			require.NoError(t, err)
			moved := jnlMovedAside(t, name, data, st.MovedAside)
			assert.Contains(t, logged.String(), moved)
			assert.Equal(t, tc.record+1, st.JournalRecords, "the records before the damage, then the next generation")
			assert.Zero(t, st.TornTails)
			want := make(map[string]ttlstore.Item)
			for _, c := range changes[:tc.record] {
				want[c.Item.Key] = c.Item
			}
			want["after"] = jnlSet("after", "x", 100).Item
			assert.Equal(t, want, jnlState(t, s))
			assert.Equal(t, uint64(100), s.Version())

			// The moved file is not read again, once the snapshot that
			// follows a repair covers its generation.
			assert.Equal(t, []uint64{2}, jnlGenerations(t, path))
			_, err = WriteFileCovering(path, s.Version(), 1, s.Snapshot)
			require.NoError(t, err)
			_, st = jnlRecover(t, path)
			assert.Empty(t, st.MovedAside)
			assert.Equal(t, 1, st.JournalRecords)
		})
	}
}

// TestRecoverDamagedSnapshot damages one item of the snapshot: without
// repair recovery stops; with it the items before the damage are kept, the
// snapshot is moved aside and the journal is still replayed.
func TestRecoverDamagedSnapshot(t *testing.T) {
	path := jnlPath(t)
	var items []ttlstore.Item
	for i := range 6 {
		items = append(items, ttlstore.Item{Key: fmt.Sprintf("snap-%d", i), Value: []byte("v"), Version: uint64(i + 1)})
	}
	_, err := WriteFileVersion(path, 6, jnlIterate(items))
	require.NoError(t, err)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	starts := jnlFrames(t, data, len(Magic)) // header, 6 items, trailer
	require.Len(t, starts, 8)
	bad := starts[4] // the fourth item
	data[bad+FrameHeaderSize+2] ^= 0x01
	require.NoError(t, os.WriteFile(path, data, 0o600))
	jnlWriteJournal(t, path, 1, jnlSet("journal", "j", 7), jnlDel("snap-0", 8))

	_, err = Recover(path, ttlstore.New(ttlstore.Options{}), false, nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), fmt.Sprintf("byte %d", bad))

	s := ttlstore.New(ttlstore.Options{})
	st, err := Recover(path, s, true, nil)
	require.NoError(t, err)
	jnlMovedAside(t, path, data, st.MovedAside)
	assert.Equal(t, 3, st.SnapshotKeys)
	assert.Equal(t, 2, st.JournalRecords)
	want := map[string]ttlstore.Item{
		"snap-1":  items[1],
		"snap-2":  items[2],
		"journal": jnlSet("journal", "j", 7).Item,
	}
	assert.Equal(t, want, jnlState(t, s))
	assert.Equal(t, uint64(8), s.Version())

	// The next start finds no snapshot, only the journal.
	_, st = jnlRecover(t, path)
	assert.Zero(t, st.SnapshotKeys)
	assert.Equal(t, 2, st.JournalRecords)
}

func TestRecoverTruncatedSnapshotNeedsRepair(t *testing.T) {
	path := jnlPath(t)
	_, err := WriteFileVersion(path, 0, jnlIterate([]ttlstore.Item{{Key: "k", Value: []byte("v"), Version: 1}}))
	require.NoError(t, err)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data[:len(data)-1], 0o600))

	// A snapshot is written whole or not at all, so unlike a journal a
	// truncated one is damage.
	_, err = Recover(path, ttlstore.New(ttlstore.Options{}), false, nil)
	require.ErrorIs(t, err, ErrTruncated)
	assert.Contains(t, err.Error(), path)

	s := ttlstore.New(ttlstore.Options{})
	st, err := Recover(path, s, true, nil)
	require.NoError(t, err)
	jnlMovedAside(t, path, data[:len(data)-1], st.MovedAside)
	_, ok := s.Get("k")
	assert.True(t, ok)
}

// TestRecoverJournalReadError: an error reading a journal is not a torn
// write. Were it taken for one, recovery would cut the file to the "last
// whole record" and destroy it. A directory where a generation should be
// gives a read error (EISDIR) on the magic.
func TestRecoverJournalReadError(t *testing.T) {
	path := jnlPath(t)
	name := journalName(path, 1)
	require.NoError(t, os.Mkdir(name, 0o700))

	_, err := replayJournal(name, &jnlRecorder{})
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrTruncated)
	assert.NotErrorIs(t, err, ErrCorrupt)
	assert.ErrorIs(t, err, syscall.EISDIR)

	_, err = Recover(path, ttlstore.New(ttlstore.Options{}), false, nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, syscall.EISDIR)
	assert.Contains(t, err.Error(), name)
	assert.NotContains(t, err.Error(), "torn")
}

// TestRecoverPowerCutHole: after a power cut the newest journal can read
// as zeros where pages were never written back, with records after them.
// Recovery cuts the journal at the first record the hole spoils, keeps the
// bytes from there on in a file beside it, and starts. Zeros that are not
// a page, or a hole in an older generation, are still damage.
func TestRecoverPowerCutHole(t *testing.T) {
	const n = 600 // about 6 pages of records
	changes := jnlChanges(n)
	body := append([]byte(JournalMagic), jnlBody(t, changes...)...)
	starts := jnlFrames(t, body, len(JournalMagic))
	require.Greater(t, len(body), 5*holePage)
	// frameAt returns the index of the frame holding byte off.
	frameAt := func(off int64) int {
		i := 0
		for i+1 < len(starts) && starts[i+1] <= off {
			i++
		}
		return i
	}
	// A record boundary in the middle of page 3.
	mid := frameAt(3*holePage + holePage/2)
	require.NotZero(t, starts[mid]%holePage)

	for _, tc := range []struct {
		name     string
		from, to int64 // bytes zeroed
		newest   bool  // the damaged file is the newest generation
		hole     bool
		kept     int // records kept when it is a hole
	}{
		{"a whole page inside records", 2 * holePage, 3 * holePage, true, true, frameAt(2 * holePage)},
		{"two pages", 2 * holePage, 4 * holePage, true, true, frameAt(2 * holePage)},
		{"the rest of a page from a record boundary", starts[mid], 4 * holePage, true, true, mid},
		{"zeros short of a page", 2*holePage + 10, 3*holePage - 10, true, false, 0},
		{"a page of zeros in an older generation", 2 * holePage, 3 * holePage, false, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := jnlPath(t)
			data := bytes.Clone(body)
			clear(data[tc.from:tc.to])
			name := journalName(path, 1)
			require.NoError(t, os.WriteFile(name, data, 0o600))
			if !tc.newest {
				jnlWriteJournal(t, path, 2, jnlSet("after", "x", 1000))
			}

			var logged bytes.Buffer
			var rec jnlRecorder
			st, err := Recover(path, &rec, false, slog.New(slog.NewTextHandler(&logged, nil)))
			if !tc.hole {
				require.ErrorIs(t, err, ErrCorrupt)
				assert.Empty(t, st.CutAside)
				got, rerr := os.ReadFile(name)
				require.NoError(t, rerr)
				assert.Equal(t, data, got, "damage is left as it was")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, jnlExpected(changes[:tc.kept]), rec.records)
			cut := starts[tc.kept]
			assert.Equal(t, cut, jnlSize(t, name), "the journal ends at the last record before the hole")
			require.Len(t, st.CutAside, 1)
			assert.True(t, strings.HasPrefix(st.CutAside[0], name+".cut-"), st.CutAside[0])
			aside, err := os.ReadFile(st.CutAside[0])
			require.NoError(t, err)
			assert.Equal(t, data[cut:], aside, "the bytes after the cut are kept")
			assert.Contains(t, logged.String(), "power cut")
			assert.Contains(t, logged.String(), fmt.Sprintf("offset=%d", cut))

			// The cut journal is clean, and the kept bytes are not read.
			rec = jnlRecorder{}
			st, err = Recover(path, &rec, false, nil)
			require.NoError(t, err)
			assert.Empty(t, st.CutAside)
			assert.Equal(t, jnlExpected(changes[:tc.kept]), rec.records)
		})
	}
}
