package persist

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// jnlTxn is a transaction's changes, for jnlMixedBody.
type jnlTxn []ttlstore.Change

// jnlMixedBody returns the framed records for parts, each a
// ttlstore.Change (a change record) or a jnlTxn (a commit record).
func jnlMixedBody(tb testing.TB, parts ...any) []byte {
	tb.Helper()
	j := jnlMemJournal()
	for _, p := range parts {
		var err error
		switch p := p.(type) {
		case ttlstore.Change:
			err = j.Append(p)
		case jnlTxn:
			err = j.AppendTxn(p, j.PrepareTxn(p))
		default:
			tb.Fatalf("unknown part %T", p)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	return bytes.Clone(jnlMem(j))
}

// jnlCommit returns the changes of one transaction at version v: key=value
// pairs set, or a key alone deleted.
func jnlCommit(v uint64, kvs ...string) jnlTxn {
	var txn jnlTxn
	for _, kv := range kvs {
		k, val, ok := bytes.Cut([]byte(kv), []byte("="))
		if ok {
			txn = append(txn, jnlSet(string(k), string(val), v))
		} else {
			txn = append(txn, jnlDel(string(k), v))
		}
	}
	return txn
}

func TestJournalTxnRoundTrip(t *testing.T) {
	owner := jnlOwner("alice")
	txn := jnlTxn{
		jnlSet("a", "1", 7),
		{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "owned", Value: []byte{0, 1}, Owner: owner, Expires: 1 << 50, Version: 7}},
		jnlDel("gone", 7),
		{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "empty", Version: 7}},
	}
	body := jnlMixedBody(t, jnlSet("before", "b", 6), txn, jnlDel("before", 8))
	require.Len(t, jnlFrames(t, append([]byte(JournalMagic), body...), len(JournalMagic)), 3,
		"one record for the whole transaction")

	var rec jnlRecorder
	n, err := decodeJournal(bytes.NewReader(body), int64(len(JournalMagic)), &rec)
	require.NoError(t, err)
	assert.Equal(t, 6, n, "every change counts")
	want := jnlExpected(append(append([]ttlstore.Change{jnlSet("before", "b", 6)}, txn...), jnlDel("before", 8)))
	assert.Equal(t, want, rec.records)

	// Prepared or not, the record is the same.
	j := jnlMemJournal()
	require.NoError(t, j.AppendTxn(txn, nil))
	prepared := jnlMemJournal()
	unversioned := append(jnlTxn(nil), txn...)
	for i := range unversioned {
		unversioned[i].Item.Version = 0
	}
	p := prepared.PrepareTxn(unversioned)
	require.NoError(t, prepared.AppendTxn(txn, p))
	assert.Equal(t, jnlMem(j), jnlMem(prepared))
}

func TestJournalTxnRefusesWhatItCannotWrite(t *testing.T) {
	j := jnlMemJournal()
	bad := jnlTxn{jnlSet("ok", "v", 1), {Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "bad", Owner: "short", Version: 1}}}
	require.Error(t, j.AppendTxn(bad, j.PrepareTxn(bad)))
	expire := jnlTxn{{Op: ttlstore.OpExpire, Item: ttlstore.Item{Key: "x", Version: 1}}}
	require.Error(t, j.AppendTxn(expire, nil))
	big := bytes.Repeat([]byte("x"), MaxRecord/2)
	huge := jnlTxn{
		{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "a", Value: big, Version: 1}},
		{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "b", Value: big, Version: 1}},
	}
	err := j.AppendTxn(huge, nil)
	require.ErrorContains(t, err, "over the")
	assert.Empty(t, jnlMem(j), "nothing of a refused transaction is written")
	require.NoError(t, j.AppendTxn(jnlCommit(2, "k=v"), nil), "a refused transaction does not poison the journal")

	j.err = errors.New("disk full")
	assert.Equal(t, j.err, j.AppendTxn(jnlCommit(3, "k=w"), nil), "the sticky write error refuses a transaction")
}

