// Package kvconnect is the KV Connect front end: the protocol Deno's
// built-in KV client (Deno.openKv("https://host/kv")) and the @deno/kv npm
// package speak to a remote database. It is mounted on the API's HTTP
// listener under /kv: a metadata exchange (POST /kv) hands out a
// short-lived data-path token and the endpoint, where snapshot_read,
// atomic_write and watch run over protobuf.
//
// It parses the wire and calls policy.Service's tuple operations; which
// Deno keys are shared with curl, the limits, costs, TTLs and owner rules
// are policy's.
package kvconnect

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rendezvous-kv/rendezvous/auth"
	"github.com/rendezvous-kv/rendezvous/clientip"
	"github.com/rendezvous-kv/rendezvous/policy"
)

// Prefix is the path the front end answers under; the metadata URL
// clients open is Prefix itself.
const Prefix = "/kv"

// endpointPath is the data path's endpoint, under Prefix.
const endpointPath = Prefix + "/v3"

// TokenLifetime is how long a data-path token is valid. Deno fetches
// metadata again every minute, @deno/kv when fewer than five minutes are
// left, so an hour is plenty for both.
const TokenLifetime = time.Hour

// maxBody bounds a data-path request body: an atomic write's keys and
// values are at most policy.TupleMaxWriteBytes, plus their framing.
const maxBody = 2 << 20

// Observer records one request: its route name, status and duration.
// The HTTP API's observer (handlers.Observer) is one.
type Observer interface {
	Observe(route string, status int, took time.Duration)
}

// Config configures the front end.
type Config struct {
	// ClientIP decides whose address a request comes from, and which
	// peers' X-Forwarded-Proto and X-Forwarded-Host are believed.
	ClientIP clientip.Resolver
	// State is the database UUID and token key (see LoadState).
	State State
	// PublicURL, when set, is what endpoint URLs start with instead of
	// the scheme and host each request shows.
	PublicURL string
	// Metrics observes every request, under the route names kv_metadata,
	// kv_snapshot_read, kv_atomic_write and kv_watch; nil observes
	// nothing.
	Metrics Observer
	// Now is the clock of token expiry; nil means time.Now.
	Now func() time.Time
	// Log receives errors that are the server's fault; nil discards them.
	Log *slog.Logger
	// Ping is the interval of a watch stream's keep-alive frames; 0 means
	// 5 seconds.
	Ping time.Duration
	// Verifier checks the access token of the metadata exchange (the
	// server's token file or JWT key); nil means no authentication is
	// configured, and then any non-empty access token stands for the
	// anonymous caller of the request's address.
	Verifier auth.Verifier
	// CertIdentity returns the identity the verified client certificate of
	// a TLS connection names (mTLS identity file), or nil when the
	// connection has no verified certificate or its names match no
	// identity. Nil means no mTLS identities are configured. Deno always
	// sends an access token, so a certificate identity is the caller when
	// no Verifier is configured or the Verifier refuses the token.
	CertIdentity func(cs *tls.ConnectionState) *policy.Identity
}

// Handler serves KV Connect; it is an http.Handler for the paths under
// Prefix.
type Handler struct {
	svc    *policy.Service
	cfg    Config
	tokens *Tokens
	// hashes is cfg.Verifier when it can look a token up by its hash (a
	// token file), so that data-path tokens check it is still in force.
	hashes hashVerifier
	// expiring is cfg.Verifier when its tokens carry their own expiry
	// (JWTs), which data-path tokens do not outlive.
	expiring expiringVerifier
}

// hashVerifier is a Verifier that finds a token by its SHA-256, as
// *auth.TokenFile does.
type hashVerifier interface {
	VerifyHash(sum [sha256.Size]byte) (*policy.Identity, error)
}

// expiringVerifier is a Verifier whose tokens expire on their own, as
// *auth.JWT's do.
type expiringVerifier interface {
	VerifyExpiry(token string) (*policy.Identity, time.Time, error)
}

// New returns the front end over svc.
func New(svc *policy.Service, cfg Config) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Ping <= 0 {
		cfg.Ping = 5 * time.Second
	}
	h := &Handler{svc: svc, cfg: cfg, tokens: NewTokens(cfg.State.Key)}
	h.hashes, _ = cfg.Verifier.(hashVerifier)
	h.expiring, _ = cfg.Verifier.(expiringVerifier)
	return h
}

