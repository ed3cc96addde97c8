package ttlstore_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

func TestGet(t *testing.T) {
	tests := []struct {
		name  string
		setup func(s *ttlstore.Store, clk *fakeClock)
		want  string
		found bool
	}{
		{
			name:  "missing",
			setup: func(*ttlstore.Store, *fakeClock) {},
		},
		{
			name: "live",
			setup: func(s *ttlstore.Store, clk *fakeClock) {
				_, _ = s.Set("k", expiring("v", clk.at(time.Minute)))
			},
			want:  "v",
			found: true,
		},
		{
			name: "never expires",
			setup: func(s *ttlstore.Store, clk *fakeClock) {
				_, _ = s.Set("k", val("v"))
				clk.Advance(1000 * time.Hour)
			},
			want:  "v",
			found: true,
		},
		{
			name: "expired",
			setup: func(s *ttlstore.Store, clk *fakeClock) {
				_, _ = s.Set("k", expiring("v", clk.at(time.Minute)))
				clk.Advance(time.Minute + time.Nanosecond)
			},
		},
		{
			name: "deleted",
			setup: func(s *ttlstore.Store, clk *fakeClock) {
				_, _ = s.Set("k", val("v"))
				_, _ = s.Delete("k", "")
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, clk := newStore(ttlstore.Options{})
			tc.setup(s, clk)
			if tc.found {
				requireValue(t, s, "k", tc.want)
			} else {
				requireMissing(t, s, "k")
			}
		})
	}
}

func TestSet(t *testing.T) {
	s, clk := newStore(ttlstore.Options{})
	exp := clk.at(time.Hour)

	created, err := s.Set("k", expiring("v1", exp))
	require.NoError(t, err)
	require.Equal(t, "k", created.Key)
	require.Equal(t, "v1", string(created.Value))
	require.Equal(t, exp, created.Expires)
	require.Equal(t, time.Unix(0, exp), created.ExpiresAt())
	require.False(t, created.Owned())
	require.NotZero(t, created.Version)
	require.Equal(t, created.Version, s.Version())
	require.Equal(t, 1, s.Len())

	got := requireValue(t, s, "k", "v1")
	require.Equal(t, created, got)

	over, err := s.Set("k", val("v2"))
	require.NoError(t, err)
	require.Equal(t, "v2", string(over.Value))
	require.Greater(t, over.Version, created.Version)
	require.Equal(t, int64(0), over.Expires, "overwrite replaces the expiry")
	require.True(t, over.ExpiresAt().IsZero())
	require.Equal(t, over.Version, s.Version())
	require.Equal(t, 1, s.Len(), "overwrite does not add an entry")
	require.Equal(t, over, requireValue(t, s, "k", "v2"))
}

func TestLoadOrStore(t *testing.T) {
	s, _ := newStore(ttlstore.Options{})

	stored, err := s.LoadOrStore("k", val("first"))
	require.NoError(t, err)
	require.Equal(t, "first", string(stored.Value))
	require.Equal(t, stored.Version, s.Version())

	cur, err := s.LoadOrStore("k", val("second"))
	require.ErrorIs(t, err, ttlstore.ErrExists)
	require.Equal(t, stored, cur, "returns the current item")
	require.Equal(t, stored.Version, s.Version(), "nothing written, no version used")
	require.Equal(t, stored, requireValue(t, s, "k", "first"))
	require.Equal(t, 1, s.Len())
}

func TestLoadOrStoreAfterExpiry(t *testing.T) {
	s, clk := newStore(ttlstore.Options{})
	_, err := s.LoadOrStore("k", expiring("old", clk.at(time.Second)))
	require.NoError(t, err)
	clk.Advance(time.Second)
	it, err := s.LoadOrStore("k", val("new"))
	require.NoError(t, err, "an expired key counts as absent")
	require.Equal(t, "new", string(it.Value))
	requireValue(t, s, "k", "new")
	require.Equal(t, 1, s.Len())
}

func TestCompareAndSwap(t *testing.T) {
	tests := []struct {
		name     string
		present  bool
		expected string
		wantErr  error
		wantVal  string // value afterwards
	}{
		{name: "missing", expected: "x", wantErr: ttlstore.ErrNotFound},
		{name: "equal", present: true, expected: "old", wantVal: "new"},
		{name: "different", present: true, expected: "other", wantErr: ttlstore.ErrMismatch, wantVal: "old"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newStore(ttlstore.Options{})
			var before ttlstore.Item
			if tc.present {
				before = mustSet(t, s, "k", val("old"))
			}
			vBefore := s.Version()
			it, err := s.CompareAndSwap("k", []byte(tc.expected), val("new"))
			switch {
			case tc.wantErr == nil:
				require.NoError(t, err)
				require.Equal(t, "new", string(it.Value))
				require.Greater(t, it.Version, before.Version)
				require.Equal(t, it.Version, s.Version())
				require.Equal(t, it, requireValue(t, s, "k", "new"))
			case errors.Is(tc.wantErr, ttlstore.ErrMismatch):
				require.ErrorIs(t, err, ttlstore.ErrMismatch)
				require.Equal(t, before, it, "mismatch returns the current item")
				require.Equal(t, vBefore, s.Version())
				requireValue(t, s, "k", tc.wantVal)
			default:
				require.ErrorIs(t, err, tc.wantErr)
				require.Equal(t, vBefore, s.Version())
				requireMissing(t, s, "k")
				require.Equal(t, 0, s.Len())
			}
		})
	}
}

