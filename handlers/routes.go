package handlers

import (
	"net/http"
	"strings"

	"github.com/rendezvous-kv/rendezvous/policy"
)

// route is one entry of the routing table.
type route struct {
	method string
	// path is an exact path, or, ending in "*", the prefix of the paths
	// that continue with a key or a key prefix (chi's pattern syntax).
	path string
	// name labels the route's requests in metrics.
	name string
	h    handlerFunc
	// writes marks a route that writes or deletes the key after its
	// prefix: a cross-site preflight for it is refused where the write
	// itself would be.
	writes bool
	// fast marks the routes that carry most of the traffic (reads and
	// sets of keys). ServeHTTP matches them itself, before chi, whose
	// route context costs two allocations and a request copy per request:
	// a wrk profile showed that as a visible share of a GET.
	fast bool
	// load says whether the route's requests count toward the cap of
	// requests in flight.
	load admission

	serve http.HandlerFunc // h with metrics and error writing, set by New
}

// admission says whether a request counts toward the cap of requests in
// flight (policy.Service.Admit).
type admission uint8

const (
	counted admission = iota
	// exempt: health checks and metrics must answer while the server
	// sheds load, and a watch stream waits for as long as its client
	// likes, bounded by the watcher caps instead.
	exempt
	// countedUnlessWait: a GET is counted, a long-poll (?wait=) is not,
	// as a watch stream is not.
	countedUnlessWait
)

// serves reports whether rt's path or prefix matches path.
func (rt *route) serves(path string) bool {
	if prefix, ok := strings.CutSuffix(rt.path, "*"); ok {
		return strings.HasPrefix(path, prefix)
	}
	return path == rt.path
}

// prefix returns the part of rt's path before the key.
func (rt *route) prefix() string { return strings.TrimSuffix(rt.path, "*") }

// routes returns every route s serves, in the order their methods are
// listed in Allow headers and CORS preflights. Dispatch, those lists, the
// preflight's write check and the metrics route names all come from here.
func (s *API) routes() []route {
	const (
		get, head, post, put, del = http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete
	)
	set := s.writeHandler(policy.OpSet, "/set/")
	table := []route{
		{method: get, path: "/", name: "landing", h: s.handleLanding},
		{method: head, path: "/", name: "landing", h: s.handleLanding},
		{method: get, path: "/get/*", name: "get", h: s.handleGet, fast: true, load: countedUnlessWait},
		{method: head, path: "/get/*", name: "get", h: s.handleGet, fast: true, load: countedUnlessWait},
		{method: post, path: "/set/*", name: "set", h: set, writes: true, fast: true},
		{method: put, path: "/set/*", name: "set", h: set, writes: true, fast: true},
		{method: post, path: "/los/*", name: "los", h: s.writeHandler(policy.OpLoadOrStore, "/los/"), writes: true},
		{method: post, path: "/cas/*", name: "cas", h: s.writeHandler(policy.OpCAS, "/cas/"), writes: true},
		{method: post, path: "/casoc/*", name: "casoc", h: s.writeHandler(policy.OpCASOrCreate, "/casoc/"), writes: true},
		{method: post, path: "/del/*", name: "del", h: s.deleteHandler("/del/"), writes: true},
		{method: del, path: "/get/*", name: "del", h: s.deleteHandler("/get/"), writes: true},
		// Not writes: /txn names its keys in the body, which a preflight
		// does not carry, so its cross-site ip/ refusal is the request's.
		{method: post, path: "/txn", name: "txn", h: s.handleTxn},
		{method: get, path: "/list/*", name: "list", h: s.handleList},
		{method: get, path: "/watch/*", name: "watch", h: s.handleWatch, load: exempt},
		{method: get, path: "/ip", name: "ip", h: s.handleIP},
		{method: head, path: "/ip", name: "ip", h: s.handleIP},
		{method: get, path: "/healthz", name: "health", h: s.handleHealth, load: exempt},
		{method: head, path: "/healthz", name: "health", h: s.handleHealth, load: exempt},
		{method: get, path: "/readyz", name: "health", h: s.handleReady, load: exempt},
		{method: head, path: "/readyz", name: "health", h: s.handleReady, load: exempt},
	}
	if s.cfg.MetricsHandler != nil {
		metrics := func(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
			s.cfg.MetricsHandler.ServeHTTP(w, r)
			return nil
		}
		table = append(table,
			route{method: get, path: "/metrics", name: "metrics", h: metrics, load: exempt},
			route{method: head, path: "/metrics", name: "metrics", h: metrics, load: exempt})
	}
	return table
}

// allowed lists the methods the routes serving path accept, for the Allow
// header of a 405, or "" when no route serves the path.
func (s *API) allowed(path string) string {
	var methods []string
	for i := range s.table {
		if rt := &s.table[i]; rt.serves(path) {
			methods = append(methods, rt.method)
		}
	}
	return strings.Join(methods, ", ")
}

// writePrefix returns the route prefix under which method on path writes
// or deletes a key, or "" when it does neither.
func (s *API) writePrefix(method, path string) string {
	for i := range s.table {
		if rt := &s.table[i]; rt.writes && rt.method == method && rt.serves(path) {
			return rt.prefix()
		}
	}
	return ""
}
