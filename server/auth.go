package server

import (
	"crypto/tls"
	"sync/atomic"
	"time"

	"github.com/rendezvous-kv/rendezvous/auth"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/tlsconf"
)

// Verifier returns the verifier of the configured credentials (the token
// file's or the JWT key's), which every front end authenticates its
// callers with; nil when none is configured, and then every caller is
// anonymous with full access.
func (s *Server) Verifier() auth.Verifier { return s.verifier }

// openVerifier builds the verifier of the configured tokens.
func (s *Server) openVerifier() (auth.Verifier, error) {
	cfg := &s.cfg
	if cfg.AuthFile != "" {
		tf, err := auth.OpenTokenFile(cfg.AuthFile, s.log)
		if err != nil {
			return nil, err
		}
		s.onReload("token file", tf.Reload)
		s.log.Info("token file loaded", "file", cfg.AuthFile, "tokens", tf.Len())
		return tf, nil
	}
	open := func() (*auth.JWT, error) {
		jc := auth.JWTConfig{JWKSURL: cfg.JWTJWKSURL, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
			RefetchFloor: cfg.JWKSRefetchFloor, Log: s.log}
		var err error
		switch {
		case cfg.JWTSecretFile != "":
			jc.Secret, err = auth.ReadSecretFile(cfg.JWTSecretFile)
		case cfg.JWTPublicKey != "":
			jc.PublicKey, err = auth.ReadPublicKey(cfg.JWTPublicKey)
		}
		if err != nil {
			return nil, err
		}
		return auth.NewJWT(jc)
	}
	j, err := open()
	if err != nil {
		return nil, err
	}
	v := &jwtVerifier{}
	v.cur.Store(j)
	s.onReload("JWT key", func() error {
		// A new verifier with an empty cache: after a key is replaced, a
		// token it signed stops working at once, as a removed line of a
		// token file does.
		j, err := open()
		if err != nil {
			s.log.Error("JWT key not reloaded; the previous key stays in force", "err", err)
			return err
		}
		v.cur.Store(j)
		s.log.Info("JWT key reloaded")
		return nil
	})
	return v, nil
}

// jwtVerifier is the JWT verifier in force, replaced whole by Reload.
type jwtVerifier struct{ cur atomic.Pointer[auth.JWT] }

func (v *jwtVerifier) Verify(token string) (*policy.Identity, error) {
	return v.cur.Load().Verify(token)
}

// VerifyExpiry is the JWT verifier's VerifyExpiry, for KV Connect's
// data-path tokens, which must not outlive the JWT they were issued for.
func (v *jwtVerifier) VerifyExpiry(token string) (*policy.Identity, time.Time, error) {
	return v.cur.Load().VerifyExpiry(token)
}

// openCertIdentities reads Config.MTLSIdentityFile and has Reload read it
// again.
func (s *Server) openCertIdentities() (*auth.CertIdentities, error) {
	c, err := auth.OpenCertIdentities(s.cfg.MTLSIdentityFile, s.log)
	if err != nil {
		return nil, err // as a token file's: it names the file and line
	}
	s.onReload("mTLS identity file", c.Reload)
	s.log.Info("mTLS identity file loaded", "file", s.cfg.MTLSIdentityFile, "names", c.Len())
	return c, nil
}

// certIdentity returns the identity that the verified client certificate
// of the TLS connection cs names in the mTLS identity file, or nil when
// the connection has no verified certificate or none of its names is
// listed. It is looked up on every request, not once per connection, so
// a name removed from the file stops working at once on connections
// already open. Every front end gets it as its CertIdentity; it is only
// handed out when the file is configured.
func (s *Server) certIdentity(cs *tls.ConnectionState) *policy.Identity {
	return s.certs.Identify(tlsconf.ClientNames(cs))
}
