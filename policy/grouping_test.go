package policy_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/feed"
	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/limiter"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// A network holds whole clients: with clients grouped by IPv4 /16, the
// default /24 network is widened to the client's /16, so one client's
// watches from two of its /24s count against one network.
func TestNetworkNeverNarrowerThanClient(t *testing.T) {
	f := feed.New(feed.Options{MaxPerClient: 3, MaxPerNetwork: 1})
	t.Cleanup(f.Close)
	cfg := testConfig
	cfg.Feed = f
	cfg.ClientGrouping = kv.Grouping{V4: 16}
	svc := policy.New(ttlstore.New(ttlstore.Options{}), nil, cfg, nil)

	a, err := svc.Watch(policy.Caller{IP: netip.MustParseAddr("10.1.1.1")}, "", 0, false)
	require.NoError(t, err)
	defer a.Close()
	_, err = svc.Watch(policy.Caller{IP: netip.MustParseAddr("10.1.2.1")}, "", 0, false)
	pe := policyErr(t, err, policy.KindTooManyWatches)
	assert.Contains(t, pe.Message, "from your network")
}

// The rate limit and the per-client watcher cap count a request under the
// one client key Service.Caller derives, so they agree on who one client
// is: for IPv4, an IPv6 /64, IPv4-mapped IPv6 and zoned addresses, under
// the default grouping and a configured one.
func TestLimiterAndWatchCapGroupAlike(t *testing.T) {
	for _, tc := range []struct {
		g    kv.Grouping
		a, b string
		same bool
	}{
		{kv.Grouping{}, "192.0.2.1", "192.0.2.1", true},
		{kv.Grouping{}, "192.0.2.1", "192.0.2.2", false},
		{kv.Grouping{}, "2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true},
		{kv.Grouping{}, "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{kv.Grouping{}, "::ffff:192.0.2.1", "192.0.2.1", true},
		{kv.Grouping{}, "::ffff:192.0.2.1", "::ffff:192.0.2.2", false},
		{kv.Grouping{}, "fe80::1%eth0", "fe80::1", true},
		{kv.Grouping{}, "fe80::1%eth0", "fe80::2%eth1", true},
		{kv.Grouping{}, "fe80::1%eth0", "fe80:0:0:1::1%eth0", false},
		{kv.Grouping{V4: 24, V6: 48}, "192.0.2.1", "192.0.2.200", true},
		{kv.Grouping{V4: 24, V6: 48}, "::ffff:192.0.2.1", "192.0.2.77", true},
		{kv.Grouping{V4: 24, V6: 48}, "192.0.2.1", "192.0.3.1", false},
		{kv.Grouping{V4: 24, V6: 48}, "2001:db8:1:2::1", "2001:db8:1:3::1%eth0", true},
		{kv.Grouping{V4: 24, V6: 48}, "2001:db8:1::1", "2001:db8:2::1", false},
		{kv.Grouping{V4: 32, V6: 128}, "2001:db8::1", "2001:db8::2", false},
	} {
		name := tc.a + " " + tc.b
		a, b := netip.MustParseAddr(tc.a), netip.MustParseAddr(tc.b)
		cfg := testConfig
		cfg.ClientGrouping = tc.g

		// One token per hour: a's read spends it, and b's is refused when
		// b is a's client.
		lim, err := limiter.New(limiter.Config{Tokens: 1, Window: time.Hour})
		require.NoError(t, err)
		svc := policy.New(ttlstore.New(ttlstore.Options{}), lim, cfg, nil)
		_, err = svc.Get(svc.Caller(a, false), "k")
		policyErr(t, err, policy.KindNotFound)
		_, err = svc.Get(svc.Caller(b, false), "k")
		if tc.same {
			policyErr(t, err, policy.KindRateLimited)
		} else {
			policyErr(t, err, policy.KindNotFound)
		}

		// One watch per client: b's is refused when b is a's client.
		f := feed.New(feed.Options{MaxPerClient: 1})
		cfg.Feed = f
		svc = policy.New(ttlstore.New(ttlstore.Options{}), nil, cfg, nil)
		sa, err := svc.Watch(svc.Caller(a, false), "", 0, false)
		require.NoError(t, err, name)
		sb, err := svc.Watch(svc.Caller(b, false), "", 0, false)
		if tc.same {
			pe := policyErr(t, err, policy.KindTooManyWatches)
			assert.Contains(t, pe.Message, "from your address", name)
		} else {
			require.NoError(t, err, name)
			sb.Close()
		}
		sa.Close()
		f.Close()
	}
}

// A Caller built without Service.Caller counts as the client Service.Caller
// would have made it.
func TestCallerBuiltByHandGetsTheSameKey(t *testing.T) {
	lim, err := limiter.New(limiter.Config{Tokens: 1, Window: time.Hour})
	require.NoError(t, err)
	svc := policy.New(ttlstore.New(ttlstore.Options{}), lim, testConfig, nil)
	_, err = svc.Get(svc.Caller(netip.MustParseAddr("2001:db8::1"), false), "k")
	policyErr(t, err, policy.KindNotFound)
	_, err = svc.Get(policy.Caller{IP: netip.MustParseAddr("2001:db8::2")}, "k")
	policyErr(t, err, policy.KindRateLimited)
	_, err = svc.Get(policy.Caller{IP: netip.MustParseAddr("2001:db8:0:1::1")}, "k")
	policyErr(t, err, policy.KindNotFound)
}