func TestCompareAndSwapExpiredIsNotFound(t *testing.T) {
	s, clk := newStore(ttlstore.Options{})
	mustSet(t, s, "k", expiring("old", clk.at(time.Second)))
	clk.Advance(time.Second)
	_, err := s.CompareAndSwap("k", []byte("old"), val("new"))
	require.ErrorIs(t, err, ttlstore.ErrNotFound)
	requireMissing(t, s, "k")
}

func TestCompareAndSwapOrCreate(t *testing.T) {
	tests := []struct {
		name     string
		present  bool
		expected string
		wantErr  error
		wantVal  string
	}{
		{name: "absent creates", expected: "whatever", wantVal: "new"},
		{name: "equal swaps", present: true, expected: "old", wantVal: "new"},
		{name: "different mismatches", present: true, expected: "other", wantErr: ttlstore.ErrMismatch, wantVal: "old"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newStore(ttlstore.Options{})
			var before ttlstore.Item
			if tc.present {
				before = mustSet(t, s, "k", val("old"))
			}
			vBefore := s.Version()
			it, err := s.CompareAndSwapOrCreate("k", []byte(tc.expected), val("new"))
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.Equal(t, before, it, "mismatch returns the current item")
				require.Equal(t, vBefore, s.Version())
			} else {
				require.NoError(t, err)
				require.Greater(t, it.Version, vBefore)
				require.Equal(t, it.Version, s.Version())
				require.Equal(t, it, requireValue(t, s, "k", tc.wantVal))
			}
			requireValue(t, s, "k", tc.wantVal)
			require.Equal(t, 1, s.Len())
		})
	}
}

func TestDelete(t *testing.T) {
	tests := []struct {
		name    string
		write   *ttlstore.Write
		owner   ttlstore.Owner
		wantErr error
	}{
		{name: "missing", wantErr: ttlstore.ErrNotFound},
		{name: "unowned", write: ptr(val("v"))},
		{name: "unowned with a secret", write: ptr(val("v")), owner: ttlstore.HashSecret("any")},
		{name: "owned right secret", write: ptr(owned("v", "s3cret")), owner: ttlstore.HashSecret("s3cret")},
		{name: "owned wrong secret", write: ptr(owned("v", "s3cret")), owner: ttlstore.HashSecret("nope"), wantErr: ttlstore.ErrForbidden},
		{name: "owned no secret", write: ptr(owned("v", "s3cret")), wantErr: ttlstore.ErrForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newStore(ttlstore.Options{})
			var before ttlstore.Item
			if tc.write != nil {
				before = mustSet(t, s, "k", *tc.write)
			}
			vBefore := s.Version()
			gone, err := s.Delete("k", tc.owner)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.Equal(t, ttlstore.Item{}, gone)
				require.Equal(t, vBefore, s.Version())
				if tc.write != nil {
					require.Equal(t, before, requireValue(t, s, "k", "v"))
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, "k", gone.Key)
			require.Equal(t, "v", string(gone.Value))
			require.Equal(t, before.Owner, gone.Owner)
			require.Greater(t, gone.Version, before.Version, "the removal gets its own version")
			require.Equal(t, gone.Version, s.Version())
			requireMissing(t, s, "k")
			require.Equal(t, 0, s.Len())

			_, err = s.Delete("k", tc.owner)
			require.ErrorIs(t, err, ttlstore.ErrNotFound, "second delete")
		})
	}
}

func TestDeleteExpiredIsNotFound(t *testing.T) {
	s, clk := newStore(ttlstore.Options{})
	mustSet(t, s, "k", ttlstore.Write{Value: []byte("v"), Expires: clk.at(time.Second), Owner: ttlstore.HashSecret("a")})
	clk.Advance(time.Second)
	_, err := s.Delete("k", ttlstore.HashSecret("b"))
	require.ErrorIs(t, err, ttlstore.ErrNotFound)
	require.Equal(t, 0, s.Len(), "the expired entry was dropped")
}

func ptr[T any](v T) *T { return &v }

