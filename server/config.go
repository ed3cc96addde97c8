package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/rendezvous-kv/rendezvous/auth"
	"github.com/rendezvous-kv/rendezvous/handlers"
	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/lineproto"
	"github.com/rendezvous-kv/rendezvous/persist"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/resp"
	"github.com/rendezvous-kv/rendezvous/tlsconf"
)

// Config is everything a Server is set up with. Start from DefaultConfig:
// a zero field means zero, not "the default", except where its comment
// says otherwise, and Validate refuses most zeros.
type Config struct {
	// Addr is the API's TCP address, host:port; port 0 picks a free one
	// (see Server.Addr).
	Addr string
	// Insecure allows plaintext HTTP on an Addr or MetricsAddr that is not
	// a loopback address. Without it such an address is refused: serve
	// TLS (TLSCertFile or ACMEDomains), or put a TLS proxy in front and
	// list it in TrustedProxies.
	Insecure bool

	// TLSCertFile and TLSKeyFile, when set, are the PEM certificate chain
	// and private key that the API, and every protocol listener, serve
	// TLS 1.2 or newer with (HTTP/2 by ALPN beside HTTP/1.1). They are
	// read again when they change (see TLSPollInterval) and on Reload; a
	// pair that does not load then keeps the previous one. With TLS on,
	// Addr may be any address without Insecure.
	TLSCertFile, TLSKeyFile string
	// TLSClientCAFile, when set, holds the PEM CA certificates that
	// client certificates are verified against (mTLS); it is reloaded
	// with the pair.
	TLSClientCAFile string
	// TLSClientAuth says whether a client certificate is required (the
	// zero value) or only verified when sent; it applies with
	// TLSClientCAFile.
	TLSClientAuth tlsconf.ClientAuth
	// MTLSIdentityFile, when set, maps the names of a verified client
	// certificate (see tlsconf.ClientNames and auth.CertIdentities) to
	// identities with grants, one per line in the token file's format
	// with a name in place of the token. The first of a certificate's
	// names that it lists gives the identity of a request that carries no
	// token. It is read again on Server.Reload, and needs
	// TLSClientCAFile. It may be combined with AuthFile or a JWT key; like
	// them it turns access control on (see Anonymous).
	MTLSIdentityFile string
	// TLSPollInterval is how often the certificate, key and client CA
	// files are looked at for a change; 0 means
	// tlsconf.DefaultPollInterval.
	TLSPollInterval time.Duration

	// ACMEDomains, when set, has the certificates for these names
	// obtained and renewed from an ACME server (instead of TLSCertFile),
	// by TLS-ALPN-01 on Addr or HTTP-01 on HTTPAddr.
	ACMEDomains []string
	// ACMEEmail is the contact address given to the ACME server; it may
	// be empty.
	ACMEEmail string
	// ACMECache is the directory (mode 0700) that keeps the ACME account
	// key and the certificates across restarts; empty means Data
	// followed by ".acme", beside the data file.
	ACMECache string
	// ACMEDirectory is the ACME server's directory URL; empty means Let's
	// Encrypt's production server.
	ACMEDirectory string
	// ACMEDirectoryCAFile, when set, holds the PEM CA certificates that
	// the ACME server's HTTPS certificate is verified against, besides
	// the system's (a private ACME server).
	ACMEDirectoryCAFile string
	// HTTPAddr, when set, serves plaintext HTTP on this address (port 80)
	// for ACME HTTP-01 challenges and redirects everything else to
	// https. It needs TLS.
	HTTPAddr string

	// Data is the snapshot file; the journal generations and the lock
	// file live beside it. Empty keeps everything in memory only.
	Data string
	// Fsync says when journal records reach the disk.
	Fsync persist.SyncMode
	// Repair starts despite a damaged snapshot or journal: the records
	// before the damage are kept and the damaged file is moved aside.
	Repair bool
	// SaveInterval is the time between snapshots.
	SaveInterval time.Duration

	// MaxKeySize is the longest key in bytes, as stored (an ip/ key
	// counts with the address).
	MaxKeySize int
	// MaxValueSize is the largest value plus owner secret, in bytes.
	MaxValueSize int
	// MaxKeys caps the live keys.
	MaxKeys int
	// MaxTTL is the default and the longest lifetime of a value. Zero
	// means no limit: a value written without a TTL never expires, for a
	// private instance used as a general key-value database.
	MaxTTL time.Duration
	// MaxScanLimit is the most keys one listing page returns.
	MaxScanLimit int
	// MaxWait is the longest a long-poll may hold a request.
	MaxWait time.Duration
	// MaxBatchOps is the most operations one transaction (POST /txn) may
	// have, and the most checks.
	MaxBatchOps int

	// RateOff turns rate limiting off; the other Rate fields are then
	// ignored.
	RateOff bool
	// RateTokens tokens refill each client's bucket every RateWindow.
	RateTokens int
	// RateWindow is the refill period of RateTokens.
	RateWindow time.Duration
	// RateBurst is the bucket size; 0 means RateTokens.
	RateBurst int
	// CostRead and CostWrite are the tokens a read and a write take.
	CostRead, CostWrite int
	// ClientGrouping is how many leading bits of an address make one
	// client: the addresses that share them share one bucket and one set
	// of watcher places.
	ClientGrouping kv.Grouping
	// RateClients is the most buckets kept; beyond it new clients share
	// one.
	RateClients int

	// TrustedProxies are the reverse proxies whose X-Forwarded-For and
	// X-Real-IP are believed. Addresses are compared unmapped, so IPv4
	// ranges are given as IPv4, not as ::ffff:a.b.c.d/N.
	TrustedProxies []netip.Prefix
	// CORSOrigin is sent as Access-Control-Allow-Origin; empty disables
	// CORS.
	CORSOrigin string
	// PublicURL is the server's URL as its clients reach it
	// (https://kv.example, or with a path a proxy mounts it under), which
	// the endpoints KV Connect hands out start with; empty builds them
	// from each request (its scheme and Host, or a trusted proxy's
	// X-Forwarded-Proto and X-Forwarded-Host).
	PublicURL string
	// IPWriteOrigins are the web origins whose pages may write ip/ keys,
	// besides this server's own, each as ParseOrigin returns it.
	IPWriteOrigins []string

	// MaxWatchers caps the watch streams and long-polls open at once, in
	// all; MaxWatchersPerIP per client (of ClientGrouping);
	// MaxWatchersPerNet per network of NetworkGrouping (never narrower
	// than a client's group).
	MaxWatchers, MaxWatchersPerIP, MaxWatchersPerNet int
	NetworkGrouping                                  kv.Grouping
	// WatchKeepAlive is how long a watch stream stays silent before it
	// sends a comment line; 0 means handlers.DefaultWatchKeepAlive.
	WatchKeepAlive time.Duration
	// StreamWriteTimeout bounds each write to a watch stream and the
	// final write of a long-poll; 0 means
	// handlers.DefaultStreamWriteTimeout.
	StreamWriteTimeout time.Duration

	// MaxConns caps the connections each listener (the API's, the
	// metrics' and any other) keeps open at once; beyond it clients wait
	// in the kernel's accept queue until one closes, so the process holds
	// a bounded number of file descriptors. New lowers it, with a warning
	// in the log, when the open-file limit (RLIMIT_NOFILE) cannot hold it
	// for every listener.
	MaxConns int
	// MaxInFlight caps the API requests served at once; beyond it a
	// request is refused at once with 503 and Retry-After. Health checks,
	// /metrics, watch streams and long-polls are not counted (see
	// policy.Service.Admit).
	MaxInFlight int
	// MaxHeaderBytes caps a request's head: its request line and headers.
	// net/http's bound is approximate: it answers 431 past 4 KiB more on a
	// new connection, up to 8 KiB more on a kept-alive one; over HTTP/2 it
	// caps the header list. A compare-and-swap carries its expected value
	// in a header, so keep it above MaxValueSize.
	MaxHeaderBytes int
	// ReadHeaderTimeout is how long a client has to send a request's
	// head, from its connection's accept or, on a kept-alive connection,
	// from the head's first bytes: it closes connections that send
	// nothing, or their headers a byte at a time (slowloris).
	ReadHeaderTimeout time.Duration
	// ReadTimeout is how long a client has to send a whole request, head
	// and body.
	ReadTimeout time.Duration
	// WriteTimeout bounds the answer to a request, from the end of its
	// head; watch streams and long-polls extend it for their own writes
	// (StreamWriteTimeout, MaxWait).
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection that sends no new
	// request for this long.
	IdleTimeout time.Duration

	// AuthFile is a token file (see auth.TokenFile): each line a token,
	// its identity, grants and optional rate. It is read again on
	// Server.Reload. Exclusive with the JWT settings.
	AuthFile string
	// JWTSecretFile holds the shared secret of HS256/384/512 tokens;
	// JWTPublicKey is a PEM public key (RSA, ECDSA or Ed25519) for RS*,
	// PS*, ES* or EdDSA tokens; JWTJWKSURL serves the issuer's keys as a
	// JWKS. At most one of them is set.
	JWTSecretFile, JWTPublicKey, JWTJWKSURL string
	// JWTIssuer and JWTAudience, when set, are required of every JWT's
	// iss and aud claims.
	JWTIssuer, JWTAudience string
	// JWKSRefetchFloor is the least time between two fetches of the JWKS
	// for a kid it did not hold; 0 means auth.DefaultRefetchFloor.
	JWKSRefetchFloor time.Duration
	// Anonymous grants callers without a token or an identified client
	// certificate these rights, written as a token file writes grants
	// ("rw: -:team/"); empty grants nothing. It applies when AuthFile, a
	// JWT key or MTLSIdentityFile is set; without them every caller may
	// read and write everything.
	Anonymous string
	// RespAddr, when set, serves the Redis protocol (package resp) on this
	// address; off when empty. Like Addr it must be loopback unless
	// Insecure is set.
	RespAddr string
	// LineAddr, when set, serves netkv's line protocol (package
	// lineproto) on this address; off when empty. Like Addr it must be
	// loopback unless Insecure is set.
	LineAddr string
	// RespIdleTimeout closes a Redis protocol connection that sends no
	// command for this long (subscribed ones excepted); LineIdleTimeout a
	// line protocol connection that sends no line. They are apart from
	// IdleTimeout because their clients differ from HTTP's: a Redis
	// client's pool keeps connections for minutes between bursts, and a
	// person typing into nc pauses, where an idle HTTP connection is
	// reopened at the cost of one handshake.
	RespIdleTimeout, LineIdleTimeout time.Duration

	// MetricsAddr, when set, serves /metrics on this address instead of
	// on Addr.
	MetricsAddr string
	// PprofAddr, when set, serves net/http/pprof and expvar on this
	// address, which must be loopback.
	PprofAddr string

	// DrainTimeout bounds how long Serve, once its context is done, waits
	// for requests in flight; 0 means 10 seconds.
	DrainTimeout time.Duration
	// PaceGC lets the server tune the garbage collector to the live heap
	// (package gcpace) unless GOGC is set. The setting is process-wide, so
	// at most one server in a process should have it; the rendezvous
	// command sets it.
	PaceGC bool
	// WatchOff refuses watch streams and long-polls (code
	// watch_disabled), for an embedder that serves no long-lived requests.
	WatchOff bool
	// WatchHistory is how many recent changes are kept for watch streams
	// to resume from; 0 means feed.DefaultHistory.
	WatchHistory int

	// Observer, when set, is told of every API request (its route name,
	// status and duration) as well as the server's metrics, for an
	// embedder's own tracing or logs.
	Observer handlers.Observer
	// Ready, when set, is asked by /readyz besides the journal, so that
	// an embedder's own dependency can take the server out of a load
	// balancer.
	Ready func() error
	// OnChange, when set, sees every change (each change of a
	// transaction) before the journal does; an error refuses the whole
	// write, which then changes nothing and is answered
	// storage_unavailable. It is for an embedder that must mirror or audit
	// a write before it is acknowledged. It is called under the store's
	// lock, so it must be quick and must not call the server.
	OnChange func(kv.Change) error

	// Now is the clock of expiry and TTLs; nil means time.Now. Tests pass
	// a fake one. The rate limiter and snapshot times keep the real clock.
	Now func() time.Time
	// Logger receives the server's log; nil discards it.
	Logger *slog.Logger
}

