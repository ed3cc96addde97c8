package policy_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/feed"
	"github.com/rendezvous-kv/rendezvous/limiter"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// Rate limiting is off with no Limiter and with a nil *limiter.Limiter
// alike (the server passes the first, older callers the second), and on
// with a real one: the same requests run out of its 17 tokens.
func TestLimiterOffWhenNil(t *testing.T) {
	lim, err := limiter.New(limiter.Config{Tokens: 17, Window: time.Minute})
	require.NoError(t, err)
	for _, tc := range []struct {
		name    string
		limits  policy.Limiter
		limited bool
	}{
		{"nil interface", nil, false},
		{"nil *limiter.Limiter", (*limiter.Limiter)(nil), false},
		{"limiter", lim, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := policy.New(ttlstore.New(ttlstore.Options{}), tc.limits, testConfig, nil)
			refused := 0
			for range 20 {
				_, err := svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "k", Value: []byte("v")})
				if err != nil {
					policyErr(t, err, policy.KindRateLimited)
					refused++
				}
				if _, err := svc.Get(v4, "k"); err != nil {
					policyErr(t, err, policy.KindRateLimited)
					refused++
				}
			}
			assert.Equal(t, tc.limited, refused > 0, "%d of 40 requests refused", refused)
		})
	}
}

// A nil *feed.Feed in Config.Feed disables watching as a nil Feed does,
// instead of being called.
func TestNilFeedPointerDisablesWatching(t *testing.T) {
	cfg := testConfig
	cfg.Feed = (*feed.Feed)(nil)
	svc := policy.New(ttlstore.New(ttlstore.Options{}), nil, cfg, nil)
	_, err := svc.Watch(v4, "", 0, false)
	policyErr(t, err, policy.KindWatchDisabled)
	_, _, err = svc.WaitKey(context.Background(), v4, "k", 0, time.Second)
	policyErr(t, err, policy.KindWatchDisabled)
	assert.Nil(t, svc.Config().Feed)
}
