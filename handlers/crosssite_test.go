package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A page of another site that the server does not trust with ip/ writes,
// and one it does (Config.IPWriteOrigins).
const (
	evilOrigin   = "https://evil.example"
	listedOrigin = "https://app.example"
)

// ipWrite is one way to write or delete an ip/ key of the default peer,
// which already holds ip/<peer>/ssh = "mine".
type ipWrite struct {
	name, method, target, body string
	header                     []string
}

var ipWrites = []ipWrite{
	{name: "set", method: http.MethodPost, target: "/set/ip/ssh", body: "attacker:22"},
	{name: "set new key", method: http.MethodPost, target: "/set/ip/new?ttl=60", body: "attacker:22"},
	{name: "set escaped", method: http.MethodPost, target: "/set/ip%2Fssh", body: "attacker:22"},
	{name: "put", method: http.MethodPut, target: "/set/ip/ssh", body: "attacker:22"},
	{name: "los", method: http.MethodPost, target: "/los/ip/new", body: "attacker:22"},
	{name: "cas", method: http.MethodPost, target: "/cas/ip/ssh", body: "attacker:22", header: []string{"X-Expected-Value", "mine"}},
	{name: "casoc", method: http.MethodPost, target: "/casoc/ip/ssh", body: "attacker:22", header: []string{"X-Expected-Value", "mine"}},
	{name: "casoc new key", method: http.MethodPost, target: "/casoc/ip/new", body: "attacker:22", header: []string{"X-Expected-Value", "x"}},
	{name: "del", method: http.MethodPost, target: "/del/ip/ssh"},
	{name: "DELETE", method: http.MethodDelete, target: "/get/ip/ssh"},
}

func (w ipWrite) request(origin string) req {
	h := pairs(append([]string{"Origin", origin, "Content-Type", "text/plain"}, w.header...))
	return req{method: w.method, target: w.target, body: strings.NewReader(w.body), header: h}
}

// newIPEnv returns a server whose peer has published ip/<peer>/ssh.
func newIPEnv(t *testing.T, cors string) *env {
	e := newEnvWith(t, options{cors: cors, origins: []string{listedOrigin}})
	assertOK(t, e.post("/set/ip/ssh", "mine"), peerIP)
	return e
}

// assertUntouched checks that the peer's published address is as it was
// and that nothing else was stored.
func assertUntouched(t *testing.T, e *env) {
	t.Helper()
	assertValue(t, e.get("/get/ip/"+peerIP+"/ssh"), http.StatusOK, "mine", "")
	assert.Equal(t, 1, e.store.Len(), "nothing was created")
}

// A page of another site (a CORS simple request: no preflight) cannot
// write or delete its visitor's ip/ keys with any write endpoint, whether
// CORS is on or off; the same request from a listed origin succeeds, so
// the refusal is for the origin alone.
func TestCrossSiteIPWritesRefused(t *testing.T) {
	for _, cors := range []string{"*", ""} {
		for _, w := range ipWrites {
			t.Run("cors="+cors+"/"+w.name, func(t *testing.T) {
				e := newIPEnv(t, cors)
				rec := e.do(w.request(evilOrigin))
				assertError(t, rec, http.StatusForbidden, "ip/ keys cannot be written or deleted by a page of another web site")
				assertUntouched(t, e)

				rec = e.do(w.request(listedOrigin))
				assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			})
		}
	}
}

// Which origins count as this server's own pages or listed ones. The test
// requests go to Host example.com.
func TestCrossSiteOrigins(t *testing.T) {
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"http://example.com", true},  // the landing page, same origin
		{"https://example.com", true}, // the same, behind a TLS proxy
		{listedOrigin, true},
		{"https://APP.example", true},
		{evilOrigin, false},
		{"null", false}, // sandboxed frames, file: pages
		{"", false},
		{"http://example.com:8080", false},
		{"http://example.com.evil.example", false},
		{"http://evil.example/example.com", false},
		{"example.com", false},
		{"http://app.example", false},
		{"https://app.example:8443", false},
		{"https://sub.app.example", false},
	} {
		t.Run(tc.origin, func(t *testing.T) {
			e := newIPEnv(t, "*")
			rec := e.do(ipWrites[0].request(tc.origin))
			if tc.ok {
				assertOK(t, rec, peerIP)
				assertValue(t, e.get("/get/ip/"+peerIP+"/ssh"), http.StatusOK, "attacker:22", "")
				return
			}
			assertError(t, rec, http.StatusForbidden, "ip/")
			assertUntouched(t, e)
		})
	}
}

// A preflight for an ip/ write from another site's page is not approved,
// so a browser never sends the request; reads of ip/ keys and writes of
// other keys are approved as before, and so are the server's own and
// listed pages.
func TestCrossSitePreflight(t *testing.T) {
	e := newIPEnv(t, "*")
	preflight := func(path, method, origin string) *http.Request {
		r := httptestRequest(http.MethodOptions, path, nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", method)
		r.Header.Set("Access-Control-Request-Headers", "content-type")
		return r
	}
	for _, w := range ipWrites {
		t.Run("refused/"+w.name, func(t *testing.T) {
			rec := e.serve(preflight(w.target, w.method, evilOrigin))
			assertError(t, rec, http.StatusForbidden, "ip/")
			for name := range rec.Header() {
				assert.False(t, strings.HasPrefix(name, "Access-Control-Allow-"), "approval header %s", name)
			}
		})
	}
	for _, tc := range []struct{ name, path, method, origin string }{
		{"other key", "/set/room/a", http.MethodPost, evilOrigin},
		{"delete other key", "/get/room/a", http.MethodDelete, evilOrigin},
		{"read ip/ key", "/get/ip/" + peerIP + "/ssh", http.MethodGet, evilOrigin},
		{"same origin", "/set/ip/ssh", http.MethodPost, "http://example.com"},
		{"listed", "/set/ip/ssh", http.MethodPost, listedOrigin},
	} {
		t.Run("approved/"+tc.name, func(t *testing.T) {
			rec := e.serve(preflight(tc.path, tc.method, tc.origin))
			assert.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
			assert.Equal(t, "*", rec.Header().Get("Access-Control-Allow-Origin"))
			assert.Contains(t, rec.Header().Get("Access-Control-Allow-Methods"), tc.method)
		})
	}
	assertUntouched(t, e)
}

// Another site's page still reads everything, ip/ keys included, and
// writes other keys, with CORS headers as before.
func TestCrossSiteReadsAndOtherWrites(t *testing.T) {
	e := newIPEnv(t, "*")
	evil := map[string]string{"Origin": evilOrigin}
	for _, tc := range []struct {
		r    req
		body string
	}{
		{req{target: "/get/ip/" + peerIP + "/ssh", header: evil}, "mine"},
		{req{target: "/list/ip/", header: evil}, "ip/" + peerIP + "/ssh\n"},
		{req{method: http.MethodPost, target: "/set/room/a", body: strings.NewReader("v"), header: evil}, "OK"},
		{req{method: http.MethodPost, target: "/cas/room/a", body: strings.NewReader("w"), header: map[string]string{"Origin": evilOrigin, "X-Expected-Value": "v"}}, "OK"},
		{req{method: http.MethodPost, target: "/del/room/a", header: evil}, "OK"},
		{req{target: "/ip", header: evil}, peerIP + "\n"},
	} {
		t.Run(tc.r.method+" "+tc.r.target, func(t *testing.T) {
			rec := e.do(tc.r)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Equal(t, tc.body, rec.Body.String())
			assert.Equal(t, "*", rec.Header().Get("Access-Control-Allow-Origin"))
		})
	}
	assertUntouched(t, e)
}
