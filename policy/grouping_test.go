package policy_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/feed"
	"github.com/rendezvous-kv/rendezvous/kv"
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