// DefaultConfig returns the settings of the rendezvous command run
// without flags (which also sets PaceGC).
func DefaultConfig() Config {
	return Config{
		Addr:              "127.0.0.1:8080",
		Data:              "rendezvous.db",
		Fsync:             persist.SyncEverySec,
		SaveInterval:      time.Minute,
		MaxKeySize:        100,
		MaxValueSize:      1000,
		MaxKeys:           100000,
		MaxTTL:            2 * time.Hour,
		MaxScanLimit:      policy.DefaultMaxScanLimit,
		MaxWait:           time.Minute,
		MaxBatchOps:       100,
		RateTokens:        17,
		RateWindow:        time.Minute,
		CostRead:          1,
		CostWrite:         3,
		ClientGrouping:    kv.Grouping{V4: 32, V6: 64},
		RateClients:       100000,
		CORSOrigin:        "*",
		MaxWatchers:       1000,
		MaxWatchersPerIP:  10,
		MaxWatchersPerNet: 100,
		NetworkGrouping:   kv.Grouping{V4: 24, V6: 48},
		MaxConns:          DefaultMaxConns,
		MaxInFlight:       DefaultMaxInFlight,
		MaxHeaderBytes:    16 << 10,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		RespIdleTimeout:   resp.DefaultIdleTimeout,
		LineIdleTimeout:   lineproto.DefaultIdleTimeout,
		DrainTimeout:      10 * time.Second,
	}
}

