package handlers_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func lines(body string) []string {
	body = strings.TrimSuffix(body, "\n")
	if body == "" {
		return nil
	}
	return strings.Split(body, "\n")
}

func TestListOrderAndPrefixBounds(t *testing.T) {
	e := newEnv(t)
	for _, k := range []string{"a/2", "a/10", "a0", "a", "b/1", "a/1", "a/%C3%BC"} {
		assertOK(t, e.post("/set/"+k, "v"), "OK")
	}
	rec := e.get("/list/a/")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, []string{"a/1", "a/10", "a/2", "a/ü"}, lines(rec.Body.String()), "byte order, and a/ does not match a0")
	assert.Empty(t, rec.Header().Get("X-Next-After"))

	rec = e.get("/list/")
	assert.Equal(t, []string{"a", "a/1", "a/10", "a/2", "a/ü", "a0", "b/1"}, lines(rec.Body.String()), "an empty prefix lists all")

	rec = e.get("/list/zzz")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Empty(t, rec.Body.String())

	// Expired keys are not listed.
	assertOK(t, e.post("/set/a/brief?ttl=1s", "v"), "OK")
	e.clock.Advance(2e9)
	assert.NotContains(t, lines(e.get("/list/a/").Body.String()), "a/brief")
}

func TestListPaginationWithConcurrentWrites(t *testing.T) {
	e := newEnv(t)
	const n = 250
	for i := range n {
		assertOK(t, e.post(fmt.Sprintf("/set/p/%04d", i), "v"), "OK")
	}
	// Writers add keys outside the prefix and overwrite inside it while we
	// page; every key that existed throughout must be seen exactly once.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			e.post(fmt.Sprintf("/set/q/%d", i), "x")
			e.post(fmt.Sprintf("/set/p/%04d", i%n), "y")
		}
	}()
	seen := map[string]int{}
	after, pages := "", 0
	for {
		rec := e.get("/list/p/?limit=40&after=" + after)
		require.Equal(t, http.StatusOK, rec.Code)
		got := lines(rec.Body.String())
		require.LessOrEqual(t, len(got), 40)
		for _, k := range got {
			seen[k]++
		}
		pages++
		after = rec.Header().Get("X-Next-After")
		if after == "" {
			break
		}
		assert.Equal(t, got[len(got)-1], after, "the cursor is the last key of the page")
	}
	close(stop)
	wg.Wait()
	assert.Len(t, seen, n)
	for k, c := range seen {
		assert.Equal(t, 1, c, k)
	}
	assert.Equal(t, 7, pages)
}