func TestVersionsStrictlyIncrease(t *testing.T) {
	rec := &recorder{}
	s, clk := newStore(ttlstore.Options{OnChange: rec.onChange})
	require.Zero(t, s.Version())

	var seen []uint64
	note := func(it ttlstore.Item, err error) {
		t.Helper()
		require.NoError(t, err)
		seen = append(seen, it.Version)
		require.Equal(t, it.Version, s.Version(), "Version() reports the highest")
	}
	note(s.Set("a", val("1")))
	note(s.Set("b", expiring("1", clk.at(time.Second))))
	note(s.Set("a", val("2")))
	note(s.LoadOrStore("c", val("1")))
	note(s.CompareAndSwap("a", []byte("2"), val("3")))
	note(s.CompareAndSwapOrCreate("d", nil, val("1")))
	note(s.CompareAndSwapOrCreate("d", []byte("1"), val("2")))
	note(s.Delete("c", ""))
	note(s.Set("e", expiring("1", clk.at(2*time.Second))))

	// Failed operations consume no visible version.
	v := s.Version()
	_, err := s.LoadOrStore("a", val("x"))
	require.ErrorIs(t, err, ttlstore.ErrExists)
	_, err = s.CompareAndSwap("a", []byte("nope"), val("x"))
	require.ErrorIs(t, err, ttlstore.ErrMismatch)
	_, err = s.Delete("zz", "")
	require.ErrorIs(t, err, ttlstore.ErrNotFound)
	require.Equal(t, v, s.Version())

	// Expiry removals, by Reap and by a write over an expired key, take
	// versions too.
	clk.Advance(time.Second)
	note(s.Set("b", val("again"))) // removes the expired "b" first
	require.Greater(t, s.Version(), v+1, "expire and set both took a version")
	clk.Advance(time.Second)
	v = s.Version()
	require.Equal(t, 1, s.Reap(clk.Now(), 10)) // "e"
	require.Equal(t, v+1, s.Version())

	changes := rec.take()
	require.Len(t, changes, len(seen)+2, "one change per mutation, including two expirations")
	var last uint64
	expires := 0
	for _, c := range changes {
		require.Greater(t, c.Item.Version, last, "change versions strictly increase: %+v", c)
		last = c.Item.Version
		if c.Op == ttlstore.OpExpire {
			expires++
		}
	}
	require.Equal(t, 2, expires)
	require.Equal(t, last, s.Version())
	require.Equal(t, ttlstore.OpExpire, changes[len(changes)-1].Op)
	require.Equal(t, "e", changes[len(changes)-1].Item.Key)
	for i := 1; i < len(seen); i++ {
		require.Greater(t, seen[i], seen[i-1])
	}
}

func TestVersionsConcurrentAreUnique(t *testing.T) {
	s, _ := newStore(ttlstore.Options{})
	const workers, per = 8, 500
	versions := make([][]uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				it, err := s.Set(fmt.Sprintf("k%d", i%50), val("v"))
				if err != nil {
					panic(err)
				}
				versions[w] = append(versions[w], it.Version)
			}
		})
	}
	wg.Wait()
	all := map[uint64]bool{}
	for _, vs := range versions {
		for i, v := range vs {
			require.False(t, all[v], "version %d handed out twice", v)
			all[v] = true
			if i > 0 {
				require.Greater(t, v, vs[i-1], "versions seen by one goroutine increase")
			}
		}
	}
	require.Equal(t, uint64(workers*per), s.Version())
}

func TestHashSecret(t *testing.T) {
	require.Equal(t, ttlstore.Owner(""), ttlstore.HashSecret(""))
	h := ttlstore.HashSecret("s3cret")
	require.Len(t, string(h), 32)
	require.NotEqual(t, ttlstore.Owner("s3cret"), h)
	require.Equal(t, h, ttlstore.HashSecret("s3cret"), "deterministic")
	require.NotEqual(t, h, ttlstore.HashSecret("s3cret2"))

	s, _ := newStore(ttlstore.Options{})
	it := mustSet(t, s, "k", owned("v", "s3cret"))
	require.True(t, it.Owned())
	require.Equal(t, h, it.Owner)
	require.NotEqual(t, ttlstore.Owner("s3cret"), it.Owner, "the secret is stored hashed")
	require.Len(t, string(it.Owner), 32)
}

func TestOwnerForbidsOtherWriters(t *testing.T) {
	right := ttlstore.HashSecret("right")
	wrong := ttlstore.HashSecret("wrong")
	ops := []struct {
		name string
		do   func(s *ttlstore.Store, o ttlstore.Owner) (ttlstore.Item, error)
	}{
		{"Set", func(s *ttlstore.Store, o ttlstore.Owner) (ttlstore.Item, error) {
			return s.Set("k", ttlstore.Write{Value: []byte("new"), Owner: o})
		}},
		{"CompareAndSwap", func(s *ttlstore.Store, o ttlstore.Owner) (ttlstore.Item, error) {
			return s.CompareAndSwap("k", []byte("v"), ttlstore.Write{Value: []byte("new"), Owner: o})
		}},
		{"CompareAndSwapOrCreate", func(s *ttlstore.Store, o ttlstore.Owner) (ttlstore.Item, error) {
			return s.CompareAndSwapOrCreate("k", []byte("v"), ttlstore.Write{Value: []byte("new"), Owner: o})
		}},
		{"Delete", func(s *ttlstore.Store, o ttlstore.Owner) (ttlstore.Item, error) {
			return s.Delete("k", o)
		}},
	}
	callers := []struct {
		name  string
		owner ttlstore.Owner
		ok    bool
	}{
		{"no secret", "", false},
		{"wrong secret", wrong, false},
		{"truncated hash", right[:16], false},
		{"right secret", right, true},
	}
	for _, op := range ops {
		for _, c := range callers {
			t.Run(op.name+"/"+c.name, func(t *testing.T) {
				s, _ := newStore(ttlstore.Options{})
				before := mustSet(t, s, "k", owned("v", "right"))
				it, err := op.do(s, c.owner)
				if !c.ok {
					require.ErrorIs(t, err, ttlstore.ErrForbidden)
					require.Equal(t, ttlstore.Item{}, it, "a forbidden caller learns nothing")
					require.Equal(t, before, requireValue(t, s, "k", "v"))
					require.Equal(t, before.Version, s.Version())
					return
				}
				require.NoError(t, err)
				require.Equal(t, right, it.Owner, "ownership stays")
				if op.name == "Delete" {
					requireMissing(t, s, "k")
					return
				}
				got := requireValue(t, s, "k", "new")
				require.Equal(t, right, got.Owner)
				// and a no-secret write is still refused afterwards
				_, err = s.Set("k", val("x"))
				require.ErrorIs(t, err, ttlstore.ErrForbidden)
			})
		}
	}
}

