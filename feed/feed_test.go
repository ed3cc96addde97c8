package feed

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

var clientA = kv.GroupClient(netip.MustParsePrefix("198.51.100.7/32"))

// pub publishes a set of key=value with the next version after the head.
func pub(f *Feed, op ttlstore.Op, key, value string) uint64 {
	v := f.Head() + 1
	f.Publish(ttlstore.Change{Op: op, Item: ttlstore.Item{Key: key, Value: []byte(value), Version: v}})
	return v
}

func set(f *Feed, key string) uint64 { return pub(f, ttlstore.OpSet, key, "v") }

func subscribe(t *testing.T, f *Feed, o SubOptions) *Sub {
	t.Helper()
	s, err := f.Subscribe(o)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s.(*Sub)
}

func newFeed(t testing.TB, o Options) *Feed {
	f := New(o)
	t.Cleanup(f.Close)
	return f
}

// next calls Next with a deadline so a bug fails the test instead of
// hanging it.
func next(t *testing.T, s *Sub) ([]Event, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Next(ctx)
}

func versions(evs []Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Version
	}
	return out
}

func keys(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Key
	}
	return out
}

// waitDispatched waits until the dispatcher has seen the head.
func waitDispatched(t *testing.T, f *Feed) {
	t.Helper()
	require.Eventually(t, func() bool { return f.dispatched.Load() >= f.Head() }, 5*time.Second, time.Millisecond)
}

func TestRingWraparound(t *testing.T) {
	f := newFeed(t, Options{History: 4})
	assert.Equal(t, uint64(0), f.Head())
	assert.Equal(t, uint64(1), f.Oldest(), "an empty feed covers only its head")
	for i := range 10 {
		set(f, fmt.Sprint("k", i))
	}
	assert.Equal(t, uint64(10), f.Head())
	assert.Equal(t, uint64(7), f.Oldest())
	assert.Equal(t, 4, f.n)

	// Resuming right before the oldest kept event gets all of history.
	s := subscribe(t, f, SubOptions{Since: 6})
	evs, err := next(t, s)
	require.NoError(t, err)
	assert.Equal(t, []uint64{7, 8, 9, 10}, versions(evs))
	assert.Equal(t, []string{"k6", "k7", "k8", "k9"}, keys(evs))
	assert.Equal(t, uint64(10), s.Cursor())

	// Keep wrapping: the ring stays in order across the seam.
	for i := 10; i < 13; i++ {
		set(f, fmt.Sprint("k", i))
	}
	evs, err = next(t, s)
	require.NoError(t, err)
	assert.Equal(t, []uint64{11, 12, 13}, versions(evs))
	assert.Equal(t, uint64(10), f.Oldest())

	// Evicted slots are cleared so their values can be freed.
	live := 0
	for _, e := range f.ring {
		if e.Version != 0 {
			live++
		}
	}
	assert.Equal(t, 4, live)
}

func TestSinceSemantics(t *testing.T) {
	f := newFeed(t, Options{History: 8})
	for range 5 {
		set(f, "k")
	}
	// Since=V delivers versions above V.
	s := subscribe(t, f, SubOptions{Since: 3})
	evs, err := next(t, s)
	require.NoError(t, err)
	assert.Equal(t, []uint64{4, 5}, versions(evs))

	// Since=Head delivers only what comes next.
	s2 := subscribe(t, f, SubOptions{Since: 5})
	// Since=0 means from now.
	s0 := subscribe(t, f, SubOptions{})
	set(f, "k")
	for _, sub := range []*Sub{s2, s0} {
		evs, err := next(t, sub)
		require.NoError(t, err)
		assert.Equal(t, []uint64{6}, versions(evs))
	}
}

func TestResumeTooOld(t *testing.T) {
	f := newFeed(t, Options{History: 4})
	for range 10 {
		set(f, "k")
	}
	stale := []func() uint64{
		func() uint64 { return 1 },
		func() uint64 { return f.Oldest() - 2 },
		func() uint64 { return f.Head() + 1 },
		func() uint64 { return 1 << 63 },
		func() uint64 { return ^uint64(0) },
	}
	for _, point := range stale {
		since := point()
		s := subscribe(t, f, SubOptions{Since: since})
		_, err := next(t, s)
		assert.ErrorIs(t, err, ErrBehind, "since %d", since)
		// Reported until Reset.
		_, err = next(t, s)
		assert.ErrorIs(t, err, ErrBehind)
		assert.Equal(t, f.Head(), s.Reset())
		v := set(f, "k")
		evs, err := next(t, s)
		require.NoError(t, err)
		assert.Equal(t, []uint64{v}, versions(evs))
		s.Close()
	}
	assert.Zero(t, f.Dropped(), "a stale resume point is not a dropped subscriber")
}

