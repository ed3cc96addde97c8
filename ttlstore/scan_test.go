package ttlstore_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

func snapshot(t testing.TB, s *ttlstore.Store) map[string]ttlstore.Item {
	t.Helper()
	out := map[string]ttlstore.Item{}
	require.NoError(t, s.Snapshot(func(it ttlstore.Item) error {
		if _, dup := out[it.Key]; dup {
			return fmt.Errorf("key %q reported twice", it.Key)
		}
		out[it.Key] = it
		return nil
	}))
	return out
}

func TestSnapshot(t *testing.T) {
	for _, shards := range []int{1, 64} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			s, clk := newStore(ttlstore.Options{Shards: shards})
			want := map[string]ttlstore.Item{}
			for i := range 500 {
				key := fmt.Sprintf("live/%d", i)
				w := ttlstore.Write{Value: []byte(key)}
				if i%3 == 0 {
					w.Expires = clk.at(time.Hour)
				}
				if i%5 == 0 {
					w.Owner = ttlstore.HashSecret("o")
				}
				want[key] = mustSet(t, s, key, w)
			}
			for i := range 200 {
				mustSet(t, s, fmt.Sprintf("dead/%d", i), expiring("x", clk.at(time.Second)))
			}
			clk.Advance(time.Second)
			require.Equal(t, 700, s.Len(), "expired entries are not reaped yet")

			require.Equal(t, want, snapshot(t, s), "every live item once, expired skipped")
		})
	}
}

func TestSnapshotEmptyAndError(t *testing.T) {
	s, _ := newStore(ttlstore.Options{})
	require.Empty(t, snapshot(t, s))

	for i := range 100 {
		mustSet(t, s, fmt.Sprint(i), val("v"))
	}
	stop := errors.New("stop")
	calls := 0
	err := s.Snapshot(func(ttlstore.Item) error {
		calls++
		if calls == 10 {
			return stop
		}
		return nil
	})
	require.ErrorIs(t, err, stop)
	require.Equal(t, 10, calls, "stops at the first error")
}

func TestSnapshotCanWriteFromCallback(t *testing.T) {
	// fn runs with no lock held, so it may call back into the store.
	s, _ := newStore(ttlstore.Options{Shards: 4})
	for i := range 100 {
		mustSet(t, s, fmt.Sprintf("k%d", i), val("v"))
	}
	n := 0
	require.NoError(t, s.Snapshot(func(it ttlstore.Item) error {
		n++
		_, err := s.Set(it.Key, val("seen"))
		return err
	}))
	require.Equal(t, 100, n)
	for i := range 100 {
		requireValue(t, s, fmt.Sprintf("k%d", i), "seen")
	}
}

func TestSnapshotWhileWriting(t *testing.T) {
	s, _ := newStore(ttlstore.Options{})
	const stable, hot = 3000, 500
	want := map[string]ttlstore.Item{}
	for i := range stable {
		key := fmt.Sprintf("stable/%d", i)
		want[key] = mustSet(t, s, key, val(key))
	}
	for i := range hot {
		mustSet(t, s, fmt.Sprintf("hot/%d", i), val("0"))
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				if _, err := s.Set(fmt.Sprintf("hot/%d", (w*7919+i)%hot), val(fmt.Sprint(i))); err != nil {
					panic(err)
				}
				if _, err := s.Set(fmt.Sprintf("new/%d/%d", w, i), val("n")); err != nil {
					panic(err)
				}
				if i%10 == 0 {
					_, _ = s.Delete(fmt.Sprintf("new/%d/%d", w, i/2), "")
				}
			}
		})
	}
	for range 5 {
		got := snapshot(t, s) // fails on duplicates
		for key, it := range want {
			require.Equal(t, it, got[key], "untouched key %q", key)
		}
		for i := range hot {
			_, ok := got[fmt.Sprintf("hot/%d", i)]
			require.True(t, ok, "hot key overwritten in place is never missing")
		}
	}
	stop.Store(true)
	wg.Wait()
}

