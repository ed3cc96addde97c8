package limiter_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/limiter"
)

// t0 is an arbitrary fixed instant; every test states times relative to it
// so that token arithmetic is exact and no test sleeps.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// defaultCfg is the service's production budget: 17 tokens a minute.
var defaultCfg = limiter.Config{Tokens: 17, Window: time.Minute, Burst: 17}

func newLimiter(t testing.TB, cfg limiter.Config) *limiter.Limiter {
	t.Helper()
	l, err := limiter.New(cfg)
	require.NoError(t, err)
	return l
}

// key is the client key of one address: the limiter keeps whatever keys it
// is given, so the tests use single-address prefixes.
func key(s string) kv.Client {
	ip := netip.MustParseAddr(s)
	return kv.GroupClient(netip.PrefixFrom(ip, ip.BitLen()))
}

func allowed(remaining int) limiter.Decision {
	return limiter.Decision{Allowed: true, Limit: 17, Remaining: remaining}
}

func denied(remaining int, retry time.Duration) limiter.Decision {
	return limiter.Decision{Limit: 17, Remaining: remaining, RetryAfter: retry}
}

type step struct {
	at   time.Duration // offset from t0
	cost int
	want limiter.Decision
}

// spend returns n steps at offset at, each of cost, counting Remaining down
// from start.
func spend(at time.Duration, cost, n, start int) []step {
	var s []step
	for i := 1; i <= n; i++ {
		s = append(s, step{at, cost, allowed(start - i*cost)})
	}
	return s
}

func steps(parts ...[]step) []step {
	var s []step
	for _, p := range parts {
		s = append(s, p...)
	}
	return s
}

func TestTokenArithmetic(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "cost 1 spends exactly the burst",
			steps: steps(
				spend(0, 1, 17, 17),
				[]step{
					// One token takes 60/17 = 3.53s, rounded up.
					{0, 1, denied(0, 4*time.Second)},
					// 0.85 tokens after 3s; the missing 0.15 take 0.53s.
					{3 * time.Second, 1, denied(0, time.Second)},
					// 1.13 tokens after 4s.
					{4 * time.Second, 1, allowed(0)},
				},
			),
		},
		{
			name: "cost 3 spends five times then waits for the missing token",
			steps: steps(
				spend(0, 3, 5, 17),
				[]step{
					{0, 3, denied(2, 4*time.Second)}, // 2 left, 1 missing: 3.53s
					{0, 2, allowed(0)},               // the denial spent nothing
					{0, 3, denied(0, 11*time.Second)},
					{10 * time.Second, 3, denied(2, time.Second)}, // 2.83 tokens
					{11 * time.Second, 3, allowed(0)},             // 3.12 tokens
				},
			),
		},
		{
			name: "rejected requests spend nothing",
			steps: []step{
				{0, 16, allowed(1)},
				{0, 2, denied(1, 4*time.Second)},
				{0, 2, denied(1, 4*time.Second)},
				{time.Second, 2, denied(1, 3*time.Second)}, // 1.28 tokens, 0.72 missing: 2.5s
				{time.Second, 1, allowed(0)},
			},
		},
		{
			name: "cost above the burst never succeeds and spends nothing",
			steps: []step{
				{0, 18, denied(17, time.Minute)},
				{0, 17, allowed(0)},
				{0, 18, denied(0, time.Minute)},
				{time.Hour, 1000, denied(17, time.Minute)},
			},
		},
		{
			name: "refill after elapsed time, capped at the burst",
			steps: steps(
				spend(0, 1, 17, 17),
				[]step{
					{32 * time.Second, 1, allowed(8)}, // 9.07 tokens
					{5 * time.Minute, 1, allowed(16)},
					{5 * time.Minute, 16, allowed(0)},
				},
			),
		},
		{
			name: "zero and negative costs are free and never add tokens",
			steps: []step{
				{0, 0, allowed(17)},
				{0, -5, allowed(17)},
				{0, 17, allowed(0)},
				{0, -5, allowed(0)},
				{0, 1, denied(0, 4*time.Second)},
			},
		},
		{
			name: "an earlier time does not credit the same interval twice",
			steps: []step{
				{10 * time.Second, 16, allowed(1)},
				{0, 1, allowed(0)}, // treated as 10s, not as a refill from 0s
				{10 * time.Second, 1, denied(0, 4*time.Second)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiter(t, defaultCfg)
			client := key("192.0.2.1")
			for i, s := range tt.steps {
				got := l.AllowAt(client, s.cost, t0.Add(s.at))
				require.Equal(t, s.want, got, "step %d: cost %d at +%v", i, s.cost, s.at)
			}
		})
	}
}