// The default connection and load limits, sized for a public instance on
// a small machine: 10000 connections take about 10000 file descriptors
// and, idle, some 40 MiB; 1000 requests in flight are far more than a
// 2-core machine serves at once, so the cap only bites under a flood.
const (
	DefaultMaxConns    = 10000
	DefaultMaxInFlight = 1000
)

// minHeaderBytes is the smallest MaxHeaderBytes Validate accepts: a
// browser's request head alone is often half of it.
const minHeaderBytes = 1 << 10

// ConfigError says which setting Validate refused, and why.
type ConfigError struct {
	// Field is the name of the Config field, like "MaxTTL", or of the
	// field within it, like "ClientGrouping.V4".
	Field string
	// Value is the refused value.
	Value any
	// Err is the reason; ErrPlaintext for an address refused because it
	// is not loopback and Insecure is not set.
	Err error
}

// Error names the field, the value and the reason.
func (e *ConfigError) Error() string {
	v := fmt.Sprint(e.Value)
	if s, ok := e.Value.(string); ok {
		v = fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("server: invalid %s %s: %v", e.Field, v, e.Err)
}

// Unwrap returns the reason, so errors.Is finds ErrPlaintext.
func (e *ConfigError) Unwrap() error { return e.Err }

// ErrPlaintext refuses an address that would serve plaintext HTTP off the
// loopback interface without Config.Insecure.
var ErrPlaintext = errors.New("plaintext HTTP on an address that is not loopback; serve TLS, or put a TLS proxy in front and set Insecure, or listen on loopback")

var (
	errPositive    = errors.New("must be positive")
	errNegative    = errors.New("must not be negative")
	errProfiling   = errors.New("profiling is only served on a loopback address")
	errBurstCost   = errors.New("smaller than a request's cost")
	errMappedRange = errors.New("give IPv4 ranges as IPv4: addresses are compared unmapped")
)

// Validate reports the first setting a Server cannot run with, as a
// *ConfigError.
func (c *Config) Validate() error {
	refuse := func(field string, v any, err error) error {
		return &ConfigError{Field: field, Value: v, Err: err}
	}
	for _, p := range []struct {
		field string
		v     int
	}{
		{"MaxKeySize", c.MaxKeySize},
		{"MaxValueSize", c.MaxValueSize},
		{"MaxKeys", c.MaxKeys},
		{"CostRead", c.CostRead},
		{"CostWrite", c.CostWrite},
		{"RateClients", c.RateClients},
		{"MaxScanLimit", c.MaxScanLimit},
		{"MaxBatchOps", c.MaxBatchOps},
		{"MaxWatchers", c.MaxWatchers},
		{"MaxWatchersPerIP", c.MaxWatchersPerIP},
		{"MaxWatchersPerNet", c.MaxWatchersPerNet},
		{"MaxConns", c.MaxConns},
		{"MaxInFlight", c.MaxInFlight},
		{"MaxHeaderBytes", c.MaxHeaderBytes},
	} {
		if p.v <= 0 {
			return refuse(p.field, p.v, errPositive)
		}
	}
	for _, p := range []struct {
		field string
		v     time.Duration
	}{
		{"MaxWait", c.MaxWait},
		{"SaveInterval", c.SaveInterval},
		// Zero would mean "no timeout" to net/http: a slowloris opening.
		{"ReadHeaderTimeout", c.ReadHeaderTimeout},
		{"ReadTimeout", c.ReadTimeout},
		{"WriteTimeout", c.WriteTimeout},
		{"IdleTimeout", c.IdleTimeout},
		// Zero would keep a silent connection, and its --max-conns slot,
		// for ever.
		{"RespIdleTimeout", c.RespIdleTimeout},
		{"LineIdleTimeout", c.LineIdleTimeout},
	} {
		if p.v <= 0 {
			return refuse(p.field, p.v, errPositive)
		}
	}
	for _, p := range []struct {
		field string
		v     time.Duration
	}{
		{"MaxTTL", c.MaxTTL},
		{"WatchKeepAlive", c.WatchKeepAlive},
		{"StreamWriteTimeout", c.StreamWriteTimeout},
		{"DrainTimeout", c.DrainTimeout},
		{"JWKSRefetchFloor", c.JWKSRefetchFloor},
	} {
		if p.v < 0 {
			return refuse(p.field, p.v, errNegative)
		}
	}
	if c.MaxHeaderBytes < minHeaderBytes {
		return refuse("MaxHeaderBytes", c.MaxHeaderBytes, fmt.Errorf("must be at least %d, or ordinary requests are refused", minHeaderBytes))
	}
	if c.RateBurst < 0 {
		return refuse("RateBurst", c.RateBurst, errNegative)
	}
	if c.WatchHistory < 0 {
		return refuse("WatchHistory", c.WatchHistory, errNegative)
	}
	for _, p := range []struct {
		field string
		g     kv.Grouping
	}{
		{"ClientGrouping", c.ClientGrouping},
		{"NetworkGrouping", c.NetworkGrouping},
	} {
		var ge *kv.GroupingError
		if errors.As(p.g.Validate(), &ge) {
			return refuse(p.field+"."+ge.Field, ge.Bits, ge.Err)
		}
	}
	if !c.RateOff {
		switch {
		case c.RateTokens <= 0:
			return refuse("RateTokens", c.RateTokens, errPositive)
		case c.RateWindow <= 0:
			return refuse("RateWindow", c.RateWindow, errPositive)
		case c.CostWrite > c.burst() || c.CostRead > c.burst():
			return refuse("RateBurst", c.burst(), errBurstCost)
		}
	}
	if c.Fsync > persist.SyncNo {
		return refuse("Fsync", c.Fsync, errors.New("not a sync mode"))
	}
	for _, p := range c.TrustedProxies {
		switch {
		case !p.IsValid():
			return refuse("TrustedProxies", p, errors.New("not a valid prefix"))
		case p.Addr().Is4In6() && p.Bits() >= 96:
			return refuse("TrustedProxies", p, errMappedRange)
		}
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(u.Path, "/") {
			return refuse("PublicURL", c.PublicURL, errors.New("want an http or https URL like https://kv.example, without a query or a trailing slash"))
		}
	}
	for _, o := range c.IPWriteOrigins {
		if canon, err := ParseOrigin(o); err != nil {
			return refuse("IPWriteOrigins", o, err)
		} else if canon != o {
			return refuse("IPWriteOrigins", o, fmt.Errorf("write it as %s, the form browsers send", canon))
		}
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return refuse("Addr", c.Addr, err)
	}
	if c.PprofAddr != "" && !loopbackAddr(c.PprofAddr) {
		return refuse("PprofAddr", c.PprofAddr, errProfiling)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return refuse("MetricsAddr", c.MetricsAddr, err)
		}
		if !c.Insecure && !loopbackAddr(c.MetricsAddr) {
			return refuse("MetricsAddr", c.MetricsAddr, ErrPlaintext)
		}
	}
	for _, a := range []struct{ field, addr string }{{"RespAddr", c.RespAddr}, {"LineAddr", c.LineAddr}} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return refuse(a.field, a.addr, err)
		}
		if !c.Insecure && !c.TLS() && !loopbackAddr(a.addr) {
			return refuse(a.field, a.addr, ErrPlaintext)
		}
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if !c.Insecure && !c.TLS() && !loopbackAddr(c.Addr) {
		return refuse("Addr", c.Addr, ErrPlaintext)
	}
	return c.validateAuth(refuse)
}

