package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/testpki"
	"github.com/rendezvous-kv/rendezvous/server"
	"github.com/rendezvous-kv/rendezvous/tlsconf"
)

// mtlsServer runs a TLS server whose client CA is clients and whose mTLS
// identity file holds lines; edit may set more.
type mtlsServer struct {
	*tlsServer
	clients *testpki.CA
	idFile  string
}

func startMTLS(t *testing.T, anonymous string, lines []string, edit func(cfg *server.Config, dir string)) *mtlsServer {
	t.Helper()
	clients := testpki.NewCA(t, "client CA")
	var idFile string
	s := startTLS(t, func(cfg *server.Config, dir string) {
		cfg.TLSClientCAFile = clients.WriteCA(t, dir, "clients")
		idFile = writeFile(t, dir, "identities", strings.Join(lines, "\n")+"\n")
		cfg.MTLSIdentityFile = idFile
		cfg.Anonymous = anonymous
		if edit != nil {
			edit(cfg, dir)
		}
	})
	return &mtlsServer{tlsServer: s, clients: clients, idFile: idFile}
}

// client returns an HTTP client over a new connection per request (or
// kept alive) that presents a client certificate of the client CA with
// leaf's names; a zero leaf presents none.
func (s *mtlsServer) client(t *testing.T, leaf testpki.Leaf, h2, keepAlive bool) *http.Client {
	t.Helper()
	if leaf.CommonName == "" && leaf.DNSNames == nil && leaf.URIs == nil {
		return tlsClient(s.ca.Pool(), h2, keepAlive)
	}
	leaf.Client = true
	return tlsClient(s.ca.Pool(), h2, keepAlive, s.clients.Issue(t, leaf).TLSCert)
}

// send makes one request with c, with hdr as name, value pairs.
func send(t *testing.T, c *http.Client, method, url, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	resp, b, _ := sendOn(t, c, method, url, body, hdr...)
	return resp, b
}

// sendOn is send that also says whether the request went over a
// connection opened before it.
func sendOn(t *testing.T, c *http.Client, method, url, body string, hdr ...string) (*http.Response, string, bool) {
	t.Helper()
	var reused bool
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
	})
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b), reused
}

// A verified certificate whose common name, DNS name or URI name the
// identity file lists acts as that identity, with its grants only; the
// first of its names that is listed decides (common name, then DNS, then
// URI). A certificate the file does not name, or none, is anonymous.
func TestMTLSIdentityGrants(t *testing.T) {
	s := startMTLS(t, "r:pub/", []string{
		"# NAME                   IDENTITY GRANTS",
		"alice                    alice    rw:alice/ r:pub/",
		"admin.example.org        admin    rw:",
		"spiffe://example.org/ci  ci       rw:builds/",
	}, func(cfg *server.Config, _ string) { cfg.TLSClientAuth = tlsconf.ClientAuthOptional })

	for _, h2 := range []bool{false, true} {
		admin := s.client(t, testpki.Leaf{CommonName: "ops team", DNSNames: []string{"admin.example.org"}}, h2, true)
		for _, k := range []string{"alice/a", "builds/b", "pub/p", "team/t"} {
			resp, body := send(t, admin, "POST", s.base+"/set/"+k, "v")
			assertStatus(t, resp, body, http.StatusOK, "")
		}
		list := func(c *http.Client) []string {
			resp, body := send(t, c, "GET", s.base+"/list/", "")
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			return strings.Fields(body)
		}
		assert.Equal(t, []string{"alice/a", "builds/b", "pub/p", "team/t"}, list(admin), "a DNS name matched")

		alice := s.client(t, testpki.Leaf{CommonName: "alice"}, h2, false)
		resp, body := send(t, alice, "GET", s.base+"/get/pub/p", "")
		assertStatus(t, resp, body, http.StatusOK, "")
		resp, body = send(t, alice, "POST", s.base+"/set/alice/new", "mine")
		assertStatus(t, resp, body, http.StatusOK, "")
		resp, body = send(t, alice, "POST", s.base+"/set/pub/p", "no")
		assertStatus(t, resp, body, http.StatusForbidden, "no_permission")
		resp, body = send(t, alice, "GET", s.base+"/get/team/t", "")
		assertStatus(t, resp, body, http.StatusForbidden, "no_permission")
		assert.Equal(t, []string{"alice/a", "alice/new", "pub/p"}, list(alice))

		ci := s.client(t, testpki.Leaf{CommonName: "runner-17", URIs: []string{"spiffe://example.org/ci"}}, h2, false)
		resp, body = send(t, ci, "POST", s.base+"/set/builds/b", "built")
		assertStatus(t, resp, body, http.StatusOK, "")
		resp, body = send(t, ci, "GET", s.base+"/get/pub/p", "")
		assertStatus(t, resp, body, http.StatusForbidden, "no_permission")

		// Both listed: the common name comes first.
		both := s.client(t, testpki.Leaf{CommonName: "alice", DNSNames: []string{"admin.example.org"}}, h2, false)
		resp, body = send(t, both, "POST", s.base+"/set/team/t", "w")
		assertStatus(t, resp, body, http.StatusForbidden, "no_permission")

		// Names are compared exactly: neither ALICE nor a name that only
		// starts like a listed one is alice.
		for _, leaf := range []testpki.Leaf{
			{CommonName: "ALICE"},
			{CommonName: "mallory", DNSNames: []string{"admin.example.org.evil"}, URIs: []string{"spiffe://example.org/ci/x"}},
			{}, // no certificate at all
		} {
			anon := s.client(t, leaf, h2, false)
			resp, body = send(t, anon, "GET", s.base+"/get/pub/p", "")
			assertStatus(t, resp, body, http.StatusOK, "")
			resp, body = send(t, anon, "POST", s.base+"/set/pub/p", "x")
			assertStatus(t, resp, body, http.StatusUnauthorized, "unauthenticated")
			assert.Equal(t, "authentication required: this key needs a client certificate the server's identity file lists\n", body)
			resp, body = send(t, anon, "GET", s.base+"/get/alice/a", "")
			assertStatus(t, resp, body, http.StatusUnauthorized, "unauthenticated")
			assert.Equal(t, []string{"pub/p"}, list(anon), "%+v sees what --anonymous grants", leaf)
		}
		resp, body = send(t, admin, "POST", s.base+"/del/alice/new", "")
		assertStatus(t, resp, body, http.StatusOK, "")
	}
}