func TestRetryAfterOtherRates(t *testing.T) {
	tests := []struct {
		name string
		cfg  limiter.Config
		// After the whole burst is spent at t0, a request of cost is denied
		// with want.
		cost int
		want time.Duration
	}{
		{"fast rate rounds up to one second", limiter.Config{Tokens: 10, Window: time.Second, Burst: 5}, 1, time.Second},
		{"fast rate, several tokens", limiter.Config{Tokens: 10, Window: time.Second, Burst: 50}, 25, 3 * time.Second},
		{"slow rate", limiter.Config{Tokens: 1, Window: time.Hour, Burst: 2}, 2, 2 * time.Hour},
		{"whole window is exact", limiter.Config{Tokens: 17, Window: time.Minute}, 17, time.Minute},
		{"above burst: full refill", limiter.Config{Tokens: 1, Window: time.Hour, Burst: 3}, 4, 3 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiter(t, tt.cfg)
			client := key("2001:db8::1")
			burst := tt.cfg.Burst
			if burst == 0 {
				burst = tt.cfg.Tokens
			}
			require.True(t, l.AllowAt(client, burst, t0).Allowed)
			d := l.AllowAt(client, tt.cost, t0)
			assert.False(t, d.Allowed)
			assert.Equal(t, burst, d.Limit)
			assert.Equal(t, 0, d.Remaining)
			assert.Equal(t, tt.want, d.RetryAfter)
		})
	}
}

func TestBurstDefaultsToTokens(t *testing.T) {
	l := newLimiter(t, limiter.Config{Tokens: 5, Window: time.Second})
	d := l.AllowAt(key("192.0.2.1"), 1, t0)
	assert.Equal(t, limiter.Decision{Allowed: true, Limit: 5, Remaining: 4}, d)
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  limiter.Config
	}{
		{"zero tokens", limiter.Config{Window: time.Minute}},
		{"negative tokens", limiter.Config{Tokens: -1, Window: time.Minute}},
		{"zero window", limiter.Config{Tokens: 17}},
		{"negative window", limiter.Config{Tokens: 17, Window: -time.Second}},
		{"negative burst", limiter.Config{Tokens: 17, Window: time.Minute, Burst: -1}},
		{"negative max clients", limiter.Config{Tokens: 17, Window: time.Minute, MaxClients: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := limiter.New(tt.cfg)
			assert.Error(t, err)
			assert.Nil(t, l)
		})
	}

	valid := []limiter.Config{
		defaultCfg,
		{Tokens: 1, Window: time.Nanosecond},
		{Tokens: 17, Window: time.Minute, MaxClients: 1},
	}
	for _, cfg := range valid {
		_, err := limiter.New(cfg)
		assert.NoError(t, err, "%+v", cfg)
	}
}

// Equal keys share a bucket and any two different keys have their own:
// the limiter groups nothing itself, whatever the keys look like.
func TestBucketPerKey(t *testing.T) {
	p := func(s string) kv.Client { return kv.GroupClient(netip.MustParsePrefix(s)) }
	alice, bob := kv.Client{Name: "alice"}, kv.Client{Name: "bob"}
	tests := []struct {
		name   string
		a, b   kv.Client
		shared bool
	}{
		{"same /64", p("2001:db8:1:2::/64"), p("2001:db8:1:2::/64"), true},
		{"another /64", p("2001:db8:1:2::/64"), p("2001:db8:1:3::/64"), false},
		{"a /48 is not the /64 inside it", p("2001:db8:1::/48"), p("2001:db8:1::/64"), false},
		{"same address", key("192.0.2.1"), key("192.0.2.1"), true},
		{"another address", key("192.0.2.1"), key("192.0.2.2"), false},
		{"IPv4-mapped is another key", key("192.0.2.1"), key("::ffff:192.0.2.1"), false},
		{"the zero Prefix is one key", kv.Client{}, kv.Client{}, true},
		{"the zero Prefix is not 0.0.0.0/32", kv.Client{}, key("0.0.0.0"), false},
		{"the zero Prefix is not ::/0", kv.Client{}, p("::/0"), false},
		{"one identity", alice, kv.Client{Name: "alice"}, true},
		{"another identity", alice, bob, false},
		{"an identity is not the zero group", alice, kv.Client{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiter(t, defaultCfg)
			require.True(t, l.AllowAt(tt.a, 17, t0).Allowed)
			d := l.AllowAt(tt.b, 1, t0)
			assert.Equal(t, !tt.shared, d.Allowed, "%v then %v", tt.a, tt.b)
			wantLen := 2
			if tt.shared {
				wantLen = 1
			}
			assert.Equal(t, wantLen, l.Len())
		})
	}
}