// The refusals of authentication settings.
var (
	ErrAuthExclusive = errors.New("a token file and JWTs are exclusive: give one of them")
	errOneJWTKey     = errors.New("give one JWT key: a secret file, a public key or a JWKS URL")
	errJWTClaims     = errors.New("checks JWTs' claims, but no JWT key is set")
	errAnonymousOnly = errors.New("restricts anonymous callers, but no token file, JWT key or mTLS identity file is set, so every caller is anonymous with full access")
)

// validateAuth checks the authentication settings.
func (c *Config) validateAuth(refuse func(string, any, error) error) error {
	keys := 0
	for _, k := range []string{c.JWTSecretFile, c.JWTPublicKey, c.JWTJWKSURL} {
		if k != "" {
			keys++
		}
	}
	switch {
	case c.AuthFile != "" && keys > 0:
		return refuse("AuthFile", c.AuthFile, ErrAuthExclusive)
	case keys > 1:
		return refuse("JWTSecretFile", c.JWTSecretFile, errOneJWTKey)
	case keys == 0 && c.JWTIssuer != "":
		return refuse("JWTIssuer", c.JWTIssuer, errJWTClaims)
	case keys == 0 && c.JWTAudience != "":
		return refuse("JWTAudience", c.JWTAudience, errJWTClaims)
	case keys == 0 && c.AuthFile == "" && c.MTLSIdentityFile == "" && c.Anonymous != "":
		return refuse("Anonymous", c.Anonymous, errAnonymousOnly)
	}
	if _, err := auth.ParseGrants(c.Anonymous); err != nil {
		return refuse("Anonymous", c.Anonymous, err)
	}
	if c.JWTJWKSURL != "" {
		if u, err := url.Parse(c.JWTJWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return refuse("JWTJWKSURL", c.JWTJWKSURL, errors.New("not an http or https URL"))
		}
	}
	return nil
}

