package server_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/server"
)

const testSecret = "0123456789abcdef0123456789abcdef-hs"

// sign makes a token of claims with method and key, kid in its header
// when not empty.
func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

// claimsFor are valid claims for sub with grants, expiring in an hour.
func claimsFor(sub string, grants ...string) jwt.MapClaims {
	c := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix(), "iss": "https://issuer.test", "aud": "rendezvous"}
	if grants != nil {
		c["grants"] = grants
	}
	return c
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// pemPublic writes key's PKIX PEM to a file and returns its path and bytes.
func pemPublic(t *testing.T, key crypto.PublicKey) (string, []byte) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key)
	require.NoError(t, err)
	b := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return writeFile(t, t.TempDir(), "key.pem", string(b)), b
}

// assertRefused checks that token is refused with 401 and reason.
func assertRefused(t *testing.T, s *running, token, reason string) {
	t.Helper()
	resp, body := s.as(t, token, "GET", "/get/pub/x", "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, body)
	assert.Equal(t, reason+"\n", body)
	assert.Equal(t, "unauthenticated", resp.Header.Get("X-Error-Code"))
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `Bearer realm="rendezvous", error="invalid_token"`)
}

func TestJWTSecret(t *testing.T) {
	cfg := testConfig()
	cfg.JWTSecretFile = writeFile(t, t.TempDir(), "secret", testSecret+"\n")
	cfg.JWTIssuer, cfg.JWTAudience = "https://issuer.test", "rendezvous"
	s := start(t, cfg)
	key := []byte(testSecret)

	good := sign(t, jwt.SigningMethodHS256, key, "", claimsFor("alice", "rw:pub/", "r:ro/"))
	resp, body := s.as(t, good, "POST", "/set/pub/x", "1")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	resp, body = s.as(t, good, "POST", "/set/ro/x", "1")
	assertStatus(t, resp, body, http.StatusForbidden, "no_permission")
	resp, body = s.as(t, "", "GET", "/get/pub/x", "")
	assertStatus(t, resp, body, http.StatusUnauthorized, "unauthenticated")

	for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS384, jwt.SigningMethodHS512} {
		tok := sign(t, m, key, "", claimsFor("alice", "r:pub/"))
		resp, body := s.as(t, tok, "GET", "/get/pub/x", "")
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", m.Alg(), body)
	}
	// Grants from scope, where an identity provider's own scopes are
	// passed over.
	scoped := sign(t, jwt.SigningMethodHS256, key, "", with(claimsFor("bob"), "scope", "openid r:pub/ profile"))
	resp, body = s.as(t, scoped, "GET", "/get/pub/x", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	resp, body = s.as(t, scoped, "POST", "/set/pub/x", "2")
	assertStatus(t, resp, body, http.StatusForbidden, "no_permission")

	now := time.Now()
	base := claimsFor("alice", "rw:")
	assertRefused(t, s, sign(t, jwt.SigningMethodHS256, key, "", with(base, "exp", now.Add(-time.Minute).Unix())), "token expired")
	for name, tok := range map[string]string{
		"not yet valid":   sign(t, jwt.SigningMethodHS256, key, "", with(base, "nbf", now.Add(time.Hour).Unix())),
		"no exp":          sign(t, jwt.SigningMethodHS256, key, "", with(base, "exp", nil)),
		"wrong issuer":    sign(t, jwt.SigningMethodHS256, key, "", with(base, "iss", "https://evil.test")),
		"no issuer":       sign(t, jwt.SigningMethodHS256, key, "", with(base, "iss", nil)),
		"wrong audience":  sign(t, jwt.SigningMethodHS256, key, "", with(base, "aud", "other")),
		"no sub":          sign(t, jwt.SigningMethodHS256, key, "", with(base, "sub", nil)),
		"bad grant":       sign(t, jwt.SigningMethodHS256, key, "", with(base, "grants", []string{"all"})),
		"bad rate":        sign(t, jwt.SigningMethodHS256, key, "", with(base, "rate", "lots")),
		"other secret":    sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 40)), "", base),
		"alg none":        sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", base),
		"tampered claims": tamper(t, sign(t, jwt.SigningMethodHS256, key, "", claimsFor("eve", "r:pub/")), claimsFor("eve", "rw:")),
		"not a JWT":       "abc.def.ghi",
	} {
		t.Run(name, func(t *testing.T) { assertRefused(t, s, tok, "invalid token") })
	}
	// Within the leeway, an exp just passed and an nbf just ahead are
	// clock skew.
	skewed := sign(t, jwt.SigningMethodHS256, key, "", with(base, "exp", now.Add(-5*time.Second).Unix(), "nbf", now.Add(5*time.Second).Unix()))
	resp, body = s.as(t, skewed, "GET", "/get/pub/x", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
}