func TestSweepDropsOnlyFullBuckets(t *testing.T) {
	l := newLimiter(t, defaultCfg)
	a, b, c := key("192.0.2.1"), key("192.0.2.2"), key("192.0.2.3")
	require.True(t, l.AllowAt(a, 1, t0).Allowed)  // 16 left: full after 3.53s
	require.True(t, l.AllowAt(b, 17, t0).Allowed) // empty: full after 60s
	require.True(t, l.AllowAt(c, 0, t0).Allowed)  // never spent: already full
	require.Equal(t, 3, l.Len())

	assert.Equal(t, 1, l.SweepAt(t0), "only the untouched bucket is full")
	assert.Equal(t, 2, l.Len())
	assert.Equal(t, 0, l.SweepAt(t0.Add(3*time.Second)))
	assert.Equal(t, 1, l.SweepAt(t0.Add(4*time.Second)))
	assert.Equal(t, 1, l.Len())

	// b kept its state: 1.13 tokens at 4s, not a fresh bucket of 17.
	assert.Equal(t, allowed(0), l.AllowAt(b, 1, t0.Add(4*time.Second)))
	// a was dropped while full, so its fresh bucket answers as the old one
	// would have.
	assert.Equal(t, allowed(16), l.AllowAt(a, 1, t0.Add(4*time.Second)))

	assert.Equal(t, 0, l.SweepAt(t0.Add(5*time.Second)))
	assert.Equal(t, 2, l.SweepAt(t0.Add(2*time.Minute)))
	assert.Equal(t, 0, l.Len())
}

func TestFullTableUsesSharedOverflow(t *testing.T) {
	l := newLimiter(t, limiter.Config{Tokens: 17, Window: time.Minute, MaxClients: 3})
	for i := 1; i <= 3; i++ {
		require.Equal(t, allowed(16), l.AllowAt(key(fmt.Sprintf("192.0.2.%d", i)), 1, t0))
	}
	require.Equal(t, 3, l.Len())

	// The table is full of active clients: new ones share one budget.
	n := 0
	for i := 10; i < 100; i++ {
		if l.AllowAt(key(fmt.Sprintf("198.51.100.%d", i)), 1, t0).Allowed {
			n++
		}
		require.LessOrEqual(t, l.Len(), 3)
	}
	assert.Equal(t, 17, n, "all newcomers together get one burst")
	d := l.AllowAt(key("2001:db8::1"), 1, t0)
	assert.Equal(t, denied(0, 4*time.Second), d)

	// Known clients keep their own budgets meanwhile.
	assert.Equal(t, allowed(15), l.AllowAt(key("192.0.2.1"), 1, t0))
	assert.Equal(t, 3, l.Len())
}

// TestPeekFullTable: while the table is full, a client without a bucket
// is peeked against the overflow that AllowAt charges it to, so spending
// the overflow from many new addresses makes Peek refuse them too.
func TestPeekFullTable(t *testing.T) {
	l := newLimiter(t, limiter.Config{Tokens: 17, Window: time.Minute, MaxClients: 2})
	for i := 1; i <= 2; i++ {
		require.True(t, l.AllowAt(key(fmt.Sprintf("192.0.2.%d", i)), 1, t0).Allowed)
	}
	for i := range 17 {
		c := key(fmt.Sprintf("198.51.100.%d", i))
		require.True(t, l.PeekAt(c, 1, t0).Allowed, "overflow has %d left", 17-i)
		require.True(t, l.AllowAt(c, 1, t0).Allowed)
	}
	assert.Equal(t, denied(0, 4*time.Second), l.PeekAt(key("203.0.113.9"), 1, t0))
	assert.Equal(t, allowed(16), l.PeekAt(key("192.0.2.1"), 1, t0), "a client with a bucket keeps its own")
	assert.Equal(t, 2, l.Len(), "peeking makes no bucket")
}

