package ttlstore_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/fakeclock"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// fakeClock is the shared manual clock for Options.Now, with a helper for
// expiry instants.
type fakeClock struct{ *fakeclock.Clock }

func newFakeClock() *fakeClock {
	return &fakeClock{fakeclock.New(time.Unix(1_700_000_000, 0))}
}

// at returns the Unix-nanosecond instant d after the clock's current time,
// for use as Write.Expires.
func (c *fakeClock) at(d time.Duration) int64 {
	return c.Now().Add(d).UnixNano()
}

// newStore returns a store driven by a fresh fake clock. opts.Now is
// overwritten.
func newStore(opts ttlstore.Options) (*ttlstore.Store, *fakeClock) {
	clk := newFakeClock()
	opts.Now = clk.Now
	return ttlstore.New(opts), clk
}

func val(s string) ttlstore.Write { return ttlstore.Write{Value: []byte(s)} }

func owned(s, secret string) ttlstore.Write {
	return ttlstore.Write{Value: []byte(s), Owner: ttlstore.HashSecret(secret)}
}

func expiring(s string, expires int64) ttlstore.Write {
	return ttlstore.Write{Value: []byte(s), Expires: expires}
}

// mustSet stores w under key and fails the test on error.
func mustSet(t testing.TB, s *ttlstore.Store, key string, w ttlstore.Write) ttlstore.Item {
	t.Helper()
	it, err := s.Set(key, w)
	require.NoError(t, err)
	return it
}

// requireValue asserts that key is live with value want.
func requireValue(t testing.TB, s *ttlstore.Store, key, want string) ttlstore.Item {
	t.Helper()
	it, ok := s.Get(key)
	require.True(t, ok, "key %q should be live", key)
	require.Equal(t, want, string(it.Value), "value of %q", key)
	require.Equal(t, key, it.Key)
	return it
}

// requireMissing asserts that key is not visible.
func requireMissing(t testing.TB, s *ttlstore.Store, key string) {
	t.Helper()
	it, ok := s.Get(key)
	require.False(t, ok, "key %q should be missing, got %+v", key, it)
	require.Equal(t, ttlstore.Item{}, it)
}

// recorder collects OnChange calls.
type recorder struct {
	mu      sync.Mutex
	changes []ttlstore.Change
	fail    error // returned from OnChange when set
}

func (r *recorder) onChange(c ttlstore.Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.changes = append(r.changes, c)
	return nil
}

func (r *recorder) setFail(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

func (r *recorder) take() []ttlstore.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.changes
	r.changes = nil
	return out
}

func keysOf(items []ttlstore.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Key
	}
	return out
}
