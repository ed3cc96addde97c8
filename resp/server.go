// Package resp is the Redis protocol front end: redis-cli, redis-benchmark
// and the Redis client of any language read and write rendezvous's keys
// through it, under the same rules as over HTTP.
//
// It parses RESP2 and RESP3 frames and inline commands, calls
// policy.Service for every key it touches, and writes Redis's replies;
// it decides no rule itself. Commands that read and write in one step
// (INCR, GETSET, SET ... GET, MSETNX) and MULTI/EXEC go through
// Service.Atomic, so they are atomic against every other client,
// whatever protocol it speaks.
package resp

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/rendezvous-kv/rendezvous/connserve"
	"github.com/rendezvous-kv/rendezvous/policy"
)

// Config is what a Server needs.
type Config struct {
	// Service applies the rules to every command.
	Service *policy.Service
	// Keys returns how many keys the store holds, for DBSIZE and INFO.
	Keys func() int
	// Now is the clock TTL replies are computed with; nil means time.Now.
	// It must be the clock the Service's store expires keys by.
	Now func() time.Time
	// IdleTimeout closes a connection that sends no command for this long
	// (subscribed connections excepted); 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// WriteTimeout bounds each flush of replies to a client; 0 means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Persistence describes the journal for CONFIG GET appendonly and
	// INFO: "yes" or "no".
	AppendOnly string
	// Log receives connection errors worth an operator's attention.
	Log *slog.Logger
	// Verifier, when set, makes every connection authenticate with AUTH
	// (or HELLO ... AUTH) before any other command: NOAUTH until then.
	// Nil means no authentication: AUTH answers as Redis does without a
	// password, and every caller is anonymous.
	Verifier Verifier
	// Authenticate returns the Caller of a connection from ip whose
	// client certificate names identity id (policy.Service.Authenticated);
	// nil keeps such a connection's anonymous caller. A token goes through
	// Service.Authenticate instead, which also throttles refused ones.
	Authenticate func(ip netip.Addr, id *policy.Identity) policy.Caller
	// CertIdentity returns the identity the verified client certificate of
	// a TLS connection names (mTLS identity file), or nil when the
	// connection has no verified certificate or its names match no
	// identity. A connection whose certificate names one starts
	// authenticated as it; AUTH (or HELLO ... AUTH) with a token replaces
	// it. Nil means no mTLS identities are configured.
	CertIdentity func(cs *tls.ConnectionState) *policy.Identity
}

// The defaults of Config's timeouts.
const (
	DefaultIdleTimeout  = 5 * time.Minute
	DefaultWriteTimeout = 30 * time.Second
)

// Server serves the Redis protocol on the listeners given to Serve. It
// implements server.FrontEnd.
type Server struct {
	cfg    Config
	svc    *policy.Service
	limits Limits
	start  time.Time

	nextID  atomic.Int64
	life    *connserve.Server // accepts, tracks and ends the connections
	cursors *cursors          // SCAN's, for every connection
}

// New returns a Server with cfg.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.AppendOnly == "" {
		cfg.AppendOnly = "no"
	}
	if cfg.Keys == nil {
		cfg.Keys = func() int { return 0 }
	}
	pc := cfg.Service.Config()
	batch := cfg.Service.BatchLimit()
	bulk := max(pc.MaxKeySize, pc.MaxValueSize)
	s := &Server{cfg: cfg, svc: cfg.Service, start: time.Now(), cursors: newCursors(cfg.Now), limits: Limits{
		// MSET of a whole batch is the longest command: a name, and a key
		// and value per op; options (EX, SECRET) add a few.
		MaxArgs: 2*batch + 8,
		MaxBulk: bulk,
		// A whole batch of the largest keys and values, and some room.
		MaxRequest: batch*(pc.MaxKeySize+pc.MaxValueSize) + bulk + 4096,
	}}
	s.life = connserve.New(func(nc net.Conn) { s.newConn(nc).serve() })
	return s
}

// ReaderLimits returns the bounds the server parses commands with.
func (s *Server) ReaderLimits() Limits { return s.limits }

// Serve accepts connections on ln until Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error { return s.life.Serve(ln) }

// Shutdown stops accepting, lets every connection finish the commands it
// has received, closes it, and waits for that, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error { return s.life.Shutdown(ctx) }

// Close closes every listener and connection at once.
func (s *Server) Close() error { return s.life.Close() }

// peerIP is the address a connection's commands are made from.
func peerIP(nc net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		return ap.Addr()
	}
	return netip.Addr{}
}
