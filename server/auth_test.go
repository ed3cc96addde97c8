package server_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/server"
)

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// withTokens starts a server whose token file holds lines, and returns it
// with the file's path.
func withTokens(t *testing.T, anonymous string, lines ...string) (*running, string) {
	t.Helper()
	cfg := testConfig()
	cfg.AuthFile = writeFile(t, t.TempDir(), "tokens", strings.Join(lines, "\n")+"\n")
	cfg.Anonymous = anonymous
	return start(t, cfg), cfg.AuthFile
}

// as sends a request with token as its bearer token ("" sends none).
func (r *running) as(t *testing.T, token, method, path, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	if token != "" {
		hdr = append(hdr, "Authorization", "Bearer "+token)
	}
	return do(t, method, r.base+path, body, hdr...)
}

// assertStatus checks an answer's status and error code, and that a 401
// asks for a bearer token.
func assertStatus(t *testing.T, resp *http.Response, body string, status int, code string) {
	t.Helper()
	require.Equal(t, status, resp.StatusCode, body)
	assert.Equal(t, code, resp.Header.Get("X-Error-Code"), body)
	if status == http.StatusUnauthorized {
		assert.True(t, strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer"), resp.Header)
	}
	if status >= 400 {
		assert.Equal(t, 1, strings.Count(body, "\n"), "one line: %q", body)
	}
}

func TestTokenFileRefusals(t *testing.T) {
	s, _ := withTokens(t, "r:pub/", "# the team", "tok-alice alice rw:", "")

	resp, body := s.as(t, "tok-alice", "POST", "/set/pub/x", "1")
	assertStatus(t, resp, body, http.StatusOK, "")
	resp, body = s.as(t, "", "GET", "/get/pub/x", "")
	assertStatus(t, resp, body, http.StatusOK, "")
	assert.Equal(t, "1", body, "anonymous callers keep what --anonymous grants")

	resp, body = s.as(t, "", "POST", "/set/pub/x", "2")
	assertStatus(t, resp, body, http.StatusUnauthorized, "unauthenticated")
	assert.Equal(t, `Bearer realm="rendezvous"`, resp.Header.Get("WWW-Authenticate"), "no token: no error about one")
	resp, body = s.as(t, "", "GET", "/get/team/x", "")
	assertStatus(t, resp, body, http.StatusUnauthorized, "unauthenticated")

	for name, hdr := range map[string]string{
		"unknown token":   "Bearer tok-mallory",
		"empty token":     "Bearer ",
		"another scheme":  "Basic dG9rLWFsaWNlOg==",
		"token alone":     "tok-alice",
		"a prefix of one": "Bearer tok-alic",
	} {
		t.Run(name, func(t *testing.T) {
			// Every request, even one that needs no token, is refused
			// with a bad one: a client learns at once that it is wrong.
			for _, path := range []string{"/get/pub/x", "/healthz"} {
				resp, body := do(t, "GET", s.base+path, "", "Authorization", hdr)
				assertStatus(t, resp, body, http.StatusUnauthorized, "unauthenticated")
				assert.Equal(t, "invalid token\n", body)
				assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
			}
		})
	}
	resp, body = do(t, "GET", s.base+"/get/pub/x", "", "Authorization", "bearer tok-alice")
	assertStatus(t, resp, body, http.StatusOK, "")
}

// A token may be written as its SHA-256, so the file need not hold it.
func TestTokenFileHashedToken(t *testing.T) {
	sum := sha256.Sum256([]byte("s3cret-token"))
	s, _ := withTokens(t, "", "sha256:"+hex.EncodeToString(sum[:])+" bob rw:bob/")
	resp, body := s.as(t, "s3cret-token", "POST", "/set/bob/k", "v")
	assertStatus(t, resp, body, http.StatusOK, "")
	resp, body = s.as(t, "sha256:"+hex.EncodeToString(sum[:]), "GET", "/get/bob/k", "")
	assertStatus(t, resp, body, http.StatusUnauthorized, "unauthenticated")
}

// Reload drops a removed token at once; a malformed file keeps the
// previous tokens and logs the file and line.
func TestTokenFileReload(t *testing.T) {
	s, path := withTokens(t, "", "tok-a alice rw:", "tok-b bob rw:")
	resp, body := s.as(t, "tok-b", "POST", "/set/k", "1")
	assertStatus(t, resp, body, http.StatusOK, "")

	require.NoError(t, os.WriteFile(path, []byte("tok-a alice rw:\n"), 0o600))
	require.NoError(t, s.Reload())
	resp, body = s.as(t, "tok-b", "GET", "/get/k", "")
	assertStatus(t, resp, body, http.StatusUnauthorized, "unauthenticated")
	resp, body = s.as(t, "tok-a", "GET", "/get/k", "")
	assertStatus(t, resp, body, http.StatusOK, "")

	require.NoError(t, os.WriteFile(path, []byte("tok-c carol rw:\n# fine so far\ntok-d dave x:k\n"), 0o600))
	err := s.Reload()
	require.Error(t, err)
	assert.Contains(t, err.Error(), path+":3:")
	assert.Contains(t, s.log.String(), path+":3:", "the log names the file and line")
	resp, body = s.as(t, "tok-a", "GET", "/get/k", "")
	assertStatus(t, resp, body, http.StatusOK, "")
	resp, body = s.as(t, "tok-c", "GET", "/get/k", "")
	assertStatus(t, resp, body, http.StatusUnauthorized, "unauthenticated")
}

// A grant covers the keys that start with its prefix, byte for byte: a/
// does not cover a0 nor a itself; the longest matching prefix decides,
// and -: takes a prefix out of a wider grant.
func TestGrantPrefixes(t *testing.T) {
	s, _ := withTokens(t, "", "tok rita rw:a/ rw: -:team/ r:team/pub/ w:drop/")
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"POST", "/set/a/x", 200, ""},
		{"POST", "/set/a0", 200, ""}, // by rw:, not a/
		{"POST", "/set/team/x", 403, "no_permission"},
		{"GET", "/get/team/x", 403, "no_permission"},
		{"POST", "/set/team/pub/x", 403, "no_permission"},
		{"GET", "/get/team/pub/x", 404, "key_not_found"},
		{"POST", "/set/team", 200, ""}, // team without the slash is not under team/
		{"POST", "/set/drop/x", 200, ""},
		{"GET", "/get/drop/x", 403, "no_permission"},
		{"POST", "/del/team/x", 403, "no_permission"},
		{"DELETE", "/get/team/x", 403, "no_permission"},
		{"POST", "/los/team/x", 403, "no_permission"},
		{"POST", "/cas/team/x", 403, "no_permission"},
		{"POST", "/casoc/team/x", 403, "no_permission"},
		{"GET", "/get/team/x?wait=1s", 403, "no_permission"},
		{"GET", "/watch/team/x?key=1", 403, "no_permission"},
		{"GET", "/list/team/", 200, ""}, // r:team/pub/ is under it
		{"GET", "/list/team/x", 403, "no_permission"},
	} {
		resp, body := s.as(t, "tok", tc.method, tc.path, "v", "X-Expected-Value", "v")
		assertStatus(t, resp, body, tc.status, tc.code)
	}
}

