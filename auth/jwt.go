package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rendezvous-kv/rendezvous/policy"
)

// The defaults of a JWTConfig.
const (
	// DefaultLeeway is the clock skew allowed on exp and nbf: enough for
	// clocks kept by NTP, too little to matter to a token's lifetime.
	DefaultLeeway = 30 * time.Second
	// DefaultRefetchFloor is the least time between two fetches of a
	// JWKS for a kid it did not hold: a rotated key is picked up within
	// it, and a flood of tokens with made-up kids costs the issuer one
	// request per floor.
	DefaultRefetchFloor = time.Minute
	// DefaultRefreshInterval is how old a fetched JWKS may grow before it
	// is fetched again in the background.
	DefaultRefreshInterval = time.Hour
	// DefaultCacheSize bounds the verified tokens kept.
	DefaultCacheSize = 10000
	// minSecret is the shortest HMAC secret accepted: 256 bits, as
	// RFC 7518 §3.2 requires of HS256.
	minSecret = 32
)

// JWTConfig says which JWTs a JWT verifier accepts. Exactly one of Secret,
// PublicKey and JWKSURL is set; the key pins the algorithms.
type JWTConfig struct {
	// Secret is the shared secret of HS256, HS384 and HS512 tokens.
	Secret []byte
	// PublicKey verifies RS*/PS* (an *rsa.PublicKey), ES256/384/512 (an
	// *ecdsa.PublicKey, its curve naming the one algorithm) or EdDSA (an
	// ed25519.PublicKey) tokens.
	PublicKey crypto.PublicKey
	// JWKSURL serves the issuer's public keys as a JSON Web Key Set; a
	// token's kid picks the key.
	JWKSURL string
	// Issuer and Audience, when set, are required of iss and aud.
	Issuer, Audience string
	// Leeway is the clock skew allowed on exp and nbf; 0 means
	// DefaultLeeway.
	Leeway time.Duration
	// RefetchFloor, RefreshInterval and HTTPTimeout govern JWKS fetches;
	// 0 means DefaultRefetchFloor, DefaultRefreshInterval and 10 seconds.
	RefetchFloor, RefreshInterval, HTTPTimeout time.Duration
	// CacheSize bounds the verified tokens kept; 0 means
	// DefaultCacheSize.
	CacheSize int
	// Log receives JWKS fetch failures; nil discards them.
	Log *slog.Logger
}

// JWT verifies bearer JWTs. The identity is the sub claim; its grants
// come from the grants claim (an array of grant strings) or, without one,
// from scope (space-separated, where entries that are not grants, such as
// an identity provider's "openid", are passed over); an optional rate
// claim ("100/1m") is its rate. exp is required and nbf honoured, both
// with Leeway. A token that verified is kept, by a hash of its text, until
// its exp, so a client's later requests skip the signature check.
// It is safe for concurrent use.
type JWT struct {
	cfg    JWTConfig
	parser *jwt.Parser
	key    jwt.Keyfunc
	jwks   *jwks // nil unless JWKSURL is set
	cache  *tokenCache
	log    *slog.Logger
}

// claims are the claims a JWT verifier reads.
type claims struct {
	jwt.RegisteredClaims
	Grants *[]string `json:"grants"`
	Scope  string    `json:"scope"`
	Rate   string    `json:"rate"`
}

// The algorithms each kind of key may verify: the key, never the token,
// picks them, which is what refuses alg "none" and an HS256 token "signed"
// with a public key as a secret.
var (
	hmacAlgs  = []string{"HS256", "HS384", "HS512"}
	rsaAlgs   = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	allPublic = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

// algsOf returns the algorithms key may verify, or nil for a key of no
// kind a JWT is verified with.
func algsOf(key any) []string {
	switch k := key.(type) {
	case []byte:
		return hmacAlgs
	case *rsa.PublicKey:
		return rsaAlgs
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}
		case elliptic.P384():
			return []string{"ES384"}
		case elliptic.P521():
			return []string{"ES512"}
		}
	case ed25519.PublicKey:
		return []string{"EdDSA"}
	}
	return nil
}

