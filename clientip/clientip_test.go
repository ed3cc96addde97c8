package clientip_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/rendezvous-kv/rendezvous/clientip"
)

// proxies trusts one IPv4 and one IPv6 proxy network.
var proxies = clientip.Resolver{Trusted: []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("2001:db8:ffff::/48"),
}}

func TestClientIPResolve(t *testing.T) {
	tests := []struct {
		name   string
		cip    clientip.Resolver
		remote string
		xff    []string // one entry per header line
		xreal  string
		want   string
	}{
		// Without trusted proxies the TCP peer is the client, whatever the
		// headers say.
		{name: "peer v4", remote: "198.51.100.7:1234", want: "198.51.100.7"},
		{name: "peer v6", remote: "[2001:db8::1]:1234", want: "2001:db8::1"},
		{name: "peer v6 long form", remote: "[2001:db8:0:0:0:0:0:1]:1234", want: "2001:db8::1"},
		{name: "peer mapped", remote: "[::ffff:203.0.113.9]:5555", want: "203.0.113.9"},
		{name: "peer zone", remote: "[fe80::1%eth0]:5555", want: "fe80::1"},
		{name: "peer without port", remote: "198.51.100.7", want: "198.51.100.7"},
		{name: "no proxies: xff ignored", remote: "198.51.100.7:1", xff: []string{"1.2.3.4"}, want: "198.51.100.7"},
		{name: "no proxies: x-real-ip ignored", remote: "198.51.100.7:1", xreal: "1.2.3.4", want: "198.51.100.7"},
		{name: "untrusted peer: xff ignored", cip: proxies, remote: "198.51.100.7:1", xff: []string{"1.2.3.4"}, want: "198.51.100.7"},
		{name: "untrusted peer: trusted-looking xff ignored", cip: proxies, remote: "198.51.100.7:1", xff: []string{"1.2.3.4, 10.0.0.1"}, want: "198.51.100.7"},
		{name: "untrusted peer: x-real-ip ignored", cip: proxies, remote: "198.51.100.7:1", xreal: "1.2.3.4", want: "198.51.100.7"},
		{name: "untrusted v6 peer: xff ignored", cip: proxies, remote: "[2001:db8::1]:1", xff: []string{"1.2.3.4"}, want: "2001:db8::1"},

		// From a trusted proxy, the right-most untrusted hop is the client.
		{name: "trusted: single hop", cip: proxies, remote: "10.0.0.1:80", xff: []string{"203.0.113.5"}, want: "203.0.113.5"},
		{name: "trusted: spoofed left hops ignored", cip: proxies, remote: "10.0.0.1:80", xff: []string{"6.6.6.6, 203.0.113.5"}, want: "203.0.113.5"},
		{name: "trusted: proxy chain skipped", cip: proxies, remote: "10.0.0.1:80", xff: []string{"6.6.6.6, 203.0.113.5, 10.1.2.3, 10.0.0.9"}, want: "203.0.113.5"},
		{name: "trusted: several header lines", cip: proxies, remote: "10.0.0.1:80", xff: []string{"6.6.6.6", "203.0.113.5", "10.0.0.2"}, want: "203.0.113.5"},
		{name: "trusted: no spaces", cip: proxies, remote: "10.0.0.1:80", xff: []string{"6.6.6.6,203.0.113.5"}, want: "203.0.113.5"},
		{name: "trusted: v6 hop", cip: proxies, remote: "10.0.0.1:80", xff: []string{"2001:DB8:1::5"}, want: "2001:db8:1::5"},
		{name: "trusted: mapped hop unmapped", cip: proxies, remote: "10.0.0.1:80", xff: []string{"::ffff:203.0.113.5"}, want: "203.0.113.5"},
		{name: "trusted: v6 proxy", cip: proxies, remote: "[2001:db8:ffff::1]:80", xff: []string{"203.0.113.5"}, want: "203.0.113.5"},
		{name: "trusted: mapped proxy", cip: proxies, remote: "[::ffff:10.0.0.1]:80", xff: []string{"203.0.113.5"}, want: "203.0.113.5"},
		{name: "trusted: all hops trusted", cip: proxies, remote: "10.0.0.1:80", xff: []string{"10.0.0.3, 10.0.0.2"}, want: "10.0.0.3"},
		{name: "trusted: garbled hop stops at last proxy", cip: proxies, remote: "10.0.0.1:80", xff: []string{"203.0.113.5, garbage, 10.0.0.2"}, want: "10.0.0.2"},
		{name: "trusted: garbled right-most", cip: proxies, remote: "10.0.0.1:80", xff: []string{"203.0.113.5, nonsense"}, want: "10.0.0.1"},
		{name: "trusted: xff wins over x-real-ip", cip: proxies, remote: "10.0.0.1:80", xff: []string{"203.0.113.5"}, xreal: "1.2.3.4", want: "203.0.113.5"},
		{name: "trusted: x-real-ip", cip: proxies, remote: "10.0.0.1:80", xreal: "203.0.113.6", want: "203.0.113.6"},
		{name: "trusted: x-real-ip v6", cip: proxies, remote: "10.0.0.1:80", xreal: " 2001:db8:0::9 ", want: "2001:db8::9"},
		{name: "trusted: x-real-ip mapped", cip: proxies, remote: "10.0.0.1:80", xreal: "::ffff:203.0.113.6", want: "203.0.113.6"},
		{name: "trusted: bad x-real-ip", cip: proxies, remote: "10.0.0.1:80", xreal: "not an ip", want: "10.0.0.1"},
		{name: "trusted: no headers", cip: proxies, remote: "10.0.0.1:80", want: "10.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if tc.xreal != "" {
				r.Header.Set("X-Real-IP", tc.xreal)
			}
			assert.Equal(t, netip.MustParseAddr(tc.want), tc.cip.Resolve(r))
		})
	}
}

func TestClientIPUnparsablePeer(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "pipe"
	assert.False(t, clientip.Resolver{}.Resolve(r).IsValid())
}
