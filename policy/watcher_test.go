package policy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/feed"
	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/policy"
)

// A transaction's events come in one step, with one version, even when
// the step would otherwise be cut in the middle of them; changes outside
// the prefix never come.
func TestWatcherEventsKeepATransactionTogether(t *testing.T) {
	w := newWatchFixture(t, feed.Options{}, nil, time.Second)
	wt, err := w.svc.Watch(v4, "app/", 0, false)
	require.NoError(t, err)
	defer wt.Close()

	// A step holds a few hundred events: 250 single writes put its end
	// inside the transaction that follows them.
	for i := range 250 {
		w.set(t, v4, fmt.Sprint("app/single", i), "v")
	}
	var ops []policy.TxnOp
	for i := range 60 {
		ops = append(ops, policy.TxnOp{Op: policy.TxnSet, Key: fmt.Sprint("app/txn", i), Value: []byte("t")},
			policy.TxnOp{Op: policy.TxnSet, Key: fmt.Sprint("other/txn", i), Value: []byte("t")})
	}
	res, err := w.svc.Txn(v4, policy.TxnRequest{Ops: ops[:100]})
	require.NoError(t, err)
	after := w.set(t, v4, "app/after", "v")

	var singles, steps int
	for singles < 251 {
		step := watchStep(t, wt)
		require.Equal(t, policy.WatchEvents, step.Kind)
		require.NotEmpty(t, step.Events)
		steps++
		last := step.Events[len(step.Events)-1]
		assert.GreaterOrEqual(t, step.Cursor, last.Version, "the cursor is past every event delivered")
		var inTxn int
		for _, e := range step.Events {
			assert.Equal(t, "app/", e.Key[:4], "only the prefix's changes")
			if e.Version == res.Version {
				inTxn++
			} else {
				singles++
			}
		}
		if inTxn > 0 {
			assert.Equal(t, 50, inTxn, "all of the transaction's events under app/ in one step")
		}
	}
	assert.Greater(t, steps, 1, "the events took more than one step")
	assert.Equal(t, after.Version, res.Version+1)
}

// A watch resuming from a point the history no longer covers (too old, or
// from another incarnation of the server) is told to relist, once, with
// the point it continues after; then it goes on live. Falling behind later,
// right after the relist or after live events, is no longer a relist but a
// drop.
func TestWatcherRelistsAResumePointOutOfHistory(t *testing.T) {
	w := newWatchFixture(t, feed.Options{History: 4}, nil, time.Second)
	var head kv.Item
	for i := range 10 {
		head = w.set(t, v4, fmt.Sprint("k", i), "v")
	}
	for _, tc := range []struct {
		since uint64
		live  bool // read a live event before falling behind
	}{{1, false}, {head.Version + 1000, true}} {
		since := tc.since
		wt, err := w.svc.Watch(v4, "", since, false)
		require.NoError(t, err)
		step := watchStep(t, wt)
		assert.Equal(t, policy.WatchRelist, step.Kind, "since %d", since)
		assert.Equal(t, head.Version, step.Cursor, "it continues after the head")
		assert.Empty(t, step.Events)
		if tc.live {
			head = w.set(t, v4, "live", "v")
			evs := watchNext(t, wt)
			require.Len(t, evs, 1)
			assert.Equal(t, head.Version, evs[0].Version)
		}

		for i := range 10 { // overrun the history while it does not read
			head = w.set(t, v4, fmt.Sprint("k", i), "v")
		}
		assert.Equal(t, policy.WatchDropped, watchStep(t, wt).Kind, "since %d: a relisted watch that falls behind is dropped", since)
		wt.Close()
	}
	assert.Equal(t, uint64(2), w.feed.Dropped(), "the relists are not drops, the falls behind are")

	// Resumed within the history, the missed events come and a later fall
	// behind is a drop.
	wt, err := w.svc.Watch(v4, "", head.Version-1, false)
	require.NoError(t, err)
	defer wt.Close()
	evs := watchNext(t, wt)
	require.Len(t, evs, 1)
	assert.Equal(t, head.Version, evs[0].Version)
	for i := range 10 {
		w.set(t, v4, fmt.Sprint("k", i), "v")
	}
	assert.Equal(t, policy.WatchDropped, watchStep(t, wt).Kind)
}

// A watcher that reads too slowly to keep up with the history is dropped,
// and stays dropped: the stream must end.
func TestWatcherDropsASlowReader(t *testing.T) {
	w := newWatchFixture(t, feed.Options{History: 8}, nil, time.Second)
	wt, err := w.svc.Watch(v4, "", 0, false)
	require.NoError(t, err)
	for i := range 50 {
		w.set(t, v4, fmt.Sprint("k", i), "v")
	}
	for range 2 {
		step := watchStep(t, wt)
		assert.Equal(t, policy.WatchDropped, step.Kind)
		assert.Empty(t, step.Events)
		assert.Zero(t, step.Cursor)
	}
	assert.Equal(t, uint64(1), w.feed.Dropped())
	assert.Equal(t, 1, w.feed.Active(), "it holds its place until closed")
	wt.Close()
	assert.Zero(t, w.feed.Active())
}

// At shutdown a watch first gets what was published before, then ends with
// a shutting-down error, in a Next already waiting as in a later one.
func TestWatcherEndsAtShutdown(t *testing.T) {
	w := newWatchFixture(t, feed.Options{}, nil, time.Second)
	early, err := w.svc.Watch(v4, "", 0, false)
	require.NoError(t, err)
	defer early.Close()
	waiting, err := w.svc.Watch(v4, "", 0, false)
	require.NoError(t, err)
	defer waiting.Close()
	v := w.set(t, v4, "k", "v")
	evs := watchNext(t, waiting)
	require.Len(t, evs, 1)

	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := waiting.Next(ctx)
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond) // let it wait, most of the time
	w.feed.Close()
	policyErr(t, <-errc, policy.KindShuttingDown)

	evs = watchNext(t, early)
	require.Len(t, evs, 1, "published before the shutdown, so delivered")
	assert.Equal(t, v.Version, evs[0].Version)
	_, err = early.Next(context.Background())
	policyErr(t, err, policy.KindShuttingDown)
}

// A watch ends with ctx's error when ctx is done, and with
// ErrWatcherClosed once closed, also in a Next waiting in another
// goroutine.
func TestWatcherContextAndClose(t *testing.T) {
	w := newWatchFixture(t, feed.Options{}, nil, time.Second)
	wt, err := w.svc.Watch(v4, "", 0, false)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = wt.Next(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = wt.Next(canceled)
	assert.ErrorIs(t, err, context.Canceled)

	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := wt.Next(ctx)
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	wt.Close()
	assert.ErrorIs(t, <-errc, policy.ErrWatcherClosed)
	_, err = wt.Next(context.Background())
	assert.ErrorIs(t, err, policy.ErrWatcherClosed)
	wt.Close()
	assert.Zero(t, w.feed.Active())
}