// A write-only caller that loses a race learns that it lost, not the
// value that won.
func TestWriteOnlyConflictHidesTheWinner(t *testing.T) {
	s, _ := withTokens(t, "", "tok-w writer w:box/", "tok-rw owner rw:")
	resp, body := s.as(t, "tok-rw", "POST", "/set/box/k", "secret-value")
	assertStatus(t, resp, body, http.StatusOK, "")
	resp, body = s.as(t, "tok-w", "POST", "/los/box/k", "mine")
	assertStatus(t, resp, body, http.StatusConflict, "conflict")
	assert.NotContains(t, body, "secret-value")
	resp, body = s.as(t, "tok-w", "POST", "/cas/box/k", "mine", "X-Expected-Value", "guess", "Accept", "application/json")
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	assert.NotContains(t, body, "secret-value")
	assert.NotContains(t, body, "current")
	resp, body = s.as(t, "tok-rw", "POST", "/los/box/k", "mine")
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	assert.Equal(t, "secret-value", body, "a caller that may read gets the winner")
}

// A listing and a watch show only the keys the caller may read.
func TestListAndWatchShowOnlyReadableKeys(t *testing.T) {
	s, _ := withTokens(t, "r:pub/", "tok-admin admin rw:", "tok-p pat r: -:p/secret/ r:p/secret/ok/")
	keys := []string{"a", "p/open", "p/secret/a", "p/secret/b", "p/secret/ok/1", "p/secret/z", "p/tail", "pub/1", "q"}
	for _, k := range keys {
		resp, body := s.as(t, "tok-admin", "POST", "/set/"+k, "v")
		assertStatus(t, resp, body, http.StatusOK, "")
	}
	list := func(token, path string) []string {
		resp, body := s.as(t, token, "GET", path, "")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		return strings.Fields(body)
	}
	assert.Equal(t, keys, list("tok-admin", "/list/"))
	assert.Equal(t, []string{"a", "p/open", "p/secret/ok/1", "p/tail", "pub/1", "q"}, list("tok-p", "/list/"))
	assert.Equal(t, []string{"p/secret/ok/1"}, list("tok-p", "/list/p/secret/"))
	assert.Equal(t, []string{"pub/1"}, list("", "/list/"))
	resp, body := s.as(t, "", "GET", "/list/p/", "")
	assertStatus(t, resp, body, http.StatusUnauthorized, "unauthenticated")

	// Pages of two: the hidden keys between pages are skipped, and every
	// readable key comes once.
	var paged []string
	after := ""
	for i := 0; i < 10; i++ {
		resp, body := s.as(t, "tok-p", "GET", "/list/?limit=2&after="+after, "")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		paged = append(paged, strings.Fields(body)...)
		if after = resp.Header.Get("X-Next-After"); after == "" {
			break
		}
	}
	assert.Equal(t, []string{"a", "p/open", "p/secret/ok/1", "p/tail", "pub/1", "q"}, paged)

	next := s.watch(t, "p/", "Authorization", "Bearer tok-p")
	for _, k := range []string{"p/secret/a", "p/secret/ok/2", "p/secret/b", "p/x"} {
		resp, body := s.as(t, "tok-admin", "POST", "/set/"+k, "w")
		assertStatus(t, resp, body, http.StatusOK, "")
	}
	var seen []string
	for _, ev := range next(2) {
		seen = append(seen, decodeEvent(t, ev).Key)
	}
	assert.Equal(t, []string{"p/secret/ok/2", "p/x"}, seen)
}

