// Package handlers is the HTTP front end: it parses requests, calls the
// policy core and writes responses. It holds no rules of its own beyond the
// HTTP wire format, so other protocols can share the same core.
package handlers

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/rendezvous-kv/rendezvous/auth"
	"github.com/rendezvous-kv/rendezvous/clientip"
	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/listener"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/static"
)

// Config configures the HTTP front end.
type Config struct {
	// ClientIP decides whose address a request comes from.
	ClientIP clientip.Resolver
	// Verifier checks the token of a request's Authorization: Bearer
	// header. A request without one is anonymous; one with a token the
	// Verifier refuses is answered 401, whatever it asks. Nil means no
	// authentication: the header is ignored and every caller is
	// anonymous.
	Verifier auth.Verifier
	// CertIdentity returns the identity the verified client certificate
	// of a TLS connection names (mTLS identity file), or nil when the
	// connection has no verified certificate or its names match no
	// identity. A request without an Authorization header (or any request
	// when Verifier is nil) is made by that identity; nil means no mTLS
	// identities.
	CertIdentity func(cs *tls.ConnectionState) *policy.Identity
	// Landing fills the landing page; Host is replaced per request.
	Landing static.Vars
	// Log receives errors that are the server's fault; nil discards them.
	Log *slog.Logger
	// CORSOrigin is sent as Access-Control-Allow-Origin; empty disables CORS.
	CORSOrigin string
	// IPWriteOrigins lists the web origins ("https://app.example") whose
	// pages may write and delete ip/ keys, besides this server's own
	// pages; a page of any other origin may not (see policy.Caller).
	IPWriteOrigins []string
	// Metrics observes every request; nil observes nothing.
	Metrics Observer
	// MetricsHandler, when set, is served at /metrics (free of rate limits).
	MetricsHandler http.Handler
	// Ready reports whether the server accepts writes, for /readyz; nil
	// means always ready.
	Ready func() error
	// WatchKeepAlive is how long a watch stream stays silent before it
	// sends a comment line, so that clients and proxies can tell a quiet
	// stream from a dead one; 0 means DefaultWatchKeepAlive.
	WatchKeepAlive time.Duration
	// StreamWriteTimeout bounds each write to a watch stream, and the
	// final write of a long-poll, so that a client that stops reading
	// cannot hold a goroutine forever; 0 means DefaultStreamWriteTimeout.
	StreamWriteTimeout time.Duration
}

// Observer records one request: its route name, status and duration.
type Observer interface {
	Observe(route string, status int, took time.Duration)
}

// API is the rendezvous HTTP API as an http.Handler; whoever embeds it
// runs the http.Server (or any other) that serves it.
type API struct {
	svc    *policy.Service
	cfg    Config
	table  []route    // every route, as routes builds them
	fast   []route    // the table's fast routes, matched before chi
	router chi.Router // every other route
	// corsMethods is the Access-Control-Allow-Methods of a preflight:
	// every method of the table, and OPTIONS.
	corsMethods []string
	frames      frameCache // encoded watch events, shared by all streams
	// txnLimit is the largest body of POST /txn, and txnTooLarge its
	// refusal.
	txnLimit    int
	txnTooLarge error
	// needCredential, when set, replaces policy's request for a token in
	// a 401: with mTLS identities, a client certificate also identifies
	// a caller, or alone does.
	needCredential string
}

