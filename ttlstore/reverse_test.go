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

// A reverse range holds the same items as the forward one, last first,
// with expired entries and bounds treated alike.
func TestRangeReverseMatchesRange(t *testing.T) {
	s, clk := newStore(ttlstore.Options{})
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		w := val("v")
		if i%7 == 0 {
			w.Expires = clk.at(time.Second)
		}
		_, err := s.Set(fmt.Sprintf("k%04d", r.IntN(5000)), w)
		require.NoError(t, err)
	}
	clk.Advance(2 * time.Second)
	keys := func(items []ttlstore.Item) []string {
		var out []string
		for _, it := range items {
			out = append(out, it.Key)
		}
		return out
	}
	for _, c := range []struct {
		start, end string
		limit      int
	}{{"", "", 10000}, {"", "", 7}, {"k1", "k2", 50}, {"k1000", "k1000", 5}, {"k4999", "", 3}, {"k2", "k3", 1}, {"a", "z", 333}} {
		all := keys(s.Range(c.start, c.end, 1<<30))
		slices.Reverse(all)
		want := all[:min(len(all), c.limit)]
		require.Equal(t, want, keys(s.RangeReverse(c.start, c.end, c.limit)), "%+v", c)
	}
}
