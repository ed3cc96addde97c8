package ttlstore_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

func setOp(key, value string) ttlstore.TxnOp {
	return ttlstore.TxnOp{Op: ttlstore.OpSet, Key: key, Value: []byte(value)}
}

func delOp(key string) ttlstore.TxnOp { return ttlstore.TxnOp{Op: ttlstore.OpDelete, Key: key} }

func absent(key string) ttlstore.Check {
	return ttlstore.Check{Kind: ttlstore.CheckAbsent, Key: key}
}

func atVersion(key string, v uint64) ttlstore.Check {
	return ttlstore.Check{Kind: ttlstore.CheckVersion, Key: key, Version: v}
}

func hasValue(key, value string) ttlstore.Check {
	return ttlstore.Check{Kind: ttlstore.CheckValue, Key: key, Value: []byte(value)}
}

// txnErr requires err to be a *TxnError wrapping kind and returns it.
func txnErr(t *testing.T, err error, kind error) *ttlstore.TxnError {
	t.Helper()
	require.ErrorIs(t, err, kind)
	var te *ttlstore.TxnError
	require.True(t, errors.As(err, &te), "want a *TxnError, got %T: %v", err, err)
	return te
}

// commitRecorder collects OnChange and OnCommit calls in the order the
// store made them, each OnCommit as one entry.
type commitRecorder struct {
	mu    sync.Mutex
	calls [][]ttlstore.Change
	fail  error
}

func (r *commitRecorder) onChange(c ttlstore.Change) error {
	return r.onCommit([]ttlstore.Change{c}, nil)
}

func (r *commitRecorder) onCommit(cs []ttlstore.Change, _ any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.calls = append(r.calls, append([]ttlstore.Change(nil), cs...))
	return nil
}

func (r *commitRecorder) take() [][]ttlstore.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

func (r *commitRecorder) opts(o ttlstore.Options) ttlstore.Options {
	o.OnChange, o.OnCommit = r.onChange, r.onCommit
	return o
}

func TestCommitWritesAllUnderOneVersion(t *testing.T) {
	var rec commitRecorder
	s, _ := newStore(rec.opts(ttlstore.Options{Shards: 8}))
	old := mustSet(t, s, "old", val("x"))
	mustSet(t, s, "keep", val("k"))
	rec.take()

	res, err := s.Commit(ttlstore.Txn{
		Checks: []ttlstore.Check{absent("a"), atVersion("old", old.Version), hasValue("keep", "k")},
		Ops:    []ttlstore.TxnOp{setOp("a", "1"), setOp("b", "2"), delOp("old"), setOp("c", "3")},
	})
	require.NoError(t, err)
	require.Equal(t, old.Version+2, res.Version, "one new version for the whole commit")
	require.Equal(t, res.Version, s.Version())
	for _, k := range []string{"a", "b", "c"} {
		it := requireValue(t, s, k, map[string]string{"a": "1", "b": "2", "c": "3"}[k])
		require.Equal(t, res.Version, it.Version)
	}
	requireMissing(t, s, "old")
	require.Equal(t, 4, s.Len())

	var got []string
	for _, c := range res.Changes {
		require.Equal(t, res.Version, c.Item.Version)
		got = append(got, c.Op.String()+" "+c.Item.Key)
	}
	require.Equal(t, []string{"set a", "set b", "delete old", "set c"}, got, "changes in op order")
	require.Equal(t, "x", string(res.Changes[2].Item.Value), "a delete reports the removed value")

	calls := rec.take()
	require.Len(t, calls, 1, "OnCommit is called once with every change")
	require.Equal(t, res.Changes, calls[0])
}

func TestCommitFailedChecksWriteNothing(t *testing.T) {
	var rec commitRecorder
	s, _ := newStore(rec.opts(ttlstore.Options{}))
	x := mustSet(t, s, "x", val("1"))
	rec.take()
	v := s.Version()

	_, err := s.Commit(ttlstore.Txn{
		Checks: []ttlstore.Check{
			absent("x"),                             // 0: fails
			atVersion("x", x.Version),               // 1: holds
			atVersion("x", x.Version+1),             // 2: fails
			hasValue("x", "1"),                      // 3: holds
			hasValue("x", "2"),                      // 4: fails
			hasValue("nope", ""),                    // 5: fails, absent
			absent("nope"),                          // 6: holds
			atVersion("nope", 0),                    // 7: fails
			{Kind: ttlstore.CheckVersion, Key: "x"}, // 8: fails
		},
		Ops: []ttlstore.TxnOp{setOp("x", "2"), setOp("y", "3")},
	})
	te := txnErr(t, err, ttlstore.ErrCheckFailed)
	require.Equal(t, []int{0, 2, 4, 5, 7, 8}, te.Failed)
	require.Equal(t, -1, te.Op)
	require.Contains(t, err.Error(), "[0 2 4 5 7 8]")
	requireValue(t, s, "x", "1")
	requireMissing(t, s, "y")
	require.Equal(t, v, s.Version(), "a refused commit takes no version")
	require.Empty(t, rec.take())
}