func TestRestore(t *testing.T) {
	s, clk := newStore(ttlstore.Options{})
	items := []ttlstore.Item{
		{Key: "a", Value: []byte("va"), Version: 7},
		{Key: "b", Value: []byte("vb"), Version: 42, Owner: ttlstore.HashSecret("bob"), Expires: clk.at(time.Hour)},
		{Key: "c", Value: []byte("vc"), Version: 3},
	}
	for _, it := range items {
		s.Restore(it)
	}
	for _, it := range items {
		got, ok := s.Get(it.Key)
		require.True(t, ok)
		require.Equal(t, it, got)
	}
	require.Equal(t, 3, s.Len())
	require.Equal(t, uint64(42), s.Version(), "version counter moves past the max restored version")

	next := mustSet(t, s, "d", val("vd"))
	require.Greater(t, next.Version, uint64(42))

	// Restored owners are enforced.
	_, err := s.Set("b", val("x"))
	require.ErrorIs(t, err, ttlstore.ErrForbidden)

	// Restored expiry works, and the counter keeps going past it.
	clk.Advance(time.Hour)
	requireMissing(t, s, "b")
	require.Equal(t, 1, s.Reap(clk.Now(), 10))
	require.Greater(t, s.Version(), next.Version)
}

func TestRestoreVersionOrder(t *testing.T) {
	s, clk := newStore(ttlstore.Options{})
	s.Restore(ttlstore.Item{Key: "k", Value: []byte("v10"), Version: 10})

	s.Restore(ttlstore.Item{Key: "k", Value: []byte("v5"), Version: 5})
	require.Equal(t, uint64(10), requireValue(t, s, "k", "v10").Version, "lower version does not overwrite")
	s.Restore(ttlstore.Item{Key: "k", Value: []byte("v10b"), Version: 10})
	requireValue(t, s, "k", "v10")
	require.Equal(t, uint64(10), s.Version())

	s.Restore(ttlstore.Item{Key: "k", Value: []byte("v20"), Version: 20, Expires: clk.at(time.Minute)})
	it := requireValue(t, s, "k", "v20")
	require.Equal(t, uint64(20), it.Version)
	require.Equal(t, clk.at(time.Minute), it.Expires)
	require.Equal(t, 1, s.Len())
	require.Equal(t, uint64(20), s.Version())

	// A live write after restore beats older journal records.
	cur := mustSet(t, s, "k", val("live"))
	s.Restore(ttlstore.Item{Key: "k", Value: []byte("stale"), Version: 15})
	require.Equal(t, cur, requireValue(t, s, "k", "live"))

	// The new expiry replaced the old one: nothing left to reap.
	clk.Advance(time.Hour)
	requireValue(t, s, "k", "live")
	require.Zero(t, s.Reap(clk.Now(), 10))
}

func TestRestoreAnyOrderConverges(t *testing.T) {
	var records []ttlstore.Item
	for k := range 20 {
		for v := 1; v <= 5; v++ {
			records = append(records, ttlstore.Item{
				Key:     fmt.Sprintf("k%02d", k),
				Value:   []byte(fmt.Sprint(v)),
				Version: uint64(k*10 + v),
			})
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		rng.Shuffle(len(records), func(i, j int) { records[i], records[j] = records[j], records[i] })
		s, _ := newStore(ttlstore.Options{})
		for _, r := range records {
			s.Restore(r)
		}
		for k := range 20 {
			it := requireValue(t, s, fmt.Sprintf("k%02d", k), "5")
			require.Equal(t, uint64(k*10+5), it.Version)
		}
		require.Equal(t, uint64(19*10+5), s.Version())
		require.Equal(t, 20, s.Len())
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	src, clk := newStore(ttlstore.Options{})
	for i := range 300 {
		w := ttlstore.Write{Value: []byte(fmt.Sprint(i))}
		if i%2 == 0 {
			w.Expires = clk.at(time.Hour)
		}
		if i%7 == 0 {
			w.Owner = ttlstore.HashSecret(fmt.Sprint(i))
		}
		mustSet(t, src, fmt.Sprintf("k%03d", i), w)
	}
	dst, _ := newStore(ttlstore.Options{Shards: 8})
	require.NoError(t, src.Snapshot(func(it ttlstore.Item) error { dst.Restore(it); return nil }))
	require.Equal(t, snapshot(t, src), snapshot(t, dst))
	require.Equal(t, src.Version(), dst.Version())
	require.Equal(t, src.Range("", "", 1000), dst.Range("", "", 1000))
}

// --- Range -----------------------------------------------------------------

func TestRangeOrderAcrossShards(t *testing.T) {
	for _, shards := range []int{1, 3, 64} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			s, _ := newStore(ttlstore.Options{Shards: shards})
			rng := rand.New(rand.NewPCG(3, 4))
			var keys []string
			seen := map[string]bool{}
			for len(keys) < 2000 {
				b := make([]byte, 1+rng.IntN(6))
				for i := range b {
					b[i] = byte(rng.IntN(256)) // arbitrary bytes, not just ASCII
				}
				key := string(b)
				if seen[key] {
					continue
				}
				seen[key] = true
				keys = append(keys, key)
				mustSet(t, s, key, val(key))
			}
			sort.Strings(keys)
			got := s.Range("", "", 1_000_000)
			require.Equal(t, keys, keysOf(got))
			for _, it := range got {
				require.Equal(t, it.Key, string(it.Value))
			}
		})
	}
}

