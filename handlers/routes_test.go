package handlers_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// observed receives the route name of every request a server finishes.
type observed chan string

func (o observed) Observe(route string, _ int, _ time.Duration) { o <- route }

// next returns the route name of the request just answered.
func (o observed) next(t *testing.T) string {
	t.Helper()
	select {
	case name := <-o:
		return name
	case <-time.After(5 * time.Second):
		t.Fatal("no request observed")
		return ""
	}
}

// Every route answers the methods it serves, each under its metrics name,
// and every other method with 405 and the list of those it serves; HEAD is
// served wherever GET is, without a body.
func TestRoutes(t *testing.T) {
	routes := []struct {
		path  string
		names map[string]string // method: metrics route name
		allow string
	}{
		{"/", map[string]string{"GET": "landing", "HEAD": "landing"}, "GET, HEAD"},
		{"/get/k", map[string]string{"GET": "get", "HEAD": "get", "DELETE": "del"}, "GET, HEAD, DELETE"},
		{"/set/k", map[string]string{"POST": "set", "PUT": "set"}, "POST, PUT"},
		{"/los/k", map[string]string{"POST": "los"}, "POST"},
		{"/cas/k", map[string]string{"POST": "cas"}, "POST"},
		{"/casoc/k", map[string]string{"POST": "casoc"}, "POST"},
		{"/del/k", map[string]string{"POST": "del"}, "POST"},
		{"/list/", map[string]string{"GET": "list"}, "GET"},
		{"/watch/", map[string]string{"GET": "watch"}, "GET"},
		{"/ip", map[string]string{"GET": "ip", "HEAD": "ip"}, "GET, HEAD"},
		{"/healthz", map[string]string{"GET": "health", "HEAD": "health"}, "GET, HEAD"},
		{"/readyz", map[string]string{"GET": "health", "HEAD": "health"}, "GET, HEAD"},
		{"/metrics", map[string]string{"GET": "metrics", "HEAD": "metrics"}, "GET, HEAD"},
	}
	methods := []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND"}
	obs := make(observed, 1)
	ws := startWire(t, newEnvWith(t, options{observer: obs, watchOff: true})) // a stream would hold the GET
	c := ws.Client()
	c.Timeout = 5 * time.Second
	for _, rt := range routes {
		for _, m := range methods {
			res := send(t, c, m, ws.URL+rt.path, "v", "X-Expected-Value", "x")
			name := obs.next(t)
			want, served := rt.names[m]
			if !served {
				assert.Equal(t, http.StatusMethodNotAllowed, res.status, "%s %s", m, rt.path)
				assert.Equal(t, rt.allow, res.header.Get("Allow"), "%s %s", m, rt.path)
				assert.Equal(t, "method_not_allowed", res.header.Get("X-Error-Code"), "%s %s", m, rt.path)
				assert.Equal(t, "unknown", name, "%s %s", m, rt.path)
				continue
			}
			assert.NotEqual(t, http.StatusMethodNotAllowed, res.status, "%s %s", m, rt.path)
			assert.NotEqual(t, "unknown_endpoint", res.header.Get("X-Error-Code"), "%s %s", m, rt.path)
			assert.Equal(t, want, name, "%s %s", m, rt.path)
			if m == "HEAD" {
				get := send(t, c, "GET", ws.URL+rt.path, "")
				obs.next(t)
				assert.Equal(t, get.status, res.status, rt.path)
				assert.Equal(t, get.header.Get("Content-Type"), res.header.Get("Content-Type"), rt.path)
				assert.Empty(t, res.body, rt.path)
			}
		}
	}
}

// /metrics is a route only where the server serves it.
func TestMetricsRouteOnlyWhenServed(t *testing.T) {
	e := newEnvWith(t, options{ownMetrics: true})
	for _, m := range []string{"GET", "HEAD", "POST"} {
		rec := e.do(req{method: m, target: "/metrics"})
		assert.Equal(t, http.StatusNotFound, rec.Code, m)
		assert.Equal(t, "unknown_endpoint", rec.Header().Get("X-Error-Code"), m)
		assert.Empty(t, rec.Header().Get("Allow"), m)
	}
}

// A CORS preflight is approved for every method some route serves, and
// only those.
func TestCORSMethodsAreTheRoutes(t *testing.T) {
	e := newEnvWith(t, options{cors: "*"})
	for _, path := range []string{"/", "/get/k", "/set/k", "/nope"} {
		rec := e.do(req{method: http.MethodOptions, target: path, header: map[string]string{
			"Origin": "https://example.org", "Access-Control-Request-Method": "PUT",
		}})
		require.Equal(t, http.StatusNoContent, rec.Code, path)
		got := strings.Split(rec.Header().Get("Access-Control-Allow-Methods"), ", ")
		slices.Sort(got)
		assert.Equal(t, []string{"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"}, got, path)
	}
}
