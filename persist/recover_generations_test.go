package persist

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// gapFiles returns every file in dir with its content.
func gapFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	files := make(map[string][]byte)
	for _, e := range entries {
		name := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(name)
		require.NoError(t, err)
		files[name] = data
	}
	return files
}

// gapSnapshotItem is the one key every snapshot in these tests holds.
var gapSnapshotItem = ttlstore.Item{Key: "snap", Value: []byte("s"), Version: 1}

// gapKey is the key journal generation gen sets.
func gapKey(gen uint64) string { return fmt.Sprintf("gen-%d", gen) }

// TestRecoverMissingGenerations: the journal generations must follow on
// from the snapshot (or, with none, from generation 1) and from each
// other. When they do not, recovery refuses, naming what is missing, and
// changes no file; --repair loads what is there and renames every file
// aside with its bytes as they were.
func TestRecoverMissingGenerations(t *testing.T) {
	covering := func(k uint64) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			_, err := WriteFileCovering(path, 50, k, jnlIterate([]ttlstore.Item{gapSnapshotItem}))
			require.NoError(t, err)
		}
	}
	version1 := func(t *testing.T, path string) {
		data := snapshot(t, header(1), itemPayload(gapSnapshotItem.Key, gapSnapshotItem.Value, 0, []byte{}, 1), trailer(1, 50))
		require.NoError(t, os.WriteFile(path, data, 0o600))
	}
	// {snap} stands for the snapshot's path, {jnl} for the journal's prefix.
	for _, tc := range []struct {
		name     string
		snapshot func(t *testing.T, path string) // nil: none
		gens     []uint64
		refusal  []string // nil: recovery starts
	}{
		{"no snapshot, journal from generation 1", nil, []uint64{1, 2, 3}, nil},
		{"no snapshot, journal from generation 2", nil, []uint64{2, 3}, []string{
			"there is no snapshot {snap}, but the oldest journal file {jnl}0000000000000002 is generation 2, not 1",
			"the snapshot that held the keys written before it is missing, so starting would lose them"}},
		{"a middle generation missing", nil, []uint64{1, 3, 4}, []string{
			"journal generation 2 is missing between {jnl}0000000000000001 and {jnl}0000000000000003, so starting would lose the keys written in it"}},
		{"two middle generations missing", covering(1), []uint64{2, 5}, []string{
			"journal generations 3 to 4 are missing between {jnl}0000000000000002 and {jnl}0000000000000005, so starting would lose the keys written in them"}},
		{"snapshot covers 3, journal from 4", covering(3), []uint64{4, 5}, nil},
		{"snapshot covers 3, covered generations left", covering(3), []uint64{2, 3, 4}, nil},
		{"snapshot covers 3, no journal", covering(3), nil, nil},
		{"snapshot covers 3, journal from 5", covering(3), []uint64{5, 6}, []string{
			"journal generation 4 is missing between snapshot {snap}, which covers generations up to 3, and {jnl}0000000000000005"}},
		{"snapshot covers 3, gap after it", covering(3), []uint64{4, 6}, []string{
			"journal generation 5 is missing between {jnl}0000000000000004 and {jnl}0000000000000006"}},
		{"snapshot covers 5, journal stops short of it", covering(5), []uint64{2, 3}, []string{
			"journal generations 4 to 5 are missing between {jnl}0000000000000003 and snapshot {snap}, which covers generations up to 5",
			"so starting would bring back keys deleted in them"}},
		{"snapshot written without a journal", covering(0), []uint64{2}, []string{
			"journal generation 1 is missing between snapshot {snap}, which covers no journal generation, and {jnl}0000000000000002"}},
		{"version 1 snapshot, covered unknown", version1, []uint64{7, 8}, nil},
		{"version 1 snapshot, gap", version1, []uint64{7, 9}, []string{
			"journal generation 8 is missing between {jnl}0000000000000007 and {jnl}0000000000000009"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := jnlPath(t)
			want := make(map[string]ttlstore.Item)
			var covered uint64
			if tc.snapshot != nil {
				tc.snapshot(t, path)
				want[gapSnapshotItem.Key] = gapSnapshotItem
				snap, err := ReadFile(path, func(ttlstore.Item) error { return nil })
				require.NoError(t, err)
				covered = snap.Covered
			}
			for i, gen := range tc.gens {
				c := jnlSet(gapKey(gen), "v", 100+gen)
				name, data := jnlWriteJournal(t, path, gen, c)
				if i == len(tc.gens)-1 {
					// The newest as a crash of a mapped journal leaves it.
					require.NoError(t, os.WriteFile(name, append(data, make([]byte, 3000)...), 0o600))
				}
				want[c.Item.Key] = c.Item
			}
			before := gapFiles(t, filepath.Dir(path))

			s := ttlstore.New(ttlstore.Options{})
			st, err := Recover(path, s, false, nil)
			if tc.refusal == nil {
				require.NoError(t, err)
				assert.Equal(t, want, jnlState(t, s))
				assert.Empty(t, st.MovedAside)
				return
			}
			require.Error(t, err)
			names := strings.NewReplacer("{snap}", path, "{jnl}", path+".journal.")
			for _, w := range tc.refusal {
				assert.Contains(t, err.Error(), names.Replace(w))
			}
			var rep *RepairError
			require.ErrorAs(t, err, &rep, "a refusal that repair gets past")
			assert.Equal(t, "start from what is there and keep every file, renamed aside", rep.Repair)
			assert.Equal(t, before, gapFiles(t, filepath.Dir(path)), "a refusal changes no file")

			var logged bytes.Buffer
			s = ttlstore.New(ttlstore.Options{})
			st, err = Recover(path, s, true, slog.New(slog.NewTextHandler(&logged, nil)))
			require.NoError(t, err)
			assert.Equal(t, want, jnlState(t, s), "repair loads everything there is")
			assert.Equal(t, max(tc.gens[len(tc.gens)-1], covered), st.LastGeneration)
			after := gapFiles(t, filepath.Dir(path))
			assert.Len(t, st.MovedAside, len(before))
			for name, data := range before {
				assert.NotContains(t, after, name, "%s is moved aside", name)
				var kept []string
				for _, aside := range st.MovedAside {
					if strings.HasPrefix(aside, name+".gap-") && bytes.Equal(after[aside], data) {
						kept = append(kept, aside)
					}
				}
				assert.Len(t, kept, 1, "%s is kept, byte for byte, as one of %v", name, st.MovedAside)
			}
			assert.Len(t, after, len(before), "nothing is added or removed")
			assert.Contains(t, logged.String(), "repair: journal generations are missing")
			assert.Contains(t, logged.String(), names.Replace(tc.refusal[0]))

			// The files moved aside are not read again.
			s, st = jnlRecover(t, path)
			assert.Zero(t, s.Len())
			assert.Zero(t, st.JournalFiles)
		})
	}
}