func TestSweepFreesRoomForNewClients(t *testing.T) {
	l := newLimiter(t, limiter.Config{Tokens: 17, Window: time.Minute, MaxClients: 3})
	for i := 1; i <= 3; i++ {
		require.True(t, l.AllowAt(key(fmt.Sprintf("192.0.2.%d", i)), 17, t0).Allowed)
	}
	// Exhaust the overflow bucket.
	require.True(t, l.AllowAt(key("198.51.100.1"), 17, t0).Allowed)
	require.False(t, l.AllowAt(key("198.51.100.2"), 1, t0).Allowed)

	// After 2 minutes every bucket is full again. A new client triggers a
	// sweep and gets a bucket of its own (16 left), not the overflow's.
	later := t0.Add(2 * time.Minute)
	assert.Equal(t, allowed(16), l.AllowAt(key("198.51.100.3"), 1, later))
	assert.Equal(t, 1, l.Len())

	// An explicit sweep does the same without waiting for a newcomer.
	for i := 1; i <= 2; i++ {
		require.True(t, l.AllowAt(key(fmt.Sprintf("203.0.113.%d", i)), 17, later).Allowed)
	}
	require.Equal(t, 3, l.Len())
	assert.Equal(t, 3, l.SweepAt(later.Add(2*time.Minute)))
	assert.Equal(t, 0, l.Len())
}

func TestOnDemandSweepIsThrottled(t *testing.T) {
	l := newLimiter(t, limiter.Config{Tokens: 17, Window: time.Minute, MaxClients: 2})
	// a is 0.15 tokens short of full at t0 and refills at t0+0.53s.
	a := key("192.0.2.1")
	require.True(t, l.AllowAt(a, 1, t0.Add(-3*time.Second)).Allowed)
	require.True(t, l.AllowAt(key("192.0.2.2"), 17, t0).Allowed)

	// The first newcomer sweeps at t0 and finds nothing to drop.
	assert.Equal(t, allowed(16), l.AllowAt(key("198.51.100.1"), 1, t0))
	// a is full at t0+0.7s, but the next on-demand sweep waits a second, so
	// this newcomer is charged to the overflow bucket.
	assert.Equal(t, allowed(15), l.AllowAt(key("198.51.100.2"), 1, t0.Add(700*time.Millisecond)))
	assert.Equal(t, 2, l.Len())
	// A second later, a newcomer's sweep drops a and it gets its own bucket.
	assert.Equal(t, allowed(16), l.AllowAt(key("198.51.100.3"), 1, t0.Add(time.Second)))
	assert.Equal(t, 2, l.Len())
}

func TestNilLimiterAllowsEverything(t *testing.T) {
	var l *limiter.Limiter
	for _, client := range []kv.Client{key("192.0.2.1"), key("2001:db8::1"), {}} {
		for i := 0; i < 100; i++ {
			assert.Equal(t, limiter.Decision{Allowed: true}, l.Allow(client, 1000))
			assert.Equal(t, limiter.Decision{Allowed: true}, l.AllowAt(client, 1, t0))
		}
	}
	assert.Equal(t, 0, l.Len())
	assert.Equal(t, 0, l.SweepAt(t0))
	l.Run(context.Background(), time.Millisecond) // returns at once
}

func TestAllowUsesWallClock(t *testing.T) {
	l := newLimiter(t, defaultCfg)
	assert.Equal(t, allowed(16), l.Allow(key("192.0.2.1"), 1))
	assert.Equal(t, allowed(0), l.Allow(key("192.0.2.1"), 16))
	d := l.Allow(key("192.0.2.1"), 1)
	assert.False(t, d.Allowed)
	assert.Equal(t, 4*time.Second, d.RetryAfter)
}

func TestRun(t *testing.T) {
	l := newLimiter(t, defaultCfg)
	// Spent an hour ago, so full by now: the first periodic sweep drops them.
	past := time.Now().Add(-time.Hour)
	for i := 1; i <= 5; i++ {
		require.True(t, l.AllowAt(key(fmt.Sprintf("192.0.2.%d", i)), 17, past).Allowed)
	}
	require.Equal(t, 5, l.Len())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		l.Run(ctx, time.Millisecond)
		close(done)
	}()
	require.Eventually(t, func() bool { return l.Len() == 0 }, 10*time.Second, time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

func TestRunDefaultInterval(t *testing.T) {
	l := newLimiter(t, defaultCfg)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.Run(ctx, 0) // must not panic on a zero interval and must return
}

// TestConcurrentSameClient hammers one client from many goroutines at one
// fixed instant: exactly the burst is allowed, including when the first
// requests race to create the client's bucket.
func TestConcurrentSameClient(t *testing.T) {
	const goroutines, attempts = 32, 50
	for round := 0; round < 20; round++ {
		l := newLimiter(t, defaultCfg)
		var ok atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				client := kv.GroupClient(netip.MustParsePrefix("2001:db8::/64"))
				<-start
				for i := 0; i < attempts; i++ {
					d := l.AllowAt(client, 1, t0)
					if d.Allowed {
						ok.Add(1)
					}
				}
			}(g)
		}
		close(start)
		wg.Wait()
		require.EqualValues(t, 17, ok.Load(), "round %d", round)
		require.Equal(t, 1, l.Len())
	}
}