// A bearer token is the explicit credential: it wins over the client
// certificate, and a refused one is refused whatever certificate came
// with it. Without a token, the certificate's identity applies.
func TestMTLSBearerTokenWins(t *testing.T) {
	s := startMTLS(t, "", []string{"alice alice rw:alice/"}, func(cfg *server.Config, dir string) {
		cfg.AuthFile = writeFile(t, dir, "tokens", "tok-bob bob rw:bob/\n")
	})
	alice := s.client(t, testpki.Leaf{CommonName: "alice"}, true, true)
	resp, body := send(t, alice, "POST", s.base+"/set/alice/k", "a")
	assertStatus(t, resp, body, http.StatusOK, "")
	resp, body = send(t, alice, "POST", s.base+"/set/bob/k", "a")
	assertStatus(t, resp, body, http.StatusForbidden, "no_permission")

	resp, body = send(t, alice, "POST", s.base+"/set/bob/k", "b", "Authorization", "Bearer tok-bob")
	assertStatus(t, resp, body, http.StatusOK, "")
	resp, body = send(t, alice, "POST", s.base+"/set/alice/k", "b", "Authorization", "Bearer tok-bob")
	assertStatus(t, resp, body, http.StatusForbidden, "no_permission")
	resp, body = send(t, alice, "GET", s.base+"/get/alice/k", "", "Authorization", "Bearer tok-mallory")
	assertStatus(t, resp, body, http.StatusUnauthorized, "unauthenticated")
	assert.Equal(t, "invalid token\n", body)
	resp, body = send(t, s.client(t, testpki.Leaf{CommonName: "mallory"}, true, false), "GET", s.base+"/get/alice/k", "")
	assertStatus(t, resp, body, http.StatusUnauthorized, "unauthenticated")
	assert.Equal(t, "authentication required: this key needs a token (Authorization: Bearer TOKEN) or a client certificate the server's identity file lists\n", body)
}

// With only an identity file, no token is checked: an Authorization
// header means nothing to the server, and the certificate decides.
func TestMTLSWithoutTokensIgnoresAuthorization(t *testing.T) {
	s := startMTLS(t, "", []string{"alice alice rw:alice/"}, nil)
	alice := s.client(t, testpki.Leaf{CommonName: "alice"}, false, true)
	resp, body := send(t, alice, "POST", s.base+"/set/alice/k", "a", "Authorization", "Bearer whatever")
	assertStatus(t, resp, body, http.StatusOK, "")
	other := s.client(t, testpki.Leaf{CommonName: "bob"}, false, true)
	resp, body = send(t, other, "GET", s.base+"/get/alice/k", "", "Authorization", "Bearer whatever")
	assertStatus(t, resp, body, http.StatusUnauthorized, "unauthenticated")
}