// New returns the HTTP API over svc.
func New(svc *policy.Service, cfg Config) *API {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.WatchKeepAlive <= 0 {
		cfg.WatchKeepAlive = DefaultWatchKeepAlive
	}
	if cfg.StreamWriteTimeout <= 0 {
		cfg.StreamWriteTimeout = DefaultStreamWriteTimeout
	}
	s := &API{svc: svc, cfg: cfg}
	switch {
	case cfg.CertIdentity != nil && cfg.Verifier != nil:
		s.needCredential = "authentication required: this key needs a token (Authorization: Bearer TOKEN) or a client certificate the server's identity file lists"
	case cfg.CertIdentity != nil:
		s.needCredential = "authentication required: this key needs a client certificate the server's identity file lists"
	}
	s.txnLimit = txnBodyLimit(svc)
	s.txnTooLarge = policy.Errorf(policy.KindTooLarge, "transaction too large: the body may be at most %d bytes", s.txnLimit)
	r := chi.NewRouter()
	r.NotFound(s.wrap("unknown", counted, func(http.ResponseWriter, *http.Request, policy.Caller) error {
		return errUnknownPath
	}))
	r.MethodNotAllowed(s.wrap("unknown", counted, func(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
		// chi also lands here for methods it does not know, on any path;
		// route on the escaped path as chi does.
		allow := s.allowed(r.URL.EscapedPath())
		if allow == "" {
			return errUnknownPath
		}
		w.Header().Set("Allow", allow)
		return errMethod
	}))
	var methods []string
	for _, rt := range s.routes() {
		rt.serve = s.wrap(rt.name, rt.load, rt.h)
		s.table = append(s.table, rt)
		if rt.fast {
			s.fast = append(s.fast, rt)
		}
		r.Method(rt.method, rt.path, rt.serve)
		if !slices.Contains(methods, rt.method) {
			methods = append(methods, rt.method)
		}
	}
	s.corsMethods = []string{strings.Join(append(methods, http.MethodOptions), ", ")}
	s.router = r
	return s
}

// ServeHTTP implements http.Handler.
func (s *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TransferEncoding != nil && listener.FramingConflict(r.Context()) {
		// A proxy in front may have read this request by its
		// Content-Length, and the bytes after it as another request of
		// its own, which must not run (RFC 9112 §6.1).
		w.Header()["Connection"] = []string{"close"}
		s.writeError(w, r, errFraming)
		return
	}
	if s.cfg.CORSOrigin != "" && r.Header["Origin"] != nil && s.cors(w, r) {
		return // a preflight, answered
	}
	for i := range s.fast {
		if rt := &s.fast[i]; r.Method == rt.method && rt.serves(r.URL.Path) {
			rt.serve(w, r)
			return
		}
	}
	s.router.ServeHTTP(w, r)
}

var errFraming = policy.Errorf(policy.KindBadRequest, "request has both Transfer-Encoding and Content-Length; the connection is closed")

// handlerFunc is an HTTP handler that returns its refusal instead of
// writing it, so that one function writes every error.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c policy.Caller) error

func (s *API) wrap(route string, load admission, h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var start time.Time
		if s.cfg.Metrics != nil {
			start = time.Now()
		}
		c := s.svc.Caller(s.cfg.ClientIP.Resolve(r), s.crossSite(r))
		w.Header()["X-Client-Ip"] = []string{c.IP.String()}
		status := http.StatusOK
		var err error
		if load == exempt || (load == countedUnlessWait && wantsWait(r)) {
			err = s.serve(w, r, c, h)
		} else if err = s.svc.Admit(); err == nil {
			err = s.admitted(w, r, c, h)
		}
		if err != nil {
			status = s.writeError(w, r, err)
		}
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.Observe(route, status, time.Since(start))
		}
	}
}

// admitted runs h for a request Admit let in, and releases it however h
// ends.
func (s *API) admitted(w http.ResponseWriter, r *http.Request, c policy.Caller, h handlerFunc) error {
	defer s.svc.Release()
	return s.serve(w, r, c, h)
}

// serve runs h as the caller r authenticates as. It comes after Admit,
// so that checking a token's signature is work the in-flight cap sheds
// too.
func (s *API) serve(w http.ResponseWriter, r *http.Request, c policy.Caller, h handlerFunc) error {
	c, err := s.authenticate(r, c)
	if err != nil {
		return err
	}
	return h(w, r, c)
}