func TestListJSONAndBinaryValues(t *testing.T) {
	e := newEnv(t)
	assertOK(t, e.post("/set/j/text?ttl=60", "hello"), "OK")
	assertOK(t, e.post("/set/j/bin?ttl=60", "\xff\x00\xfe"), "OK")
	assertOK(t, e.post("/set/j/x?ttl=60", "x"), "OK")
	rec := e.do(req{target: "/list/j/?limit=2", header: map[string]string{"Accept": "application/json"}})
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var page struct {
		Entries []map[string]any `json:"entries"`
		Next    string           `json:"next"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &page))
	require.Len(t, page.Entries, 2)
	assert.Equal(t, "j/bin", page.Entries[0]["key"])
	assert.Equal(t, base64.StdEncoding.EncodeToString([]byte("\xff\x00\xfe")), page.Entries[0]["value"])
	assert.Equal(t, "base64", page.Entries[0]["value_encoding"])
	assert.Equal(t, "hello", page.Entries[1]["value"])
	assert.NotContains(t, page.Entries[1], "value_encoding")
	assert.EqualValues(t, t0.Unix()+60, page.Entries[1]["expires_at"])
	assert.NotZero(t, page.Entries[1]["version"])
	assert.Equal(t, "j/text", page.Next)

	rec = e.get("/list/j/?format=json&after=j/text")
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &page))
	require.Len(t, page.Entries, 1)
	assert.Equal(t, "j/x", page.Entries[0]["key"])
	assert.Empty(t, page.Next)
}

func TestListLimits(t *testing.T) {
	e := newEnv(t)
	for _, l := range []string{"0", "-1", "x"} {
		assertError(t, e.get("/list/?limit="+l), http.StatusBadRequest, "limit")
	}
	assertError(t, e.get("/list/a%00"), http.StatusBadRequest, "control")
}

func TestConditionalRequests(t *testing.T) {
	e := newEnv(t)
	rec := e.post("/set/c", "one")
	assertOK(t, rec, "OK")
	tag1 := rec.Header().Get("ETag")
	require.NotEmpty(t, tag1)
	got := e.get("/get/c")
	assert.Equal(t, tag1, got.Header().Get("ETag"), "GET shows the write's ETag")

	rec = e.post("/set/c", "two", "If-Match", tag1)
	assertOK(t, rec, "OK")
	tag2 := rec.Header().Get("ETag")
	assert.NotEqual(t, tag1, tag2, "every write changes the ETag")

	assertError(t, e.post("/set/c", "three", "If-Match", tag1), http.StatusPreconditionFailed, "precondition")
	assert.Equal(t, "two", e.get("/get/c").Body.String(), "a failed precondition writes nothing")
	assertError(t, e.post("/set/missing", "x", "If-Match", tag2), http.StatusPreconditionFailed, "")

	assertOK(t, e.post("/set/fresh", "x", "If-None-Match", "*"), "OK")
	assertError(t, e.post("/set/fresh", "y", "If-None-Match", "*"), http.StatusPreconditionFailed, "")
	assert.Equal(t, "x", e.get("/get/fresh").Body.String())

	// Anything but one strong ETag is refused, never ignored.
	for _, bad := range []string{"42", `W/"1"`, `"a"`, `"1", "2"`} {
		assertError(t, e.post("/set/c", "v", "If-Match", bad), http.StatusBadRequest, "If-Match")
	}
	assertError(t, e.post("/set/c", "v", "If-None-Match", tag2), http.StatusBadRequest, "If-None-Match")
	// The owner rule still comes first.
	assertOK(t, e.post("/set/o", "v", "X-Owner-Secret", "s"), "OK")
	tag := e.get("/get/o").Header().Get("ETag")
	assertError(t, e.post("/set/o", "w", "If-Match", tag), http.StatusForbidden, "")
}

func TestGetJSON(t *testing.T) {
	e := newEnv(t)
	assertOK(t, e.post("/set/k?ttl=90", "v", "X-Owner-Secret", "s"), "OK")
	rec := e.do(req{target: "/get/k", header: map[string]string{"Accept": "application/json"}})
	require.Equal(t, http.StatusOK, rec.Code)
	var got map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	assert.Equal(t, "k", got["key"])
	assert.Equal(t, "v", got["value"])
	assert.EqualValues(t, t0.Unix()+90, got["expires_at"])
	assert.Equal(t, true, got["owned"])
	assert.NotZero(t, got["version"])
	assert.Equal(t, fmt.Sprintf(`"%v"`, got["version"]), rec.Header().Get("ETag"))
	assertJSONError(t, e.do(req{target: "/get/none", header: map[string]string{"Accept": "application/json"}}),
		http.StatusNotFound, "key_not_found", "key not found")
}

func TestIPEndpointIsFree(t *testing.T) {
	e := newEnvWith(t, options{rate: defaultRate()})
	for range 40 {
		rec := e.do(req{target: "/ip", remote: "[2001:db8::5]:1"})
		require.Equal(t, http.StatusOK, rec.Code)
		assert.Equal(t, "2001:db8::5\n", rec.Body.String())
	}
	rec := e.do(req{target: "/ip", remote: "[::ffff:198.51.100.2]:1", header: map[string]string{"Accept": "application/json"}})
	assert.JSONEq(t, `{"ip":"198.51.100.2"}`, rec.Body.String())
}

// newCORSServer is a server with CORSOrigin origin and /metrics on a
// listener of its own.
func newCORSServer(t *testing.T, origin string, ready func() error) http.Handler {
	return newEnvWith(t, options{cors: origin, ready: ready, ownMetrics: true}).srv
}

func TestCORS(t *testing.T) {
	srv := newCORSServer(t, "*", nil)
	pre := httptest.NewRequest(http.MethodOptions, "/set/k", nil)
	pre.Header.Set("Origin", "https://example.org")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "x-owner-secret")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, pre)
	assert.Equal(t, http.StatusNoContent, rec.Code)
	assert.Equal(t, "*", rec.Header().Get("Access-Control-Allow-Origin"))
	for _, h := range []string{"X-Owner-Secret", "X-Expected-Value", "If-Match", "If-None-Match", "Last-Event-ID"} {
		assert.Contains(t, rec.Header().Get("Access-Control-Allow-Headers"), h)
	}
	assert.Contains(t, rec.Header().Get("Access-Control-Allow-Methods"), "POST")

	get := httptest.NewRequest(http.MethodGet, "/get/none", nil)
	get.Header.Set("Origin", "https://example.org")
	rec = httptest.NewRecorder()
	srv.ServeHTTP(rec, get)
	assert.Equal(t, http.StatusNotFound, rec.Code)
	assert.Equal(t, "*", rec.Header().Get("Access-Control-Allow-Origin"), "errors carry CORS headers too")
	for _, h := range []string{"X-Expires-At", "X-Client-Ip", "ETag", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining"} {
		assert.Contains(t, rec.Header().Get("Access-Control-Expose-Headers"), h)
	}

	one := newCORSServer(t, "https://app.example", nil)
	rec = httptest.NewRecorder()
	hreq := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	hreq.Header.Set("Origin", "https://app.example")
	one.ServeHTTP(rec, hreq)
	assert.Equal(t, "https://app.example", rec.Header().Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "Origin", rec.Header().Get("Vary"))

	// A request that is not cross-origin (no Origin, as from curl) gets no
	// CORS headers: they would only cost bytes.
	rec = httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/get/none", nil))
	assert.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"))
}

func TestHealthAndReady(t *testing.T) {
	var notReady error
	srv := newCORSServer(t, "", func() error { return notReady })
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	assert.Equal(t, http.StatusOK, get("/healthz").Code)
	assert.Equal(t, http.StatusOK, get("/readyz").Code)
	notReady = fmt.Errorf("journal write failed")
	rec := get("/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Contains(t, rec.Body.String(), "journal write failed")
	assert.Equal(t, http.StatusOK, get("/healthz").Code, "the process is still up")
}

func TestHealthIsNotRateLimited(t *testing.T) {
	e := newEnvWith(t, options{rate: defaultRate()})
	for range 40 {
		require.Equal(t, http.StatusOK, e.get("/healthz").Code)
	}
}

// The service routes answer HEAD as GET and other methods with 405 and
// their Allow list, like every other route; OPTIONS from a page is the
// CORS preflight there too. /metrics exists only when it is served here.
func TestServiceRoutesMethods(t *testing.T) {
	srv := newEnvWith(t, options{cors: "*"}).srv
	noMetrics := newCORSServer(t, "*", nil)
	serve := func(h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	for _, path := range []string{"/healthz", "/readyz", "/ip", "/metrics"} {
		t.Run(path, func(t *testing.T) {
			get := serve(srv, http.MethodGet, path)
			require.Equal(t, http.StatusOK, get.Code)
			head := serve(srv, http.MethodHead, path)
			assert.Equal(t, http.StatusOK, head.Code, head.Body.String())
			assert.Equal(t, get.Header().Get("Content-Type"), head.Header().Get("Content-Type"))

			for _, method := range []string{http.MethodOptions, http.MethodPost, http.MethodDelete} {
				rec := serve(srv, method, path)
				assertError(t, rec, http.StatusMethodNotAllowed, "method not allowed")
				assert.Equal(t, "GET, HEAD", rec.Header().Get("Allow"), method)
			}

			pre := serve(srv, http.MethodOptions, path, "Origin", "https://example.org", "Access-Control-Request-Method", "GET")
			assert.Equal(t, http.StatusNoContent, pre.Code)
			assert.Equal(t, "*", pre.Header().Get("Access-Control-Allow-Origin"))
			assert.Contains(t, pre.Header().Get("Access-Control-Allow-Methods"), "GET")
		})
	}
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodOptions} {
		rec := serve(noMetrics, method, "/metrics")
		assert.Equal(t, http.StatusNotFound, rec.Code, "%s /metrics when it is served elsewhere", method)
		assert.Empty(t, rec.Header().Get("Allow"))
	}
}
