package policy_test

import (
	"context"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/feed"
	"github.com/rendezvous-kv/rendezvous/internal/fakeclock"
	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/limiter"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/server"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// watchFixture is the Service of a server started through server.New,
// with its store and change feed.
type watchFixture struct {
	svc   *policy.Service
	store *ttlstore.Store
	feed  *feed.Feed
	clock *fakeClock
}

// newWatchFixture starts a server whose watcher caps and history are fo's
// (zero fields keep the defaults), whose rate limit is rate (nil: off) and
// whose MaxWait is maxWait; tweak, when given, changes its Config last.
func newWatchFixture(t *testing.T, fo feed.Options, rate *limiter.Config, maxWait time.Duration, tweak ...func(*server.Config)) *watchFixture {
	t.Helper()
	clk := fakeclock.New(t0)
	cfg := server.DefaultConfig()
	cfg.Addr, cfg.Data, cfg.Now, cfg.MaxWait = "127.0.0.1:0", "", clk.Now, maxWait
	cfg.RateOff = rate == nil
	if rate != nil {
		cfg.RateTokens, cfg.RateWindow, cfg.RateBurst = rate.Tokens, rate.Window, rate.Burst
	}
	cfg.WatchHistory = fo.History
	for _, c := range []struct {
		dst *int
		v   int
	}{{&cfg.MaxWatchersPerIP, fo.MaxPerClient}, {&cfg.MaxWatchersPerNet, fo.MaxPerNetwork}, {&cfg.MaxWatchers, fo.MaxTotal}} {
		if c.v > 0 {
			*c.dst = c.v
		}
	}
	for _, f := range tweak {
		f(&cfg)
	}
	srv, err := server.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	in := srv.Internals()
	return &watchFixture{svc: srv.Service(), store: in.Store, feed: in.Feed, clock: clk}
}

func (w *watchFixture) set(t *testing.T, c policy.Caller, key, value string) ttlstore.Item {
	t.Helper()
	res, err := w.svc.Write(c, policy.OpSet, policy.WriteRequest{Key: key, Value: []byte(value)})
	require.NoError(t, err)
	return res.Item
}

// watchStep returns the next step of w, failing the test after 5 s.
func watchStep(t *testing.T, w *policy.Watcher) policy.WatchStep {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	step, err := w.Next(ctx)
	require.NoError(t, err)
	return step
}

// watchNext returns the events of the next step of w, which must be
// events.
func watchNext(t *testing.T, w *policy.Watcher) []kv.Event {
	t.Helper()
	step := watchStep(t, w)
	require.Equal(t, policy.WatchEvents, step.Kind)
	require.NotEmpty(t, step.Events)
	return step.Events
}

func TestWatchDeliversMatchingChanges(t *testing.T) {
	w := newWatchFixture(t, feed.Options{}, nil, time.Second)
	sub, err := w.svc.Watch(v4, "app/", 0, false)
	require.NoError(t, err)
	defer sub.Close()
	w.set(t, v4, "other/x", "no")
	it := w.set(t, v4, "app/x", "yes")
	_, err = w.svc.Delete(v4, "app/x", "")
	require.NoError(t, err)

	var evs []kv.Event
	for len(evs) < 2 {
		evs = append(evs, watchNext(t, sub)...)
	}
	require.Len(t, evs, 2)
	assert.Equal(t, ttlstore.OpSet, evs[0].Op)
	assert.Equal(t, "app/x", evs[0].Key)
	assert.Equal(t, "yes", string(evs[0].Value))
	assert.Equal(t, it.Version, evs[0].Version)
	assert.Equal(t, it.Expires, evs[0].Expires)
	assert.Equal(t, ttlstore.OpDelete, evs[1].Op)
	assert.Equal(t, it.Version+1, evs[1].Version)
}

func TestWatchPrefixRules(t *testing.T) {
	w := newWatchFixture(t, feed.Options{MaxPerClient: 100}, nil, time.Second)
	for _, bad := range []struct {
		prefix string
		exact  bool
		msg    string
	}{
		{"a\x00", false, "control character"},
		{"a\nb", true, "control character"},
		{strings.Repeat("k", 101), false, "too long"},
		{"\xff", false, "UTF-8"},
		{"", true, "empty"},
	} {
		_, err := w.svc.Watch(v4, bad.prefix, 0, bad.exact)
		pe := policyErr(t, err, policy.KindBadRequest)
		assert.Contains(t, pe.Message, bad.msg)
	}
	// Empty watches everything; a prefix may be any leading part of a key.
	for _, ok := range []string{"", "a", "ip/", strings.Repeat("k", 100)} {
		sub, err := w.svc.Watch(v4, ok, 0, false)
		require.NoError(t, err, "prefix %q", ok)
		sub.Close()
	}

	// ip/ is not rewritten for watches: v4 sees v6's scoped write.
	sub, err := w.svc.Watch(v4, "ip/", 0, false)
	require.NoError(t, err)
	defer sub.Close()
	w.set(t, v6, "ip/name", "v")
	evs := watchNext(t, sub)
	require.Len(t, evs, 1)
	assert.Equal(t, "ip/2001:db8::1/name", evs[0].Key)
}

func TestWatchCaps(t *testing.T) {
	w := newWatchFixture(t, feed.Options{MaxPerClient: 2, MaxTotal: 3}, nil, time.Second)
	a, err := w.svc.Watch(v6, "", 0, false)
	require.NoError(t, err)
	defer a.Close()
	// Another address in the same /64 shares the cap.
	sameNet := policy.Caller{IP: netip.MustParseAddr("2001:db8::beef")}
	b, err := w.svc.Watch(sameNet, "", 0, false)
	require.NoError(t, err)
	defer b.Close()
	_, err = w.svc.Watch(v6, "k", 0, true)
	pe := policyErr(t, err, policy.KindTooManyWatches)
	assert.Contains(t, pe.Message, "at most 2")
	assert.Nil(t, pe.Limit, "not a token-bucket refusal")

	c, err := w.svc.Watch(v4, "", 0, false)
	require.NoError(t, err)
	defer c.Close()
	_, err = w.svc.Watch(mapped, "", 0, false)
	pe = policyErr(t, err, policy.KindTooManyWatches)
	assert.Contains(t, pe.Message, "(3)")

	// Long-polls hold the same places.
	_, _, err = w.svc.WaitKey(context.Background(), mapped, "k", 0, time.Second)
	policyErr(t, err, policy.KindTooManyWatches)

	w.feed.Close()
	a.Close()
	_, err = w.svc.Watch(v6, "", 0, false)
	policyErr(t, err, policy.KindShuttingDown)
}

func TestWatchCostsOneRead(t *testing.T) {
	w := newWatchFixture(t, feed.Options{}, &limiter.Config{Tokens: 3, Window: time.Hour}, time.Second)
	for range 3 {
		sub, err := w.svc.Watch(v4, "", 0, false)
		require.NoError(t, err)
		sub.Close()
	}
	_, err := w.svc.Watch(v4, "", 0, false)
	pe := policyErr(t, err, policy.KindRateLimited)
	assert.NotNil(t, pe.Limit)
	_, _, err = w.svc.WaitKey(context.Background(), v4, "k", 0, 0)
	policyErr(t, err, policy.KindRateLimited)
}

// WaitLimit is the wait WaitKey holds a long-poll for, so that a front end
// sizes its timeouts by the same rule.
func TestWaitLimit(t *testing.T) {
	for _, tc := range []struct {
		maxWait, wait, want time.Duration
	}{
		{0, time.Second, time.Second},
		{0, time.Hour, policy.DefaultMaxWait},
		{-1, time.Hour, policy.DefaultMaxWait},
		{10 * time.Second, time.Second, time.Second},
		{10 * time.Second, time.Hour, 10 * time.Second},
		{10 * time.Second, 0, 0},
	} {
		svc := policy.New(ttlstore.New(ttlstore.Options{}), nil, policy.Config{MaxWait: tc.maxWait}, nil)
		assert.Equal(t, tc.want, svc.WaitLimit(tc.wait), "MaxWait %v, wait %v", tc.maxWait, tc.wait)
	}
}

func TestWatchWithoutFeed(t *testing.T) {
	fx := newFixture(t, ttlstore.Options{}, nil)
	_, err := fx.svc.Watch(v4, "", 0, false)
	policyErr(t, err, policy.KindWatchDisabled)
	_, _, err = fx.svc.WaitKey(context.Background(), v4, "k", 0, time.Second)
	policyErr(t, err, policy.KindWatchDisabled)
	// Without waiting it is a plain read.
	_, ok, err := fx.svc.WaitKey(context.Background(), v4, "k", 0, 0)
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestWatchResume(t *testing.T) {
	w := newWatchFixture(t, feed.Options{History: 4}, nil, time.Second)
	var last ttlstore.Item
	for range 10 {
		last = w.set(t, v4, "k", "v")
	}
	sub, err := w.svc.Watch(v4, "", last.Version-2, false)
	require.NoError(t, err)
	defer sub.Close()
	evs := watchNext(t, sub)
	require.Len(t, evs, 2)
	assert.Equal(t, last.Version, evs[1].Version)

	old, err := w.svc.Watch(v4, "", 1, false)
	require.NoError(t, err)
	defer old.Close()
	assert.Equal(t, policy.WatchRelist, watchStep(t, old).Kind)
}

func TestWaitKeyImmediate(t *testing.T) {
	w := newWatchFixture(t, feed.Options{}, nil, time.Second)
	it := w.set(t, v4, "k", "v1")
	got, ok, err := w.svc.WaitKey(context.Background(), v4, "k", 0, time.Hour)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "v1", string(got.Value))
	got, ok, err = w.svc.WaitKey(context.Background(), v4, "k", it.Version+100, time.Hour)
	require.NoError(t, err)
	assert.True(t, ok, "an etag that is not the current version answers at once")
	assert.Equal(t, it.Version, got.Version)
	assert.Zero(t, w.feed.Active(), "an immediate answer never subscribes")

	_, _, err = w.svc.WaitKey(context.Background(), v4, "bad\x00", 0, time.Hour)
	policyErr(t, err, policy.KindBadRequest)
}

func TestWaitKeyWakesOnWrite(t *testing.T) {
	w := newWatchFixture(t, feed.Options{}, nil, 10*time.Second)
	it := w.set(t, v4, "k", "v1")
	type res struct {
		it  ttlstore.Item
		ok  bool
		err error
		at  time.Time
	}
	done := make(chan res, 1)
	go func() {
		got, ok, err := w.svc.WaitKey(context.Background(), v4, "k", it.Version, 5*time.Second)
		done <- res{got, ok, err, time.Now()}
	}()
	require.Eventually(t, func() bool { return w.feed.Active() == 1 }, 5*time.Second, time.Millisecond)
	// Writes to other keys and a delete do not answer it.
	w.set(t, v4, "k2", "x")
	_, err := w.svc.Delete(v4, "k", "")
	require.NoError(t, err)
	time.Sleep(20 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("answered early: %+v", r)
	default:
	}
	start := time.Now()
	w.set(t, v4, "k", "v2")
	r := <-done
	require.NoError(t, r.err)
	assert.True(t, r.ok)
	assert.Equal(t, "v2", string(r.it.Value))
	latency := r.at.Sub(start)
	t.Logf("WaitKey answered %v after the write", latency)
	assert.Less(t, latency, 500*time.Millisecond)
	require.Eventually(t, func() bool { return w.feed.Active() == 0 }, time.Second, time.Millisecond)
}

func TestWaitKeyTimeout(t *testing.T) {
	w := newWatchFixture(t, feed.Options{}, nil, time.Second)
	start := time.Now()
	got, ok, err := w.svc.WaitKey(context.Background(), v4, "absent", 0, 50*time.Millisecond)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Zero(t, got)
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)

	// Unchanged: the item comes back with ok=false, for a "not modified".
	it := w.set(t, v4, "k", "v")
	got, ok, err = w.svc.WaitKey(context.Background(), v4, "k", it.Version, 30*time.Millisecond)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Equal(t, it.Version, got.Version)
	assert.Zero(t, w.feed.Active())
}