func TestCommitChecksSeeStateBeforeWrites(t *testing.T) {
	s, _ := newStore(ttlstore.Options{})
	_, err := s.Commit(ttlstore.Txn{
		Checks: []ttlstore.Check{absent("k")},
		Ops:    []ttlstore.TxnOp{setOp("k", "v")},
	})
	require.NoError(t, err)
	requireValue(t, s, "k", "v")
}

func TestCommitExpiredKeyIsAbsent(t *testing.T) {
	s, clk := newStore(ttlstore.Options{})
	mustSet(t, s, "k", expiring("old", clk.at(time.Second)))
	clk.Advance(time.Second)
	_, err := s.Commit(ttlstore.Txn{Checks: []ttlstore.Check{hasValue("k", "old")}})
	require.Equal(t, []int{0}, txnErr(t, err, ttlstore.ErrCheckFailed).Failed)
	_, err = s.Commit(ttlstore.Txn{Checks: []ttlstore.Check{absent("k")}, Ops: []ttlstore.TxnOp{setOp("k", "new")}})
	require.NoError(t, err)
	requireValue(t, s, "k", "new")
}

func TestCommitOwners(t *testing.T) {
	s, _ := newStore(ttlstore.Options{Shards: 4})
	alice, bob := ttlstore.HashSecret("alice"), ttlstore.HashSecret("bob")
	mustSet(t, s, "mine", owned("a", "alice"))
	mustSet(t, s, "free", val("f"))

	// The third op is refused: nothing of the commit is written.
	_, err := s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{
		setOp("new", "n"),
		{Op: ttlstore.OpSet, Key: "free", Value: []byte("g"), Owner: bob},
		{Op: ttlstore.OpDelete, Key: "mine", Owner: bob},
	}})
	te := txnErr(t, err, ttlstore.ErrForbidden)
	require.Equal(t, 2, te.Op)
	require.Equal(t, "operation 2: key is owned by another secret", err.Error())
	requireMissing(t, s, "new")
	require.Equal(t, ttlstore.Owner(""), requireValue(t, s, "free", "f").Owner)

	// An op sees the owner an earlier op of the same commit claimed.
	_, err = s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{
		{Op: ttlstore.OpSet, Key: "free", Value: []byte("g"), Owner: bob},
		{Op: ttlstore.OpSet, Key: "free", Value: []byte("h"), Owner: alice},
	}})
	require.Equal(t, 1, txnErr(t, err, ttlstore.ErrForbidden).Op)

	res, err := s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{
		{Op: ttlstore.OpSet, Key: "free", Value: []byte("g"), Owner: bob},
		{Op: ttlstore.OpSet, Key: "mine", Value: []byte("b"), Owner: alice},
		{Op: ttlstore.OpSet, Key: "free", Value: []byte("h"), Owner: bob},
	}})
	require.NoError(t, err)
	require.Len(t, res.Changes, 2, "one change per key")
	require.Equal(t, bob, requireValue(t, s, "free", "h").Owner)
	require.Equal(t, alice, requireValue(t, s, "mine", "b").Owner, "a matching owner keeps the key owned")

	_, err = s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{{Op: ttlstore.OpDelete, Key: "mine", Owner: alice}}})
	require.NoError(t, err)
	requireMissing(t, s, "mine")
}

func TestCommitDeleteOfAbsentKeyIsNoOp(t *testing.T) {
	var rec commitRecorder
	s, _ := newStore(rec.opts(ttlstore.Options{}))
	mustSet(t, s, "x", val("1"))
	rec.take()
	v := s.Version()

	res, err := s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{delOp("nope")}})
	require.NoError(t, err)
	require.Equal(t, v, res.Version, "a commit that changes nothing takes no version")
	require.Nil(t, res.Changes)
	require.Equal(t, v, s.Version())

	// Created and deleted again in one commit: no change either.
	res, err = s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{setOp("tmp", "t"), delOp("tmp"), delOp("tmp")}})
	require.NoError(t, err)
	require.Nil(t, res.Changes)
	requireMissing(t, s, "tmp")

	// Deleted then set again: an overwrite.
	res, err = s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{delOp("x"), setOp("x", "2")}})
	require.NoError(t, err)
	require.Len(t, res.Changes, 1)
	require.Equal(t, ttlstore.OpSet, res.Changes[0].Op)
	requireValue(t, s, "x", "2")
	require.Equal(t, 1, s.Len())
	require.Len(t, rec.take(), 1, "only the commit that changed something is reported")
}

