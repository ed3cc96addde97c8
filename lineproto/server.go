// Package lineproto is netkv's line protocol, one command per line that
// anyone can type into nc: "key" reads, "key=value" writes, and replies
// start with '=' (success), '!' (error) or '?' (information). It is a
// front end over policy like every other: the same keys, limits and
// rules as over HTTP and Redis.
package lineproto

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/rendezvous-kv/rendezvous/connserve"
	"github.com/rendezvous-kv/rendezvous/policy"
)

// Config is what a Server needs.
type Config struct {
	// Service applies the rules to every line.
	Service *policy.Service
	// IdleTimeout closes a connection that sends no line for this long;
	// 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Log receives connection errors worth an operator's attention.
	Log *slog.Logger
	// Verifier, when set, makes every connection authenticate: the server
	// greets with "?Needs Auth", and a first line other than a valid
	// "~password=TOKEN" gets "!Not Authorized" and a disconnect. Nil
	// means no authentication, no greeting, as netkv without a password.
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
	// authenticated as it, without the "?Needs Auth" greeting;
	// "~password=TOKEN" replaces it. Nil means no mTLS identities are
	// configured.
	CertIdentity func(cs *tls.ConnectionState) *policy.Identity
}

// Verifier checks a token and returns who holds it. It has the method
// set of auth.Verifier, so the server hands its verifier over as it is.
type Verifier interface {
	Verify(token string) (*policy.Identity, error)
}

// DefaultIdleTimeout is how long a silent connection stays open.
const DefaultIdleTimeout = 2 * time.Minute

// writeTimeout bounds each reply's write.
const writeTimeout = 30 * time.Second

// Server serves the line protocol on the listeners given to Serve. It
// implements server.FrontEnd.
type Server struct {
	cfg   Config
	svc   *policy.Service
	limit int               // the longest line: a key, '=', a value
	life  *connserve.Server // accepts, tracks and ends the connections
}

// New returns a Server with cfg.
func New(cfg Config) *Server {
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	pc := cfg.Service.Config()
	s := &Server{cfg: cfg, svc: cfg.Service, limit: pc.MaxKeySize + 1 + pc.MaxValueSize}
	s.life = connserve.New(s.serveConn)
	return s
}

// Serve accepts connections on ln until Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error { return s.life.Serve(ln) }

// Shutdown stops accepting, lets each connection answer the lines it has
// received, and waits for them to close, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error { return s.life.Shutdown(ctx) }

// Close closes every listener and connection at once.
func (s *Server) Close() error { return s.life.Close() }

// session is one connection's state.
type session struct {
	ip     netip.Addr
	authed bool // no verifier, or the connection proved an identity
	closed bool // refused: answer, then disconnect
	caller policy.Caller
	ttl    time.Duration // of this connection's writes; 0: the default
	out    []byte
	// byToken says "~password=" proved the identity, so the client
	// certificate no longer counts; cert is the TLS state of a connection
	// whose certificate was verified (with Config.CertIdentity), certID
	// the identity it named when last looked up.
	byToken bool
	cert    *tls.ConnectionState
	certID  *policy.Identity
}

// certify makes the caller of a session that proved no token the
// identity its client certificate names now: before each batch of lines,
// so that a name removed from the identity file stops working on open
// connections too.
func (s *Server) certify(ss *session) {
	if ss.cert == nil || ss.byToken {
		return
	}
	id := s.cfg.CertIdentity(ss.cert)
	if id == ss.certID {
		return
	}
	ss.certID = id
	if id == nil || s.cfg.Authenticate == nil {
		ss.authed, ss.caller = s.cfg.Verifier == nil, s.svc.Caller(ss.ip, false)
		return
	}
	ss.authed, ss.caller = true, s.cfg.Authenticate(ss.ip, id)
}