func TestByteBound(t *testing.T) {
	f := newFeed(t, Options{History: 100, HistoryBytes: 100})
	val := strings.Repeat("x", 29) // 30 bytes with a 1-byte key
	for range 10 {
		pub(f, ttlstore.OpSet, "k", val)
	}
	assert.Equal(t, 3, f.n, "three 30-byte events fit in 100 bytes")
	assert.Equal(t, 90, f.bytes)
	assert.Equal(t, uint64(8), f.Oldest())

	// A delete carries the removed value and counts the same.
	pub(f, ttlstore.OpDelete, "k", val)
	assert.Equal(t, 90, f.bytes)

	// One event larger than the bound is still kept, alone.
	big := strings.Repeat("y", 500)
	v := pub(f, ttlstore.OpSet, "big", big)
	assert.Equal(t, 1, f.n)
	assert.Equal(t, v, f.Oldest())
	assert.Equal(t, 503, f.bytes)

	// And a small one pushes it out.
	pub(f, ttlstore.OpSet, "k", "v")
	assert.Equal(t, 1, f.n)
	assert.Equal(t, 2, f.bytes)
}

func TestNextBatchingAndOrder(t *testing.T) {
	f := newFeed(t, Options{})
	s := subscribe(t, f, SubOptions{Prefix: "p/"})
	const n = 600
	for i := range n {
		set(f, fmt.Sprint("p/", i))
		set(f, fmt.Sprint("q/", i)) // never delivered, but scanned past
	}
	var got []uint64
	var sizes []int
	for len(got) < n {
		evs, err := next(t, s)
		require.NoError(t, err)
		require.LessOrEqual(t, len(evs), maxBatch)
		sizes = append(sizes, len(evs))
		got = append(got, versions(evs)...)
	}
	assert.Equal(t, []int{maxBatch, maxBatch, n - 2*maxBatch}, sizes)
	for i, v := range got {
		assert.Equal(t, uint64(2*i+1), v)
	}
	assert.Equal(t, f.Head(), s.Cursor(), "the cursor moves past trailing events that do not match")
}

func TestFilters(t *testing.T) {
	f := newFeed(t, Options{})
	all := subscribe(t, f, SubOptions{})
	pre := subscribe(t, f, SubOptions{Prefix: "a/"})
	short := subscribe(t, f, SubOptions{Prefix: "a"})
	exact := subscribe(t, f, SubOptions{Prefix: "a", Exact: true})
	exactSlash := subscribe(t, f, SubOptions{Prefix: "a/b", Exact: true})
	for _, k := range []string{"a", "a0", "a/", "a/b", "a/bc", "b/a/", "ä/x"} {
		set(f, k)
	}
	set(f, "zz-end")
	// poll reads everything already published without waiting.
	collect := func(s *Sub) []string {
		var out []string
		for {
			evs, err := s.poll()
			require.NoError(t, err)
			if len(evs) == 0 {
				return out
			}
			out = append(out, keys(evs)...)
		}
	}
	assert.Equal(t, []string{"a", "a0", "a/", "a/b", "a/bc", "b/a/", "ä/x", "zz-end"}, collect(all))
	assert.Equal(t, []string{"a/", "a/b", "a/bc"}, collect(pre), `"a/" must not match "a0"`)
	assert.Equal(t, []string{"a", "a0", "a/", "a/b", "a/bc"}, collect(short))
	assert.Equal(t, []string{"a"}, collect(exact))
	assert.Equal(t, []string{"a/b"}, collect(exactSlash))
}

func TestWakesOnlyMatchingSubscribers(t *testing.T) {
	f := newFeed(t, Options{})
	x := subscribe(t, f, SubOptions{Prefix: "x/"})
	y := subscribe(t, f, SubOptions{Prefix: "y/k", Exact: true})
	// Publish after both subscribed; wait for the dispatcher.
	set(f, "x/1")
	waitDispatched(t, f)
	assert.Len(t, x.wake, 1, "x/ was woken")
	assert.Len(t, y.wake, 0, "y/k was not woken by x/1")
	set(f, "y/k")
	waitDispatched(t, f)
	assert.Len(t, y.wake, 1)
}