// TestConcurrentSweepChangesNoAnswer sweeps continually while many clients
// spend at one fixed instant. A bucket swept while full is replaced by an
// identical one, and a spend never lands on a bucket that is being dropped,
// so each client still gets exactly its burst.
func TestConcurrentSweepChangesNoAnswer(t *testing.T) {
	const clients, goroutines, rounds = 64, 8, 40
	l := newLimiter(t, defaultCfg)
	var ok [clients]atomic.Int64
	stop := make(chan struct{})
	swept := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				swept <- n
				return
			default:
				n += l.SweepAt(t0)
			}
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				for c := 0; c < clients; c++ {
					c := (c + g*7) % clients
					client := kv.GroupClient(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(c >> 8), byte(c)}), 32))
					if l.AllowAt(client, 1, t0).Allowed {
						ok[c].Add(1)
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(stop)
	t.Logf("sweeps dropped %d full buckets", <-swept)
	for c := range ok {
		assert.EqualValues(t, 17, ok[c].Load(), "client %d", c)
	}
	assert.Equal(t, clients, l.Len())
}

// TestConcurrentTableBound floods a small table with distinct clients from
// many goroutines: the table never exceeds MaxClients, and the newcomers
// that found it full share one overflow burst.
func TestConcurrentTableBound(t *testing.T) {
	const maxClients, goroutines, perGoroutine = 10, 8, 200
	l := newLimiter(t, limiter.Config{Tokens: 17, Window: time.Minute, MaxClients: maxClients})
	var ok atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < perGoroutine; i++ {
				client := kv.GroupClient(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(g), byte(i >> 8), byte(i)}), 32))
				if l.AllowAt(client, 17, t0).Allowed {
					ok.Add(1)
				}
				if n := l.Len(); n > maxClients {
					t.Errorf("Len %d > MaxClients %d", n, maxClients)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	assert.Equal(t, maxClients, l.Len())
	// Each of the 10 table clients spent its burst at once, and so did one
	// newcomer on the overflow bucket.
	assert.EqualValues(t, maxClients+1, ok.Load())
}

// A key with a rate of its own gets a bucket of that size and refill; the
// same name under the default rate is another key.
func TestOwnRate(t *testing.T) {
	l := newLimiter(t, defaultCfg)
	own := kv.Client{Name: "alice", Rate: kv.Rate{Tokens: 5, Window: time.Minute}}
	assert.Equal(t, limiter.Decision{Allowed: true, Limit: 5, Remaining: 0}, l.AllowAt(own, 5, t0))
	d := l.AllowAt(own, 1, t0)
	assert.False(t, d.Allowed)
	assert.Equal(t, 12*time.Second, d.RetryAfter, "one token of 5 a minute")
	assert.Equal(t, limiter.Decision{Allowed: true, Limit: 5, Remaining: 0}, l.AllowAt(own, 1, t0.Add(12*time.Second)))
	assert.Equal(t, limiter.Decision{Allowed: true, Limit: 17, Remaining: 16}, l.AllowAt(kv.Client{Name: "alice"}, 1, t0))
	assert.Equal(t, 2, l.SweepAt(t0.Add(time.Hour)), "both buckets refill and are swept")
}

// Peek tells what Allow would, spending nothing and making a client that
// has no bucket none: it counts as full.
func TestPeek(t *testing.T) {
	l := newLimiter(t, defaultCfg)
	c := key("192.0.2.1")
	assert.Equal(t, allowed(17), l.PeekAt(c, 3, t0))
	assert.Equal(t, 0, l.Len(), "peeking makes no bucket")
	for range 5 {
		l.AllowAt(c, 3, t0)
	}
	assert.Equal(t, allowed(2), l.PeekAt(c, 2, t0))
	assert.Equal(t, denied(2, 4*time.Second), l.PeekAt(c, 3, t0))
	assert.Equal(t, denied(2, 4*time.Second), l.PeekAt(c, 3, t0), "peeking spent nothing")
	assert.Equal(t, allowed(0), l.AllowAt(c, 2, t0))
	assert.False(t, l.PeekAt(c, 18, t0.Add(time.Hour)).Allowed, "more than the burst never fits")
	own := kv.Client{Name: "alice", Rate: kv.Rate{Tokens: 5, Window: time.Minute}}
	assert.Equal(t, limiter.Decision{Allowed: true, Limit: 5, Remaining: 5}, l.PeekAt(own, 1, t0), "a rate of its own")
	var off *limiter.Limiter
	assert.True(t, off.Peek(c, 100).Allowed)
}