// NewJWT returns a verifier of cfg's tokens. With a JWKSURL it fetches the
// set once before it returns; a set that cannot be fetched yet is logged,
// and fetched again when a token needs it.
func NewJWT(cfg JWTConfig) (*JWT, error) {
	set := 0
	for _, b := range []bool{cfg.Secret != nil, cfg.PublicKey != nil, cfg.JWKSURL != ""} {
		if b {
			set++
		}
	}
	if set != 1 {
		return nil, errors.New("jwt: give exactly one of a secret, a public key and a JWKS URL")
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	j := &JWT{cfg: cfg, cache: newTokenCache(cfg.CacheSize), log: cfg.Log}
	var methods []string
	switch {
	case cfg.Secret != nil:
		if len(cfg.Secret) < minSecret {
			return nil, fmt.Errorf("jwt: the secret has %d bytes; HS256 needs at least %d", len(cfg.Secret), minSecret)
		}
		methods = hmacAlgs
		secret := slices.Clone(cfg.Secret)
		j.key = func(t *jwt.Token) (any, error) {
			if _, ok := t.Method.(*jwt.SigningMethodHMAC); !ok {
				return nil, errWrongAlg
			}
			return secret, nil
		}
	case cfg.PublicKey != nil:
		if methods = algsOf(cfg.PublicKey); methods == nil {
			return nil, fmt.Errorf("jwt: a %T is not a public key JWTs are verified with (RSA, ECDSA P-256/384/521 or Ed25519)", cfg.PublicKey)
		}
		key := cfg.PublicKey
		j.key = func(t *jwt.Token) (any, error) {
			if !slices.Contains(methods, t.Method.Alg()) {
				return nil, errWrongAlg
			}
			return key, nil
		}
	default:
		methods = allPublic
		j.jwks = newJWKS(cfg)
		j.key = j.jwks.keyfunc
		if err := j.jwks.fetch(); err != nil {
			j.log.Warn("JWKS not fetched; retrying when a token needs it", "url", cfg.JWKSURL, "err", err)
		}
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	j.parser = jwt.NewParser(opts...)
	return j, nil
}

var errWrongAlg = errors.New("jwt: algorithm not allowed for this key")

// Verify returns the identity token proves, or ErrTokenExpired for a
// token past its exp, or ErrInvalidToken.
func (j *JWT) Verify(token string) (*policy.Identity, error) {
	id, _, err := j.VerifyExpiry(token)
	return id, err
}

// VerifyExpiry is Verify that also returns the token's exp. A front end
// that hands out a credential of its own in exchange for the token (KV
// Connect's data-path token) uses it so that the credential never
// outlives the token.
func (j *JWT) VerifyExpiry(token string) (*policy.Identity, time.Time, error) {
	if token == "" {
		return nil, time.Time{}, ErrInvalidToken
	}
	now := time.Now()
	if e, ok := j.cache.entry(token, now); ok {
		return e.id, time.Unix(0, e.exp), nil
	}
	if j.jwks != nil {
		j.jwks.refreshIfOld(now)
	}
	var c claims
	if _, err := j.parser.ParseWithClaims(token, &c, j.key); err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, time.Time{}, ErrTokenExpired
		}
		return nil, time.Time{}, ErrInvalidToken
	}
	id, err := identityOf(&c)
	if err != nil {
		return nil, time.Time{}, ErrInvalidToken
	}
	j.cache.put(token, id, c.ExpiresAt.Time, now)
	return id, c.ExpiresAt.Time, nil
}

// identityOf builds the identity of verified claims.
func identityOf(c *claims) (*policy.Identity, error) {
	if c.Subject == "" {
		return nil, errors.New("no sub")
	}
	if err := checkName(c.Subject); err != nil {
		return nil, err
	}
	id := &policy.Identity{Name: c.Subject}
	var err error
	switch {
	case c.Grants != nil:
		if id.Grants, err = grantList(*c.Grants); err != nil {
			return nil, err
		}
	case c.Scope != "":
		var gs []string
		for _, s := range strings.Fields(c.Scope) {
			if _, err := ParseGrant(s); err == nil {
				gs = append(gs, s)
			}
		}
		if id.Grants, err = grantList(gs); err != nil {
			return nil, err
		}
	}
	if c.Rate != "" {
		if id.Rate, err = ParseRate(c.Rate); err != nil {
			return nil, err
		}
	}
	return id, nil
}

// ReadSecretFile reads an HMAC secret from path: the file's bytes, less a
// trailing newline, which an editor or echo leaves.
func ReadSecretFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jwt secret: %w", err)
	}
	b = []byte(strings.TrimRight(string(b), "\r\n"))
	if len(b) < minSecret {
		return nil, fmt.Errorf("jwt secret %s: %d bytes; HS256 needs at least %d", path, len(b), minSecret)
	}
	return b, nil
}

// ReadPublicKey reads a PEM public key (PKIX "PUBLIC KEY", or an RSA
// "RSA PUBLIC KEY", or the public key of a "CERTIFICATE") from path.
func ReadPublicKey(path string) (crypto.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jwt public key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("jwt public key %s: no PEM block", path)
	}
	var key any
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		return nil, fmt.Errorf("jwt public key %s: a PEM %q block, want PUBLIC KEY", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("jwt public key %s: %w", path, err)
	}
	if algsOf(key) == nil {
		return nil, fmt.Errorf("jwt public key %s: a %T, want RSA, ECDSA P-256/384/521 or Ed25519", path, key)
	}
	return key, nil
}
