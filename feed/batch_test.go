package feed

import (
	"fmt"
	"testing"

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
