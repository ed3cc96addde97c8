package kv_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/kv"
)

func TestCanonicalIP(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.7":          "198.51.100.7",
		"::ffff:203.0.113.9":    "203.0.113.9",
		"2001:0db8:0:0:0:0:0:1": "2001:db8::1",
		"fe80::1%eth0":          "fe80::1",
		"::1":                   "::1",
	} {
		assert.Equal(t, want, kv.CanonicalIP(netip.MustParseAddr(in)).String(), in)
	}
	assert.False(t, kv.CanonicalIP(netip.Addr{}).IsValid())
}

// A client's group is taken from its canonical address: the mapped and
// the zoned forms of an address land in the plain form's group.
func TestGroupingGroup(t *testing.T) {
	for _, tc := range []struct {
		ip     string
		v4, v6 int
		want   string
	}{
		{"192.0.2.77", 0, 0, "192.0.2.77/32"},
		{"192.0.2.77", 24, 0, "192.0.2.0/24"},
		{"::ffff:192.0.2.77", 0, 0, "192.0.2.77/32"},
		{"::ffff:192.0.2.77", 24, 128, "192.0.2.0/24"},
		{"2001:db8:1:2:3:4:5:6", 0, 0, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:3:4:5:6", 0, 48, "2001:db8:1::/48"},
		{"fe80::1%eth0", 0, 128, "fe80::1/128"},
		{"fe80::1:2:3:4%eth0", 0, 0, "fe80::/64"},
		// Out-of-range lengths fall back rather than failing.
		{"192.0.2.77", 40, 0, "192.0.2.77/32"},
		{"192.0.2.77", -3, 0, "192.0.2.77/32"},
		{"2001:db8::1", 0, 200, "2001:db8::1/128"},
	} {
		g := kv.Grouping{V4: tc.v4, V6: tc.v6}
		assert.Equal(t, netip.MustParsePrefix(tc.want), g.Group(netip.MustParseAddr(tc.ip)), "%s %+v", tc.ip, g)
	}
	assert.Equal(t, netip.Prefix{}, kv.Grouping{}.Group(netip.Addr{}), "no address: one shared group")
}

// Validate refuses every length a prefix of its family cannot have, zero
// included, and says which one and why.
func TestGroupingValidate(t *testing.T) {
	for _, g := range []kv.Grouping{{V4: 1, V6: 1}, {V4: 32, V6: 128}, {V4: 24, V6: 48}} {
		assert.NoError(t, g.Validate(), "%+v", g)
	}
	for _, tc := range []struct {
		g      kv.Grouping
		field  string
		bits   int
		reason error
	}{
		{kv.Grouping{V4: 0, V6: 64}, "V4", 0, kv.ErrIPv4PrefixLength},
		{kv.Grouping{V4: 33, V6: 64}, "V4", 33, kv.ErrIPv4PrefixLength},
		{kv.Grouping{V4: -1, V6: 0}, "V4", -1, kv.ErrIPv4PrefixLength},
		{kv.Grouping{V4: 32, V6: 0}, "V6", 0, kv.ErrIPv6PrefixLength},
		{kv.Grouping{V4: 32, V6: 129}, "V6", 129, kv.ErrIPv6PrefixLength},
	} {
		err := tc.g.Validate()
		var ge *kv.GroupingError
		require.ErrorAs(t, err, &ge, "%+v", tc.g)
		assert.Equal(t, tc.field, ge.Field)
		assert.Equal(t, tc.bits, ge.Bits)
		assert.ErrorIs(t, err, tc.reason)
		assert.Equal(t, "kv: invalid Grouping."+tc.field+" "+fmt.Sprint(tc.bits)+": "+tc.reason.Error(), err.Error())
	}
}
