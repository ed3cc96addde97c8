package handlers_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/clientip"
	"github.com/rendezvous-kv/rendezvous/feed"
	"github.com/rendezvous-kv/rendezvous/handlers"
	"github.com/rendezvous-kv/rendezvous/internal/fakeclock"
	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/server"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// The limits every test server enforces unless a test says otherwise.
const (
	maxKey   = 100
	maxValue = 1000
	maxTTL   = 2 * time.Hour
)

// tooLarge is the refusal of a value over maxValue, counted with its
// owner secret.
const tooLarge = "value too large: value plus owner secret may be at most 1000 bytes"

// peer is the default caller address of test requests.
const (
	peer   = "198.51.100.7:1234"
	peerIP = "198.51.100.7"
)

// t0 is where every fake clock starts: a whole second, so that X-Expires-At
// (Unix seconds) is exact.
var t0 = time.Unix(1_700_000_000, 0)

// fakeClock is the shared manual clock: the store and the policy read it,
// so expiry is tested without sleeping.
type fakeClock = fakeclock.Clock

// env is one server, started through server.New as the rendezvous
// command starts it, whose API handler tests call with chosen peer
// addresses.
type env struct {
	t     testing.TB
	srv   http.Handler
	store *ttlstore.Store
	feed  *feed.Feed
	clock *fakeClock
}

// options tweak the server an env starts; each is a server.Config field.
type options struct {
	maxKeys  int         // MaxKeys; 0 means the default
	rate     *rateConfig // nil: rate limiting off
	trusted  clientip.Resolver
	onChange func(kv.Change) error
	cors     string   // CORSOrigin
	origins  []string // IPWriteOrigins
	observer handlers.Observer
	// ownMetrics serves /metrics on a listener of its own, so the API
	// has no such route.
	ownMetrics bool
	ready      func() error
	watchOff   bool
	keepAlive  time.Duration // WatchKeepAlive
	// authFile, jwtSecretFile and anonymous are AuthFile,
	// JWTSecretFile and Anonymous.
	authFile, jwtSecretFile, anonymous string
}

// rateConfig is a token bucket: Tokens every Window, up to Burst (0:
// Tokens).
type rateConfig struct {
	Tokens int
	Window time.Duration
	Burst  int
}

func newEnv(t testing.TB) *env { return newEnvWith(t, options{}) }

func newEnvWith(t testing.TB, o options) *env {
	t.Helper()
	clk := fakeclock.New(t0)
	cfg := server.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = ""
	cfg.MaxKeySize, cfg.MaxValueSize, cfg.MaxTTL = maxKey, maxValue, maxTTL
	if o.maxKeys > 0 {
		cfg.MaxKeys = o.maxKeys
	}
	cfg.RateOff = o.rate == nil
	if o.rate != nil {
		cfg.RateTokens, cfg.RateWindow, cfg.RateBurst = o.rate.Tokens, o.rate.Window, o.rate.Burst
	}
	cfg.TrustedProxies = o.trusted.Trusted
	cfg.OnChange = o.onChange
	cfg.CORSOrigin = o.cors
	cfg.IPWriteOrigins = o.origins
	cfg.Observer = o.observer
	if o.ownMetrics {
		cfg.MetricsAddr = "127.0.0.1:0"
	}
	cfg.Ready = o.ready
	cfg.WatchOff = o.watchOff
	cfg.WatchKeepAlive = o.keepAlive
	cfg.AuthFile, cfg.JWTSecretFile, cfg.Anonymous = o.authFile, o.jwtSecretFile, o.anonymous
	cfg.Now = clk.Now
	s, err := server.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	in := s.Internals()
	return &env{t: t, srv: s.Handler(), store: in.Store, feed: in.Feed, clock: clk}
}

// defaultRate is the service's default budget: 17 tokens, refilled 17 a
// minute.
func defaultRate() *rateConfig {
	return &rateConfig{Tokens: 17, Window: time.Minute}
}

// req describes one request; zero fields take defaults.
type req struct {
	method string // default GET, or POST when body is set
	target string
	body   io.Reader
	remote string // default peer
	header map[string]string
}

// do serves r and returns the recorded response.
func (e *env) do(r req) *httptest.ResponseRecorder {
	e.t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	hr := httptest.NewRequest(r.method, r.target, r.body)
	hr.RemoteAddr = peer
	if r.remote != "" {
		hr.RemoteAddr = r.remote
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, hr)
	return rec
}

func (e *env) get(path string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.do(req{target: path})
}

func (e *env) post(path, body string, header ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.do(req{method: http.MethodPost, target: path, body: strings.NewReader(body), header: pairs(header)})
}

// pairs turns "k1", "v1", "k2", "v2" into a map.
func pairs(kv []string) map[string]string {
	if len(kv)%2 != 0 {
		panic("odd header list")
	}
	m := make(map[string]string, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// expiresAt is the X-Expires-At value of a write made now with ttl.
func (e *env) expiresAt(ttl time.Duration) string {
	return itoa(e.clock.Now().Add(ttl).Unix())
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// assertOK checks a successful write answering body.
func assertOK(t testing.TB, rec *httptest.ResponseRecorder, body string) {
	t.Helper()
	assert.Equal(t, http.StatusOK, rec.Code, "body: %q", rec.Body.String())
	assert.Equal(t, body, rec.Body.String())
}

// assertValue checks a response carrying a stored value.
func assertValue(t testing.TB, rec *httptest.ResponseRecorder, status int, value, expires string) {
	t.Helper()
	assert.Equal(t, status, rec.Code, "body: %q", rec.Body.String())
	assert.Equal(t, value, rec.Body.String())
	assert.Equal(t, "application/octet-stream", rec.Header().Get("Content-Type"))
	if expires != "" {
		assert.Equal(t, expires, rec.Header().Get("X-Expires-At"))
	} else {
		assert.NotEmpty(t, rec.Header().Get("X-Expires-At"))
	}
}

// assertError checks a refusal: the status, and a body of exactly one
// plain-text line.
func assertError(t testing.TB, rec *httptest.ResponseRecorder, status int, contains string) {
	t.Helper()
	assert.Equal(t, status, rec.Code, "body: %q", rec.Body.String())
	body := rec.Body.String()
	assert.True(t, strings.HasSuffix(body, "\n"), "error body %q must end in a newline", body)
	assert.Equal(t, 1, strings.Count(body, "\n"), "error body %q must be one line", body)
	assert.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain"), "Content-Type %q", rec.Header().Get("Content-Type"))
	if contains != "" {
		assert.Contains(t, body, contains)
	}
}

// assertJSONError checks a refusal to a client that asked for JSON: the
// status, the code in X-Error-Code and in the body, and a body that is
// exactly {"error": message, "code": code}.
func assertJSONError(t testing.TB, rec *httptest.ResponseRecorder, status int, code, message string) {
	t.Helper()
	assert.Equal(t, status, rec.Code, "body: %q", rec.Body.String())
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	assert.Equal(t, code, rec.Header().Get("X-Error-Code"))
	var got map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got), "body: %q", rec.Body.String())
	assert.Equal(t, map[string]any{"error": message, "code": code}, got)
}

// httptestRequest is httptest.NewRequest from the default peer.
func httptestRequest(method, target string, body io.Reader) *http.Request {
	r := httptest.NewRequest(method, target, body)
	r.RemoteAddr = peer
	return r
}

// serve serves a prepared request.
func (e *env) serve(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, r)
	return rec
}
