package feed

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// pubBatch publishes one transaction setting keys, all at the next version
// after the head, and returns that version.
func pubBatch(f *Feed, keys ...string) uint64 {
	v := f.Head() + 1
	cs := make([]ttlstore.Change, len(keys))
	for i, k := range keys {
		cs[i] = ttlstore.Change{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: k, Value: []byte("t"), Version: v}}
	}
	f.PublishBatch(cs)
	return v
}

func TestPublishBatchOneVersion(t *testing.T) {
	f := newFeed(t, Options{History: 100})
	live := subscribe(t, f, SubOptions{Prefix: "m/"})
	set(f, "m/before")
	v := pubBatch(f, "m/a", "other", "m/b", "m/c")
	set(f, "m/after")

	evs, err := next(t, live)
	require.NoError(t, err)
	assert.Equal(t, []string{"m/before", "m/a", "m/b", "m/c", "m/after"}, keys(evs))
	assert.Equal(t, []uint64{v - 1, v, v, v, v + 1}, versions(evs))
	assert.Equal(t, v+1, f.Head())

	// A resume from the version before the commit sees all of it; one from
	// its version sees none of it again.
	before := subscribe(t, f, SubOptions{Prefix: "m/", Since: v - 1})
	evs, err = next(t, before)
	require.NoError(t, err)
	assert.Equal(t, []string{"m/a", "m/b", "m/c", "m/after"}, keys(evs))
	after := subscribe(t, f, SubOptions{Prefix: "m/", Since: v})
	evs, err = next(t, after)
	require.NoError(t, err)
	assert.Equal(t, []string{"m/after"}, keys(evs))

	// Versions not above the head are ignored, as by Publish.
	pubAt := []ttlstore.Change{{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "m/late", Version: v}}}
	f.PublishBatch(pubAt)
	f.PublishBatch(nil)
	assert.Equal(t, v+1, f.Head())
	assert.Equal(t, 6, f.n)
}

// TestPublishBatchNotSplitByNext puts a commit across the point where
// Next would end a batch, and makes it longer than the batches the
// dispatcher copies, with only its last event matching one subscriber:
// that subscriber must be woken, and the other must get the commit in one
// Next, its cursor never left inside it.
func TestPublishBatchNotSplitByNext(t *testing.T) {
	const size = 2*dispatchBatch + 50
	f := newFeed(t, Options{History: 1000})
	all := subscribe(t, f, SubOptions{})
	last := subscribe(t, f, SubOptions{Prefix: fmt.Sprintf("tx/%d", size-1), Exact: true})
	for i := range maxBatch - 6 {
		set(f, fmt.Sprint("k", i))
	}
	var tx []string
	for i := range size {
		tx = append(tx, fmt.Sprintf("tx/%d", i))
	}
	v := pubBatch(f, tx...)
	set(f, "end")

	evs, err := next(t, all)
	require.NoError(t, err)
	require.Len(t, evs, maxBatch-6+size, "the batch ends after the commit, not inside it")
	assert.Equal(t, v, all.Cursor())
	evs, err = next(t, all)
	require.NoError(t, err)
	assert.Equal(t, []string{"end"}, keys(evs))

	// The dispatcher, which wakes a waiting subscriber, must have matched
	// the end of the commit too.
	waitDispatched(t, f)
	assert.Equal(t, v, last.lastMatch, "the dispatcher skipped the end of the commit")
	evs, err = next(t, last)
	require.NoError(t, err)
	assert.Equal(t, []string{tx[size-1]}, keys(evs))
}

// TestPublishBatchLeavesHistoryWhole checks that history drops a commit's
// events together, for room and for bytes: a resume from before a commit
// that lost only some of its events would deliver part of it.
func TestPublishBatchLeavesHistoryWhole(t *testing.T) {
	f := newFeed(t, Options{History: 5})
	set(f, "first")
	v := pubBatch(f, "a", "b", "c")
	for range 3 {
		set(f, "k")
	}
	assert.Equal(t, v+1, f.Oldest(), "the commit left history whole")
	assert.Equal(t, 3, f.n)
	s := subscribe(t, f, SubOptions{Since: v - 1})
	_, err := next(t, s)
	assert.ErrorIs(t, err, ErrBehind)

	// A commit needing more room than is left evicts whole versions, and
	// no more than it needs.
	v = pubBatch(f, "d", "e", "f", "g")
	assert.Equal(t, v-1, f.Oldest())
	assert.Equal(t, 5, f.n)

	// Bytes: each event holds 2 bytes of key and value.
	f = newFeed(t, Options{History: 100, HistoryBytes: 7})
	set(f, "first")
	v = pubBatch(f, "a", "b", "c")
	set(f, "k")
	assert.Equal(t, v+1, f.Oldest(), "over the byte bound, the whole commit goes")
	v = pubBatch(f, "d", "e", "f", "g", "h")
	assert.Equal(t, v, f.Oldest(), "the newest commit is kept even when it alone is larger")
	assert.Equal(t, 5, f.n)
}

