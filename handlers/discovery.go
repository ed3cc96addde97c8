package handlers

import (
	"net/http"
	"strings"

	"github.com/rendezvous-kv/rendezvous/policy"
)

// listJSON is the JSON shape of one listing page.
type listJSON struct {
	Entries []ItemJSON `json:"entries"`
	Next    string     `json:"next"`
}

func (s *API) handleList(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	prefix, err := keyFrom(r, "/list/")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit := 0 // the default page
	if l := q.Get("limit"); l != "" {
		if limit, err = policy.ParsePageSize(l); err != nil {
			return err
		}
	}
	page, err := s.svc.List(c, prefix, q.Get("after"), limit)
	if err != nil {
		return err
	}
	if wantsJSON(r) {
		out := listJSON{Entries: make([]ItemJSON, len(page.Items)), Next: page.Next}
		for i, it := range page.Items {
			out.Entries[i] = NewItemJSON(it, false)
			out.Entries[i].DenoEncoding = s.svc.DenoEncoding(it)
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	// Text: one key per line; the cursor for the next page goes in a
	// header so the body stays easy to loop over in a shell.
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if page.Next != "" {
		h.Set("X-Next-After", page.Next)
	}
	var b strings.Builder
	for _, it := range page.Items {
		b.WriteString(it.Key)
		b.WriteByte('\n')
	}
	w.Write([]byte(b.String()))
	return nil
}

// handleIP answers the caller's address: "what is my public IP" for NAT'd
// hosts. It is free, like the X-Client-Ip header every answer carries.
func (s *API) handleIP(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]string{"ip": c.IP.String()})
		return nil
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(c.IP.String() + "\n"))
	return nil
}

func (s *API) handleHealth(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
	return nil
}

func (s *API) handleReady(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			return policy.Errorf(policy.KindUnavailable, "not ready: %v", err)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ready\n"))
	return nil
}

// The CORS answers are fixed, so they are built once.
var (
	corsHeaders = []string{"X-Owner-Secret, X-Expected-Value, If-Match, If-None-Match, Last-Event-ID, Content-Type, Accept, Authorization"}
	corsExpose  = []string{"X-Expires-At, X-Client-Ip, ETag, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-Next-After, X-Error-Code, WWW-Authenticate"}
	corsMaxAge  = []string{"86400"}
)

// cors adds the CORS headers to a request from a browser page (one with
// an Origin header; requests without one are not cross-origin and skip the
// extra headers), and answers a preflight. It reports whether it answered.
func (s *API) cors(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	if s.cfg.CORSOrigin != "*" {
		h["Vary"] = []string{"Origin"}
	}
	if r.Method == http.MethodOptions {
		if err := s.preflightRefusal(r); err != nil {
			// No Access-Control-Allow-* header: the browser does not send
			// the request, and the page sees a network error.
			s.writeError(w, r, err)
			return true
		}
	}
	h["Access-Control-Allow-Origin"] = []string{s.cfg.CORSOrigin}
	if r.Method == http.MethodOptions {
		h["Access-Control-Allow-Methods"] = s.corsMethods
		h["Access-Control-Allow-Headers"] = corsHeaders
		h["Access-Control-Max-Age"] = corsMaxAge
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	h["Access-Control-Expose-Headers"] = corsExpose
	return false
}

// preflightRefusal returns the refusal that the request announced by the
// preflight r would get for who sends it (see policy.WriteAllowed), or
// nil. The request would be refused anyway; refusing its preflight keeps
// the browser from sending it at all.
func (s *API) preflightRefusal(r *http.Request) error {
	prefix := s.writePrefix(r.Header.Get("Access-Control-Request-Method"), r.URL.EscapedPath())
	if prefix == "" {
		return nil
	}
	key, err := keyFrom(r, prefix)
	if err != nil {
		return nil // the request itself is refused for its key
	}
	return policy.WriteAllowed(policy.Caller{CrossSite: s.crossSite(r)}, key)
}

// crossSite reports whether r was made by a web page of another site than
// this server's own and the ones in IPWriteOrigins. Browsers send Origin
// with a page's writes (any method but GET and HEAD), same-origin or not,
// and other clients send none, so a write without one is nobody's page.
//
// A page this server served has the server's name in its Origin: its host
// and port equal the request's Host. The scheme is not compared, since
// behind a TLS proxy an https page's requests arrive as plain HTTP. A page
// cannot make a browser send another site's name as Host; DNS rebinding
// can (a page whose name is pointed at this server's address), but only
// over plain HTTP, as TLS refuses this server's certificate for that name.
func (s *API) crossSite(r *http.Request) bool {
	origins := r.Header["Origin"]
	if origins == nil {
		return false
	}
	for _, o := range origins {
		if !s.trustedOrigin(o, r.Host) {
			return true
		}
	}
	return false
}

// trustedOrigin reports whether a page of origin may write ip/ keys with a
// request to host.
func (s *API) trustedOrigin(origin, host string) bool {
	hostPort, ok := strings.CutPrefix(origin, "https://")
	if !ok {
		hostPort, ok = strings.CutPrefix(origin, "http://")
	}
	if ok && host != "" && strings.EqualFold(hostPort, host) {
		return true
	}
	for _, t := range s.cfg.IPWriteOrigins {
		if strings.EqualFold(origin, t) {
			return true
		}
	}
	return false
}
