package ttlstore

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Writers on different shards race, yet OnChange must see versions in
// strictly increasing order with no gaps: the journal replays in that order
// and the change feed delivers in it.
func TestOnChangeSeesVersionsInOrder(t *testing.T) {
	var seen []uint64
	var reject bool
	s := New(Options{OnChange: func(c Change) error {
		// Called under the store's sequencing lock, so no mutex is needed
		// here; the race detector checks that claim.
		if reject {
			reject = false
			return fmt.Errorf("refused")
		}
		seen = append(seen, c.Item.Version)
		if len(seen)%97 == 0 {
			reject = true // the next change is refused and must take no version
		}
		return nil
	}})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				key := fmt.Sprintf("g%d/k%d", g, i%50)
				if i%7 == 0 {
					s.Delete(key, "")
				} else {
					s.Set(key, Write{Value: []byte("v")})
				}
			}
		}()
	}
	wg.Wait()
	require.NotEmpty(t, seen)
	for i, v := range seen {
		require.Equal(t, uint64(i+1), v, "change %d", i)
	}
	require.Equal(t, uint64(len(seen)), s.Version())
}

func TestIfVersion(t *testing.T) {
	s := New(Options{})
	_, err := s.Set("k", Write{Value: []byte("a"), IfVersion: 1})
	require.ErrorIs(t, err, ErrVersionMismatch, "If-Match on a missing key fails")
	it, err := s.Set("k", Write{Value: []byte("a")})
	require.NoError(t, err)
	cur, err := s.Set("k", Write{Value: []byte("b"), IfVersion: it.Version + 1})
	require.ErrorIs(t, err, ErrVersionMismatch)
	require.Equal(t, "a", string(cur.Value), "the current item comes back")
	next, err := s.Set("k", Write{Value: []byte("b"), IfVersion: it.Version})
	require.NoError(t, err)
	require.Greater(t, next.Version, it.Version)
	_, err = s.Set("k", Write{Value: []byte("c"), IfVersion: it.Version})
	require.ErrorIs(t, err, ErrVersionMismatch, "a stale version no longer matches")
}

func TestBytesTracksPayload(t *testing.T) {
	s := New(Options{})
	s.Set("ab", Write{Value: []byte("123")})
	require.EqualValues(t, 5, s.Bytes())
	s.Set("ab", Write{Value: []byte("1")})
	require.EqualValues(t, 3, s.Bytes())
	s.Restore(Item{Key: "cd", Value: []byte("xyz"), Version: 100})
	require.EqualValues(t, 8, s.Bytes())
	s.Delete("ab", "")
	require.EqualValues(t, 5, s.Bytes())
	s.RestoreDelete("cd", 101)
	require.EqualValues(t, 0, s.Bytes())
}

// Prepare sees each change before it has a version, and what it returns
// reaches OnChange with that same change; a change OnChange refuses is
// not applied, prepared or not.
func TestPrepareReachesOnChange(t *testing.T) {
	type prepared struct {
		op    Op
		key   string
		value string
	}
	var mu sync.Mutex
	var mismatches, calls int
	var refuse bool
	s := New(Options{
		Prepare: func(c Change) any {
			if c.Item.Version != 0 {
				t.Errorf("Prepare saw version %d, want 0", c.Item.Version)
			}
			return &prepared{c.Op, c.Item.Key, string(c.Item.Value)}
		},
		OnChange: func(c Change) error {
			mu.Lock()
			defer mu.Unlock()
			calls++
			p, ok := c.Prepared.(*prepared)
			if !ok || p.op != c.Op || p.key != c.Item.Key || p.value != string(c.Item.Value) {
				mismatches++
			}
			if refuse {
				return fmt.Errorf("refused")
			}
			return nil
		},
	})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				key := fmt.Sprintf("g%d/k%d", g, i%20)
				if (i/20)%2 == 1 { // every other pass over the keys deletes them
					s.Delete(key, "")
				} else {
					s.Set(key, Write{Value: []byte(fmt.Sprint(i))})
				}
			}
		}()
	}
	wg.Wait()
	require.Greater(t, calls, 600)
	require.Zero(t, mismatches)
	require.Zero(t, s.Len(), "the last pass deleted every key")

	refuse = true
	_, err := s.Set("new", Write{Value: []byte("v")})
	require.Error(t, err)
	_, found := s.Get("new")
	require.False(t, found, "a refused set is not applied")
}