// TestRecoverMissingGenerationsRepairKeepsDamage: a repair of missing
// generations still moves a damaged generation aside as damaged, and the
// others aside whole.
func TestRecoverMissingGenerationsRepairKeepsDamage(t *testing.T) {
	path := jnlPath(t)
	jnlWriteJournal(t, path, 2, jnlSet("a", "1", 1))
	name, data := jnlWriteJournal(t, path, 3, jnlSet("b", "2", 2), jnlSet("c", "3", 3))
	data[len(data)-2] ^= 0x01 // in the last record's payload, with bytes after it
	data = append(data, []byte("not zeros")...)
	require.NoError(t, os.WriteFile(name, data, 0o600))
	jnlWriteJournal(t, path, 4, jnlSet("d", "4", 4))

	s := ttlstore.New(ttlstore.Options{})
	st, err := Recover(path, s, true, nil)
	require.NoError(t, err)
	state := jnlState(t, s)
	assert.Contains(t, state, "a")
	assert.Contains(t, state, "b")
	assert.NotContains(t, state, "c")
	assert.Contains(t, state, "d")
	require.Len(t, st.MovedAside, 3)
	assert.True(t, strings.HasPrefix(st.MovedAside[0], name+".damaged-"), st.MovedAside[0])
	got, err := os.ReadFile(st.MovedAside[0])
	require.NoError(t, err)
	assert.Equal(t, data, got)
	assert.True(t, strings.HasPrefix(st.MovedAside[1], journalName(path, 2)+".gap-"), st.MovedAside[1])
	assert.True(t, strings.HasPrefix(st.MovedAside[2], journalName(path, 4)+".gap-"), st.MovedAside[2])
	assert.Empty(t, jnlGenerations(t, path))
}

// TestSnapshotRecordsCoveredGeneration: the saver records in each
// snapshot the journal generation it rotated away from, recovery reports
// it, and a journal opened after recovery starts above it even when no
// journal file is left.
func TestSnapshotRecordsCoveredGeneration(t *testing.T) {
	path := jnlPath(t)
	j, err := OpenJournal(path, SyncNo)
	require.NoError(t, err)
	s := jnlStoreWithJournal(j)
	_, err = s.Set("k", ttlstore.Write{Value: []byte("v")})
	require.NoError(t, err)
	sv := &Saver{Path: path, Source: s.Snapshot, Version: s.Version, Journal: j}
	require.NoError(t, sv.Save())
	_, err = s.Set("k2", ttlstore.Write{Value: []byte("v")})
	require.NoError(t, err)
	require.NoError(t, sv.Save())
	require.NoError(t, j.Close())

	st, err := ReadFile(path, func(ttlstore.Item) error { return nil })
	require.NoError(t, err)
	assert.Equal(t, FormatVersion, st.FormatVersion)
	assert.Equal(t, uint64(2), st.Covered, "the second save rotated from generation 2 to 3")
	assert.Equal(t, []uint64{3}, jnlGenerations(t, path))

	require.NoError(t, os.Remove(journalName(path, 3)))
	got, rst := jnlRecover(t, path)
	assert.Equal(t, 2, got.Len(), "a snapshot with no journal left starts as it is")
	assert.Equal(t, uint64(2), rst.LastGeneration)

	j, err = OpenJournalAfter(path, SyncNo, rst.LastGeneration)
	require.NoError(t, err)
	require.NoError(t, j.Close())
	assert.Equal(t, []uint64{3}, jnlGenerations(t, path), "numbering goes on above the snapshot's")
	j, err = OpenJournalAfter(path, SyncNo, 1)
	require.NoError(t, err)
	require.NoError(t, j.Close())
	assert.Equal(t, []uint64{3, 4}, jnlGenerations(t, path), "and above the newest file")
}