func TestWaitKeyCappedByMaxWait(t *testing.T) {
	w := newWatchFixture(t, feed.Options{}, nil, 50*time.Millisecond)
	start := time.Now()
	_, ok, err := w.svc.WaitKey(context.Background(), v4, "k", 0, time.Hour)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestWaitKeyContextAndClose(t *testing.T) {
	w := newWatchFixture(t, feed.Options{}, nil, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := w.svc.WaitKey(ctx, v4, "k", 0, time.Minute)
		errc <- err
	}()
	require.Eventually(t, func() bool { return w.feed.Active() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	assert.ErrorIs(t, <-errc, context.Canceled)

	go func() {
		_, _, err := w.svc.WaitKey(context.Background(), v4, "k", 0, time.Minute)
		errc <- err
	}()
	require.Eventually(t, func() bool { return w.feed.Active() == 1 }, 5*time.Second, time.Millisecond)
	w.feed.Close()
	policyErr(t, <-errc, policy.KindShuttingDown)
}

// A write racing the start of a long-poll is never missed: each round
// writes while WaitKey is between its first read and its subscription (or
// anywhere else), and every round must be answered by that write rather
// than time out.
func TestWaitKeyNeverMissesARacingWrite(t *testing.T) {
	w := newWatchFixture(t, feed.Options{}, nil, time.Minute)
	it := w.set(t, v4, "k", "v")
	for i := range 2000 {
		done := make(chan ttlstore.Item, 1)
		go func() {
			start := time.Now()
			got, ok, err := w.svc.WaitKey(context.Background(), v4, "k", it.Version, time.Second)
			assert.NoError(t, err)
			assert.True(t, ok)
			// A missed write is found only by the final read at the
			// deadline.
			assert.Less(t, time.Since(start), 500*time.Millisecond, "round %d: the write was missed", i)
			done <- got
		}()
		// Land the write at a varying point of WaitKey's start.
		for range i % 64 * 16 {
			runtime.Gosched()
		}
		next := w.set(t, v4, "k", "v")
		got := <-done
		if !assert.GreaterOrEqual(t, got.Version, next.Version) {
			return
		}
		it = next
	}
}

func TestParseWait(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"30", 30 * time.Second, false},
		{"0", 0, false},
		{"100ms", 100 * time.Millisecond, false},
		{"1m", time.Minute, false},
		{"99999999999999999999", 1<<63 - 1, false},
		{"2562048h", 1<<63 - 1, false},
		{"99999999999999999999s", 1<<63 - 1, false},
		{"99999999999999999999x", 0, true},
		{"-2562048h", 0, true},
		{"-1s", 0, true},
		{"-5", 0, true},
		{"", 0, true},
		{"soon", 0, true},
	} {
		got, err := policy.ParseWait(c.in)
		if c.err {
			policyErr(t, err, policy.KindBadRequest)
			continue
		}
		require.NoError(t, err, c.in)
		assert.Equal(t, c.want, got, c.in)
	}
}

// The per-client cap groups addresses as the rate limiter is configured
// to: with IPv4 grouped by /24, two addresses of one /24 are one client.
func TestWatchCapFollowsClientGrouping(t *testing.T) {
	svc := newWatchFixture(t, feed.Options{MaxPerClient: 1}, nil, time.Minute, func(c *server.Config) {
		c.ClientGrouping.V4 = 24
	}).svc

	a, err := svc.Watch(policy.Caller{IP: netip.MustParseAddr("198.51.100.7")}, "", 0, false)
	require.NoError(t, err)
	defer a.Close()
	_, err = svc.Watch(policy.Caller{IP: netip.MustParseAddr("198.51.100.200")}, "", 0, false)
	policyErr(t, err, policy.KindTooManyWatches)
	b, err := svc.Watch(policy.Caller{IP: netip.MustParseAddr("198.51.101.7")}, "", 0, false)
	require.NoError(t, err, "another /24 is another client")
	b.Close()
}