func TestCommitCapacity(t *testing.T) {
	s, clk := newStore(ttlstore.Options{Shards: 4, MaxKeys: 4})
	mustSet(t, s, "a", val("1"))
	mustSet(t, s, "b", val("1"))
	mustSet(t, s, "c", val("1"))

	_, err := s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{setOp("d", "1"), setOp("e", "1")}})
	require.Equal(t, -1, txnErr(t, err, ttlstore.ErrFull).Op)
	requireMissing(t, s, "d")
	require.Equal(t, 3, s.Len())

	// Deletes in the same commit make room.
	_, err = s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{setOp("d", "1"), setOp("e", "1"), delOp("a")}})
	require.NoError(t, err)
	require.Equal(t, 4, s.Len())

	// Overwrites need no room.
	_, err = s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{setOp("b", "2"), setOp("c", "2")}})
	require.NoError(t, err)

	// Expired entries anywhere are reclaimed to make room.
	mustSet(t, s, "b", expiring("x", clk.at(time.Second)))
	mustSet(t, s, "c", expiring("x", clk.at(time.Second)))
	clk.Advance(time.Second)
	_, err = s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{setOp("f", "1"), setOp("g", "1")}})
	require.NoError(t, err)
	require.Equal(t, 4, s.Len())
	for _, k := range []string{"d", "e", "f", "g"} {
		requireValue(t, s, k, "1")
	}
}

func TestCommitHookErrorRefusesAll(t *testing.T) {
	var rec commitRecorder
	s, _ := newStore(rec.opts(ttlstore.Options{MaxKeys: 10}))
	mustSet(t, s, "x", val("1"))
	v := s.Version()
	boom := errors.New("journal is full")
	rec.fail = boom
	_, err := s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{setOp("x", "2"), setOp("y", "2"), delOp("x")}})
	require.ErrorIs(t, err, boom)
	requireValue(t, s, "x", "1")
	requireMissing(t, s, "y")
	require.Equal(t, v, s.Version())
	require.Equal(t, 1, s.Len(), "the slots reserved for the refused commit are given back")

	rec.fail = nil
	res, err := s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{setOp("y", "2")}})
	require.NoError(t, err)
	require.Equal(t, v+1, res.Version, "the refused commit left no gap")
}

func TestCommitNeedsOnCommitWithOnChange(t *testing.T) {
	var r recorder
	s, _ := newStore(ttlstore.Options{OnChange: r.onChange})
	_, err := s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{setOp("x", "1")}})
	require.Error(t, err)
	requireMissing(t, s, "x")
	require.Empty(t, r.take())
}

func TestCommitInvalid(t *testing.T) {
	s, _ := newStore(ttlstore.Options{})
	_, err := s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{setOp("a", "1"), {Op: ttlstore.OpExpire, Key: "b"}}})
	require.ErrorIs(t, err, ttlstore.ErrInvalidTxn)
	require.Contains(t, err.Error(), "operation 1")
	_, err = s.Commit(ttlstore.Txn{Checks: []ttlstore.Check{{Key: "a"}}, Ops: []ttlstore.TxnOp{setOp("a", "1")}})
	require.ErrorIs(t, err, ttlstore.ErrInvalidTxn)
	requireMissing(t, s, "a")
}

func TestCommitPrepareCommit(t *testing.T) {
	var seen []any
	s, _ := newStore(ttlstore.Options{
		PrepareCommit: func(cs []ttlstore.Change) any {
			for _, c := range cs {
				require.Zero(t, c.Item.Version, "prepared before the version is known")
			}
			return len(cs)
		},
		OnCommit: func(cs []ttlstore.Change, prepared any) error {
			seen = append(seen, prepared)
			return nil
		},
	})
	_, err := s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{setOp("a", "1"), setOp("b", "1")}})
	require.NoError(t, err)
	require.Equal(t, []any{2}, seen)
}

// TestCommitManyKeys crosses the point where a commit looks keys up in a
// map instead of a list.
func TestCommitManyKeys(t *testing.T) {
	s, _ := newStore(ttlstore.Options{})
	var ops []ttlstore.TxnOp
	var checks []ttlstore.Check
	for i := range 60 {
		ops = append(ops, setOp(fmt.Sprintf("k%02d", i%40), fmt.Sprint(i)))
		checks = append(checks, absent(fmt.Sprintf("k%02d", i%45)))
	}
	res, err := s.Commit(ttlstore.Txn{Checks: checks, Ops: ops})
	require.NoError(t, err)
	require.Len(t, res.Changes, 40)
	for i := range 40 {
		want := i
		if i < 20 {
			want = i + 40
		}
		requireValue(t, s, fmt.Sprintf("k%02d", i), fmt.Sprint(want))
	}
	require.Equal(t, 40, s.Len())
}