func (s *Server) serveConn(nc net.Conn) {
	defer nc.Close()
	var ip netip.Addr
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		ip = ap.Addr()
	}
	ss := &session{ip: ip, caller: s.svc.Caller(ip, false), authed: s.cfg.Verifier == nil}
	if tc, ok := nc.(*tls.Conn); ok && s.cfg.CertIdentity != nil {
		if cs := tc.ConnectionState(); len(cs.VerifiedChains) > 0 {
			ss.cert = &cs
			s.certify(ss)
		}
	}
	if !ss.authed {
		ss.reply('?', "Needs Auth")
	}
	r := bufio.NewReaderSize(nc, 4096)
	fresh := false // a batch of lines arrived, not yet certified
	for {
		if r.Buffered() == 0 {
			fresh = true
			if len(ss.out) > 0 {
				nc.SetWriteDeadline(time.Now().Add(writeTimeout))
				if _, err := nc.Write(ss.out); err != nil {
					return
				}
				ss.out = ss.out[:0]
			}
			nc.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
			if s.life.ShuttingDown() {
				return
			}
		}
		line, err := readLine(r, s.limit)
		switch {
		case errors.Is(err, errTooLong):
			ss.reply('!', "Too Long: a line holds at most "+strconv.Itoa(s.limit)+" bytes (key, '=', value)")
			continue
		case err != nil:
			if len(ss.out) > 0 {
				nc.SetWriteDeadline(time.Now().Add(writeTimeout))
				nc.Write(ss.out)
			}
			return // EOF ends the session
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if fresh {
			s.certify(ss)
			fresh = false
		}
		s.handle(ss, parse(line))
		if ss.closed {
			nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			nc.Write(ss.out)
			return
		}
	}
}

func (ss *session) reply(kind byte, text string) {
	ss.out = append(ss.out, kind)
	ss.out = append(ss.out, text...)
	ss.out = append(ss.out, '\n')
}

// refusal is the text after "!Not Set" and the like: the policy's code
// and message.
func refusal(err error) string {
	var pe *policy.Error
	if errors.As(err, &pe) {
		return ": " + pe.Code() + ": " + pe.Message
	}
	return ": " + policy.CodeInternal + ": " + err.Error()
}

func (s *Server) handle(ss *session, req request) {
	if !ss.authed && req.kind != kindAuth {
		ss.reply('!', "Not Authorized")
		ss.closed = true
		return
	}
	switch req.kind {
	case kindRead:
		it, err := s.svc.Get(ss.caller, string(req.key))
		var pe *policy.Error
		switch {
		case errors.As(err, &pe) && pe.Kind == policy.KindNotFound:
			ss.reply('!', "Not Gotten")
		case err != nil:
			ss.reply('!', "Not Gotten"+refusal(err))
		case bytes.ContainsAny(it.Value, "\r\n"):
			ss.reply('!', "Not Gotten: the value holds a line break; read it over HTTP or Redis")
		default:
			ss.out = append(ss.out, '=')
			ss.out = append(ss.out, it.Value...)
			ss.out = append(ss.out, '\n')
		}
	case kindWrite:
		// Owner secrets cannot be given on a line, so an owned key is
		// read-only here: policy refuses a write without its secret.
		value := bytes.Clone(req.value)
		_, err := s.svc.Write(ss.caller, policy.OpSet, policy.WriteRequest{Key: string(req.key), Value: value, TTL: ss.ttl})
		if err != nil {
			ss.reply('!', "Not Set"+refusal(err))
			return
		}
		ss.out = append(ss.out, '=')
		ss.out = append(ss.out, value...)
		ss.out = append(ss.out, '\n')
	case kindAuth:
		if s.cfg.Verifier == nil {
			// As netkv without a password: nothing to prove.
			ss.reply('?', "Authorized")
			return
		}
		// Through Service.Authenticate, so refused tokens are charged to
		// the address and guessing them here is throttled as on HTTP.
		caller, err := s.svc.Authenticate(s.svc.Caller(ss.ip, false), s.cfg.Verifier, string(req.value))
		if err != nil || caller.Identity == nil {
			// netkv's reply for a wrong password, with the reason only
			// when it is not that (too many refused tokens).
			msg := "Not Authorized"
			var pe *policy.Error
			if errors.As(err, &pe) && pe.Kind == policy.KindRateLimited {
				msg += refusal(err)
			}
			ss.reply('!', msg)
			ss.closed = true
			return
		}
		ss.authed, ss.byToken, ss.caller = true, true, caller
		ss.reply('?', "Authorized")
	case kindTTL:
		if len(req.value) == 0 {
			ss.ttl = 0
			ss.reply('?', "TTL default")
			return
		}
		d, err := policy.ParseTTL(string(req.value))
		if err != nil {
			ss.reply('!', "Bad TTL"+refusal(err))
			return
		}
		ss.ttl = d
		ss.reply('?', "TTL "+d.String())
	case kindDelete:
		if _, err := s.svc.Delete(ss.caller, string(req.key), ""); err != nil {
			ss.reply('!', "Not Deleted"+refusal(err))
			return
		}
		ss.reply('=', "")
	case kindLocked:
		ss.reply('!', "Locked")
	}
}
