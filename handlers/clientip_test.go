package handlers_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/rendezvous-kv/rendezvous/handlers"
)

// proxies trusts one IPv4 and one IPv6 proxy network.
var proxies = handlers.ClientIP{Trusted: []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("2001:db8:ffff::/48"),
}}

func TestClientIPResolve(t *testing.T) {
	tests := []struct {
		name   string
		cip    handlers.ClientIP
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
	assert.False(t, handlers.ClientIP{}.Resolve(r).IsValid())
}

// Over HTTP, the resolved address is what X-Client-Ip shows and which ip/
// namespace a write lands in.
func TestForwardedClientOverHTTP(t *testing.T) {
	e := newEnvWith(t, options{trusted: proxies})

	// Through the trusted proxy.
	rec := e.do(req{method: http.MethodPost, target: "/set/ip/ssh", body: strings.NewReader("22"), remote: "10.0.0.1:80",
		header: map[string]string{"X-Forwarded-For": "6.6.6.6, 203.0.113.5"}})
	assertOK(t, rec, "203.0.113.5")
	assert.Equal(t, "203.0.113.5", rec.Header().Get("X-Client-Ip"))
	assertValue(t, e.get("/get/ip/203.0.113.5/ssh"), http.StatusOK, "22", "")

	rec = e.do(req{method: http.MethodPost, target: "/set/ip/ssh", body: strings.NewReader("23"), remote: "10.0.0.1:80",
		header: map[string]string{"X-Real-IP": "2001:db8::42"}})
	assertOK(t, rec, "2001:db8::42")
	assertValue(t, e.get("/get/ip/2001:db8::42/ssh"), http.StatusOK, "23", "")

	// An untrusted caller cannot write into someone else's ip/ space.
	for _, h := range []map[string]string{
		{"X-Forwarded-For": "203.0.113.5"},
		{"X-Real-IP": "203.0.113.5"},
		{"X-Forwarded-For": "203.0.113.5, 10.0.0.1", "X-Real-IP": "203.0.113.5"},
	} {
		rec = e.do(req{method: http.MethodPost, target: "/set/ip/ssh", body: strings.NewReader("evil"), header: h})
		assertOK(t, rec, peerIP)
		assert.Equal(t, peerIP, rec.Header().Get("X-Client-Ip"))
	}
	assertValue(t, e.get("/get/ip/203.0.113.5/ssh"), http.StatusOK, "22", "")
	assertValue(t, e.get("/get/ip/"+peerIP+"/ssh"), http.StatusOK, "evil", "")
}

func TestForwardedHeadersIgnoredByDefault(t *testing.T) {
	e := newEnv(t) // no trusted proxies at all
	rec := e.do(req{method: http.MethodPost, target: "/set/ip/x", body: strings.NewReader("v"), remote: "10.0.0.1:80",
		header: map[string]string{"X-Forwarded-For": "203.0.113.5", "X-Real-IP": "203.0.113.6"}})
	assertOK(t, rec, "10.0.0.1")
	assert.Equal(t, "10.0.0.1", rec.Header().Get("X-Client-Ip"))
}
