package kv_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"

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
func TestClientKey(t *testing.T) {
	for _, tc := range []struct {
		ip     string
		v4, v6 int
		want   string
	}{
		{"192.0.2.77", 0, 0, "192.0.2.77/32"},
		{"::ffff:192.0.2.77", 0, 0, "192.0.2.77/32"},
		{"::ffff:192.0.2.77", 24, 128, "192.0.2.0/24"},
		{"2001:db8:1:2:3:4:5:6", 0, 0, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:3:4:5:6", 0, 48, "2001:db8:1::/48"},
		{"fe80::1%eth0", 0, 128, "fe80::1/128"},
		{"fe80::1:2:3:4%eth0", 0, 0, "fe80::/64"},
		{"192.0.2.77", 40, 0, "192.0.2.77/32"},
		{"2001:db8::1", 0, 200, "2001:db8::1/128"},
	} {
		assert.Equal(t, netip.MustParsePrefix(tc.want), kv.ClientKey(netip.MustParseAddr(tc.ip), tc.v4, tc.v6), "%s /%d /%d", tc.ip, tc.v4, tc.v6)
	}
	assert.Equal(t, netip.Prefix{}, kv.ClientKey(netip.Addr{}, 0, 0), "no address: one shared group")
}