func TestLiveSubscriberFallsBehind(t *testing.T) {
	f := newFeed(t, Options{History: 8})
	s := subscribe(t, f, SubOptions{Prefix: "k"})
	set(f, "k1")
	evs, err := next(t, s)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	// The subscriber stops reading while its events overflow the history.
	for range 20 {
		set(f, "k")
	}
	_, err = next(t, s)
	require.ErrorIs(t, err, ErrBehind)
	assert.Equal(t, uint64(1), f.Dropped())
	_, err = next(t, s)
	require.ErrorIs(t, err, ErrBehind, "sticky until Reset")
	assert.Equal(t, uint64(1), f.Dropped(), "counted once")

	assert.Equal(t, uint64(21), s.Reset())
	v := set(f, "k")
	evs, err = next(t, s)
	require.NoError(t, err)
	assert.Equal(t, []uint64{v}, versions(evs))
}

// A subscriber that waits in Next because nothing matches it must not be
// dropped however much unrelated traffic passes, and must still get its
// next event.
func TestIdleSubscriberSurvivesUnrelatedTraffic(t *testing.T) {
	f := newFeed(t, Options{History: 16})
	waiting := subscribe(t, f, SubOptions{Prefix: "x/"})
	idle := subscribe(t, f, SubOptions{Prefix: "y/", Exact: false}) // not even in Next
	exact := subscribe(t, f, SubOptions{Prefix: "z", Exact: true})

	got := make(chan []Event, 1)
	errc := make(chan error, 1)
	go func() {
		evs, err := waiting.Next(context.Background())
		errc <- err
		got <- evs
	}()
	for i := range 1000 {
		set(f, fmt.Sprint("other/", i))
		if i%8 == 0 {
			// A dispatcher overrun by the history cannot vouch for what
			// it missed (TestDispatcherOverrun); a real one, with a
			// history of thousands, keeps up.
			waitDispatched(t, f)
		}
	}
	vx := set(f, "x/1")
	require.NoError(t, <-errc)
	assert.Equal(t, []uint64{vx}, versions(<-got))

	vy := set(f, "y/1")
	vz := set(f, "z")
	waitDispatched(t, f)
	evs, err := next(t, idle)
	require.NoError(t, err)
	assert.Equal(t, []uint64{vy}, versions(evs))
	evs, err = next(t, exact)
	require.NoError(t, err)
	assert.Equal(t, []uint64{vz}, versions(evs))
	assert.Zero(t, f.Dropped())
}

// A subscriber with an unread match that leaves history is dropped even
// when it was idle before.
func TestIdleSubscriberWithLostMatchIsDropped(t *testing.T) {
	f := newFeed(t, Options{History: 16})
	s := subscribe(t, f, SubOptions{Prefix: "x/"})
	set(f, "x/1") // never read
	for i := range 100 {
		set(f, fmt.Sprint("other/", i))
	}
	waitDispatched(t, f)
	_, err := next(t, s)
	require.ErrorIs(t, err, ErrBehind)
	assert.Equal(t, uint64(1), f.Dropped())
}

// When the dispatcher itself is overrun, a subscriber behind the lost
// stretch cannot be vouched for and is told ErrBehind rather than risk a
// silent gap; one registered after it is unaffected.
func TestDispatcherOverrun(t *testing.T) {
	f := newFeed(t, Options{History: 16})
	s := subscribe(t, f, SubOptions{Prefix: "y/"})
	f.subMu.Lock() // stalls the dispatcher in match
	set(f, "x/1")
	require.Eventually(t, func() bool { return len(f.kick) == 0 }, 5*time.Second, time.Millisecond)
	for i := range 100 {
		set(f, fmt.Sprint("other/", i))
	}
	f.subMu.Unlock()
	waitDispatched(t, f)
	assert.Equal(t, uint64(f.Oldest()-1), f.lostUpTo.Load())
	_, err := next(t, s)
	assert.ErrorIs(t, err, ErrBehind)

	later := subscribe(t, f, SubOptions{Prefix: "y/"})
	v := set(f, "y/1")
	evs, err := next(t, later)
	require.NoError(t, err)
	assert.Equal(t, []uint64{v}, versions(evs))
}

