package policy_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/limiter"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// oneToken verifies only "good".
type oneToken struct{ checked int }

func (v *oneToken) Verify(token string) (*policy.Identity, error) {
	v.checked++
	if token != "good" {
		return nil, &policy.Error{Kind: policy.KindUnauthenticated, Message: "invalid token"}
	}
	return &policy.Identity{Name: "alice"}, nil
}

// allowOnly hides every method of a Limiter but Allow, as another
// implementation of policy.Limiter may have only that.
type allowOnly struct{ policy.Limiter }

// Refused tokens spend the address's refusal budget; once it cannot pay
// for one more, no token is checked. With a Limiter that cannot peek, its
// bucket's remaining tokens decide the same way.
func TestAuthenticateThrottlesRefusals(t *testing.T) {
	for name, wrap := range map[string]func(*limiter.Limiter) policy.Limiter{
		"limiter":    func(l *limiter.Limiter) policy.Limiter { return l },
		"allow only": func(l *limiter.Limiter) policy.Limiter { return allowOnly{l} },
	} {
		t.Run(name, func(t *testing.T) {
			lim, err := limiter.New(limiter.Config{Tokens: 7, Window: time.Hour})
			require.NoError(t, err)
			svc := policy.New(ttlstore.New(ttlstore.Options{}), wrap(lim), testConfig, nil)
			v := &oneToken{}
			c, err := svc.Authenticate(v4, v, "good")
			require.NoError(t, err)
			assert.Equal(t, "alice", c.Identity.Name)
			for range 2 { // 3 tokens each, of 7
				_, err := svc.Authenticate(v4, v, "bad")
				policyErr(t, err, policy.KindUnauthenticated)
			}
			_, err = svc.Authenticate(v4, v, "good")
			pe := policyErr(t, err, policy.KindRateLimited)
			require.NotNil(t, pe.Limit)
			assert.Positive(t, pe.Limit.RetryAfter)
			assert.Equal(t, 3, v.checked, "the throttled token was not checked")
			_, err = svc.Authenticate(v6, v, "good")
			require.NoError(t, err, "another address is not held back")
			_, err = svc.Get(v4, "k")
			policyErr(t, err, policy.KindNotFound) // the anonymous budget is untouched
		})
	}
}

// A flood of refused tokens from more addresses than the limiter keeps
// buckets for is still throttled: the newcomers share the overflow budget,
// and once it is spent their tokens are refused unchecked.
func TestAuthenticateThrottlesRefusalsWhenTableIsFull(t *testing.T) {
	lim, err := limiter.New(limiter.Config{Tokens: 7, Window: time.Hour, MaxClients: 1})
	require.NoError(t, err)
	svc := policy.New(ttlstore.New(ttlstore.Options{}), lim, testConfig, nil)
	v := &oneToken{}
	_, err = svc.Authenticate(policy.Caller{IP: netip.MustParseAddr("192.0.2.1")}, v, "bad") // takes the one bucket
	policyErr(t, err, policy.KindUnauthenticated)
	refusedUnchecked := 0
	for i := range 20 {
		c := policy.Caller{IP: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})}
		_, err := svc.Authenticate(c, v, "bad")
		var pe *policy.Error
		require.ErrorAs(t, err, &pe)
		if pe.Kind == policy.KindRateLimited {
			refusedUnchecked++
		}
	}
	assert.Equal(t, 2, v.checked-1, "the overflow's 7 tokens pay for two refusals at 3 each")
	assert.Equal(t, 18, refusedUnchecked)
}
