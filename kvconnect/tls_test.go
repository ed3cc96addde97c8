package kvconnect_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/auth"
	"github.com/rendezvous-kv/rendezvous/internal/testpki"
	"github.com/rendezvous-kv/rendezvous/kvconnect"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/server"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// Both clients against the server's own TLS listener, not through a
// proxy: Deno (which offers only h2 by ALPN) trusts the test CA through
// DENO_CERT, Node through NODE_EXTRA_CA_CERTS.
func TestClientsOverTheServersTLS(t *testing.T) {
	clients(t)
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	cert := ca.Issue(t, testpki.ServerLeaf()).Write(t, dir, "server")
	caFile := ca.WriteCA(t, dir, "ca")
	ts := startServer(t, func(c *server.Config) { c.TLSCertFile, c.TLSKeyFile = cert.CertFile, cert.Key })
	base := "https://" + ts.srv.Addr().String()

	// The listener negotiates HTTP/2 by ALPN, as Deno needs.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}}
	resp, err := hc.Post(base+"/kv", "application/json", strings.NewReader(`{"supportedVersions":[1,2,3]}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "HTTP/2.0", resp.Proto)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no token")
	var m meta
	req, _ := http.NewRequest(http.MethodPost, base+"/kv", strings.NewReader(`{"supportedVersions":[1,2,3]}`))
	req.Header.Set("Authorization", "Bearer t")
	resp, err = hc.Do(req)
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	resp.Body.Close()
	assert.Equal(t, base+"/kv/v3", m.Endpoints[0].URL, "the endpoint is https, as the client came")

	for _, script := range []string{"deno.ts", "node.mjs"} {
		t.Run(script, func(t *testing.T) {
			out := runClient(t, script, "CASES=suite.mjs", "BASE="+base, "P=own-tls-"+script[:4], "DENO_KV_ACCESS_TOKEN=t",
				"DENO_CERT="+caFile, "NODE_EXTRA_CA_CERTS="+caFile)
			require.Contains(t, out, "done", out)
		})
	}
}

// certFixture serves a KV Connect handler over TLS that asks for client
// certificates of ca, with CertIdentity mapping the certificate named
// team-client to an identity granted rw:team/, and verifier (nil: none).
func certFixture(t *testing.T, ca *testpki.CA, verifier auth.Verifier) string {
	t.Helper()
	none := policy.NewGrants()
	svc := policy.New(ttlstore.New(ttlstore.Options{}), nil, policy.Config{MaxKeySize: 1000, MaxValueSize: 65536, MaxTTL: time.Hour,
		CostRead: 1, CostWrite: 1, Anonymous: &none}, nil)
	g, err := auth.ParseGrants("rw:team/")
	require.NoError(t, err)
	team := &policy.Identity{Name: "team-cert", Grants: g}
	st := kvconnect.State{DatabaseID: "6f1c2a5e-0b7d-4c3e-9a1f-1234567890ab", Key: bytes.Repeat([]byte{7}, 32)}
	h := kvconnect.New(svc, kvconnect.Config{State: st, Verifier: verifier, CertIdentity: func(cs *tls.ConnectionState) *policy.Identity {
		if len(cs.VerifiedChains) == 0 || cs.VerifiedChains[0][0].Subject.CommonName != "team-client" {
			return nil
		}
		return team
	}})
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.Pool(),
		Certificates: []tls.Certificate{ca.Issue(t, testpki.ServerLeaf()).TLSCert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// certClient trusts ca and presents certs.
func certClient(ca *testpki.CA, certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: certs}}}
}

func certPost(t *testing.T, hc *http.Client, url, token string, body []byte, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// With a client certificate that names an identity, that identity is the
// caller (whatever access token Deno sends, without a verifier; when the
// verifier refuses the token, with one), and each data-path call must
// come with the same certificate.
func TestCertificateIdentity(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	client := ca.Issue(t, testpki.Leaf{CommonName: "team-client", Client: true}).TLSCert
	stranger := ca.Issue(t, testpki.Leaf{CommonName: "stranger", Client: true}).TLSCert
	path := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(path, []byte("tok-admin admin rw:\n"), 0o600))
	tf, err := auth.OpenTokenFile(path, nil)
	require.NoError(t, err)
	for name, verifier := range map[string]auth.Verifier{"no verifier": nil, "token file": tf} {
		t.Run(name, func(t *testing.T) {
			base := certFixture(t, ca, verifier)
			open := func(hc *http.Client, token string) (meta, int, string) {
				status, body := certPost(t, hc, base+"/kv", token, []byte(`{"supportedVersions":[3]}`))
				var m meta
				if status == http.StatusOK {
					require.NoError(t, json.Unmarshal([]byte(body), &m))
				}
				return m, status, body
			}
			set := func(hc *http.Client, m meta, k []byte) (int, string) {
				return certPost(t, hc, m.Endpoints[0].URL+"/atomic_write", m.Token, pb(2, pb(1, k, 2, pb(1, "v", 2, 3), 3, 1)),
					"X-Denokv-Version", "3", "X-Denokv-Database-Id", m.DatabaseID)
			}
			withCert := certClient(ca, client)
			m, status, body := open(withCert, "anything")
			require.Equal(t, http.StatusOK, status, body)
			status, body = set(withCert, m, key("team", "x"))
			assert.Equal(t, http.StatusOK, status, body)
			status, body = set(withCert, m, key("other", "x"))
			assert.Equal(t, http.StatusForbidden, status, body)
			status, body = set(certClient(ca), m, key("team", "x"))
			assert.Equal(t, http.StatusUnauthorized, status, "the token without the certificate: %s", body)
			status, body = set(certClient(ca, stranger), m, key("team", "x"))
			assert.Equal(t, http.StatusUnauthorized, status, "another certificate: %s", body)

			_, status, _ = open(certClient(ca, stranger), "anything")
			if verifier == nil {
				assert.Equal(t, http.StatusOK, status, "no verifier: the anonymous caller")
				return
			}
			assert.Equal(t, http.StatusUnauthorized, status, "a certificate of no identity and a refused token")
			// A token the verifier knows wins over the certificate.
			m, status, body = open(withCert, "tok-admin")
			require.Equal(t, http.StatusOK, status, body)
			status, body = set(withCert, m, key("other", "x"))
			assert.Equal(t, http.StatusOK, status, body)
		})
	}
}

// mtlsFixture is a server over TLS that asks for client certificates from
// clientCA and names them with the identity file "team-client team
// rw:team/".
type mtlsFixture struct {
	t        *testing.T
	ca       *testpki.CA
	clientCA *testpki.CA
	base     string
}

func newMTLSFixture(t *testing.T, edit func(c *server.Config, dir string)) *mtlsFixture {
	dir := t.TempDir()
	f := &mtlsFixture{t: t, ca: testpki.NewCA(t, "test CA"), clientCA: testpki.NewCA(t, "client CA")}
	cert := f.ca.Issue(t, testpki.ServerLeaf()).Write(t, dir, "server")
	ids := filepath.Join(dir, "identities")
	require.NoError(t, os.WriteFile(ids, []byte("team-client team rw:team/\n"), 0o600))
	ts := startServer(t, func(c *server.Config) {
		c.TLSCertFile, c.TLSKeyFile = cert.CertFile, cert.Key
		c.TLSClientCAFile, c.MTLSIdentityFile = f.clientCA.WriteCA(t, dir, "clients"), ids
		if edit != nil {
			edit(c, dir)
		}
	})
	f.base = "https://" + ts.srv.Addr().String()
	return f
}

// client returns an HTTP client presenting a certificate named cn.
func (f *mtlsFixture) client(cn string) *http.Client {
	return certClient(f.ca, f.clientCA.Issue(f.t, testpki.Leaf{CommonName: cn, Client: true}).TLSCert)
}

// open makes the metadata exchange as hc with access token token.
func (f *mtlsFixture) open(hc *http.Client, token string) meta {
	f.t.Helper()
	status, body := certPost(f.t, hc, f.base+"/kv", token, []byte(`{"supportedVersions":[3]}`))
	require.Equal(f.t, http.StatusOK, status, body)
	var m meta
	require.NoError(f.t, json.Unmarshal([]byte(body), &m))
	return m
}

// set writes one key through the database m opened, as hc.
func (f *mtlsFixture) set(hc *http.Client, m meta, k []byte) (int, string) {
	return certPost(f.t, hc, m.Endpoints[0].URL+"/atomic_write", m.Token, pb(2, pb(1, k, 2, pb(1, "v", 2, 3), 3, 1)),
		"X-Denokv-Version", "3", "X-Denokv-Database-Id", m.DatabaseID)
}

// The server's --mtls-identity-file reaches KV Connect: a client whose
// certificate the file names opens the database with any access token
// and has that identity's grants.
func TestServerCertificateIdentity(t *testing.T) {
	f := newMTLSFixture(t, nil)
	hc := f.client("team-client")
	m := f.open(hc, "anything")
	status, body := f.set(hc, m, key("team", "x"))
	assert.Equal(t, http.StatusOK, status, body)
	status, body = f.set(hc, m, key("other", "x"))
	assert.Equal(t, http.StatusForbidden, status, body)

	// A certificate the file does not name is the anonymous caller, which
	// has no grants here: refused key by key with 403 (a 401 would end
	// Deno's database), its reason kept.
	hc = f.client("stranger")
	m = f.open(hc, "anything")
	status, body = f.set(hc, m, key("team", "x"))
	assert.Equal(t, http.StatusForbidden, status, body)
	assert.Contains(t, body, "authentication required")
}

// A certificate holder's refused access tokens spend its address's
// refusal budget as anyone's do: once it is spent, the tokens it sends are
// not checked and the certificate alone decides, so a holder cannot guess
// other identities' tokens unthrottled.
func TestCertificateHolderTokenGuessesAreThrottled(t *testing.T) {
	f := newMTLSFixture(t, func(c *server.Config, dir string) {
		c.AuthFile = filepath.Join(dir, "tokens")
		require.NoError(t, os.WriteFile(c.AuthFile, []byte("tok-bee bee rw:bee/\n"), 0o600))
		// Two refusals at a write's cost of 3 spend the budget of 6.
		c.RateOff, c.RateTokens, c.RateWindow, c.CostRead, c.CostWrite = false, 6, time.Hour, 1, 3
	})
	hc := f.client("team-client")
	status, body := f.set(hc, f.open(hc, "tok-bee"), key("bee", "x"))
	require.Equal(t, http.StatusOK, status, "a right token wins over the certificate: %s", body)
	for _, guess := range []string{"tok-guess-1", "tok-guess-2"} {
		f.open(hc, guess) // refused, and passed over for the certificate
	}
	status, body = f.set(hc, f.open(hc, "tok-bee"), key("bee", "y"))
	assert.Equal(t, http.StatusForbidden, status, "with the refusals spent, the token is not checked: %s", body)
}