// authenticate returns the Caller of r: the identity its bearer token
// proves when it has an Authorization header and there is a Verifier;
// else the identity its client certificate names, if any; else anon, the
// anonymous one. A token is the explicit credential, so it wins over the
// certificate, and a refused token is refused whatever r asks and
// whatever certificate came with it, so a client learns at once that its
// token is wrong; refused tokens from one address beyond the rate limit
// are 429 without being checked.
func (s *API) authenticate(r *http.Request, anon policy.Caller) (policy.Caller, error) {
	if s.cfg.Verifier != nil {
		if hdr := r.Header["Authorization"]; hdr != nil {
			// Refused tokens are charged to the address, so guessing is
			// throttled with 429 (see policy.Service.Authenticate).
			return s.svc.Authenticate(anon, s.cfg.Verifier, bearerToken(hdr[0]))
		}
	}
	if s.cfg.CertIdentity != nil && r.TLS != nil {
		if id := s.cfg.CertIdentity(r.TLS); id != nil {
			return s.svc.Authenticated(anon.IP, anon.CrossSite, id), nil
		}
	}
	return anon, nil
}

// bearerToken returns the token of an Authorization header of the Bearer
// scheme (its name in any case, RFC 9110 §11.1), or "" for any other
// header, which no Verifier accepts.
func bearerToken(h string) string {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return ""
	}
	return strings.TrimSpace(h[len(scheme):])
}

var octetStream = []string{"application/octet-stream"}

// writeItem answers a successful read: JSON when the client asked for it,
// else the raw value, with the same ETag and X-Expires-At either way.
func (s *API) writeItem(w http.ResponseWriter, r *http.Request, it kv.Item) {
	if wantsJSON(r) {
		itemHeaders(w.Header(), it, false)
		j := NewItemJSON(it, true)
		j.DenoEncoding = s.svc.DenoEncoding(it)
		writeJSON(w, http.StatusOK, j)
		return
	}
	if len(it.Value) > 0 && it.Value[0] == 0xff && s.svc.DenoEncoding(it) == "v8" {
		// A JS value Deno wrote: V8's serialization, which no curl user
		// should mistake for their bytes. (Only values starting with
		// 0xff, as V8's do and UTF-8 text never does, are looked up, so
		// plain values cost nothing.)
		h := w.Header()
		h["Content-Type"] = v8Type
		itemHeaders(h, it, true)
		w.WriteHeader(http.StatusOK)
		w.Write(it.Value)
		return
	}
	writeValue(w, http.StatusOK, it)
}

// v8Type marks a value a Deno client wrote as a JS value.
var v8Type = []string{"application/x-deno-kv-v8"}

func writeValue(w http.ResponseWriter, status int, it kv.Item) {
	h := w.Header()
	h["Content-Type"] = octetStream
	itemHeaders(h, it, true)
	w.WriteHeader(status)
	w.Write(it.Value)
}

// itemHeaders sets X-Expires-At, ETag and, with length, Content-Length for
// it. The numbers are formatted into one string and the header values
// share one backing array: two allocations instead of six on the hottest
// path.
func itemHeaders(h http.Header, it kv.Item, length bool) {
	var buf [64]byte
	b := append(buf[:0], '"')
	b = strconv.AppendUint(b, it.Version, 10)
	b = append(b, '"')
	tagEnd := len(b)
	if it.Expires != 0 {
		b = strconv.AppendInt(b, it.ExpiresAt().Unix(), 10)
	}
	expEnd := len(b)
	if length {
		b = strconv.AppendInt(b, int64(len(it.Value)), 10)
	}
	all := string(b)
	vals := make([]string, 3)
	vals[0] = all[:tagEnd]
	h["Etag"] = vals[0:1:1]
	if it.Expires != 0 {
		vals[1] = all[tagEnd:expEnd]
		h["X-Expires-At"] = vals[1:2:2]
	}
	if length {
		vals[2] = all[expEnd:]
		h["Content-Length"] = vals[2:3:3]
	}
}