// Serves reports whether path is one of the front end's.
func Serves(path string) bool {
	return path == Prefix || strings.HasPrefix(path, Prefix+"/")
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeText(w, http.StatusMethodNotAllowed, "KV Connect takes POST requests only")
		return
	}
	route := ""
	var start time.Time
	if h.cfg.Metrics != nil {
		start = time.Now()
		w = &statusWriter{ResponseWriter: w, status: http.StatusOK}
	}
	if r.URL.Path != endpointPath+"/watch" {
		// Every call but a watch stream counts against the requests in
		// flight; watches are bounded by the watcher caps instead.
		if err := h.svc.Admit(); err != nil {
			h.writeError(w, r, err)
			return
		}
		defer h.svc.Release()
	}
	switch r.URL.Path {
	case Prefix, Prefix + "/":
		route = "kv_metadata"
		h.metadata(w, r)
	case endpointPath + "/snapshot_read":
		route = "kv_snapshot_read"
		h.data(w, r, h.snapshotRead)
	case endpointPath + "/atomic_write":
		route = "kv_atomic_write"
		h.data(w, r, h.atomicWrite)
	case endpointPath + "/watch":
		route = "kv_watch"
		h.data(w, r, h.watch)
	default:
		route = "unknown"
		writeText(w, http.StatusNotFound, "no such KV Connect endpoint")
	}
	if sw, ok := w.(*statusWriter); ok {
		h.cfg.Metrics.Observe(route, sw.status, time.Since(start))
	}
}

// statusWriter remembers the status of an answer, for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the connection (a watch
// stream flushes and sets its deadlines through it).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// errRevoked refuses a data-path token whose access token is no longer
// in force (a token file reload removed it) or whose client certificate
// the connection no longer shows.
var errRevoked = errors.New("the access token of this database connection was revoked; open the database again with a valid token")

// caller returns the policy caller of a data-path request made with a
// token issued to sub.
func (h *Handler) caller(r *http.Request, sub Subject) (policy.Caller, error) {
	ip := h.cfg.ClientIP.Resolve(r)
	switch sub.Kind {
	case SubjectTokenFile:
		if h.hashes == nil {
			return policy.Caller{}, errRevoked // the server no longer reads that token file
		}
		id, err := h.hashes.VerifyHash(sub.TokenHash)
		if err != nil {
			return policy.Caller{}, errRevoked
		}
		return h.svc.Authenticated(ip, false, id), nil
	case SubjectIdentity:
		return h.svc.Authenticated(ip, false, sub.Identity), nil
	case SubjectCertificate:
		var id *policy.Identity
		if h.cfg.CertIdentity != nil && r.TLS != nil {
			id = h.cfg.CertIdentity(r.TLS)
		}
		if id == nil || id.Name != sub.Identity.Name {
			return policy.Caller{}, errRevoked
		}
		return h.svc.Authenticated(ip, false, id), nil
	}
	return h.svc.Caller(ip, false), nil
}

// expiryOf is a Verifier that remembers the expiry of the token it
// verified, when the verifier knows one (a JWT's exp).
type expiryOf struct {
	v   auth.Verifier
	e   expiringVerifier
	exp time.Time
}

func (x *expiryOf) Verify(token string) (*policy.Identity, error) {
	if x.e == nil {
		return x.v.Verify(token)
	}
	id, exp, err := x.e.VerifyExpiry(token)
	x.exp = exp
	return id, err
}

// subject establishes who makes a metadata exchange with access, and
// until when a data-path token may stand for it: the verifier's identity
// of the access token, else the client certificate's, else (with no
// verifier) the anonymous caller. A refusal is the verifier's.
func (h *Handler) subject(r *http.Request, access string, expires time.Time) (Subject, time.Time, error) {
	var cert *policy.Identity
	if h.cfg.CertIdentity != nil && r.TLS != nil {
		cert = h.cfg.CertIdentity(r.TLS)
	}
	if h.cfg.Verifier == nil {
		if cert != nil {
			return Subject{Kind: SubjectCertificate, Identity: cert}, expires, nil
		}
		return Subject{Kind: SubjectAnonymous}, expires, nil
	}
	// Refused tokens are charged to the address and throttled with 429,
	// as on HTTP (see policy.Service.Authenticate). A certificate holder's
	// are too: its certificate lets it in whatever token it sends, but
	// not guess other identities' tokens faster than anyone else.
	v := &expiryOf{v: h.cfg.Verifier, e: h.expiring}
	c, err := h.svc.Authenticate(h.svc.Caller(h.cfg.ClientIP.Resolve(r), false), v, access)
	id := c.Identity
	if err == nil && !v.exp.IsZero() && v.exp.Before(expires) {
		expires = v.exp
	}
	switch {
	case err == nil && h.hashes != nil:
		return Subject{Kind: SubjectTokenFile, Identity: id, TokenHash: sha256.Sum256([]byte(access))}, expires, nil
	case err == nil:
		return Subject{Kind: SubjectIdentity, Identity: id}, expires, nil
	case cert != nil:
		// Deno cannot open a database without an access token, so one
		// the verifier refused, or did not check once the address's
		// refusals were spent, is passed over for the certificate.
		return Subject{Kind: SubjectCertificate, Identity: cert}, expires, nil
	}
	return Subject{}, time.Time{}, err
}