func TestOwnerClaims(t *testing.T) {
	t.Run("unowned key claimed by a write with a secret", func(t *testing.T) {
		s, _ := newStore(ttlstore.Options{})
		mustSet(t, s, "k", val("v"))
		it, err := s.Set("k", owned("mine", "alice"))
		require.NoError(t, err)
		require.Equal(t, ttlstore.HashSecret("alice"), it.Owner)
		_, err = s.Set("k", owned("theirs", "bob"))
		require.ErrorIs(t, err, ttlstore.ErrForbidden)
		_, err = s.Set("k", val("anon"))
		require.ErrorIs(t, err, ttlstore.ErrForbidden)
		requireValue(t, s, "k", "mine")
	})
	t.Run("unowned key claimed by CAS with a secret", func(t *testing.T) {
		s, _ := newStore(ttlstore.Options{})
		mustSet(t, s, "k", val("v"))
		it, err := s.CompareAndSwap("k", []byte("v"), owned("mine", "alice"))
		require.NoError(t, err)
		require.Equal(t, ttlstore.HashSecret("alice"), it.Owner)
		_, err = s.Delete("k", "")
		require.ErrorIs(t, err, ttlstore.ErrForbidden)
	})
	t.Run("LoadOrStore on an owned key reports ErrExists", func(t *testing.T) {
		s, _ := newStore(ttlstore.Options{})
		before := mustSet(t, s, "k", owned("v", "alice"))
		for _, w := range []ttlstore.Write{val("x"), owned("x", "bob"), owned("x", "alice")} {
			it, err := s.LoadOrStore("k", w)
			require.ErrorIs(t, err, ttlstore.ErrExists)
			require.NotErrorIs(t, err, ttlstore.ErrForbidden)
			require.Equal(t, before, it)
		}
		require.Equal(t, before, requireValue(t, s, "k", "v"))
	})
	t.Run("expired owned key is free for anyone", func(t *testing.T) {
		for _, w := range []ttlstore.Write{val("anon"), owned("bob", "bob")} {
			s, clk := newStore(ttlstore.Options{})
			mustSet(t, s, "k", ttlstore.Write{Value: []byte("v"), Owner: ttlstore.HashSecret("alice"), Expires: clk.at(time.Minute)})
			clk.Advance(time.Minute)
			it, err := s.Set("k", w)
			require.NoError(t, err)
			require.Equal(t, w.Owner, it.Owner, "the new writer's owner, not the expired one")
			requireValue(t, s, "k", string(w.Value))
		}
	})
	t.Run("expired owned key is free for CASOC and LoadOrStore", func(t *testing.T) {
		s, clk := newStore(ttlstore.Options{})
		mustSet(t, s, "a", ttlstore.Write{Value: []byte("v"), Owner: ttlstore.HashSecret("alice"), Expires: clk.at(time.Minute)})
		mustSet(t, s, "b", ttlstore.Write{Value: []byte("v"), Owner: ttlstore.HashSecret("alice"), Expires: clk.at(time.Minute)})
		clk.Advance(time.Minute)
		it, err := s.CompareAndSwapOrCreate("a", []byte("ignored"), owned("bob", "bob"))
		require.NoError(t, err)
		require.Equal(t, ttlstore.HashSecret("bob"), it.Owner)
		it, err = s.LoadOrStore("b", val("anon"))
		require.NoError(t, err)
		require.False(t, it.Owned())
	})
}

func TestExpiryBoundary(t *testing.T) {
	s, clk := newStore(ttlstore.Options{})
	exp := clk.at(10 * time.Second)
	mustSet(t, s, "k", expiring("v", exp))

	clk.Advance(10*time.Second - time.Nanosecond)
	requireValue(t, s, "k", "v")
	require.Len(t, s.Range("", "", 10), 1)

	clk.Advance(time.Nanosecond) // now == Expires
	require.Equal(t, exp, clk.Now().UnixNano())
	requireMissing(t, s, "k")
	require.Empty(t, s.Range("", "", 10))
	var snap []ttlstore.Item
	require.NoError(t, s.Snapshot(func(it ttlstore.Item) error { snap = append(snap, it); return nil }))
	require.Empty(t, snap)
	_, err := s.CompareAndSwap("k", []byte("v"), val("x"))
	require.ErrorIs(t, err, ttlstore.ErrNotFound)
}

func TestExpiryRefreshBySet(t *testing.T) {
	s, clk := newStore(ttlstore.Options{})
	mustSet(t, s, "k", expiring("v1", clk.at(10*time.Second)))
	clk.Advance(9 * time.Second)
	mustSet(t, s, "k", expiring("v2", clk.at(10*time.Second))) // now expires at t0+19s
	clk.Advance(5 * time.Second)                               // t0+14s: past the first expiry
	requireValue(t, s, "k", "v2")
	require.Zero(t, s.Reap(clk.Now(), 100), "refreshed entry must not be reaped")
	requireValue(t, s, "k", "v2")
	clk.Advance(5 * time.Second) // t0+19s
	requireMissing(t, s, "k")
	require.Equal(t, 1, s.Reap(clk.Now(), 100))
}

