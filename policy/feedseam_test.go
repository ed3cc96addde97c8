package policy_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// scriptFeed is a change feed other than package feed's, written against
// kv's types alone, as one kept in Redis would be: Subscribe refuses with
// refuse, and every subscription's Next returns the script's results in
// turn.
type scriptFeed struct {
	refuse error
	script []result
}

type result struct {
	evs []kv.Event
	err error
}

func (f *scriptFeed) Subscribe(o kv.SubOptions) (kv.Subscription, error) {
	if f.refuse != nil {
		return nil, f.refuse
	}
	return &scriptSub{script: f.script, cursor: o.Since}, nil
}

func (f *scriptFeed) Limits() kv.FeedLimits {
	return kv.FeedLimits{PerClient: 2, PerNetwork: 5, Total: 9}
}

type scriptSub struct {
	script []result
	cursor uint64
}

func (s *scriptSub) Next(context.Context) ([]kv.Event, error) {
	if len(s.script) == 0 {
		return nil, kv.ErrFeedClosed
	}
	r := s.script[0]
	s.script = s.script[1:]
	if n := len(r.evs); n > 0 {
		s.cursor = r.evs[n-1].Version
	}
	return r.evs, r.err
}

func (s *scriptSub) Cursor() uint64 { return s.cursor }
func (s *scriptSub) Reset() uint64  { s.cursor = 100; return s.cursor }
func (s *scriptSub) Close()         {}

// Any Feed speaking kv's subscription and errors gets the same watch
// steps and refusals as the in-memory one: events, a relist for a resume
// point out of history, a drop for a watcher that fell behind, the end at
// shutdown, and each cap's refusal worded with the feed's limits.
func TestFeedSeamTakesAnyImplementation(t *testing.T) {
	watch := func(f policy.Feed, since uint64) (*policy.Watcher, error) {
		cfg := testConfig
		cfg.Feed = f
		return policy.New(ttlstore.New(ttlstore.Options{}), nil, cfg, nil).Watch(v4, "app/", since, false)
	}
	ev := kv.Event{Op: kv.OpSet, Key: "app/a", Value: []byte("v"), Version: 7}

	w, err := watch(&scriptFeed{script: []result{{evs: []kv.Event{ev}}, {err: kv.ErrBehind}, {err: kv.ErrBehind}}}, 0)
	require.NoError(t, err)
	assert.Equal(t, policy.WatchStep{Kind: policy.WatchEvents, Events: []kv.Event{ev}, Cursor: 7}, watchStep(t, w))
	assert.Equal(t, policy.WatchDropped, watchStep(t, w).Kind, "behind after events: too slow")
	assert.Equal(t, policy.WatchDropped, watchStep(t, w).Kind)
	w.Close()

	w, err = watch(&scriptFeed{script: []result{{err: kv.ErrBehind}, {evs: []kv.Event{{Op: kv.OpDelete, Key: "app/b", Version: 101}}}}}, 3)
	require.NoError(t, err)
	assert.Equal(t, policy.WatchStep{Kind: policy.WatchRelist, Cursor: 100}, watchStep(t, w), "behind before anything: relist")
	assert.Equal(t, policy.WatchEvents, watchStep(t, w).Kind)
	_, err = w.Next(context.Background())
	policyErr(t, err, policy.KindShuttingDown)
	w.Close()

	for refusal, msg := range map[error]string{
		kv.ErrTooManyWatchersForClient:  "at most 2",
		kv.ErrTooManyWatchersForNetwork: "at most 5",
		kv.ErrTooManyWatchers:           "(9)",
	} {
		_, err := watch(&scriptFeed{refuse: refusal}, 0)
		assert.Contains(t, policyErr(t, err, policy.KindTooManyWatches).Message, msg)
	}
	_, err = watch(&scriptFeed{refuse: kv.ErrFeedClosed}, 0)
	policyErr(t, err, policy.KindShuttingDown)
	_, err = watch(&scriptFeed{refuse: errors.New("redis: connection refused")}, 0)
	policyErr(t, err, policy.KindUnavailable)
}
