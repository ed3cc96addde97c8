package handlers_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/limiter"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// errorCase is one refusal a client can provoke: the server it needs, the
// requests that set it up, and the request refused.
type errorCase struct {
	code   string
	status int
	msg    string // the whole message
	opts   options
	setup  func(t *testing.T, c *http.Client, url string)
	method string
	path   string
	body   string
	header []string
	// check looks at the refusal's own headers (Retry-After, Allow).
	check func(t *testing.T, h http.Header)
}

// errorCases holds one refusal of every code a server without a change
// feed can give (the feed's own are in watch_test.go).
func errorCases() []errorCase {
	set := func(path, body string, header ...string) func(*testing.T, *http.Client, string) {
		return func(t *testing.T, c *http.Client, url string) {
			res := send(t, c, http.MethodPost, url+path, body, header...)
			require.Equal(t, http.StatusOK, res.status, res.body)
		}
	}
	return []errorCase{
		{code: "bad_request", status: 400, method: "POST", path: "/set/k?ttl=soon", body: "v",
			msg: `ttl "soon" is not a duration (like 90s, 30m, 1h30m) or a number of seconds`},
		{code: "too_large", status: 400, method: "POST", path: "/set/k", body: strings.Repeat("v", maxValue+1),
			msg: "value too large: at most 1000 bytes"},
		{code: "forbidden", status: 403, method: "POST", path: "/set/ip/ssh", body: "v", header: []string{"Origin", evilOrigin},
			msg: "ip/ keys cannot be written or deleted by a page of another web site, which acts from its visitor's address"},
		{code: "owned", status: 403, setup: set("/set/mine", "v", "X-Owner-Secret", "s"), method: "POST", path: "/set/mine", body: "w",
			msg: "key is owned: wrong or missing owner secret"},
		{code: "key_not_found", status: 404, method: "GET", path: "/get/missing", msg: "key not found"},
		{code: "rate_limited", status: 429, opts: options{rate: &limiter.Config{Tokens: 3, Window: time.Minute}},
			setup: set("/set/a", "v"), method: "GET", path: "/get/a", msg: "rate limit exceeded, retry after 20s",
			check: func(t *testing.T, h http.Header) {
				assert.Equal(t, "20", h.Get("Retry-After"))
				assert.Equal(t, "3", h.Get("X-RateLimit-Limit"))
				assert.Equal(t, "0", h.Get("X-RateLimit-Remaining"))
			}},
		{code: "store_full", status: 507, opts: options{maxKeys: 1}, setup: set("/set/a", "v"),
			method: "POST", path: "/set/b", body: "v", msg: "store is full"},
		{code: "storage_unavailable", status: 503,
			opts:   options{onChange: func(ttlstore.Change) error { return errors.New("disk full") }},
			method: "POST", path: "/set/a", body: "v", msg: "storage unavailable: disk full"},
		{code: "storage_unavailable", status: 503, opts: options{ready: func() error { return errors.New("journal stalled") }},
			method: "GET", path: "/readyz", msg: "not ready: journal stalled"},
		{code: "precondition_failed", status: 412, setup: set("/set/a", "v"), method: "POST", path: "/set/a", body: "w",
			header: []string{"If-Match", `"999"`}, msg: "precondition failed: the key changed or does not exist"},
		{code: "watch_disabled", status: 503, method: "GET", path: "/watch/",
			msg: "watching and waiting are not enabled on this server"},
		{code: "watch_disabled", status: 503, method: "GET", path: "/get/a?wait=5s",
			msg: "watching and waiting are not enabled on this server"},
		{code: "unknown_endpoint", status: 404, method: "GET", path: "/nope", msg: "no such endpoint; see / for usage"},
		{code: "method_not_allowed", status: 405, method: "PATCH", path: "/get/k", msg: "method not allowed",
			check: func(t *testing.T, h http.Header) { assert.Equal(t, "GET, HEAD, DELETE", h.Get("Allow")) }},
	}
}

// Every refusal carries its code in X-Error-Code, with the status and the
// one line of text it has always had.
func TestErrorCodesOverTheWire(t *testing.T) {
	for _, tc := range errorCases() {
		t.Run(tc.code+" "+tc.method+" "+tc.path, func(t *testing.T) {
			ws := startWire(t, newEnvWith(t, tc.opts))
			c := ws.Client()
			c.Timeout = 5 * time.Second
			if tc.setup != nil {
				tc.setup(t, c, ws.URL)
			}
			res := send(t, c, tc.method, ws.URL+tc.path, tc.body, tc.header...)
			assert.Equal(t, tc.status, res.status, res.body)
			assert.Equal(t, tc.code, res.header.Get("X-Error-Code"))
			assert.Equal(t, "nosniff", res.header.Get("X-Content-Type-Options"))
			assert.Equal(t, "127.0.0.1", res.header.Get("X-Client-Ip"))
			assert.Equal(t, "text/plain; charset=utf-8", res.header.Get("Content-Type"))
			assert.Equal(t, tc.msg+"\n", res.body)
			if tc.check != nil {
				tc.check(t, res.header)
			}
		})
	}
}

// A HEAD gets a refusal's status and code without a body.
func TestErrorHead(t *testing.T) {
	e := newEnv(t)
	ws := startWire(t, e)
	res := send(t, ws.Client(), http.MethodHead, ws.URL+"/get/missing", "")
	assert.Equal(t, http.StatusNotFound, res.status)
	assert.Equal(t, "key_not_found", res.header.Get("X-Error-Code"))
	assert.Empty(t, res.body)
}

// A lost race answers the winner's raw value, with its code.
func TestConflictCode(t *testing.T) {
	e := newEnv(t)
	ws := startWire(t, e)
	c := ws.Client()
	won := send(t, c, http.MethodPost, ws.URL+"/los/leader?ttl=1m", "node-a")
	require.Equal(t, http.StatusOK, won.status)
	res := send(t, c, http.MethodPost, ws.URL+"/los/leader", "node-b")
	assert.Equal(t, http.StatusConflict, res.status)
	assert.Equal(t, "node-a", res.body)
	assert.Equal(t, "application/octet-stream", res.header.Get("Content-Type"))
	assert.Equal(t, "conflict", res.header.Get("X-Error-Code"))
	assert.Equal(t, won.header.Get("ETag"), res.header.Get("ETag"))
}
