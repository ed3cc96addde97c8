package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// ACMEOptions are the settings of NewACME.
type ACMEOptions struct {
	// Domains are the only names certificates are obtained for.
	Domains []string
	// Email is the account's contact address; it may be empty.
	Email string
	// CacheDir keeps the account key and the certificates; it is created
	// with mode 0700.
	CacheDir string
	// DirectoryURL is the ACME server; empty means Let's Encrypt's
	// production directory.
	DirectoryURL string
	// DirectoryCAFile, when set, is trusted for the ACME server's HTTPS
	// besides the system's roots.
	DirectoryCAFile string
	// Log receives what happened to each certificate; nil discards it.
	Log *slog.Logger
}

// ACME obtains and renews certificates from an ACME server (RFC 8555) for
// a fixed set of names, by TLS-ALPN-01 on the TLS listener or HTTP-01 on
// HTTPHandler. It wraps golang.org/x/crypto/acme/autocert, which does the
// protocol, the renewals and the cache.
type ACME struct {
	m    *autocert.Manager
	opts ACMEOptions
	log  *slog.Logger
}

// NewACME checks the cache directory and the CA file and returns the
// certificate source; nothing is asked of the ACME server until the first
// handshake or Prefetch.
func NewACME(opts ACMEOptions) (*ACME, error) {
	if len(opts.Domains) == 0 {
		return nil, errors.New("tlsconf: ACME needs at least one domain")
	}
	if err := os.MkdirAll(opts.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("ACME cache: %w", err)
	}
	// The cache holds the account key and the certificates' private keys.
	if err := os.Chmod(opts.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("ACME cache: %w", err)
	}
	client := &acme.Client{DirectoryURL: opts.DirectoryURL}
	if client.DirectoryURL == "" {
		client.DirectoryURL = autocert.DefaultACMEDirectory
	}
	if opts.DirectoryCAFile != "" {
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		pem, err := os.ReadFile(opts.DirectoryCAFile)
		if err != nil {
			return nil, fmt.Errorf("ACME directory CA: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ACME directory CA %s: no PEM certificate in it", opts.DirectoryCAFile)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		client.HTTPClient = &http.Client{Transport: tr, Timeout: time.Minute}
	}
	a := &ACME{opts: opts, log: opts.Log}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.m = &autocert.Manager{
		// Running with --acme-domain is the operator's acceptance.
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(opts.CacheDir),
		HostPolicy: autocert.HostWhitelist(opts.Domains...),
		Client:     client,
		Email:      opts.Email,
	}
	return a, nil
}

// GetCertificate is for Options.GetCertificate: the certificate for the
// handshake's server name, obtained first when there is none yet. A name
// outside the domains fails the handshake.
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return a.m.GetCertificate(hello)
}

// Protos are the ALPN protocols to offer besides the front ends': the
// TLS-ALPN-01 challenge's.
func (a *ACME) Protos() []string { return []string{acme.ALPNProto} }

// HTTPHandler answers HTTP-01 challenges and hands every other request to
// fallback.
func (a *ACME) HTTPHandler(fallback http.Handler) http.Handler { return a.m.HTTPHandler(fallback) }

// Prefetch obtains (or loads from the cache) the certificate of every
// domain now, so that the first client does not wait for the ACME server,
// and logs how each went. A failure is retried at the next handshake for
// the name.
func (a *ACME) Prefetch(ctx context.Context) {
	for _, d := range a.opts.Domains {
		if ctx.Err() != nil {
			return
		}
		// A hello as a current client sends it, so the ECDSA certificate
		// is the one obtained.
		hello := &tls.ClientHelloInfo{
			ServerName:        d,
			SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
			SupportedCurves:   []tls.CurveID{tls.X25519, tls.CurveP256},
			CipherSuites:      []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
			SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
		}
		start := time.Now()
		cert, err := a.m.GetCertificate(hello)
		if err != nil {
			a.log.Error("ACME: no certificate yet; retrying at the next handshake", "domain", d, "err", err)
			continue
		}
		expires := time.Time{}
		if cert.Leaf != nil {
			expires = cert.Leaf.NotAfter
		}
		a.log.Info("ACME: certificate ready", "domain", d, "expires", expires, "duration", time.Since(start).Round(time.Millisecond))
	}
}
