package policy_test

import (
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