func TestExpiryShortenAndClear(t *testing.T) {
	s, clk := newStore(ttlstore.Options{})
	mustSet(t, s, "short", expiring("v", clk.at(time.Hour)))
	mustSet(t, s, "short", expiring("v", clk.at(time.Second)))
	mustSet(t, s, "forever", expiring("v", clk.at(time.Second)))
	mustSet(t, s, "forever", val("v")) // Expires 0: never expires
	clk.Advance(time.Second)
	requireMissing(t, s, "short")
	requireValue(t, s, "forever", "v")
	require.Equal(t, 1, s.Reap(clk.Now(), 100))
	clk.Advance(10 * 365 * 24 * time.Hour)
	require.Zero(t, s.Reap(clk.Now(), 100))
	requireValue(t, s, "forever", "v")
	require.Equal(t, 1, s.Len())
}

func TestReap(t *testing.T) {
	s, clk := newStore(ttlstore.Options{Shards: 8})
	const expired, live, forever = 1000, 300, 200
	for i := range expired {
		// Varied expiries so the heaps are non-trivial.
		mustSet(t, s, fmt.Sprintf("exp/%d", i), expiring("v", clk.at(time.Duration(1+i%50)*time.Second)))
	}
	for i := range live {
		mustSet(t, s, fmt.Sprintf("live/%d", i), expiring("v", clk.at(time.Hour+time.Duration(i)*time.Second)))
	}
	for i := range forever {
		mustSet(t, s, fmt.Sprintf("forever/%d", i), val("v"))
	}
	require.Equal(t, expired+live+forever, s.Len())

	clk.Advance(50 * time.Second) // every exp/ key has expired: all at or before now
	now := clk.Now()
	require.Zero(t, s.Reap(now, 0))
	require.Equal(t, expired+live+forever, s.Len(), "Len counts expired entries until reaped")

	require.Equal(t, 10, s.Reap(now, 10), "budget respected")
	require.Equal(t, expired+live+forever-10, s.Len())
	require.Equal(t, 600, s.Reap(now, 600), "budget larger than one batch")
	require.Equal(t, expired+live+forever-610, s.Len())
	require.Equal(t, expired-610, s.Reap(now, 1_000_000), "rest")
	require.Equal(t, live+forever, s.Len())
	require.Zero(t, s.Reap(now, 1_000_000))

	for i := range live {
		requireValue(t, s, fmt.Sprintf("live/%d", i), "v")
	}
	for i := range forever {
		requireValue(t, s, fmt.Sprintf("forever/%d", i), "v")
	}
	require.Len(t, s.Range("", "", 10_000), live+forever)

	// Reap uses the time it is given.
	t1h := now.Add(time.Hour - 50*time.Second) // live/0 expires exactly here
	require.Zero(t, s.Reap(t1h.Add(-time.Nanosecond), 1000))
	require.Equal(t, 1, s.Reap(t1h, 1000))
	requireValue(t, s, "live/1", "v")
}

func TestReapManyInOneShard(t *testing.T) {
	// More expired entries than one reaper batch in a single shard.
	s, clk := newStore(ttlstore.Options{Shards: 1})
	for i := range 1000 {
		mustSet(t, s, fmt.Sprintf("k%04d", i), expiring("v", clk.at(time.Second)))
	}
	mustSet(t, s, "live", val("v"))
	clk.Advance(time.Second)
	require.Equal(t, 700, s.Reap(clk.Now(), 700))
	require.Equal(t, 301, s.Len())
	require.Equal(t, 300, s.Reap(clk.Now(), 700))
	require.Equal(t, 1, s.Len())
	requireValue(t, s, "live", "v")
}

func TestCapacity(t *testing.T) {
	for _, shards := range []int{1, 64} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			const n = 50
			s, _ := newStore(ttlstore.Options{MaxKeys: n, Shards: shards})
			for i := range n {
				mustSet(t, s, fmt.Sprintf("k%d", i), val("v"))
			}
			require.Equal(t, n, s.Len())

			v := s.Version()
			_, err := s.Set("extra", val("v"))
			require.ErrorIs(t, err, ttlstore.ErrFull)
			_, err = s.LoadOrStore("extra", val("v"))
			require.ErrorIs(t, err, ttlstore.ErrFull)
			_, err = s.CompareAndSwapOrCreate("extra", nil, val("v"))
			require.ErrorIs(t, err, ttlstore.ErrFull)
			requireMissing(t, s, "extra")
			require.Equal(t, n, s.Len())
			require.Equal(t, v, s.Version(), "a refused create is invisible")

			// Overwrites of existing keys still work when full.
			mustSet(t, s, "k0", val("new"))
			_, err = s.CompareAndSwap("k1", []byte("v"), val("new"))
			require.NoError(t, err)
			_, err = s.CompareAndSwapOrCreate("k2", []byte("v"), val("new"))
			require.NoError(t, err)
			require.Equal(t, n, s.Len())

			// After a delete one create succeeds, the next is refused.
			_, err = s.Delete("k3", "")
			require.NoError(t, err)
			mustSet(t, s, "extra", val("v"))
			_, err = s.Set("extra2", val("v"))
			require.ErrorIs(t, err, ttlstore.ErrFull)
			require.Equal(t, n, s.Len())
		})
	}
}