// tamper swaps the claims of a signed token for others, keeping its
// header and signature.
func tamper(t *testing.T, token string, claims jwt.MapClaims) string {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	b, err := json.Marshal(claims)
	require.NoError(t, err)
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// A public key pins its algorithms: an HS256 token "signed" with the
// public key itself as the secret, or a token of another key type, is
// refused.
func TestJWTPublicKeys(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	ec384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)

	rsaPath, rsaPEM := pemPublic(t, &rsaKey.PublicKey)
	rsaDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	require.NoError(t, err)
	ecPath, _ := pemPublic(t, &ecKey.PublicKey)
	edPath, edPEM := pemPublic(t, edPub)
	claims := claimsFor("alice", "r:")
	for _, tc := range []struct {
		name    string
		path    string
		good    []string
		refused []string
	}{
		{"RSA", rsaPath,
			[]string{
				sign(t, jwt.SigningMethodRS256, rsaKey, "", claims),
				sign(t, jwt.SigningMethodRS512, rsaKey, "", claims),
				sign(t, jwt.SigningMethodPS256, rsaKey, "", claims),
			},
			[]string{
				sign(t, jwt.SigningMethodHS256, rsaPEM, "", claims),
				sign(t, jwt.SigningMethodHS256, rsaDER, "", claims),
				sign(t, jwt.SigningMethodES256, ecKey, "", claims),
				sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims),
			}},
		{"ECDSA P-256", ecPath,
			[]string{sign(t, jwt.SigningMethodES256, ecKey, "", claims)},
			[]string{
				sign(t, jwt.SigningMethodES384, ec384, "", claims),
				sign(t, jwt.SigningMethodRS256, rsaKey, "", claims),
				sign(t, jwt.SigningMethodES256, ec384ToP256(t), "", claims),
			}},
		{"Ed25519", edPath,
			[]string{sign(t, jwt.SigningMethodEdDSA, edKey, "", claims)},
			[]string{
				sign(t, jwt.SigningMethodHS256, edPEM, "", claims),
				sign(t, jwt.SigningMethodHS256, []byte(edPub), "", claims),
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.JWTPublicKey = tc.path
			s := start(t, cfg)
			for i, tok := range tc.good {
				resp, body := s.as(t, tok, "GET", "/get/x", "")
				require.Equal(t, http.StatusNotFound, resp.StatusCode, "token %d: %s", i, body)
			}
			for _, tok := range tc.refused {
				assertRefused(t, s, tok, "invalid token")
			}
		})
	}
}

// ec384ToP256 is another P-256 key: its signatures do not verify under
// the configured one.
func ec384ToP256(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

// jwksServer serves a JWKS on loopback that the test can rotate, and
// counts its fetches.
type jwksServer struct {
	mu      sync.Mutex
	keys    []map[string]string
	fetches atomic.Int32
	srv     *httptest.Server
}

func newJWKSServer(t *testing.T) *jwksServer {
	j := &jwksServer{}
	j.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.fetches.Add(1)
		j.mu.Lock()
		defer j.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		json.NewEncoder(w).Encode(map[string]any{"keys": j.keys})
	}))
	t.Cleanup(j.srv.Close)
	return j
}

// serve replaces the set with the RSA keys by kid.
func (j *jwksServer) serve(keys map[string]*rsa.PrivateKey) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.keys = nil
	for kid, k := range keys {
		j.keys = append(j.keys, map[string]string{
			"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
			"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
		})
	}
}

