// Package tlsconf turns the server's TLS settings into the one *tls.Config
// that every listener shares, and keeps it current: the certificate pair
// and the client CA are read again on Reload and when their files change,
// so an external renewal takes effect without a restart. Connections
// already open keep the certificate they were handshaken with; a pair
// that does not load leaves the previous one in place.
//
// The shared config never changes itself: its GetConfigForClient hands
// each handshake the config built at the last good load, so a reload is
// one atomic swap and costs a handshake nothing.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
)

// ClientAuth says what a listener asks of a client's certificate when a
// client CA is configured.
type ClientAuth int

const (
	// ClientAuthRequire refuses a handshake without a certificate that
	// the client CA verifies.
	ClientAuthRequire ClientAuth = iota
	// ClientAuthOptional lets a client without a certificate in, and
	// verifies one that is sent.
	ClientAuthOptional
)

// String returns the flag spelling, require or optional.
func (a ClientAuth) String() string {
	if a == ClientAuthOptional {
		return "optional"
	}
	return "require"
}

// ParseClientAuth reads require or optional.
func ParseClientAuth(s string) (ClientAuth, error) {
	switch s {
	case "require":
		return ClientAuthRequire, nil
	case "optional":
		return ClientAuthOptional, nil
	}
	return 0, fmt.Errorf("%q is neither require nor optional", s)
}

// Options are the TLS settings of a Manager.
type Options struct {
	// CertFile and KeyFile hold the PEM certificate chain and its private
	// key. Both are empty when GetCertificate supplies the certificates.
	CertFile, KeyFile string
	// GetCertificate, when set, picks the certificate for each handshake
	// instead of CertFile and KeyFile (ACME).
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ExtraProtos are offered by ALPN after h2 and http/1.1 (acme-tls/1
	// for TLS-ALPN-01 challenges).
	ExtraProtos []string
	// ClientCAFile, when set, holds the PEM certificates that client
	// certificates must chain to.
	ClientCAFile string
	// ClientAuth applies when ClientCAFile is set.
	ClientAuth ClientAuth
	// Log receives why a reload kept the previous certificates; nil
	// discards it.
	Log *slog.Logger
}

// Manager holds the current TLS settings and reloads them. Its methods are
// safe for concurrent use.
type Manager struct {
	opts   Options
	log    *slog.Logger
	shared *tls.Config
	cur    atomic.Pointer[tls.Config]

	mu    sync.Mutex // serialises loads
	files fileStates // of the files behind cur, as last loaded or tried
}

// New reads the files named in opts and returns a Manager serving them.
// Unlike a reload, a pair that does not load at start is an error, a
// *LoadError when a file is at fault.
func New(opts Options) (*Manager, error) {
	if opts.GetCertificate == nil && (opts.CertFile == "" || opts.KeyFile == "") {
		return nil, errors.New("tlsconf: a certificate and its key are needed")
	}
	m := &Manager{opts: opts, log: opts.Log}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.shared = &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Every handshake takes the config of the last good load, so a
		// reload never touches a config a handshake is reading.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return m.cur.Load(), nil },
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	states := m.stat()
	cfg, err := m.build()
	if err != nil {
		return nil, err
	}
	m.cur.Store(cfg)
	m.files = states
	return m, nil
}

// Config returns the config every listener shares. Listeners must not
// change it.
func (m *Manager) Config() *tls.Config { return m.shared }

// Current returns the config of the last good load, the one handshakes
// use now.
func (m *Manager) Current() *tls.Config { return m.cur.Load() }

// Reload reads the certificate pair and the client CA again. When one of
// them does not load it keeps every previous setting, logs why, and
// returns the reason.
func (m *Manager) Reload() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reload(m.stat())
}

// reload builds a config from the files, whose states are states, and
// swaps it in when it loads. m.mu is held.
func (m *Manager) reload(states fileStates) error {
	m.files = states // a bad pair is logged once, not at every poll
	cfg, err := m.build()
	if err != nil {
		m.log.Error("TLS reload failed; keeping the previous certificates", "err", err)
		return err
	}
	m.cur.Store(cfg)
	m.log.Info("TLS certificates reloaded", "cert", m.opts.CertFile, "client_ca", m.opts.ClientCAFile)
	return nil
}

// build reads the files into a new config.
func (m *Manager) build() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     append([]string{"h2", "http/1.1"}, m.opts.ExtraProtos...),
		GetCertificate: m.opts.GetCertificate,
	}
	if m.opts.GetCertificate == nil {
		pair, err := tls.LoadX509KeyPair(m.opts.CertFile, m.opts.KeyFile)
		if err != nil {
			return nil, &LoadError{Err: fmt.Errorf("certificate %s with key %s: %w", m.opts.CertFile, m.opts.KeyFile, err)}
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if m.opts.ClientCAFile != "" {
		pool, err := loadPool(m.opts.ClientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		if m.opts.ClientAuth == ClientAuthOptional {
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return cfg, nil
}

// LoadError says which of the files did not load, and why.
type LoadError struct {
	// ClientCA is set when the file is the client CA, not the
	// certificate pair.
	ClientCA bool
	Err      error
}

// Error returns the reason, which names the file.
func (e *LoadError) Error() string { return e.Err.Error() }

// Unwrap returns the reason.
func (e *LoadError) Unwrap() error { return e.Err }

// loadPool reads a PEM file of CA certificates.
func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, &LoadError{ClientCA: true, Err: fmt.Errorf("client CA: %w", err)}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, &LoadError{ClientCA: true, Err: fmt.Errorf("client CA %s: no PEM certificate in it", file)}
	}
	return pool, nil
}