func TestCaps(t *testing.T) {
	f := newFeed(t, Options{MaxPerClient: 2, MaxTotal: 3})
	a1 := subscribe(t, f, SubOptions{Client: clientA})
	subscribe(t, f, SubOptions{Client: clientA})
	_, err := f.Subscribe(SubOptions{Client: clientA})
	assert.ErrorIs(t, err, ErrTooManyForClient)

	b := kv.GroupClient(netip.MustParsePrefix("2001:db8::/64"))
	subscribe(t, f, SubOptions{Client: b})
	c := kv.GroupClient(netip.MustParsePrefix("203.0.113.1/32"))
	_, err = f.Subscribe(SubOptions{Client: c})
	assert.ErrorIs(t, err, ErrTooMany)
	assert.Equal(t, 3, f.Active())

	a1.Close()
	a1.Close() // idempotent: releases one place only
	assert.Equal(t, 2, f.Active())
	subscribe(t, f, SubOptions{Client: c})
	_, err = f.Subscribe(SubOptions{Client: clientA})
	assert.ErrorIs(t, err, ErrTooMany)
	assert.Equal(t, Limits{PerClient: 2, PerNetwork: DefaultMaxPerNetwork, Total: 3}, f.Limits())
}

// One network of many client groups, such as an IPv6 /48 of /64s, fills
// its own cap and not the whole feed: other networks still subscribe.
func TestNetworkCap(t *testing.T) {
	f := newFeed(t, Options{MaxPerClient: 2, MaxPerNetwork: 5, MaxTotal: 100})
	net48 := netip.MustParsePrefix("2001:db8:1::/48")
	var subs []*Sub
	for i := range 3 {
		client := kv.GroupClient(netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, byte(i)}), 64))
		for range 2 {
			s, err := f.Subscribe(SubOptions{Client: client, Network: net48})
			if len(subs) == 5 {
				assert.ErrorIs(t, err, ErrTooManyForNetwork, "the sixth from the /48")
				continue
			}
			require.NoError(t, err)
			subs = append(subs, s.(*Sub))
		}
	}
	assert.Equal(t, 5, f.Active())

	other := netip.MustParsePrefix("2001:db8:2::/48")
	subscribe(t, f, SubOptions{Client: kv.GroupClient(netip.MustParsePrefix("2001:db8:2::/64")), Network: other})
	subscribe(t, f, SubOptions{Client: clientA}) // no network: only the client and total caps apply

	subs[0].Close()
	subs[0].Close() // idempotent: releases one place only
	subscribe(t, f, SubOptions{Client: kv.GroupClient(netip.MustParsePrefix("2001:db8:1:9::/64")), Network: net48})
	_, err := f.Subscribe(SubOptions{Client: kv.GroupClient(netip.MustParsePrefix("2001:db8:1:a::/64")), Network: net48})
	assert.ErrorIs(t, err, ErrTooManyForNetwork)
}

func TestDefaults(t *testing.T) {
	f := newFeed(t, Options{})
	assert.Equal(t, Limits{PerClient: DefaultMaxPerClient, PerNetwork: DefaultMaxPerNetwork, Total: DefaultMaxTotal}, f.Limits())
	assert.Len(t, f.ring, DefaultHistory)
	assert.Equal(t, DefaultHistoryBytes, f.maxBytes)
}

func TestCloseEndsNext(t *testing.T) {
	f := New(Options{})
	s, err := f.Subscribe(SubOptions{})
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Next(context.Background())
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	f.Close()
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return after Close")
	}
	_, err = f.Subscribe(SubOptions{})
	assert.ErrorIs(t, err, ErrClosed)
	head := f.Head()
	set(f, "k")
	assert.Equal(t, head, f.Head(), "Publish after Close is ignored")
	f.Close() // idempotent
	s.Close()
	assert.Zero(t, f.Active())
}

