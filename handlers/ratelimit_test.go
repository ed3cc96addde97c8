package handlers_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The limiter reads the wall clock. A test spends the default budget (17
// tokens, refilled 17 a minute) in well under a second, during which less
// than a third of a token comes back, so the counts below are exact.

// assertLimited checks a 429 and its headers.
func assertLimited(t testing.TB, rec *httptest.ResponseRecorder, remaining int) {
	t.Helper()
	assertError(t, rec, http.StatusTooManyRequests, "rate limit")
	ra, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	if assert.NoError(t, err, "Retry-After %q", rec.Header().Get("Retry-After")) {
		assert.GreaterOrEqual(t, ra, 1)
		assert.LessOrEqual(t, ra, 60, "an empty bucket refills within a minute")
	}
	assert.Equal(t, "17", rec.Header().Get("X-RateLimit-Limit"))
	assert.Equal(t, strconv.Itoa(remaining), rec.Header().Get("X-RateLimit-Remaining"))
}

func TestRateLimitWrites(t *testing.T) {
	e := newEnvWith(t, options{rate: defaultRate()})
	for i := range 5 { // 5 writes at 3 tokens: 15 of 17
		assertOK(t, e.post("/set/k"+strconv.Itoa(i), "v"), "OK")
	}
	rec := e.post("/set/over", "v")
	assertLimited(t, rec, 2)
	assert.Equal(t, peerIP, rec.Header().Get("X-Client-Ip"))
	// A missing token at 17 a minute takes about 3.5 s: rounded up.
	assert.Equal(t, "4", rec.Header().Get("Retry-After"))
	_, stored := e.store.Get("over")
	assert.False(t, stored, "a refused write writes nothing")

	// The refused write spent nothing: the 2 tokens left pay for 2 reads.
	assertValue(t, e.get("/get/k0"), http.StatusOK, "v", "")
	assertValue(t, e.get("/get/k1"), http.StatusOK, "v", "")
	assertLimited(t, e.get("/get/k2"), 0)

	// Every write operation is limited.
	for _, op := range []string{"set", "los", "cas", "casoc"} {
		assertLimited(t, e.post("/"+op+"/k0", "v", "X-Expected-Value", "v"), 0)
	}
	assertLimited(t, e.post("/set/ip/x", "v"), 0)
	assertLimited(t, e.do(req{method: http.MethodHead, target: "/get/k0"}), 0)
}

func TestRateLimitReads(t *testing.T) {
	e := newEnvWith(t, options{rate: defaultRate()})
	for range 17 {
		assert.Equal(t, http.StatusNotFound, e.get("/get/missing").Code)
	}
	rec := e.get("/get/missing")
	assertLimited(t, rec, 0)
	assert.Equal(t, "4", rec.Header().Get("Retry-After"))

	// Repeated refusals do not push the client further back.
	for range 5 {
		rec = e.get("/get/missing")
		assertLimited(t, rec, 0)
		assert.Equal(t, "4", rec.Header().Get("Retry-After"))
	}
}

func TestRateLimitNeedsWholeWriteCost(t *testing.T) {
	e := newEnvWith(t, options{rate: defaultRate()})
	for range 15 {
		e.get("/get/x")
	}
	// 2 tokens left: a write (3) is refused, reads (1) are not.
	assertLimited(t, e.post("/set/k", "v"), 2)
	assert.Equal(t, http.StatusNotFound, e.get("/get/x").Code)
	assert.Equal(t, http.StatusNotFound, e.get("/get/x").Code)
	assertLimited(t, e.get("/get/x"), 0)
}

func TestRateLimitPerClient(t *testing.T) {
	e := newEnvWith(t, options{rate: defaultRate()})
	exhaust(t, e, peer)
	assertLimited(t, e.get("/get/x"), 0)

	// Other IPv4 addresses, even neighbours, have their own budget.
	assert.Equal(t, http.StatusNotFound, e.do(req{target: "/get/x", remote: "198.51.100.8:1234"}).Code)
	// The same address on another port or mapped into IPv6 does not.
	assertLimited(t, e.do(req{target: "/get/x", remote: "198.51.100.7:9999"}), 0)
	assertLimited(t, e.do(req{target: "/get/x", remote: "[::ffff:198.51.100.7]:9999"}), 0)
}

func TestRateLimitIPv6SharesSlash64(t *testing.T) {
	e := newEnvWith(t, options{rate: defaultRate()})
	exhaust(t, e, "[2001:db8:1:2::1]:1234")
	for _, remote := range []string{
		"[2001:db8:1:2::1]:1",
		"[2001:db8:1:2::2]:1",
		"[2001:db8:1:2:ffff:ffff:ffff:ffff]:1",
	} {
		rec := e.do(req{target: "/get/x", remote: remote})
		assertLimited(t, rec, 0)
	}
	for _, remote := range []string{"[2001:db8:1:3::1]:1", "[2001:db8:2:2::1]:1"} {
		assert.Equal(t, http.StatusNotFound, e.do(req{target: "/get/x", remote: remote}).Code, remote)
	}
}

func TestRateLimitCannotBeDodgedWithHeaders(t *testing.T) {
	// No trusted proxies, and a configuration that trusts someone else.
	for name, o := range map[string]options{
		"no proxies":     {rate: defaultRate()},
		"untrusted peer": {rate: defaultRate(), trusted: proxy},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnvWith(t, o)
			exhaust(t, e, peer)
			for i := range 5 {
				ip := "203.0.113." + strconv.Itoa(i+1)
				rec := e.do(req{target: "/get/x", header: map[string]string{"X-Forwarded-For": ip, "X-Real-IP": ip}})
				assertLimited(t, rec, 0)
				assert.Equal(t, peerIP, rec.Header().Get("X-Client-Ip"))
			}
		})
	}
}

func TestRateLimitBehindTrustedProxy(t *testing.T) {
	e := newEnvWith(t, options{rate: defaultRate(), trusted: proxy})
	from := func(client string) req {
		return req{target: "/get/x", remote: "10.0.0.1:80", header: map[string]string{"X-Forwarded-For": client}}
	}
	for range 17 {
		assert.Equal(t, http.StatusNotFound, e.do(from("203.0.113.1")).Code)
	}
	assertLimited(t, e.do(from("203.0.113.1")), 0)
	// Another client behind the same proxy has its own budget, and so has
	// the proxy itself.
	assert.Equal(t, http.StatusNotFound, e.do(from("203.0.113.2")).Code)
	assert.Equal(t, http.StatusNotFound, e.do(req{target: "/get/x", remote: "10.0.0.1:80"}).Code)
}

// Requests the router refuses before reaching the policy cost nothing.
func TestRateLimitNotChargedForRoutingErrors(t *testing.T) {
	e := newEnvWith(t, options{rate: defaultRate()})
	for range 30 {
		assertError(t, e.get("/nope"), http.StatusNotFound, "no such endpoint")
		assertError(t, e.do(req{method: http.MethodPatch, target: "/get/x"}), http.StatusMethodNotAllowed, "")
		require.Equal(t, http.StatusOK, e.get("/").Code)
	}
	for range 5 {
		assertOK(t, e.post("/set/k", "v"), "OK")
	}
}

// exhaust spends remote's whole budget with reads.
func exhaust(t *testing.T, e *env, remote string) {
	t.Helper()
	for i := range 17 {
		rec := e.do(req{target: "/get/x", remote: remote})
		require.Equal(t, http.StatusNotFound, rec.Code, "read %d: %s", i, strings.TrimSpace(rec.Body.String()))
	}
}