// bearer returns the token of an Authorization: Bearer header.
func bearer(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// metadataResponse is the metadata exchange's answer: exactly these
// fields, since @deno/kv refuses any other.
type metadataResponse struct {
	Version    int        `json:"version"`
	DatabaseID string     `json:"databaseId"`
	Endpoints  []endpoint `json:"endpoints"`
	Token      string     `json:"token"`
	ExpiresAt  string     `json:"expiresAt"`
}

type endpoint struct {
	URL         string `json:"url"`
	Consistency string `json:"consistency"`
}

func (h *Handler) metadata(w http.ResponseWriter, r *http.Request) {
	access := bearer(r)
	if access == "" {
		writeText(w, http.StatusUnauthorized, "missing access token: send Authorization: Bearer <token> (DENO_KV_ACCESS_TOKEN, or openKv's accessToken)")
		return
	}
	sub, expires, err := h.subject(r, access, h.cfg.Now().Add(TokenLifetime))
	if err != nil {
		msg := "invalid token"
		var pe *policy.Error
		if errors.As(err, &pe) {
			if pe.Kind != policy.KindUnauthenticated {
				h.writeError(w, r, err) // too many refused tokens: 429
				return
			}
			msg = pe.Message
		}
		writeText(w, http.StatusUnauthorized, msg+": the server refused the access token (DENO_KV_ACCESS_TOKEN, or openKv's accessToken)")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4097))
	if err != nil || len(body) > 4096 {
		writeText(w, http.StatusBadRequest, "metadata request too large or unreadable")
		return
	}
	offered := []int{1}
	if len(strings.TrimSpace(string(body))) > 0 {
		var req struct {
			SupportedVersions []int `json:"supportedVersions"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			writeText(w, http.StatusBadRequest, "metadata request is not JSON like {\"supportedVersions\":[1,2,3]}")
			return
		}
		offered = req.SupportedVersions
	}
	version := 0
	for _, v := range offered {
		if v >= 1 && v <= 3 && v > version {
			version = v
		}
	}
	if version == 0 {
		writeText(w, http.StatusBadRequest, "no protocol version in common: this server speaks KV Connect versions 1, 2 and 3")
		return
	}
	expires = expires.UTC()
	resp := metadataResponse{
		Version:    version,
		DatabaseID: h.cfg.State.DatabaseID,
		Endpoints:  []endpoint{{URL: h.baseURL(r) + endpointPath, Consistency: "strong"}},
		Token:      h.tokens.Issue(sub, expires),
		ExpiresAt:  expires.Format("2006-01-02T15:04:05.000Z"),
	}
	b, _ := json.Marshal(resp)
	// Exactly application/json: @deno/kv refuses a charset parameter.
	w.Header()["Content-Type"] = []string{"application/json"}
	w.Header()["Cache-Control"] = []string{"no-store"}
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// baseURL returns scheme://host as the client reached the server, which
// the endpoint URL starts with: absolute, so that every client version
// (and one behind a proxy) reaches it. X-Forwarded-Proto and
// X-Forwarded-Host count only from trusted proxies.
func (h *Handler) baseURL(r *http.Request) string {
	if h.cfg.PublicURL != "" {
		return h.cfg.PublicURL
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if h.cfg.ClientIP.TrustedPeer(r) {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
			scheme = p
		}
		if fh := r.Header.Get("X-Forwarded-Host"); fh != "" && !strings.ContainsAny(fh, "/?#@ ") {
			host, _, _ = strings.Cut(fh, ",")
			host = strings.TrimSpace(host)
		}
	}
	return scheme + "://" + host
}

// data runs a data-path call: the KV Connect headers and the token are
// checked, the body read, and op answers.
func (h *Handler) data(w http.ResponseWriter, r *http.Request, op func(http.ResponseWriter, *http.Request, policy.Caller, []byte) error) {
	if v := r.Header.Get("X-Denokv-Version"); v != "" && v != "1" && v != "2" && v != "3" {
		writeText(w, http.StatusBadRequest, "unsupported x-denokv-version "+v)
		return
	}
	id := r.Header.Get("X-Denokv-Database-Id")
	if id == "" {
		id = r.Header.Get("X-Transaction-Domain-Id")
	}
	if id != "" && id != h.cfg.State.DatabaseID {
		writeText(w, http.StatusBadRequest, "wrong database id: this server's database is "+h.cfg.State.DatabaseID)
		return
	}
	sub, err := h.tokens.Verify(bearer(r), h.cfg.Now())
	if err != nil {
		writeText(w, http.StatusUnauthorized, err.Error())
		return
	}
	c, err := h.caller(r, sub)
	if err != nil {
		writeText(w, http.StatusUnauthorized, err.Error())
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeText(w, http.StatusBadRequest, "cannot read the request body")
		return
	}
	if len(body) > maxBody {
		writeText(w, http.StatusBadRequest, "request too large")
		return
	}
	if err := op(w, r, c, body); err != nil {
		h.writeError(w, r, err)
	}
}

func (h *Handler) snapshotRead(w http.ResponseWriter, _ *http.Request, c policy.Caller, body []byte) error {
	ranges, err := decodeSnapshotRead(body)
	if err != nil {
		return err
	}
	out, err := h.svc.TupleRead(c, ranges)
	if err != nil {
		return err
	}
	writeProto(w, encodeSnapshotReadOutput(out))
	return nil
}

var (
	errEnqueue   = policy.Errorf(policy.KindBadRequest, "enqueue is not supported: no KV Connect client can dequeue, so this server takes no queue messages")
	errBadCheck  = policy.Errorf(policy.KindBadRequest, "a check's versionstamp must be empty (absent) or 10 bytes")
	errSumBounds = policy.Errorf(policy.KindBadRequest, "sum with min, max or clamp is not supported: it applies to number and bigint operands, and sums take a Deno.KvU64")
)

func (h *Handler) atomicWrite(w http.ResponseWriter, _ *http.Request, c policy.Caller, body []byte) error {
	aw, err := decodeAtomicWrite(body)
	switch {
	case err != nil:
		return err
	case aw.enqueues > 0:
		return errEnqueue
	case aw.badCheck:
		return errBadCheck
	case aw.sumBounds:
		return errSumBounds
	}
	version, err := h.svc.TupleCommit(c, aw.write)
	var pe *policy.Error
	if errors.As(err, &pe) && pe.Kind == policy.KindCheckFailed {
		writeProto(w, encodeAtomicWriteOutput(0, pe.Failed))
		return nil
	}
	if err != nil {
		return err
	}
	writeProto(w, encodeAtomicWriteOutput(version, nil))
	return nil
}

var protobufType = []string{"application/x-protobuf"}

// readBody reads a data-path body of at most maxBody bytes, into a
// buffer of its announced length when it has one.
func readBody(r *http.Request) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= maxBody {
		b := make([]byte, n)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(io.LimitReader(r.Body, maxBody+1))
}

func writeProto(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h["Content-Type"] = protobufType
	// With the length known, HTTP/1.1 answers need no chunking.
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

func writeText(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	h["Content-Length"] = []string{strconv.Itoa(len(msg) + 1)}
	w.WriteHeader(status)
	io.WriteString(w, msg+"\n")
}

// status is the HTTP status of a refusal of kind k on the data path: the
// one place this front end maps policy's kinds to its wire. A request
// that cannot succeed is never a 5xx, which Deno retries forever.
func status(k policy.Kind) int {
	switch k {
	case policy.KindBadRequest, policy.KindTooLarge, policy.KindFull, policy.KindWatchDisabled,
		policy.KindConflict, policy.KindPrecondition, policy.KindNotFound:
		return http.StatusBadRequest
	case policy.KindForbidden, policy.KindOwned, policy.KindNoPermission, policy.KindUnauthenticated:
		// An anonymous caller refused a key is told so with 403, not the
		// 401 HTTP gives it: Deno takes a 401 on the data path as the end
		// of the database, and the caller's other keys still work.
		return http.StatusForbidden
	case policy.KindRateLimited, policy.KindTooManyWatches:
		return http.StatusTooManyRequests
	}
	// KindUnavailable, KindShuttingDown: a retry may succeed.
	return http.StatusServiceUnavailable
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var pe *policy.Error
	switch {
	case errors.As(err, &pe):
		w.Header()["X-Error-Code"] = []string{pe.Code()}
		switch {
		case pe.Limit != nil:
			secs := int((pe.Limit.RetryAfter + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		case pe.Kind == policy.KindOverloaded:
			w.Header().Set("Retry-After", "1")
		}
		writeText(w, status(pe.Kind), pe.Message)
	case errors.Is(err, errProto):
		writeText(w, http.StatusBadRequest, err.Error())
	default:
		h.cfg.Log.Error("kvconnect request failed", "path", r.URL.Path, "err", err)
		writeText(w, http.StatusInternalServerError, "internal error")
	}
}
