package handlers

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/rendezvous-kv/rendezvous/policy"
)

// listJSON is the JSON shape of one listing page.
type listJSON struct {
	Entries []ItemJSON `json:"entries"`
	Next    string     `json:"next"`
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	prefix, err := keyFrom(r, "/list/")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit := 0
	if l := q.Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit <= 0 {
			return policy.Errorf(policy.KindBadRequest, "limit must be a positive integer")
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
func (s *Server) handleIP(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]string{"ip": c.IP.String()})
		return nil
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(c.IP.String() + "\n"))
	return nil
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
	return nil
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
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
	corsMethods = []string{"GET, HEAD, POST, PUT, DELETE, OPTIONS"}
	corsHeaders = []string{"X-Owner-Secret, X-Expected-Value, If-Match, If-None-Match, Last-Event-ID, Content-Type, Accept"}
	corsExpose  = []string{"X-Expires-At, X-Client-Ip, ETag, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-Next-After"}
	corsMaxAge  = []string{"86400"}
)

// cors adds the CORS headers to a request from a browser page (one with
// an Origin header; requests without one are not cross-origin and skip the
// extra headers), and answers a preflight. It reports whether it answered.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h["Access-Control-Allow-Origin"] = []string{s.cfg.CORSOrigin}
	if s.cfg.CORSOrigin != "*" {
		h["Vary"] = []string{"Origin"}
	}
	if r.Method == http.MethodOptions {
		h["Access-Control-Allow-Methods"] = corsMethods
		h["Access-Control-Allow-Headers"] = corsHeaders
		h["Access-Control-Max-Age"] = corsMaxAge
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	h["Access-Control-Expose-Headers"] = corsExpose
	return false
}