func TestPublishBatchLargerThanHistory(t *testing.T) {
	f := newFeed(t, Options{History: 4})
	set(f, "k")
	behind := subscribe(t, f, SubOptions{Since: f.Head()})
	v := pubBatch(f, "a", "b", "c", "d", "e")
	assert.Equal(t, v, f.Head())
	assert.Equal(t, 0, f.n, "kept none rather than part")
	_, err := next(t, behind)
	assert.ErrorIs(t, err, ErrBehind, "a subscriber before the commit must relist")

	current := subscribe(t, f, SubOptions{Since: v})
	set(f, "z")
	evs, err := next(t, current)
	require.NoError(t, err)
	assert.Equal(t, []string{"z"}, keys(evs))
}

// TestResumeAcrossGapAndBatch resumes where the versions of history have
// both a gap and a commit, which the shortcut that finds a resume point by
// arithmetic must not take for contiguous single events.
func TestResumeAcrossGapAndBatch(t *testing.T) {
	f := newFeed(t, Options{History: 16})
	set(f, "one") // version 1
	f.Publish(ttlstore.Change{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "skip", Version: 2}})
	f.mu.Lock()
	f.ring[f.start+1] = Event{} // as if version 2 had never been published
	f.n--
	f.bytes -= len("skip")
	f.mu.Unlock()
	v := pubBatch(f, "t1", "t2") // version 3
	require.Equal(t, uint64(3), v)
	set(f, "four")

	s := subscribe(t, f, SubOptions{Since: 2})
	evs, err := next(t, s)
	require.NoError(t, err)
	assert.Equal(t, []string{"t1", "t2", "four"}, keys(evs))
}

// TestCommitsThroughStore hooks the feed to a real store committing
// transactions among single writes on several goroutines: a subscriber
// gets every change once, in version order, each commit's together under
// its one version and never split across two Next calls.
func TestCommitsThroughStore(t *testing.T) {
	f := newFeed(t, Options{History: 100000})
	store := ttlstore.New(ttlstore.Options{
		OnChange: func(c ttlstore.Change) error { f.Publish(c); return nil },
		OnCommit: func(cs []ttlstore.Change, _ any) error { f.PublishBatch(cs); return nil },
	})
	all := subscribe(t, f, SubOptions{})
	const writers, perWriter = 3, 200
	want := 0
	for i := range perWriter {
		want += writers * (2 + i%3 + 1) // a commit of two to four and a single set each
	}
	type result struct{ batches [][]Event }
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				ops := make([]ttlstore.TxnOp, 2+i%3)
				for j := range ops {
					ops[j] = ttlstore.TxnOp{Op: ttlstore.OpSet, Key: fmt.Sprintf("w%d/%d", w, j), Value: []byte(fmt.Sprint(i))}
				}
				if _, err := store.Commit(ttlstore.Txn{Ops: ops}); err != nil {
					t.Error(err)
				}
				if _, err := store.Set(fmt.Sprintf("w%d/single", w), ttlstore.Write{Value: []byte("s")}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	// Read once everything is written, so that Next has full batches to
	// end somewhere.
	var r result
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for n := 0; n < want; {
		evs, err := all.Next(ctx)
		require.NoError(t, err)
		r.batches = append(r.batches, evs)
		n += len(evs)
	}

	byVersion := map[uint64][]string{}
	var prev uint64
	for b, evs := range r.batches {
		for _, e := range evs {
			require.GreaterOrEqual(t, e.Version, prev, "events out of version order")
			prev = e.Version
			byVersion[e.Version] = append(byVersion[e.Version], e.Key)
		}
		if b > 0 {
			require.NotEqual(t, r.batches[b-1][len(r.batches[b-1])-1].Version, evs[0].Version,
				"a commit was split across two Next calls")
		}
	}
	require.Len(t, byVersion, writers*perWriter*2, "one version per commit and per single write")
	for v, ks := range byVersion {
		if len(ks) == 1 {
			continue
		}
		w := ks[0][:2]
		for j, k := range ks {
			require.Equal(t, fmt.Sprintf("%s/%d", w, j), k, "version %d holds one whole commit", v)
		}
		require.GreaterOrEqual(t, len(ks), 2, "version %d", v)
	}
}