func TestRangeBounds(t *testing.T) {
	s, _ := newStore(ttlstore.Options{})
	for _, k := range []string{"a", "a/1", "a/2", "a0", "b", "b/x", "c", "\xff"} {
		mustSet(t, s, k, val(k))
	}
	tests := []struct {
		name       string
		start, end string
		limit      int
		want       []string
	}{
		{"everything", "", "", 100, []string{"a", "a/1", "a/2", "a0", "b", "b/x", "c", "\xff"}},
		{"prefix a/", "a/", "a0", 100, []string{"a/1", "a/2"}},
		{"start inclusive", "a/2", "", 3, []string{"a/2", "a0", "b"}},
		{"end exclusive", "a", "b", 100, []string{"a", "a/1", "a/2", "a0"}},
		{"start between keys", "a/10", "b/", 100, []string{"a/2", "a0", "b"}},
		{"empty end unbounded", "b", "", 100, []string{"b", "b/x", "c", "\xff"}},
		{"limit", "", "", 3, []string{"a", "a/1", "a/2"}},
		{"limit 1", "a0", "", 1, []string{"a0"}},
		{"limit zero", "", "", 0, nil},
		{"limit negative", "", "", -1, nil},
		{"empty interval", "b", "b", 100, nil},
		{"inverted interval", "c", "a", 100, nil},
		{"past the end", "\xff\x00", "", 100, nil},
		{"before the start", "", "a", 100, nil},
		{"single key", "b", "b\x00", 100, []string{"b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := s.Range(tc.start, tc.end, tc.limit)
			if tc.want == nil {
				require.Empty(t, got)
				return
			}
			require.Equal(t, tc.want, keysOf(got))
			for _, it := range got {
				require.Equal(t, it, requireValue(t, s, it.Key, it.Key), "Range items match Get")
			}
		})
	}
}

func TestRangeSkipsExpired(t *testing.T) {
	// Shards: 1 puts long runs of expired keys in one shard, longer than a
	// batch, between live ones.
	for _, shards := range []int{1, 64} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			s, clk := newStore(ttlstore.Options{Shards: shards})
			var want []string
			for i := range 1000 {
				key := fmt.Sprintf("k%04d", i)
				if (i/50)%2 == 1 || i%3 == 0 { // runs of 50 dead, plus scattered ones
					mustSet(t, s, key, expiring("dead", clk.at(time.Second)))
					continue
				}
				mustSet(t, s, key, expiring("live", clk.at(time.Hour)))
				want = append(want, key)
			}
			require.Len(t, s.Range("", "", 10_000), 1000, "all live before the clock moves")
			clk.Advance(time.Second)

			require.Equal(t, want, keysOf(s.Range("", "", 10_000)))
			require.Equal(t, want[:10], keysOf(s.Range("", "", 10)), "limit counts live items only")
			require.Equal(t, want, keysOf(pageAll(s, "k", "l", 7)))
			// A window containing only expired keys.
			require.Empty(t, s.Range("k0050", "k0100", 100))
		})
	}
}

func TestRangeNeverExpiring(t *testing.T) {
	s, clk := newStore(ttlstore.Options{})
	mustSet(t, s, "a", val("v"))
	mustSet(t, s, "b", expiring("v", clk.at(time.Second)))
	clk.Advance(24 * time.Hour)
	require.Equal(t, []string{"a"}, keysOf(s.Range("", "", 10)))
}

// pageAll walks [start, end) page by page, restarting at lastKey+"\x00".
func pageAll(s *ttlstore.Store, start, end string, page int) []ttlstore.Item {
	var out []ttlstore.Item
	for {
		got := s.Range(start, end, page)
		out = append(out, got...)
		if len(got) < page {
			return out
		}
		start = got[len(got)-1].Key + "\x00"
	}
}

