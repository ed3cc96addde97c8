package ttlstore_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// modelEntry is what a simple map-based reference implementation holds.
type modelEntry struct {
	value   string
	expires int64
	owner   ttlstore.Owner
}

// TestAgainstModel runs random operations against the store and a plain map
// and compares what a user can observe: Get, Range, errors, Len after a full
// reap, and version order. It exercises the expiry heaps (refresh, shorten,
// clear, remove) far more than the hand-written cases.
func TestAgainstModel(t *testing.T) {
	for _, shards := range []int{1, 4} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("shards=%d/seed=%d", shards, seed), func(t *testing.T) {
				runModel(t, shards, seed)
			})
		}
	}
}

func runModel(t *testing.T, shards int, seed uint64) {
	const maxKeys = 40
	rng := rand.New(rand.NewPCG(seed, 99))
	s, clk := newStore(ttlstore.Options{Shards: shards, MaxKeys: maxKeys})
	model := map[string]modelEntry{} // includes expired, not yet removed entries
	owners := []ttlstore.Owner{"", ttlstore.HashSecret("a"), ttlstore.HashSecret("b")}
	var lastVersion uint64

	now := func() int64 { return clk.Now().UnixNano() }
	liveModel := func(key string) (modelEntry, bool) {
		e, ok := model[key]
		if !ok || (e.expires != 0 && e.expires <= now()) {
			return modelEntry{}, false
		}
		return e, true
	}
	liveCount := func() int {
		n := 0
		for k := range model {
			if _, ok := liveModel(k); ok {
				n++
			}
		}
		return n
	}
	// dropExpired removes key from the model if it is expired there: the
	// store does the same before a write or delete.
	dropExpired := func(key string) {
		if _, ok := liveModel(key); !ok {
			delete(model, key)
		}
	}
	checkVersion := func(it ttlstore.Item) {
		t.Helper()
		require.Greater(t, it.Version, lastVersion)
		lastVersion = it.Version
		require.LessOrEqual(t, lastVersion, s.Version())
	}
	randWrite := func() ttlstore.Write {
		w := ttlstore.Write{Value: []byte(fmt.Sprint(rng.IntN(3))), Owner: owners[rng.IntN(len(owners))]}
		if rng.IntN(4) != 0 {
			w.Expires = clk.at(time.Duration(1+rng.IntN(20)) * time.Second)
		}
		return w
	}

	for step := range 2000 {
		key := fmt.Sprintf("k%02d", rng.IntN(60))
		switch op := rng.IntN(100); {
		case op < 35: // Set
			w := randWrite()
			dropExpired(key)
			cur, exists := model[key]
			it, err := s.Set(key, w)
			switch {
			case exists && cur.owner != "" && cur.owner != w.Owner:
				require.ErrorIs(t, err, ttlstore.ErrForbidden, "step %d", step)
			case !exists && len(model) >= maxKeys && liveCount() >= maxKeys:
				require.ErrorIs(t, err, ttlstore.ErrFull, "step %d", step)
			default:
				require.NoError(t, err, "step %d", step)
				owner := cur.owner
				if owner == "" {
					owner = w.Owner
				}
				require.Equal(t, owner, it.Owner)
				model[key] = modelEntry{value: string(w.Value), expires: w.Expires, owner: owner}
				checkVersion(it)
			}
		case op < 45: // LoadOrStore
			w := randWrite()
			dropExpired(key)
			cur, exists := model[key]
			it, err := s.LoadOrStore(key, w)
			switch {
			case exists:
				require.ErrorIs(t, err, ttlstore.ErrExists, "step %d", step)
				require.Equal(t, cur.value, string(it.Value))
			case liveCount() >= maxKeys:
				require.ErrorIs(t, err, ttlstore.ErrFull, "step %d", step)
			default:
				require.NoError(t, err, "step %d", step)
				model[key] = modelEntry{value: string(w.Value), expires: w.Expires, owner: w.Owner}
				checkVersion(it)
			}
		case op < 55: // CompareAndSwap / CompareAndSwapOrCreate
			w := randWrite()
			expected := []byte(fmt.Sprint(rng.IntN(3)))
			orCreate := rng.IntN(2) == 0
			dropExpired(key)
			cur, exists := model[key]
			var it ttlstore.Item
			var err error
			if orCreate {
				it, err = s.CompareAndSwapOrCreate(key, expected, w)
			} else {
				it, err = s.CompareAndSwap(key, expected, w)
			}
			switch {
			case !exists && !orCreate:
				require.ErrorIs(t, err, ttlstore.ErrNotFound, "step %d", step)
			case !exists && liveCount() >= maxKeys:
				require.ErrorIs(t, err, ttlstore.ErrFull, "step %d", step)
			case exists && cur.owner != "" && cur.owner != w.Owner:
				require.ErrorIs(t, err, ttlstore.ErrForbidden, "step %d", step)
			case exists && cur.value != string(expected):
				require.ErrorIs(t, err, ttlstore.ErrMismatch, "step %d", step)
				require.Equal(t, cur.value, string(it.Value))
			default:
				require.NoError(t, err, "step %d", step)
				owner := cur.owner
				if owner == "" {
					owner = w.Owner
				}
				model[key] = modelEntry{value: string(w.Value), expires: w.Expires, owner: owner}
				checkVersion(it)
			}
		case op < 65: // Delete
			o := owners[rng.IntN(len(owners))]
			dropExpired(key)
			cur, exists := model[key]
			it, err := s.Delete(key, o)
			switch {
			case !exists:
				require.ErrorIs(t, err, ttlstore.ErrNotFound, "step %d", step)
			case cur.owner != "" && cur.owner != o:
				require.ErrorIs(t, err, ttlstore.ErrForbidden, "step %d", step)
			default:
				require.NoError(t, err, "step %d", step)
				require.Equal(t, cur.value, string(it.Value))
				delete(model, key)
				checkVersion(it)
			}
		case op < 80: // advance the clock
			clk.Advance(time.Duration(rng.IntN(3000)) * time.Millisecond)
		case op < 85: // reap
			// The store may already have dropped expired entries to make
			// room for a create, so the model only bounds what is left.
			budget := rng.IntN(5)
			expiredHeld := len(model) - liveCount()
			n := s.Reap(clk.Now(), budget)
			require.LessOrEqual(t, n, min(budget, expiredHeld), "step %d", step)
			rest := s.Reap(clk.Now(), 1_000_000)
			require.LessOrEqual(t, n+rest, expiredHeld, "step %d", step)
			require.Zero(t, s.Reap(clk.Now(), 1_000_000))
			for k := range model {
				dropExpired(k)
			}
			require.Equal(t, len(model), s.Len(), "step %d: Len after a full reap", step)
			if n < budget {
				require.Zero(t, rest, "step %d: a reap under budget removed everything", step)
			}
		default: // compare reads
			for i := range 60 {
				k := fmt.Sprintf("k%02d", i)
				want, ok := liveModel(k)
				got, gotOK := s.Get(k)
				require.Equal(t, ok, gotOK, "step %d key %s", step, k)
				if ok {
					require.Equal(t, want.value, string(got.Value))
					require.Equal(t, want.expires, got.Expires)
					require.Equal(t, want.owner, got.Owner)
				}
			}
			var live []string
			for k := range model {
				if _, ok := liveModel(k); ok {
					live = append(live, k)
				}
			}
			slices.Sort(live)
			if all := keysOf(s.Range("", "", 1000)); len(live) == 0 {
				require.Empty(t, all, "step %d", step)
			} else {
				require.Equal(t, live, all, "step %d", step)
			}
			lo := fmt.Sprintf("k%02d", rng.IntN(60))
			hi := fmt.Sprintf("k%02d", rng.IntN(60))
			var sub []string
			for _, k := range live {
				if k >= lo && k < hi {
					sub = append(sub, k)
				}
			}
			got := keysOf(s.Range(lo, hi, 1000))
			if len(sub) == 0 {
				require.Empty(t, got)
			} else {
				require.Equal(t, sub, got)
			}
		}
		require.LessOrEqual(t, s.Len(), maxKeys)
	}
}