func TestCapacityExpiredDoNotCount(t *testing.T) {
	for _, shards := range []int{1, 4, 64} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			const n = 100
			s, clk := newStore(ttlstore.Options{MaxKeys: n, Shards: shards})
			for i := range n {
				mustSet(t, s, fmt.Sprintf("k%d", i), expiring("v", clk.at(time.Minute)))
			}
			_, err := s.Set("new0", val("v"))
			require.ErrorIs(t, err, ttlstore.ErrFull)

			clk.Advance(time.Minute)
			// No Reap: creating must find room by dropping expired entries.
			for i := range n {
				mustSet(t, s, fmt.Sprintf("new%d", i), val("v"))
			}
			require.Equal(t, n, s.Len())
			_, err = s.Set("one-too-many", val("v"))
			require.ErrorIs(t, err, ttlstore.ErrFull)
			for i := range n {
				requireValue(t, s, fmt.Sprintf("new%d", i), "v")
				requireMissing(t, s, fmt.Sprintf("k%d", i))
			}
		})
	}
}

func TestCapacityExpiredSingleEntryOtherShard(t *testing.T) {
	// Only one expired entry exists and it most likely lives in another
	// shard than the new key: the create must still succeed.
	s, clk := newStore(ttlstore.Options{MaxKeys: 10, Shards: 64})
	for i := range 9 {
		mustSet(t, s, fmt.Sprintf("live%d", i), val("v"))
	}
	mustSet(t, s, "dying", expiring("v", clk.at(time.Second)))
	clk.Advance(time.Second)
	for i := range 20 {
		key := fmt.Sprintf("fresh%d", i)
		_, err := s.Set(key, val("v"))
		if i == 0 {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, ttlstore.ErrFull)
		}
	}
	require.Equal(t, 10, s.Len())
}

func TestCapacityConcurrent(t *testing.T) {
	const maxKeys, workers, per = 1000, 32, 100
	s, _ := newStore(ttlstore.Options{MaxKeys: maxKeys})
	var ok, full atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			<-start
			for i := range per {
				_, err := s.Set(fmt.Sprintf("w%d/k%d", w, i), val("v"))
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ttlstore.ErrFull):
					full.Add(1)
				default:
					panic(err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	require.EqualValues(t, maxKeys, ok.Load())
	require.EqualValues(t, workers*per-maxKeys, full.Load())
	require.Equal(t, maxKeys, s.Len())
	require.Len(t, s.Range("", "", 10*maxKeys), maxKeys)
}

func TestCapacityConcurrentChurn(t *testing.T) {
	// Creates and deletes race; the cap must hold at every moment and the
	// count must end up matching what is stored.
	const maxKeys, workers, per = 64, 8, 300
	s, _ := newStore(ttlstore.Options{MaxKeys: maxKeys, Shards: 8})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				key := fmt.Sprintf("w%d/k%d", w, i%16)
				if _, err := s.Set(key, val("v")); err != nil && !errors.Is(err, ttlstore.ErrFull) {
					panic(err)
				}
				if n := s.Len(); n > maxKeys {
					panic(fmt.Sprintf("Len %d above cap", n))
				}
				if i%3 == 0 {
					_, _ = s.Delete(key, "")
				}
			}
		})
	}
	wg.Wait()
	require.LessOrEqual(t, s.Len(), maxKeys)
	require.Len(t, s.Range("", "", 10*maxKeys), s.Len())
}

func TestOwnershipRace(t *testing.T) {
	const rounds = 300
	a, b := ttlstore.HashSecret("alice"), ttlstore.HashSecret("bob")
	for _, op := range []string{"Set", "CompareAndSwapOrCreate"} {
		t.Run(op, func(t *testing.T) {
			s, _ := newStore(ttlstore.Options{})
			for r := range rounds {
				key := fmt.Sprintf("race/%d", r)
				owners := []ttlstore.Owner{a, b}
				errs := make([]error, 2)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i, o := range owners {
					wg.Go(func() {
						<-start
						w := ttlstore.Write{Value: []byte{byte('A' + i)}, Owner: o}
						if op == "Set" {
							_, errs[i] = s.Set(key, w)
						} else {
							_, errs[i] = s.CompareAndSwapOrCreate(key, []byte{byte('A' + i)}, w)
						}
					})
				}
				close(start)
				wg.Wait()

				winner := -1
				for i, err := range errs {
					if err == nil {
						require.Equal(t, -1, winner, "round %d: both writers succeeded", r)
						winner = i
					} else {
						require.ErrorIs(t, err, ttlstore.ErrForbidden, "round %d", r)
					}
				}
				require.NotEqual(t, -1, winner, "round %d: nobody won", r)
				it, ok := s.Get(key)
				require.True(t, ok)
				require.Equal(t, owners[winner], it.Owner, "round %d: stored owner is the winner's", r)
				require.Equal(t, []byte{byte('A' + winner)}, it.Value)
			}
		})
	}
}