func TestRangePagination(t *testing.T) {
	s, _ := newStore(ttlstore.Options{Shards: 8})
	var keys []string
	for i := range 1000 {
		k := fmt.Sprintf("p/%d", i) // not zero padded: byte order differs from numeric order
		keys = append(keys, k)
		mustSet(t, s, k, val("v"))
		// keys that extend another key by a suffix: k+"\x00" must not skip them
		if i%100 == 0 {
			keys = append(keys, k+"\x00", k+"\x00\x00", k+"\x01")
			mustSet(t, s, k+"\x00", val("v"))
			mustSet(t, s, k+"\x00\x00", val("v"))
			mustSet(t, s, k+"\x01", val("v"))
		}
	}
	sort.Strings(keys)
	for _, page := range []int{1, 2, 7, 16, 17, 100, 1003, 5000} {
		got := keysOf(pageAll(s, "", "", page))
		require.Equal(t, keys, got, "page size %d walks every key exactly once", page)
	}
}

func TestRangeWhileWriting(t *testing.T) {
	s, _ := newStore(ttlstore.Options{Shards: 8})
	const stable = 2000
	var want []string
	for i := range stable {
		k := fmt.Sprintf("s/%05d", i)
		want = append(want, k)
		mustSet(t, s, k, val("v"))
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				// interleaved with the stable keys in byte order
				k := fmt.Sprintf("s/%05d/%d", (i*31+w)%stable, w)
				if i%2 == 0 {
					_, _ = s.Set(k, val("x"))
				} else {
					_, _ = s.Delete(k, "")
				}
			}
		})
	}
	for range 3 {
		got := keysOf(pageAll(s, "s/", "s0", 50))
		require.True(t, slices.IsSorted(got))
		require.Equal(t, len(got), len(slices.Compact(slices.Clone(got))), "no duplicates")
		var stableGot []string
		for _, k := range got {
			if len(k) == len("s/00000") {
				stableGot = append(stableGot, k)
			}
		}
		require.Equal(t, want, stableGot, "untouched keys are all returned")
	}
	stop.Store(true)
	wg.Wait()
}

func TestRangeLargePrefixPaging(t *testing.T) {
	const total = 100_000
	s, _ := newStore(ttlstore.Options{})
	prefixes := []string{"user/", "user0", "users/", "order/", "item/", "u/", "user"}
	var want []string
	for i := range total {
		p := prefixes[i%len(prefixes)]
		k := fmt.Sprintf("%s%x", p, i*2654435761%1_000_003)
		mustSet(t, s, k, val("v"))
		if p == "user/" {
			want = append(want, k)
		}
	}
	require.Equal(t, total, s.Len())
	sort.Strings(want)

	var got []string
	pages := 0
	start := "user/"
	for {
		page := s.Range(start, "user0", 100)
		pages++
		for _, it := range page {
			require.True(t, len(it.Key) > 5 && it.Key[:5] == "user/", "key %q outside the prefix", it.Key)
			got = append(got, it.Key)
		}
		if len(page) < 100 {
			break
		}
		start = page[len(page)-1].Key + "\x00"
	}
	require.Equal(t, want, got)
	require.Equal(t, len(want)/100+1, pages)
}

func TestRangeLimitsAndShards(t *testing.T) {
	// Every combination of shard count and limit, with expired keys mixed
	// in, against a sorted reference.
	for _, shards := range []int{1, 2, 16, 64} {
		s, clk := newStore(ttlstore.Options{Shards: shards})
		rng := rand.New(rand.NewPCG(uint64(shards), 5))
		var live []string
		for i := range 3000 {
			k := fmt.Sprintf("%c/%05d", 'a'+rng.IntN(4), i)
			if rng.IntN(3) == 0 {
				mustSet(t, s, k, expiring("dead", clk.at(time.Second)))
				continue
			}
			mustSet(t, s, k, val("v"))
			live = append(live, k)
		}
		clk.Advance(time.Second)
		sort.Strings(live)
		for _, limit := range []int{1, 2, 3, 5, 16, 17, 33, 100, 129, 1000, 5000} {
			for _, bounds := range [][2]string{{"", ""}, {"b/", "c/"}, {"a/01000", "d/"}, {"c/", ""}} {
				var want []string
				for _, k := range live {
					if k >= bounds[0] && (bounds[1] == "" || k < bounds[1]) {
						want = append(want, k)
					}
				}
				want = want[:min(limit, len(want))]
				got := keysOf(s.Range(bounds[0], bounds[1], limit))
				require.Equal(t, want, got, "shards=%d limit=%d bounds=%q", shards, limit, bounds)
			}
		}
	}
}

func TestAdvanceVersion(t *testing.T) {
	s, _ := newStore(ttlstore.Options{})
	s.AdvanceVersion(100)
	require.Equal(t, uint64(100), s.Version())
	s.AdvanceVersion(50)
	require.Equal(t, uint64(100), s.Version(), "never moves down")
	it := mustSet(t, s, "k", val("v"))
	require.Equal(t, uint64(101), it.Version)
}