// authOn reports whether callers authenticate, by a token or by a
// client certificate, and so whether access control is on.
func (c *Config) authOn() bool { return c.tokensOn() || c.MTLSIdentityFile != "" }

// tokensOn reports whether callers may present a token: a token file or
// a JWT key is set.
func (c *Config) tokensOn() bool {
	return c.AuthFile != "" || c.JWTSecretFile != "" || c.JWTPublicKey != "" || c.JWTJWKSURL != ""
}

// burst is the bucket size in effect.
func (c *Config) burst() int {
	if c.RateBurst > 0 {
		return c.RateBurst
	}
	return c.RateTokens
}

// rateText describes the rate limit for logs and the landing page.
func (c *Config) rateText() string {
	if c.RateOff {
		return "off"
	}
	return fmt.Sprintf("%d tokens per %s, burst %d", c.RateTokens, shortDuration(c.RateWindow), c.burst())
}

// ttlText describes the TTL limit: a duration, or "none" for no limit.
func ttlText(d time.Duration) string {
	if d == 0 {
		return "none"
	}
	return shortDuration(d)
}

// shortDuration prints 1m rather than 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	return strings.TrimSuffix(s, "0m")
}

// ParseOrigin returns the web origin s (scheme://host[:port], a trailing
// slash allowed) in the lower case browsers send in an Origin header.
func ParseOrigin(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("%q is not an origin like https://app.example", s)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// loopbackAddr reports whether addr only listens on a loopback interface.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