func TestLoadOrStoreRace(t *testing.T) {
	const rounds, racers = 300, 4
	s, _ := newStore(ttlstore.Options{})
	for r := range rounds {
		key := fmt.Sprintf("race/%d", r)
		items := make([]ttlstore.Item, racers)
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				<-start
				items[i], errs[i] = s.LoadOrStore(key, owned(fmt.Sprint(i), fmt.Sprint("secret", i)))
			})
		}
		close(start)
		wg.Wait()

		winner := -1
		for i, err := range errs {
			if err == nil {
				require.Equal(t, -1, winner, "round %d: two LoadOrStores stored", r)
				winner = i
			} else {
				require.ErrorIs(t, err, ttlstore.ErrExists)
			}
		}
		require.NotEqual(t, -1, winner, "round %d: nothing stored", r)
		stored := requireValue(t, s, key, fmt.Sprint(winner))
		require.Equal(t, items[winner], stored)
		for i, err := range errs {
			if err != nil {
				require.Equal(t, stored, items[i], "losers see the winner's item")
			}
		}
	}
	require.Equal(t, rounds, s.Len())
}

func TestOnChange(t *testing.T) {
	rec := &recorder{}
	s, clk := newStore(ttlstore.Options{OnChange: rec.onChange})

	created := mustSet(t, s, "k", owned("v1", "alice"))
	updated, err := s.CompareAndSwap("k", []byte("v1"), ttlstore.Write{Value: []byte("v2"), Owner: ttlstore.HashSecret("alice")})
	require.NoError(t, err)
	deleted, err := s.Delete("k", ttlstore.HashSecret("alice"))
	require.NoError(t, err)
	exp := clk.at(time.Second)
	temp := mustSet(t, s, "t", expiring("tv", exp))
	clk.Advance(time.Second)
	require.Equal(t, 1, s.Reap(clk.Now(), 10))

	// Failed operations report nothing.
	_, _ = s.Delete("nope", "")
	_, _ = s.CompareAndSwap("nope", nil, val("x"))

	changes := rec.take()
	require.Len(t, changes, 5)

	require.Equal(t, ttlstore.Change{Op: ttlstore.OpSet, Item: created}, changes[0])
	require.Equal(t, ttlstore.Change{Op: ttlstore.OpSet, Item: updated}, changes[1])
	require.Equal(t, ttlstore.Change{Op: ttlstore.OpDelete, Item: deleted}, changes[2])
	require.Equal(t, "v2", string(changes[2].Item.Value), "delete carries the removed value")
	require.Equal(t, ttlstore.HashSecret("alice"), changes[2].Item.Owner)
	require.Equal(t, ttlstore.Change{Op: ttlstore.OpSet, Item: temp}, changes[3])

	require.Equal(t, ttlstore.OpExpire, changes[4].Op)
	require.Equal(t, "t", changes[4].Item.Key)
	require.Equal(t, "tv", string(changes[4].Item.Value))
	require.Equal(t, exp, changes[4].Item.Expires)
	require.Greater(t, changes[4].Item.Version, temp.Version)
	require.Equal(t, s.Version(), changes[4].Item.Version)

	require.Equal(t, "set", ttlstore.OpSet.String())
	require.Equal(t, "delete", ttlstore.OpDelete.String())
	require.Equal(t, "expire", ttlstore.OpExpire.String())
	require.Equal(t, "unknown", ttlstore.Op(0).String())
}

func TestOnChangeExpireOnWrite(t *testing.T) {
	// A write over an expired key first reports its expiry, then the set.
	rec := &recorder{}
	s, clk := newStore(ttlstore.Options{OnChange: rec.onChange})
	old := mustSet(t, s, "k", expiring("old", clk.at(time.Second)))
	clk.Advance(time.Second)
	fresh := mustSet(t, s, "k", val("new"))
	changes := rec.take()
	require.Len(t, changes, 3)
	require.Equal(t, ttlstore.OpSet, changes[0].Op)
	require.Equal(t, old, changes[0].Item)
	require.Equal(t, ttlstore.OpExpire, changes[1].Op)
	require.Equal(t, "old", string(changes[1].Item.Value))
	require.Less(t, changes[1].Item.Version, fresh.Version)
	require.Equal(t, ttlstore.Change{Op: ttlstore.OpSet, Item: fresh}, changes[2])
}

func TestOnChangePerKeyOrder(t *testing.T) {
	rec := &recorder{}
	s, _ := newStore(ttlstore.Options{OnChange: rec.onChange, Shards: 4})
	const workers, per, keys = 8, 400, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				key := fmt.Sprintf("k%d", (w+i)%keys)
				if i%7 == 0 {
					_, _ = s.Delete(key, "")
				} else {
					_, _ = s.Set(key, val(fmt.Sprint(w, "/", i)))
				}
			}
		})
	}
	wg.Wait()

	last := map[string]ttlstore.Change{}
	for _, c := range rec.take() {
		if prev, ok := last[c.Item.Key]; ok {
			require.Greater(t, c.Item.Version, prev.Item.Version, "per-key changes arrive in version order")
		}
		last[c.Item.Key] = c
	}
	for i := range keys {
		key := fmt.Sprintf("k%d", i)
		c, ok := last[key]
		require.True(t, ok)
		it, live := s.Get(key)
		if c.Op == ttlstore.OpDelete {
			require.False(t, live, "last change of %s was a delete", key)
		} else {
			require.True(t, live)
			require.Equal(t, c.Item, it, "last change of %s is its current state", key)
		}
	}
}