// Reload reads the identity file again: a removed name stops working at
// once, on a connection already open too; a malformed file keeps the
// previous names and logs the file and line.
func TestMTLSIdentityReload(t *testing.T) {
	s := startMTLS(t, "", []string{"alice alice rw:", "bob bob rw:"}, nil)
	for _, h2 := range []bool{false, true} {
		bob := s.client(t, testpki.Leaf{CommonName: "bob"}, h2, true)
		alice := s.client(t, testpki.Leaf{CommonName: "alice"}, h2, true)
		resp, body := send(t, bob, "POST", s.base+"/set/k", "1")
		assertStatus(t, resp, body, http.StatusOK, "")
		resp, body = send(t, alice, "GET", s.base+"/get/k", "")
		assertStatus(t, resp, body, http.StatusOK, "")

		require.NoError(t, os.WriteFile(s.idFile, []byte("alice alice rw:\n"), 0o600))
		require.NoError(t, s.Reload())
		resp, body, reused := sendOn(t, bob, "GET", s.base+"/get/k", "")
		assertStatus(t, resp, body, http.StatusUnauthorized, "unauthenticated")
		assert.True(t, reused, "on the connection bob opened before the reload")
		resp, body = send(t, alice, "GET", s.base+"/get/k", "")
		assertStatus(t, resp, body, http.StatusOK, "")

		require.NoError(t, os.WriteFile(s.idFile, []byte("alice alice rw:\ncarol carol rw:\nbob bob rw:team/ rw:team/\n"), 0o600))
		err := s.Reload()
		require.Error(t, err)
		assert.Contains(t, err.Error(), s.idFile+":3:")
		assert.Contains(t, s.log.String(), s.idFile+":3:", "the log names the file and line")
		resp, body = send(t, alice, "GET", s.base+"/get/k", "")
		assertStatus(t, resp, body, http.StatusOK, "")
		carol := s.client(t, testpki.Leaf{CommonName: "carol"}, h2, false)
		resp, body = send(t, carol, "GET", s.base+"/get/k", "")
		assertStatus(t, resp, body, http.StatusUnauthorized, "unauthenticated")

		require.NoError(t, os.WriteFile(s.idFile, []byte("alice alice rw:\nbob bob rw:\n"), 0o600))
		require.NoError(t, s.Reload())
		resp, body = send(t, bob, "GET", s.base+"/get/k", "")
		assertStatus(t, resp, body, http.StatusOK, "")
	}
}

// An identity is the same whether a token or a certificate proves it:
// one rate-limit bucket, its line's rate=.
func TestMTLSIdentityRate(t *testing.T) {
	s := startMTLS(t, "rw:", []string{"alice alice rw: rate=3/1h"}, func(cfg *server.Config, _ string) {
		cfg.RateOff, cfg.RateTokens, cfg.RateWindow, cfg.CostRead = false, 50, 1e12, 1
	})
	alice := s.client(t, testpki.Leaf{CommonName: "alice"}, false, false)
	for i := 0; i < 3; i++ {
		resp, body := send(t, alice, "GET", s.base+"/get/k", "")
		assertStatus(t, resp, body, http.StatusNotFound, "key_not_found")
	}
	resp, body := send(t, alice, "GET", s.base+"/get/k", "")
	assertStatus(t, resp, body, http.StatusTooManyRequests, "rate_limited")
	assert.Equal(t, "3", resp.Header.Get("X-RateLimit-Limit"))
	// The address's own bucket is untouched.
	anon := s.client(t, testpki.Leaf{CommonName: "nobody"}, false, false)
	resp, body = send(t, anon, "GET", s.base+"/get/k", "")
	assertStatus(t, resp, body, http.StatusNotFound, "key_not_found")
}

// The identity file's settings that cannot work are refused at start,
// each naming the setting or the file and line.
func TestMTLSIdentitySettingsRefused(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	cert := ca.Issue(t, testpki.ServerLeaf()).Write(t, dir, "server")
	caFile := ca.WriteCA(t, dir, "ca")
	good := writeFile(t, dir, "good", "alice alice rw:\n")
	hashed := writeFile(t, dir, "hashed", "alice alice rw:\nsha256:"+strings.Repeat("0f", 32)+" bob rw:\n")
	dup := writeFile(t, dir, "dup", "alice alice rw:\nalice bob r:\n")
	withTLS := func(c *server.Config) {
		c.TLSCertFile, c.TLSKeyFile, c.TLSClientCAFile = cert.CertFile, cert.Key, caFile
	}
	for name, tc := range map[string]struct {
		mod  func(*server.Config)
		want string
	}{
		"without client CA": {func(c *server.Config) {
			c.TLSCertFile, c.TLSKeyFile, c.MTLSIdentityFile = cert.CertFile, cert.Key, good
		}, `invalid MTLSIdentityFile "` + good + `": needs TLSClientCAFile`},
		"without TLS":   {func(c *server.Config) { c.MTLSIdentityFile = good }, "needs TLSClientCAFile"},
		"missing file":  {func(c *server.Config) { withTLS(c); c.MTLSIdentityFile = dir + "/none" }, "no such file"},
		"hashed name":   {func(c *server.Config) { withTLS(c); c.MTLSIdentityFile = hashed }, hashed + ":2: a certificate name is not a secret"},
		"name twice":    {func(c *server.Config) { withTLS(c); c.MTLSIdentityFile = dup }, dup + `:2: certificate name "alice" is listed on line 1 too`},
		"bad anonymous": {func(c *server.Config) { withTLS(c); c.MTLSIdentityFile, c.Anonymous = good, "read:x" }, "unknown access"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			tc.mod(&cfg)
			_, err := server.New(cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	// An identity file alone turns access control on, so --anonymous
	// is accepted with it.
	cfg := testConfig()
	withTLS(&cfg)
	cfg.MTLSIdentityFile, cfg.Anonymous = good, "r:"
	require.NoError(t, cfg.Validate())
}
