package handlers_test

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/rendezvous-kv/rendezvous/clientip"
)

// proxy trusts the proxies of 10.0.0.0/8.
var proxy = clientip.Resolver{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}

// Over HTTP, the resolved address is what X-Client-Ip shows and which ip/
// namespace a write lands in.
func TestForwardedClientOverHTTP(t *testing.T) {
	e := newEnvWith(t, options{trusted: proxy})

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