// TestRecoverTxnWholeOrNone replays a journal whose commit record is cut at
// every byte: recovery applies the commit whole, or, torn, none of it, and
// cuts the file before it.
func TestRecoverTxnWholeOrNone(t *testing.T) {
	path := jnlPath(t)
	name := journalName(path, 1)
	data := append([]byte(JournalMagic), jnlMixedBody(t,
		jnlSet("a", "0", 1), jnlSet("c", "0", 2),
		jnlCommit(3, "a=1", "b=1", "c"),
	)...)
	starts := jnlFrames(t, data, len(JournalMagic))
	require.Len(t, starts, 3)
	last := starts[2]
	for cut := last; cut <= int64(len(data)); cut++ {
		require.NoError(t, os.WriteFile(name, data[:cut], 0o600))
		s, st := jnlRecover(t, path)
		state := jnlState(t, s)
		if cut == int64(len(data)) {
			assert.Zero(t, st.TornTails)
			assert.Equal(t, 5, st.JournalRecords)
			require.Len(t, state, 2)
			assert.Equal(t, ttlstore.Item{Key: "a", Value: []byte("1"), Version: 3}, state["a"])
			assert.Equal(t, ttlstore.Item{Key: "b", Value: []byte("1"), Version: 3}, state["b"])
			assert.Equal(t, uint64(3), s.Version())
			continue
		}
		require.Len(t, state, 2, "cut at %d", cut)
		assert.Equal(t, "0", string(state["a"].Value), "cut at %d", cut)
		assert.Equal(t, "0", string(state["c"].Value), "cut at %d", cut)
		assert.Equal(t, uint64(2), s.Version(), "cut at %d", cut)
		assert.Equal(t, 2, st.JournalRecords, "cut at %d", cut)
		assert.Equal(t, last, jnlSize(t, name), "cut at %d: the torn commit is cut off", cut)
	}
}

// TestRecoverTxnOverNewerSnapshot: replaying a commit over a snapshot
// taken after it changes nothing the snapshot holds newer, key by key.
func TestRecoverTxnOverNewerSnapshot(t *testing.T) {
	path := jnlPath(t)
	_, err := WriteFileVersion(path, 10, jnlIterate([]ttlstore.Item{
		{Key: "a", Value: []byte("snap"), Version: 9},
		{Key: "old", Value: []byte("snap"), Version: 4},
	}))
	require.NoError(t, err)
	name := journalName(path, 1)
	body := jnlMixedBody(t, jnlCommit(5, "a=journal", "old", "new=journal"))
	require.NoError(t, os.WriteFile(name, append([]byte(JournalMagic), body...), 0o600))

	s, _ := jnlRecover(t, path)
	state := jnlState(t, s)
	assert.Equal(t, "snap", string(state["a"].Value), "the snapshot's newer a stays")
	assert.NotContains(t, state, "old", "the commit deletes what it is newer than")
	assert.Equal(t, "journal", string(state["new"].Value))
	assert.Equal(t, uint64(10), s.Version())
}

// TestJournalTxnThroughStore commits transactions on a store journaled to
// disk, then recovers a new store from the files: the state and the version
// counter come back.
func TestJournalTxnThroughStore(t *testing.T) {
	path := jnlPath(t)
	j, err := OpenJournal(path, SyncNo)
	require.NoError(t, err)
	s := jnlStoreWithJournal(j)
	for i := range 20 {
		_, err := s.Set(fmt.Sprintf("k%02d", i), ttlstore.Write{Value: []byte("single")})
		require.NoError(t, err)
	}
	for i := range 10 {
		_, err := s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{
			{Op: ttlstore.OpSet, Key: fmt.Sprintf("k%02d", i), Value: []byte(fmt.Sprint("txn ", i)), Owner: jnlOwner("o")},
			{Op: ttlstore.OpDelete, Key: fmt.Sprintf("k%02d", 19-i)},
			{Op: ttlstore.OpSet, Key: fmt.Sprintf("new%02d", i), Value: []byte("new"), Expires: 1 << 62},
		}})
		require.NoError(t, err)
	}
	_, err = s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{{Op: ttlstore.OpDelete, Key: "new09"}}})
	require.NoError(t, err, "the last change is a deleting commit, so only the journal knows the top version")
	require.NoError(t, j.Close())

	got, st := jnlRecover(t, path)
	assert.Equal(t, jnlState(t, s), jnlState(t, got))
	assert.Equal(t, s.Version(), got.Version())
	assert.Equal(t, 20+10*3+1, st.JournalRecords)
}

// TestJournalTxnRefusedByStore: a transaction the journal cannot record is
// refused whole by the store.
func TestJournalTxnRefusedByStore(t *testing.T) {
	path := jnlPath(t)
	j, err := OpenJournal(path, SyncNo)
	require.NoError(t, err)
	s := jnlStoreWithJournal(j)
	big := bytes.Repeat([]byte("x"), MaxRecord/2)
	_, err = s.Commit(ttlstore.Txn{Ops: []ttlstore.TxnOp{
		{Op: ttlstore.OpSet, Key: "a", Value: big},
		{Op: ttlstore.OpSet, Key: "b", Value: big},
	}})
	require.Error(t, err)
	_, ok := s.Get("a")
	assert.False(t, ok)
	assert.Zero(t, s.Version())
	require.NoError(t, j.Close())
	got, st := jnlRecover(t, path)
	assert.Zero(t, got.Len())
	assert.Zero(t, st.JournalRecords)
}