func TestSubCloseEndsNextAndContext(t *testing.T) {
	f := newFeed(t, Options{})
	s, err := f.Subscribe(SubOptions{})
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Next(context.Background())
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	s.Close()
	assert.ErrorIs(t, <-errc, ErrClosed)
	assert.Zero(t, f.Active())
	assert.Empty(t, f.lens, "prefix lengths are forgotten with their last subscriber")
	assert.Empty(t, f.prefix)

	s2 := subscribe(t, f, SubOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = s2.Next(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestPublishDoesNotAllocate(t *testing.T) {
	f := newFeed(t, Options{History: 64})
	key, val := "key", []byte("value")
	v := uint64(0)
	publish := func() {
		v++
		f.Publish(ttlstore.Change{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: key, Value: val, Version: v}})
	}
	assert.Zero(t, testing.AllocsPerRun(1000, publish), "nobody subscribed")

	// Nor with a subscriber that is not waiting, nor with one waiting on
	// another prefix.
	subscribe(t, f, SubOptions{Prefix: "other/"})
	assert.Zero(t, testing.AllocsPerRun(1000, publish), "idle subscriber")
	w := subscribe(t, f, SubOptions{Prefix: "waiting/"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Next(ctx)
	}()
	assert.Zero(t, testing.AllocsPerRun(1000, publish), "waiting subscriber")
	cancel()
	<-done
}

// The feed hooked to a real store under concurrent writers: every
// subscriber gets exactly its events, in version order, with nothing
// missing.
func TestConcurrentWritersWithStore(t *testing.T) {
	f := newFeed(t, Options{History: 100000})
	store := ttlstore.New(ttlstore.Options{OnChange: func(c ttlstore.Change) error {
		f.Publish(c)
		return nil
	}})
	all := subscribe(t, f, SubOptions{})
	p1 := subscribe(t, f, SubOptions{Prefix: "p1/"})
	ex := subscribe(t, f, SubOptions{Prefix: "p2/k7", Exact: true})

	const writers, perWriter = 4, 300
	total := writers * perWriter * 2 // a set and a delete each
	type result struct {
		evs []Event
		err error
	}
	read := func(s *Sub, want int) <-chan result {
		ch := make(chan result, 1)
		go func() {
			var r result
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for len(r.evs) < want {
				evs, err := s.Next(ctx)
				if err != nil {
					r.err = err
					break
				}
				r.evs = append(r.evs, evs...)
			}
			ch <- r
		}()
		return ch
	}
	allc := read(all, total)
	p1c := read(p1, total/writers)    // writer 1 writes p1/
	exc := read(ex, 2*(perWriter/10)) // p2/k7 is every tenth key of writer 2
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				key := fmt.Sprintf("p%d/k%d", w, i%10)
				if _, err := store.Set(key, ttlstore.Write{Value: []byte("v")}); err != nil {
					t.Error(err)
				}
				if _, err := store.Delete(key, ""); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()

	r := <-allc
	require.NoError(t, r.err)
	require.Len(t, r.evs, total)
	for i, e := range r.evs {
		require.Equal(t, uint64(i+1), e.Version, "all versions, in order, no gaps")
	}
	for _, c := range []struct {
		ch   <-chan result
		want func(string) bool
	}{
		{p1c, func(k string) bool { return strings.HasPrefix(k, "p1/") }},
		{exc, func(k string) bool { return k == "p2/k7" }},
	} {
		var want []uint64
		for _, e := range r.evs {
			if c.want(e.Key) {
				want = append(want, e.Version)
			}
		}
		got := <-c.ch
		require.NoError(t, got.err)
		assert.Equal(t, want, versions(got.evs))
	}
}

// BenchmarkPublish measures the writer's cost, which must not depend on
// how many subscribers wait: idle ones are blocked in Next on prefixes the
// published keys do not match.
func BenchmarkPublish(b *testing.B) {
	for _, subs := range []int{0, 1000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			f := New(Options{MaxPerClient: subs + 1, MaxTotal: subs + 1})
			defer f.Close()
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for i := range subs {
				s, err := f.Subscribe(SubOptions{Prefix: fmt.Sprintf("idle/%d/", i), Client: clientA})
				require.NoError(b, err)
				wg.Go(func() {
					defer s.Close()
					s.Next(ctx)
				})
			}
			key, val := "bench/key", []byte("a value of some length")
			v := f.Head()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				v++
				f.Publish(ttlstore.Change{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: key, Value: val, Version: v}})
			}
			b.StopTimer()
			cancel()
			wg.Wait()
		})
	}
}
