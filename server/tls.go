package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/rendezvous-kv/rendezvous/listener"
	"github.com/rendezvous-kv/rendezvous/tlsconf"
)

// setupTLS builds the certificate source and the TLS settings every
// protocol listener shares.
func (s *Server) setupTLS() error {
	cfg := &s.cfg
	opts := tlsconf.Options{
		CertFile:     cfg.TLSCertFile,
		KeyFile:      cfg.TLSKeyFile,
		ClientCAFile: cfg.TLSClientCAFile,
		ClientAuth:   cfg.TLSClientAuth,
		Log:          s.log,
	}
	if len(cfg.ACMEDomains) > 0 {
		a, err := tlsconf.NewACME(tlsconf.ACMEOptions{
			Domains:         cfg.ACMEDomains,
			Email:           cfg.ACMEEmail,
			CacheDir:        cfg.acmeCache(),
			DirectoryURL:    cfg.ACMEDirectory,
			DirectoryCAFile: cfg.ACMEDirectoryCAFile,
			Log:             s.log,
		})
		if err != nil {
			return &ConfigError{Field: "ACMECache", Value: cfg.acmeCache(), Err: err}
		}
		s.acme = a
		opts.GetCertificate = a.GetCertificate
		opts.ExtraProtos = a.Protos()
	}
	m, err := tlsconf.New(opts)
	if err != nil {
		field, value := "TLSCertFile", cfg.TLSCertFile
		if le, ok := errors.AsType[*tlsconf.LoadError](err); ok && le.ClientCA {
			field, value = "TLSClientCAFile", cfg.TLSClientCAFile
		}
		return &ConfigError{Field: field, Value: value, Err: err}
	}
	s.tls = m
	s.onReload("TLS certificate", m.Reload)
	return nil
}

// protocolConns says how a protocol front end's connections are wrapped
// beyond what every listener gets.
type protocolConns struct {
	// plain wraps the listener when it serves plaintext; nil keeps it.
	plain func(net.Listener) net.Listener
	// tls wraps each TLS connection once its handshake is done; nil
	// keeps it.
	tls func(*tls.Conn) net.Conn
}

// listenProtocol binds addr for a protocol front end. Every protocol
// listener (the API, and those that speak other protocols) is bound here,
// so each gets the same treatment: TCP without keep-alive probes, at most
// Config.MaxConns connections open at once, and TLS with the shared
// settings when TLS is configured. The limit sits under TLS, so that it
// counts the connections still in their handshake.
func (s *Server) listenProtocol(name, addr string, srv FrontEnd, conns protocolConns) error {
	ln, err := listener.ListenTCP(addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s for %s: %w", addr, name, err)
	}
	if s.tls != nil {
		ln = tlsconf.NewListener(listener.Limit(ln, s.cfg.MaxConns), s.tls.Config(), tlsconf.ListenerOptions{
			HandshakeTimeout: s.cfg.ReadHeaderTimeout,
			Wrap:             conns.tls,
			Log:              s.log,
		})
	} else {
		if conns.plain != nil {
			ln = conns.plain(ln)
		}
		// Outside the plain wrapping, whose connections it keeps as they
		// are (see listener.Limit).
		ln = listener.Limit(ln, s.cfg.MaxConns)
	}
	s.fronts = append(s.fronts, front{name, ln, srv})
	return nil
}

// httpTLSConn hands an HTTP/2 connection to net/http as the *tls.Conn it
// negotiates HTTP/2 on, and wraps an HTTP/1 one so that its request heads
// are scanned for two framings, as on plaintext (package listener).
func httpTLSConn(c *tls.Conn) net.Conn {
	if c.ConnectionState().NegotiatedProtocol == "h2" {
		return c
	}
	return listener.TLS(c)
}

// httpFront is the plaintext listener of Config.HTTPAddr: ACME HTTP-01
// challenges, and a redirect to https for everything else.
func (s *Server) httpFront() FrontEnd {
	var h http.Handler = http.HandlerFunc(s.redirectHTTPS)
	if s.acme != nil {
		h = s.acme.HTTPHandler(h)
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// redirectHTTPS sends a reader to the same URL on the TLS port. A write
// is refused instead: its body already crossed the network in plaintext,
// and a client that follows a redirect would send it again.
func (s *Server) redirectHTTPS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte("this server is served over https; use https://\n"))
		return
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		http.Error(w, "no Host header; use https://", http.StatusBadRequest)
		return
	}
	if _, port, err := net.SplitHostPort(s.Addr().String()); err == nil && port != "443" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
}

// HTTPAddr returns the address of the plaintext HTTP listener (ACME
// challenges and the redirect to https), or nil when there is none.
func (s *Server) HTTPAddr() net.Addr { return s.frontAddr("http") }
