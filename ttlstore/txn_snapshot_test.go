package ttlstore

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// keyInShard returns a key, distinct from taken, that lands in shard i.
func keyInShard(t *testing.T, s *Store, i int, taken map[string]bool) string {
	t.Helper()
	for n := range 10000 {
		k := fmt.Sprintf("s%d-%d", i, n)
		if _, h := s.shardFor(k); int(h&s.mask) == i && !taken[k] {
			taken[k] = true
			return k
		}
	}
	t.Fatalf("no key for shard %d", i)
	return ""
}

// TestSnapshotLeavesOutCommitsWhileRunning commits transactions after a
// snapshot has copied the first shard and before it copies the others,
// and checks that the snapshot shows none of them, even where a single
// write changed a key again after them, while single writes to other
// keys show as before.
func TestSnapshotLeavesOutCommitsWhileRunning(t *testing.T) {
	s := New(Options{Shards: 4})
	taken := map[string]bool{}
	a0, b1, a2, e2 := keyInShard(t, s, 0, taken), keyInShard(t, s, 1, taken), keyInShard(t, s, 2, taken), keyInShard(t, s, 2, taken)
	d3, c3 := keyInShard(t, s, 3, taken), keyInShard(t, s, 3, taken)
	for _, k := range []string{a0, b1, a2} {
		_, err := s.Set(k, Write{Value: []byte("1")})
		require.NoError(t, err)
	}
	_, err := s.Set(d3, Write{Value: []byte("old")})
	require.NoError(t, err)

	got := map[string]string{}
	first := true
	err = s.Snapshot(func(it Item) error {
		got[it.Key] = string(it.Value)
		if !first {
			return nil
		}
		first = false
		require.Equal(t, a0, it.Key, "shard 0 holds only a0 and is copied first")
		// Straddles the copied shard 0 and the others.
		_, err := s.Commit(Txn{Ops: []TxnOp{
			{Op: OpSet, Key: a0, Value: []byte("2")},
			{Op: OpSet, Key: a2, Value: []byte("2")},
			{Op: OpDelete, Key: d3},
			{Op: OpSet, Key: c3, Value: []byte("new")},
		}})
		require.NoError(t, err)
		// Only shards not copied yet: left out all the same.
		_, err = s.Commit(Txn{Ops: []TxnOp{
			{Op: OpSet, Key: a2, Value: []byte("3")},
			{Op: OpSet, Key: b1, Value: []byte("3")},
		}})
		require.NoError(t, err)
		_, err = s.Set(a2, Write{Value: []byte("4")})
		require.NoError(t, err)
		_, err = s.Set(e2, Write{Value: []byte("single")})
		require.NoError(t, err)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, map[string]string{a0: "1", b1: "1", a2: "1", d3: "old", e2: "single"}, got)

	got = map[string]string{}
	require.NoError(t, s.Snapshot(func(it Item) error {
		got[it.Key] = string(it.Value)
		return nil
	}))
	require.Equal(t, map[string]string{a0: "2", b1: "3", a2: "4", c3: "new", e2: "single"}, got,
		"the next snapshot shows them")
	require.Empty(t, s.cuts, "a finished snapshot stops recording")
}
