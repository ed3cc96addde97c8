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