func TestOnChangeErrorAborts(t *testing.T) {
	boom := errors.New("journal down")
	type env struct {
		s   *ttlstore.Store
		clk *fakeClock
		rec *recorder
	}
	tests := []struct {
		name string
		// op runs with OnChange failing and returns the op's error.
		op func(e env) (ttlstore.Item, error)
		// check runs after OnChange works again.
		check func(t *testing.T, e env)
	}{
		{
			name: "Set create",
			op:   func(e env) (ttlstore.Item, error) { return e.s.Set("new", val("v")) },
			check: func(t *testing.T, e env) {
				requireMissing(t, e.s, "new")
				require.Equal(t, 2, e.s.Len(), "capacity count not leaked")
				mustSet(t, e.s, "new", val("v")) // the last slot is still free
				_, err := e.s.Set("new2", val("v"))
				require.ErrorIs(t, err, ttlstore.ErrFull)
			},
		},
		{
			name: "LoadOrStore create",
			op:   func(e env) (ttlstore.Item, error) { return e.s.LoadOrStore("new", val("v")) },
			check: func(t *testing.T, e env) {
				requireMissing(t, e.s, "new")
				require.Equal(t, 2, e.s.Len())
				mustSet(t, e.s, "new", val("v"))
			},
		},
		{
			name: "Set overwrite",
			op:   func(e env) (ttlstore.Item, error) { return e.s.Set("a", val("changed")) },
			check: func(t *testing.T, e env) {
				requireValue(t, e.s, "a", "old")
			},
		},
		{
			name: "Set claim",
			op:   func(e env) (ttlstore.Item, error) { return e.s.Set("a", owned("changed", "alice")) },
			check: func(t *testing.T, e env) {
				it := requireValue(t, e.s, "a", "old")
				require.False(t, it.Owned(), "ownership not taken by an aborted write")
			},
		},
		{
			name: "CompareAndSwap",
			op: func(e env) (ttlstore.Item, error) {
				return e.s.CompareAndSwap("a", []byte("old"), val("changed"))
			},
			check: func(t *testing.T, e env) { requireValue(t, e.s, "a", "old") },
		},
		{
			name: "CompareAndSwapOrCreate",
			op: func(e env) (ttlstore.Item, error) {
				return e.s.CompareAndSwapOrCreate("a", []byte("old"), val("changed"))
			},
			check: func(t *testing.T, e env) { requireValue(t, e.s, "a", "old") },
		},
		{
			name: "Delete",
			op:   func(e env) (ttlstore.Item, error) { return e.s.Delete("a", "") },
			check: func(t *testing.T, e env) {
				requireValue(t, e.s, "a", "old")
				require.Equal(t, 2, e.s.Len())
			},
		},
		{
			name: "Reap",
			op: func(e env) (ttlstore.Item, error) {
				e.clk.Advance(time.Hour)
				if n := e.s.Reap(e.clk.Now(), 10); n != 0 {
					return ttlstore.Item{}, fmt.Errorf("reaped %d", n)
				}
				return ttlstore.Item{}, boom
			},
			check: func(t *testing.T, e env) {
				require.Equal(t, 2, e.s.Len(), "entry stays until its expiry is recorded")
				require.Equal(t, 1, e.s.Reap(e.clk.Now(), 10))
				require.Equal(t, 1, e.s.Len())
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			s, clk := newStore(ttlstore.Options{OnChange: rec.onChange, MaxKeys: 3})
			mustSet(t, s, "a", val("old"))
			mustSet(t, s, "b", expiring("b", clk.at(time.Minute)))
			e := env{s: s, clk: clk, rec: rec}
			rec.take()
			v := s.Version()

			rec.setFail(boom)
			it, err := tc.op(e)
			require.ErrorIs(t, err, boom, "the op returns OnChange's error")
			require.Equal(t, ttlstore.Item{}, it)
			require.GreaterOrEqual(t, s.Version(), v)
			rec.setFail(nil)
			tc.check(t, e)
		})
	}
}

func TestLenNeverExceedsMaxKeys(t *testing.T) {
	// Refused creates against a full store must not make Len report more
	// entries than the cap allows, not even for a moment.
	const maxKeys = 100
	s, _ := newStore(ttlstore.Options{MaxKeys: maxKeys, Shards: 4})
	for i := range maxKeys {
		mustSet(t, s, fmt.Sprintf("k%d", i), val("v"))
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				if _, err := s.Set(fmt.Sprintf("w%d/%d", w, i), val("v")); !errors.Is(err, ttlstore.ErrFull) {
					panic(fmt.Sprint("want ErrFull, got ", err))
				}
			}
		})
	}
	maxSeen := 0
	for range 200_000 {
		maxSeen = max(maxSeen, s.Len())
	}
	stop.Store(true)
	wg.Wait()
	require.LessOrEqual(t, maxSeen, maxKeys, "Len observed above MaxKeys")
	require.Equal(t, maxKeys, s.Len())
}