// keyFrom returns the percent-decoded key after prefix in r's path. The
// escaped path is used so that %2F stays part of the key instead of being
// confused with a path separator by routing.
func keyFrom(r *http.Request, prefix string) (string, error) {
	raw, ok := strings.CutPrefix(r.URL.EscapedPath(), prefix)
	if !ok {
		return "", errUnknownPath
	}
	if strings.IndexByte(raw, '%') < 0 {
		return raw, nil
	}
	key, err := url.PathUnescape(raw)
	if err != nil {
		return "", policy.Errorf(policy.KindBadRequest, "key has a bad percent-escape")
	}
	return key, nil
}

func (s *API) handleGet(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	key, err := keyFrom(r, "/get/")
	if err != nil {
		return err
	}
	if wantsWait(r) {
		return s.longPoll(w, r, c, key)
	}
	it, err := s.svc.Get(c, key)
	if err != nil {
		return err
	}
	s.writeItem(w, r, it)
	return nil
}

var (
	okBody    = []byte("OK")
	textPlain = []string{"text/plain; charset=utf-8"}
)

func (s *API) writeHandler(op policy.WriteOp, prefix string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
		if preGrow {
			_ = growStack()
		}
		key, err := keyFrom(r, prefix)
		if err != nil {
			return err
		}
		req := policy.WriteRequest{Key: key, Secret: r.Header.Get("X-Owner-Secret")}
		if r.URL.RawQuery != "" {
			if ttl, ok := r.URL.Query()["ttl"]; ok {
				if req.TTL, err = policy.ParseTTL(ttl[0]); err != nil {
					return err
				}
			}
		}
		if op == policy.OpCAS || op == policy.OpCASOrCreate {
			ev, ok := r.Header["X-Expected-Value"]
			if !ok {
				return policy.Errorf(policy.KindBadRequest, "X-Expected-Value header is required")
			}
			req.Expected = []byte(ev[0])
		}
		if err := conditions(r, &req); err != nil {
			return err
		}
		limit, tooLarge := s.svc.ValueLimit(req.Secret)
		if req.Value, err = readBody(w, r, limit, tooLarge); err != nil {
			return err
		}
		res, err := s.svc.Write(c, op, req)
		if err != nil {
			return err
		}
		h := w.Header()
		h["Content-Type"] = textPlain
		itemHeaders(h, res.Item, false)
		if res.Scoped {
			io.WriteString(w, c.IP.String())
			return nil
		}
		w.Write(okBody)
		return nil
	}
}

func (s *API) deleteHandler(prefix string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
		if preGrow {
			_ = growStack()
		}
		key, err := keyFrom(r, prefix)
		if err != nil {
			return err
		}
		if _, err := s.svc.Delete(c, key, r.Header.Get("X-Owner-Secret")); err != nil {
			return err
		}
		w.Header()["Content-Type"] = []string{"text/plain; charset=utf-8"}
		w.Write(okBody)
		return nil
	}
}

// readBody reads at most limit bytes of the request body. A larger body is
// refused with tooLarge after reading limit+1 bytes, and the server closes
// the connection rather than draining the rest.
func readBody(w http.ResponseWriter, r *http.Request, limit int, tooLarge error) ([]byte, error) {
	if r.ContentLength > int64(limit) {
		return nil, tooLarge
	}
	body := http.MaxBytesReader(w, r.Body, int64(limit))
	// Without a length, start small: a large limit (a transaction's) is
	// what a body may reach, not what most bodies are.
	size := min(limit, 16<<10)
	if r.ContentLength >= 0 {
		size = int(r.ContentLength)
	}
	buf := make([]byte, 0, size+1)
	for {
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		if err != nil {
			return nil, policy.Errorf(policy.KindBadRequest, "reading request body: %v", err)
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}

func (s *API) handleLanding(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	v := s.cfg.Landing
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	v.Host = scheme + "://" + r.Host
	html, text := static.Render(v)
	h := w.Header()
	h.Set("Vary", "Accept")
	if static.WantsHTML(r.Header.Get("Accept")) {
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.Write(html)
		return nil
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(text)
	return nil
}