// Grants apply to the key as stored, after ip/ scoping, and an owner's
// secret is still needed on top of a grant.
func TestGrantsWithIPKeysAndOwners(t *testing.T) {
	s, _ := withTokens(t, "", "tok-me me rw:ip/127.0.0.1/ rw:box/", "tok-other other rw:ip/10.", "tok-you you rw:box/")
	resp, body := s.as(t, "tok-me", "POST", "/set/ip/name", "v")
	assertStatus(t, resp, body, http.StatusOK, "")
	assert.Equal(t, "127.0.0.1", body)
	resp, body = s.as(t, "tok-other", "POST", "/set/ip/name", "v")
	assertStatus(t, resp, body, http.StatusForbidden, "no_permission")

	resp, body = s.as(t, "tok-me", "POST", "/set/box/mine", "v", "X-Owner-Secret", "pw")
	assertStatus(t, resp, body, http.StatusOK, "")
	resp, body = s.as(t, "tok-you", "POST", "/set/box/mine", "w")
	assertStatus(t, resp, body, http.StatusForbidden, "owned")
	resp, body = s.as(t, "tok-you", "POST", "/set/box/mine", "w", "X-Owner-Secret", "pw")
	assertStatus(t, resp, body, http.StatusOK, "")
}

// Each op of a transaction needs write on its key, and each check read.
func TestTxnNeedsGrants(t *testing.T) {
	s, _ := withTokens(t, "", "tok rita rw:mine/ r:ro/ w:wo/")
	txn := func(body string) (*http.Response, string) {
		return s.as(t, "tok", "POST", "/txn", body, "Content-Type", "application/json")
	}
	resp, body := txn(`{"ops":[{"op":"set","key":"mine/a","value":"1"},{"op":"set","key":"wo/b","value":"2"}]}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	resp, body = txn(`{"ops":[{"op":"set","key":"mine/a","value":"1"},{"op":"set","key":"ro/b","value":"2"}]}`)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, body)
	assert.Contains(t, body, "ops[1]")
	resp, body = txn(`{"ops":[{"op":"delete","key":"ro/b"}]}`)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, body)
	resp, body = txn(`{"checks":[{"key":"ro/x","absent":true}],"ops":[{"op":"set","key":"mine/c","value":"1"}]}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	resp, body = txn(`{"checks":[{"key":"wo/b","absent":true}],"ops":[{"op":"set","key":"mine/c","value":"1"}]}`)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, body)
	assert.Contains(t, body, "checks[0]")
	resp, body = s.as(t, "tok", "GET", "/get/mine/c", "")
	assertStatus(t, resp, body, http.StatusOK, "")
}

