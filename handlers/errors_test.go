package handlers_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
		{code: "too_large", status: 400, method: "POST", path: "/set/k", body: strings.Repeat("v", maxValue+1), msg: tooLarge},
		{code: "forbidden", status: 403, method: "POST", path: "/set/ip/ssh", body: "v", header: []string{"Origin", evilOrigin},
			msg: "ip/ keys cannot be written or deleted by a page of another web site, which acts from its visitor's address"},
		{code: "owned", status: 403, setup: set("/set/mine", "v", "X-Owner-Secret", "s"), method: "POST", path: "/set/mine", body: "w",
			msg: "key is owned: wrong or missing owner secret"},
		{code: "key_not_found", status: 404, method: "GET", path: "/get/missing", msg: "key not found"},
		{code: "rate_limited", status: 429, opts: options{rate: &rateConfig{Tokens: 3, Window: time.Minute}},
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
		{code: "watch_disabled", status: 503, opts: options{watchOff: true}, method: "GET", path: "/watch/",
			msg: "watching and waiting are not enabled on this server"},
		{code: "watch_disabled", status: 503, opts: options{watchOff: true}, method: "GET", path: "/get/a?wait=5s",
			msg: "watching and waiting are not enabled on this server"},
		{code: "unknown_endpoint", status: 404, method: "GET", path: "/nope", msg: "no such endpoint; see / for usage"},
		{code: "method_not_allowed", status: 405, method: "PATCH", path: "/get/k", msg: "method not allowed",
			check: func(t *testing.T, h http.Header) { assert.Equal(t, "GET, HEAD, DELETE", h.Get("Allow")) }},
	}
}

// Every refusal carries its code in X-Error-Code, with the status it has
// always had. A plain client gets the message as one line of text; a
// client that asks for JSON gets {"error", "code"} with the same status and
// headers.
func TestErrorCodesOverTheWire(t *testing.T) {
	for _, tc := range errorCases() {
		for _, asJSON := range []bool{false, true} {
			name := tc.code + " " + tc.method + " " + tc.path
			if asJSON {
				name += " json"
			}
			t.Run(name, func(t *testing.T) {
				ws := startWire(t, newEnvWith(t, tc.opts))
				c := ws.Client()
				c.Timeout = 5 * time.Second
				if tc.setup != nil {
					tc.setup(t, c, ws.URL)
				}
				header := tc.header
				if asJSON {
					header = append([]string{"Accept", "application/json"}, header...)
				}
				res := send(t, c, tc.method, ws.URL+tc.path, tc.body, header...)
				assert.Equal(t, tc.status, res.status, res.body)
				assert.Equal(t, tc.code, res.header.Get("X-Error-Code"))
				assert.Equal(t, "nosniff", res.header.Get("X-Content-Type-Options"))
				assert.Equal(t, "127.0.0.1", res.header.Get("X-Client-Ip"))
				if asJSON {
					assert.Equal(t, "application/json", res.header.Get("Content-Type"))
					var got map[string]any
					require.NoError(t, json.Unmarshal([]byte(res.body), &got), res.body)
					assert.Equal(t, map[string]any{"error": tc.msg, "code": tc.code}, got)
				} else {
					assert.Equal(t, "text/plain; charset=utf-8", res.header.Get("Content-Type"))
					assert.Equal(t, tc.msg+"\n", res.body)
				}
				if tc.check != nil {
					tc.check(t, res.header)
				}
			})
		}
	}
}

// ?format=json asks for JSON errors as it asks for JSON values.
func TestErrorJSONByQuery(t *testing.T) {
	e := newEnv(t)
	assertJSONError(t, e.get("/get/missing?format=json"), http.StatusNotFound, "key_not_found", "key not found")
	assertJSONError(t, e.post("/set/k?ttl=0&format=json", "v"), http.StatusBadRequest, "bad_request", "ttl must be positive")
}

// A HEAD gets a refusal's status and code without a body, in either format.
func TestErrorHead(t *testing.T) {
	e := newEnv(t)
	ws := startWire(t, e)
	for _, accept := range []string{"*/*", "application/json"} {
		res := send(t, ws.Client(), http.MethodHead, ws.URL+"/get/missing", "", "Accept", accept)
		assert.Equal(t, http.StatusNotFound, res.status)
		assert.Equal(t, "key_not_found", res.header.Get("X-Error-Code"))
		assert.Empty(t, res.body)
	}
}

// A lost race answers the winner. Plain clients get its raw value, as
// always; JSON clients get the error, its code and the current item, with
// the item's ETag and X-Expires-At either way.
func TestConflictJSON(t *testing.T) {
	e := newEnv(t)
	ws := startWire(t, e)
	c := ws.Client()
	won := send(t, c, http.MethodPost, ws.URL+"/los/leader?ttl=1m", "node-a", "X-Owner-Secret", "s")
	require.Equal(t, http.StatusOK, won.status)
	etag := won.header.Get("ETag")
	require.NotEmpty(t, etag)
	expires := e.expiresAt(time.Minute)

	plain := send(t, c, http.MethodPost, ws.URL+"/los/leader", "node-b")
	assert.Equal(t, http.StatusConflict, plain.status)
	assert.Equal(t, "node-a", plain.body)
	assert.Equal(t, "application/octet-stream", plain.header.Get("Content-Type"))
	assert.Equal(t, "conflict", plain.header.Get("X-Error-Code"))
	assert.Equal(t, etag, plain.header.Get("ETag"))

	for _, r := range []struct {
		path, body string
		header     []string
		msg        string
	}{
		{path: "/los/leader", body: "node-b", msg: "key already exists"},
		{path: "/cas/leader", body: "node-b", header: []string{"X-Expected-Value", "node-c", "X-Owner-Secret", "s"}, msg: "value does not match"},
		{path: "/casoc/leader", body: "node-b", header: []string{"X-Expected-Value", "node-c", "X-Owner-Secret", "s"}, msg: "value does not match"},
	} {
		res := send(t, c, http.MethodPost, ws.URL+r.path, r.body, append([]string{"Accept", "application/json"}, r.header...)...)
		assert.Equal(t, http.StatusConflict, res.status, r.path)
		assert.Equal(t, "application/json", res.header.Get("Content-Type"), r.path)
		assert.Equal(t, "conflict", res.header.Get("X-Error-Code"), r.path)
		assert.Equal(t, etag, res.header.Get("ETag"), r.path)
		assert.Equal(t, expires, res.header.Get("X-Expires-At"), r.path)
		version := strings.Trim(etag, `"`)
		assert.JSONEq(t, `{"error": "`+r.msg+`", "code": "conflict", "current":
			{"key": "leader", "value": "node-a", "expires_at": `+expires+`, "version": `+version+`, "owned": true}}`, res.body, r.path)
	}

	// A binary winner is base64 in JSON, as in every JSON answer.
	require.Equal(t, http.StatusOK, send(t, c, http.MethodPost, ws.URL+"/set/bin", "\xff\x00").status)
	res := send(t, c, http.MethodPost, ws.URL+"/los/bin", "x", "Accept", "application/json")
	assert.Equal(t, http.StatusConflict, res.status)
	var got struct {
		Current struct {
			Value         string `json:"value"`
			ValueEncoding string `json:"value_encoding"`
		} `json:"current"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.body), &got))
	assert.Equal(t, "/wA=", got.Current.Value)
	assert.Equal(t, "base64", got.Current.ValueEncoding)
}