// An unknown kid fetches the JWKS again, at most once per floor: key
// rotation works, and a flood of made-up kids costs the issuer one fetch.
func TestJWTJWKSRotation(t *testing.T) {
	k1, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	k2, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	issuer := newJWKSServer(t)
	issuer.serve(map[string]*rsa.PrivateKey{"k1": k1})

	cfg := testConfig()
	cfg.JWTJWKSURL = issuer.srv.URL + "/.well-known/jwks.json"
	const floor = 300 * time.Millisecond
	cfg.JWKSRefetchFloor = floor
	s := start(t, cfg)
	require.EqualValues(t, 1, issuer.fetches.Load(), "fetched once at start")
	claims := claimsFor("alice", "r:")

	resp, body := s.as(t, sign(t, jwt.SigningMethodRS256, k1, "k1", claims), "GET", "/get/x", "")
	require.Equal(t, http.StatusNotFound, resp.StatusCode, body)
	// The right key under the wrong algorithm, and HS256 with the key's
	// modulus as a secret, are refused.
	assertRefused(t, s, sign(t, jwt.SigningMethodPS256, k1, "k1", claims), "invalid token")
	assertRefused(t, s, sign(t, jwt.SigningMethodHS256, k1.N.Bytes(), "k1", claims), "invalid token")

	time.Sleep(floor)
	before := issuer.fetches.Load()
	for i := 0; i < 20; i++ {
		assertRefused(t, s, sign(t, jwt.SigningMethodRS256, k2, "made-up", claims), "invalid token")
	}
	assert.EqualValues(t, before+1, issuer.fetches.Load(), "one fetch for twenty unknown kids within the floor")

	issuer.serve(map[string]*rsa.PrivateKey{"k2": k2})
	time.Sleep(floor)
	rotated := sign(t, jwt.SigningMethodRS256, k2, "k2", claims)
	resp, body = s.as(t, rotated, "GET", "/get/x", "")
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "the rotated key verifies after one fetch: %s", body)
	assertRefused(t, s, sign(t, jwt.SigningMethodRS256, k1, "k1", with(claims, "jti", "new")), "invalid token")
}

// A rate claim gives the identity its own bucket.
func TestJWTRateClaim(t *testing.T) {
	cfg := testConfig()
	cfg.RateOff, cfg.RateTokens, cfg.RateWindow, cfg.CostRead = false, 17, time.Hour, 1
	cfg.JWTSecretFile = writeFile(t, t.TempDir(), "secret", testSecret)
	s := start(t, cfg)
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", with(claimsFor("alice", "r:"), "rate", "3/1h"))
	for i := 0; i < 3; i++ {
		resp, body := s.as(t, tok, "GET", "/get/x", "")
		require.Equal(t, http.StatusNotFound, resp.StatusCode, body)
	}
	resp, body := s.as(t, tok, "GET", "/get/x", "")
	assertStatus(t, resp, body, http.StatusTooManyRequests, "rate_limited")
	assert.Equal(t, "3", resp.Header.Get("X-RateLimit-Limit"))
}

func TestJWTSettingsRefused(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		secret, public, want string
	}{
		"short secret":    {secret: writeFile(t, dir, "short", "tiny\n"), want: "at least 32"},
		"no PEM":          {public: writeFile(t, dir, "nopem", "hello"), want: "no PEM block"},
		"private key PEM": {public: writeFile(t, dir, "priv", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), want: "want PUBLIC KEY"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			cfg.JWTSecretFile, cfg.JWTPublicKey = tc.secret, tc.public
			_, err := server.New(cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// Reload reads the JWT key again: a token of the replaced key stops
// working at once, even one verified before; a key that does not load
// keeps the previous one.
func TestJWTKeyReload(t *testing.T) {
	cfg := testConfig()
	cfg.JWTSecretFile = writeFile(t, t.TempDir(), "secret", testSecret)
	s := start(t, cfg)
	old := sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claimsFor("alice", "r:"))
	resp, body := s.as(t, old, "GET", "/get/x", "")
	require.Equal(t, http.StatusNotFound, resp.StatusCode, body)

	newSecret := strings.Repeat("n", 40)
	writeFile(t, filepath.Dir(cfg.JWTSecretFile), "secret", newSecret)
	require.NoError(t, s.Reload())
	assertRefused(t, s, old, "invalid token")
	fresh := sign(t, jwt.SigningMethodHS256, []byte(newSecret), "", claimsFor("alice", "r:"))
	resp, body = s.as(t, fresh, "GET", "/get/x", "")
	require.Equal(t, http.StatusNotFound, resp.StatusCode, body)

	writeFile(t, filepath.Dir(cfg.JWTSecretFile), "secret", "short")
	require.ErrorContains(t, s.Reload(), "at least 32")
	resp, body = s.as(t, fresh, "GET", "/get/x", "")
	require.Equal(t, http.StatusNotFound, resp.StatusCode, body)
}