// The settings of authentication that cannot work are refused at start,
// each with a clear reason.
func TestAuthSettingsRefused(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good", "tok alice rw:\n")
	bad := writeFile(t, dir, "bad", "tok alice rw:\n\ntok2 bob rw:x rw:x\n")
	for name, tc := range map[string]struct {
		mod  func(*server.Config)
		want string
	}{
		"token file and JWT": {func(c *server.Config) { c.AuthFile, c.JWTSecretFile = good, good }, "exclusive"},
		"two JWT keys":       {func(c *server.Config) { c.JWTSecretFile, c.JWTPublicKey = good, good }, "one JWT key"},
		"issuer alone":       {func(c *server.Config) { c.JWTIssuer = "https://issuer" }, "no JWT key"},
		"anonymous alone":    {func(c *server.Config) { c.Anonymous = "r:" }, "no token file"},
		"bad anonymous":      {func(c *server.Config) { c.AuthFile, c.Anonymous = good, "read:x" }, "unknown access"},
		"malformed file":     {func(c *server.Config) { c.AuthFile = bad }, bad + ":3: prefix \"x\" is granted twice"},
		"missing file":       {func(c *server.Config) { c.AuthFile = filepath.Join(dir, "none") }, "no such file"},
		"JWKS not a URL":     {func(c *server.Config) { c.JWTJWKSURL = "file:///etc/keys" }, "not an http"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			tc.mod(&cfg)
			_, err := server.New(cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// An identity has a rate-limit bucket of its own, of its rate= or the
// server's default, the same from every address; anonymous callers keep
// theirs per address. Watcher places follow the same key.
func TestRateAndWatchersPerIdentity(t *testing.T) {
	cfg := testConfig()
	cfg.RateOff, cfg.RateTokens, cfg.RateWindow = false, 17, time.Hour
	cfg.CostRead, cfg.CostWrite = 1, 1
	cfg.MaxWatchersPerIP = 1
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.AuthFile = writeFile(t, t.TempDir(), "tokens", "tok-a alice rw: rate=5/1h\ntok-b bob rw:\ntok-c carol rw:\n")
	cfg.Anonymous = "rw:"
	s := start(t, cfg)
	from := func(ip string) []string { return []string{"X-Forwarded-For", ip} }

	for i := 0; i < 5; i++ {
		// Alice's five tokens, spent from two addresses.
		resp, body := s.as(t, "tok-a", "GET", "/get/k", "", from([]string{"192.0.2.1", "192.0.2.2"}[i%2])...)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, body)
	}
	resp, body := s.as(t, "tok-a", "GET", "/get/k", "", from("198.51.100.9")...)
	assertStatus(t, resp, body, http.StatusTooManyRequests, "rate_limited")
	assert.Equal(t, "5", resp.Header.Get("X-RateLimit-Limit"), "alice's own rate")

	// The address alice used still has its own 17, and bob the default.
	for _, tok := range []string{"", "tok-b"} {
		for i := 0; i < 17; i++ {
			resp, body = s.as(t, tok, "GET", "/get/k", "", from("192.0.2.1")...)
			require.Equal(t, http.StatusNotFound, resp.StatusCode, "request %d as %q: %s", i, tok, body)
		}
		resp, body = s.as(t, tok, "GET", "/get/k", "", from("192.0.2.1")...)
		assertStatus(t, resp, body, http.StatusTooManyRequests, "rate_limited")
		assert.Equal(t, "17", resp.Header.Get("X-RateLimit-Limit"))
	}

	// One watcher place per client: the address's, carol's own.
	s.watch(t, "a/", "X-Forwarded-For", "192.0.2.7")
	resp, body = s.as(t, "", "GET", "/watch/b/", "", from("192.0.2.7")...)
	assertStatus(t, resp, body, http.StatusTooManyRequests, "too_many_watches")
	s.watch(t, "a/", "X-Forwarded-For", "192.0.2.7", "Authorization", "Bearer tok-c")
	resp, body = s.as(t, "tok-c", "GET", "/watch/b/", "", from("203.0.113.5")...)
	assertStatus(t, resp, body, http.StatusTooManyRequests, "too_many_watches")
}

// The server hands its one verifier to front ends other than HTTP: the
// same tokens prove the same identities there.
func TestServerVerifier(t *testing.T) {
	plain := start(t, testConfig())
	assert.Nil(t, plain.Verifier(), "no auth: no verifier, every caller anonymous")
	resp, body := plain.as(t, "any-token", "POST", "/set/k", "v")
	assertStatus(t, resp, body, http.StatusOK, "")
	s, _ := withTokens(t, "", "tok-a alice rw:a/")
	resp, body = s.as(t, "tok-a", "GET", "/get/a/k", "")
	assertStatus(t, resp, body, http.StatusNotFound, "key_not_found")
	id, err := s.Verifier().Verify("tok-a")
	require.NoError(t, err)
	assert.Equal(t, "alice", id.Name)
	_, err = s.Verifier().Verify("tok-b")
	assert.EqualError(t, err, "invalid token")
}

// Refused tokens are charged to their address, at a write's cost, in a
// budget of their own: once it is spent, a token from that address is
// refused with 429 without being checked, a right one too, so tokens
// cannot be guessed faster than the rate limit. Other addresses, valid
// tokens, and the address's anonymous requests are not held back.
func TestRefusedTokensAreThrottled(t *testing.T) {
	cfg := testConfig()
	cfg.RateOff, cfg.RateTokens, cfg.RateWindow = false, 9, time.Hour
	cfg.CostRead, cfg.CostWrite = 1, 3
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.AuthFile = writeFile(t, t.TempDir(), "tokens", "tok-a alice rw:\n")
	cfg.Anonymous = "r:"
	s := start(t, cfg)
	from := func(ip string) []string { return []string{"X-Forwarded-For", ip} }

	for i := 0; i < 3; i++ {
		resp, body := s.as(t, fmt.Sprintf("guess-%d", i), "GET", "/get/k", "", from("192.0.2.1")...)
		assertStatus(t, resp, body, http.StatusUnauthorized, "unauthenticated")
	}
	for _, tok := range []string{"guess-3", "tok-a"} {
		resp, body := s.as(t, tok, "GET", "/get/k", "", from("192.0.2.1")...)
		assertStatus(t, resp, body, http.StatusTooManyRequests, "rate_limited")
		assert.Contains(t, body, "too many refused tokens")
		assert.NotEmpty(t, resp.Header.Get("Retry-After"))
		assert.Equal(t, "9", resp.Header.Get("X-RateLimit-Limit"))
	}
	// The address's anonymous budget is its own, and so is another
	// address's; a valid token spends nothing of the refusals' budget.
	resp, body := s.as(t, "", "GET", "/get/k", "", from("192.0.2.1")...)
	assertStatus(t, resp, body, http.StatusNotFound, "key_not_found")
	for i := 0; i < 5; i++ {
		resp, body = s.as(t, "tok-a", "GET", "/get/k", "", from("192.0.2.2")...)
		assertStatus(t, resp, body, http.StatusNotFound, "key_not_found")
	}
	resp, body = s.as(t, "guess-x", "GET", "/get/k", "", from("192.0.2.2")...)
	assertStatus(t, resp, body, http.StatusUnauthorized, "unauthenticated")
}
