package policy_test

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// Paging through a listing with random grants yields exactly the stored
// keys the grants let the caller read, in order, each once: the skips
// over unreadable runs never jump past a readable key.
func TestListShowsExactlyTheReadableKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	word := func(n int) string {
		var b strings.Builder
		for i := rng.IntN(n + 1); i > 0; i-- {
			b.WriteString([]string{"a", "b", "/", "\u00ff"}[rng.IntN(4)])
		}
		return b.String()
	}
	for round := 0; round < 200; round++ {
		f := newFixture(t, ttlstore.Options{}, nil)
		keys := map[string]bool{}
		for i := 0; i < 40; i++ {
			k := "k" + word(5)
			keys[k] = true
			_, err := f.svc.Write(policy.Caller{}, policy.OpSet, policy.WriteRequest{Key: k, Value: []byte("v")})
			require.NoError(t, err)
		}
		var gs []policy.Grant
		for i := rng.IntN(6); i > 0; i-- {
			gs = append(gs, policy.Grant{Prefix: "k" + word(3), Access: policy.Access(rng.IntN(4))})
		}
		if rng.IntN(2) == 0 {
			gs = append(gs, policy.Grant{Prefix: "", Access: policy.Access(rng.IntN(4))})
		}
		id := &policy.Identity{Name: "x", Grants: policy.NewGrants(gs...)}
		c := f.svc.Authenticated(netip.MustParseAddr("192.0.2.1"), false, id)

		var want []string
		for k := range keys {
			if id.Grants.Allows(k, policy.AccessRead) {
				want = append(want, k)
			}
		}
		slices.Sort(want)
		var got []string
		after, limit := "", 1+rng.IntN(4)
		for pages := 0; pages < 100; pages++ {
			page, err := f.svc.List(c, "", after, limit)
			if err != nil {
				require.Empty(t, want, "refused (%v) with readable keys; grants %s", err, id.Grants)
				break
			}
			for _, it := range page.Items {
				got = append(got, it.Key)
			}
			if after = page.Next; after == "" {
				break
			}
		}
		require.Equal(t, want, got, "round %d, grants %q, page size %d", round, id.Grants.String(), limit)
	}
}
