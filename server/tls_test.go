package server_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/testpki"
	"github.com/rendezvous-kv/rendezvous/server"
	"github.com/rendezvous-kv/rendezvous/tlsconf"
)

// tlsServer runs a server whose API serves TLS with a certificate of a CA
// made for the test; cfg may set more before it starts.
type tlsServer struct {
	*running
	ca   *testpki.CA
	cert *testpki.Issued
	dir  string
}

func startTLS(t *testing.T, edit func(cfg *server.Config, dir string)) *tlsServer {
	t.Helper()
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	cert := ca.Issue(t, testpki.ServerLeaf()).Write(t, dir, "server")
	cfg := testConfig()
	cfg.TLSCertFile, cfg.TLSKeyFile = cert.CertFile, cert.Key
	if edit != nil {
		edit(&cfg, dir)
	}
	r := start(t, cfg)
	r.base = "https://" + r.Addr().String()
	return &tlsServer{running: r, ca: ca, cert: cert, dir: dir}
}

// tlsClient trusts roots and presents certs; h2 offers HTTP/2 by ALPN,
// otherwise only HTTP/1.1. Every request opens a new connection unless
// keepAlive.
func tlsClient(roots *x509.CertPool, h2, keepAlive bool, certs ...tls.Certificate) *http.Client {
	tc := &tls.Config{RootCAs: roots}
	if len(certs) > 0 {
		// Sent whatever CAs the server names, as a client with a
		// certificate of another CA would.
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
	}
	tr := &http.Transport{
		TLSClientConfig:   tc,
		DisableKeepAlives: !keepAlive,
		Protocols:         new(http.Protocols),
	}
	tr.Protocols.SetHTTP1(true)
	if h2 {
		tr.Protocols.SetHTTP2(true)
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// call sends a request with c and returns the response with its body read.
func call(t *testing.T, c *http.Client, method, url, body string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b), nil
}

// A client that trusts the CA writes and reads a key over TLS, with
// HTTP/2 when it offers it by ALPN and HTTP/1.1 otherwise, on one port.
func TestTLSServesHTTP1AndHTTP2(t *testing.T) {
	s := startTLS(t, nil)
	for _, tc := range []struct {
		name  string
		h2    bool
		proto string
	}{
		{"HTTP/2 by ALPN", true, "HTTP/2.0"},
		{"HTTP/1.1", false, "HTTP/1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tlsClient(s.ca.Pool(), tc.h2, true)
			resp, body, err := call(t, c, "POST", s.base+"/set/tls/"+tc.proto, "over tls")
			require.NoError(t, err)
			require.Equal(t, 200, resp.StatusCode, body)
			assert.Equal(t, tc.proto, resp.Proto)
			resp, body, err = call(t, c, "GET", s.base+"/get/tls/"+tc.proto, "")
			require.NoError(t, err)
			require.Equal(t, 200, resp.StatusCode, body)
			assert.Equal(t, "over tls", body)
			assert.Equal(t, tc.proto, resp.Proto)
			require.NotNil(t, resp.TLS)
			assert.GreaterOrEqual(t, resp.TLS.Version, uint16(tls.VersionTLS12))
			assert.Equal(t, 0, resp.TLS.PeerCertificates[0].SerialNumber.Cmp(s.cert.Serial))
			// The landing page's examples name the scheme the server sees.
			resp, body, err = call(t, c, "GET", s.base+"/", "")
			require.NoError(t, err)
			require.Equal(t, 200, resp.StatusCode)
			assert.Contains(t, body, "https://"+s.Addr().String())
		})
	}
}

// TLS 1.1 and older are refused, and so is plaintext on the TLS port,
// with a one-line answer that says what to do.
func TestTLSRefusesOldVersionsAndPlaintext(t *testing.T) {
	s := startTLS(t, nil)
	old := tlsClient(s.ca.Pool(), false, false)
	old.Transport.(*http.Transport).TLSClientConfig.MinVersion = tls.VersionTLS10
	old.Transport.(*http.Transport).TLSClientConfig.MaxVersion = tls.VersionTLS11
	_, _, err := call(t, old, "GET", s.base+"/get/k", "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "protocol version")

	resp, body, err := call(t, client, "GET", "http://"+s.Addr().String()+"/get/k", "")
	require.NoError(t, err)
	assert.Equal(t, 400, resp.StatusCode)
	assert.Equal(t, "this port speaks HTTPS; use https://\n", body)
}

// A request head framed both by length and by chunks is refused and its
// connection closed over TLS as it is in plaintext: a proxy in front may
// speak TLS to the server.
func TestTLSRefusesTwoFramings(t *testing.T) {
	s := startTLS(t, nil)
	conn, err := tls.Dial("tcp", s.Addr().String(), &tls.Config{RootCAs: s.ca.Pool(), NextProtos: []string{"http/1.1"}})
	require.NoError(t, err)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(conn, "POST /set/smuggle HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n1\r\nv\r\n0\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 400, resp.StatusCode)
	assert.True(t, resp.Close, "the connection is closed")
	r, _, err := call(t, tlsClient(s.ca.Pool(), false, false), "GET", s.base+"/get/smuggle", "")
	require.NoError(t, err)
	assert.Equal(t, 404, r.StatusCode, "nothing was written")
}

// With TLS on, the server may listen on any address without Insecure;
// without it the safe default holds.
func TestTLSAllowsNonLoopbackAddress(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	cert := ca.Issue(t, testpki.ServerLeaf()).Write(t, dir, "server")
	cfg := testConfig()
	cfg.Addr = "0.0.0.0:0"
	require.ErrorIs(t, cfg.Validate(), server.ErrPlaintext)
	cfg.TLSCertFile, cfg.TLSKeyFile = cert.CertFile, cert.Key
	require.NoError(t, cfg.Validate())
}

// Each bad combination of TLS and ACME settings is refused at start,
// naming the field and the reason.
func TestTLSConfigRefusals(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	cert := ca.Issue(t, testpki.ServerLeaf()).Write(t, dir, "server")
	other := ca.Issue(t, testpki.ServerLeaf()).Write(t, dir, "other")
	caFile := ca.WriteCA(t, dir, "ca")
	garbage := filepath.Join(dir, "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not a certificate\n"), 0o644))
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name, field, reason string
		edit                func(c *server.Config)
	}{
		{"cert without key", "TLSCertFile", "needs TLSKeyFile", func(c *server.Config) { c.TLSCertFile = cert.CertFile }},
		{"key without cert", "TLSKeyFile", "needs TLSCertFile", func(c *server.Config) { c.TLSKeyFile = cert.Key }},
		{"unreadable cert", "TLSCertFile", "no such file", func(c *server.Config) { c.TLSCertFile, c.TLSKeyFile = missing, cert.Key }},
		{"directory as key", "TLSKeyFile", "is a directory", func(c *server.Config) { c.TLSCertFile, c.TLSKeyFile = cert.CertFile, dir }},
		{"client CA without TLS", "TLSClientCAFile", "needs TLS", func(c *server.Config) { c.TLSClientCAFile = caFile }},
		{"identities without client CA", "MTLSIdentityFile", "needs TLSClientCAFile", func(c *server.Config) {
			c.TLSCertFile, c.TLSKeyFile, c.MTLSIdentityFile = cert.CertFile, cert.Key, caFile
		}},
		{"ACME and a cert", "ACMEDomains", "either TLSCertFile or ACMEDomains", func(c *server.Config) {
			c.TLSCertFile, c.TLSKeyFile, c.ACMEDomains = cert.CertFile, cert.Key, []string{"kv.example.org"}
		}},
		{"ACME for an IP", "ACMEDomains", "IP address", func(c *server.Config) { c.ACMEDomains, c.ACMECache = []string{"192.0.2.1"}, dir }},
		{"ACME name with scheme", "ACMEDomains", "bare DNS name", func(c *server.Config) { c.ACMEDomains, c.ACMECache = []string{"https://kv.example.org"}, dir }},
		{"ACME in memory without cache", "ACMECache", "Data is empty", func(c *server.Config) { c.ACMEDomains = []string{"kv.example.org"} }},
		{"ACME directory not https", "ACMEDirectory", "https://", func(c *server.Config) {
			c.ACMEDomains, c.ACMECache, c.ACMEDirectory = []string{"kv.example.org"}, dir, "http://127.0.0.1:14000/dir"
		}},
		{"ACME email without domains", "ACMEEmail", "needs ACMEDomains", func(c *server.Config) { c.ACMEEmail = "ops@example.org" }},
		{"HTTP listener without TLS", "HTTPAddr", "needs TLS", func(c *server.Config) { c.HTTPAddr = "127.0.0.1:0" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			var ce *server.ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.field, ce.Field)
			assert.Contains(t, err.Error(), tc.reason)
		})
	}

	// What only loading finds: a pair that does not match, a file that
	// holds no certificate.
	for _, tc := range []struct {
		name, field, reason string
		edit                func(c *server.Config)
	}{
		{"mismatched pair", "TLSCertFile", "private key does not match", func(c *server.Config) { c.TLSCertFile, c.TLSKeyFile = cert.CertFile, other.Key }},
		{"not PEM", "TLSCertFile", "failed to find any PEM data", func(c *server.Config) { c.TLSCertFile, c.TLSKeyFile = garbage, cert.Key }},
		{"CA not PEM", "TLSClientCAFile", "no PEM certificate", func(c *server.Config) {
			c.TLSCertFile, c.TLSKeyFile, c.TLSClientCAFile = cert.CertFile, cert.Key, garbage
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.edit(&cfg)
			require.NoError(t, cfg.Validate())
			_, err := server.New(cfg)
			var ce *server.ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.field, ce.Field)
			assert.Contains(t, err.Error(), tc.reason)
		})
	}
}

// mTLS: a certificate of the client CA gets in; none, or one of another
// CA, does not. With optional client auth, no certificate gets in too, but
// a certificate of another CA still does not.
func TestMTLS(t *testing.T) {
	clientCA := testpki.NewCA(t, "client CA")
	otherCA := testpki.NewCA(t, "other CA")
	good := clientCA.Issue(t, testpki.Leaf{CommonName: "alice", Client: true}).TLSCert
	foreign := otherCA.Issue(t, testpki.Leaf{CommonName: "alice", Client: true}).TLSCert
	for _, mode := range []tlsconf.ClientAuth{tlsconf.ClientAuthRequire, tlsconf.ClientAuthOptional} {
		t.Run(mode.String(), func(t *testing.T) {
			s := startTLS(t, func(cfg *server.Config, dir string) {
				cfg.TLSClientCAFile = clientCA.WriteCA(t, dir, "clients")
				cfg.TLSClientAuth = mode
			})
			for _, h2 := range []bool{false, true} {
				resp, body, err := call(t, tlsClient(s.ca.Pool(), h2, false, good), "POST", s.base+"/set/mtls", "alice")
				require.NoError(t, err)
				assert.Equal(t, 200, resp.StatusCode, body)

				// The refusal reaches the client as the server's alert or,
				// when the server closed first, as a broken connection.
				_, _, err = call(t, tlsClient(s.ca.Pool(), h2, false, foreign), "POST", s.base+"/set/foreign", "mallory")
				require.Error(t, err, "a certificate of another CA is refused")
				resp, _, err = call(t, tlsClient(s.ca.Pool(), h2, false, good), "GET", s.base+"/get/foreign", "")
				require.NoError(t, err)
				assert.Equal(t, 404, resp.StatusCode, "nothing was written")

				resp, body, err = call(t, tlsClient(s.ca.Pool(), h2, false), "GET", s.base+"/get/mtls", "")
				if mode == tlsconf.ClientAuthRequire {
					require.Error(t, err, "no certificate is refused")
				} else {
					require.NoError(t, err)
					assert.Equal(t, 200, resp.StatusCode)
					assert.Equal(t, "alice", body)
				}
			}
		})
	}
}

// serialOf opens a new connection to addr and returns the serial number
// of the certificate the server presents.
func serialOf(t *testing.T, addr string, roots *x509.CertPool) *big.Int {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: roots})
	require.NoError(t, err)
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

// replaceFile writes data beside path and renames it over path, as
// renewal tools do.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	require.NoError(t, os.WriteFile(tmp, data, 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// A renewed pair on disk is picked up without a restart: new connections
// get it, a connection kept alive keeps working with the certificate it
// was handshaken with, and a pair that does not load keeps the one
// before.
func TestTLSReloadOnFileChange(t *testing.T) {
	s := startTLS(t, func(cfg *server.Config, _ string) { cfg.TLSPollInterval = 20 * time.Millisecond })
	kept := tlsClient(s.ca.Pool(), false, true)
	resp, body, err := call(t, kept, "POST", s.base+"/set/reload", "v")
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode, body)
	oldSerial := resp.TLS.PeerCertificates[0].SerialNumber
	require.Equal(t, 0, oldSerial.Cmp(s.cert.Serial))

	renewed := s.ca.Issue(t, testpki.ServerLeaf())
	replaceFile(t, s.cert.Key, renewed.KeyPEM)
	replaceFile(t, s.cert.CertFile, renewed.CertPEM)
	require.Eventually(t, func() bool { return serialOf(t, s.Addr().String(), s.ca.Pool()).Cmp(renewed.Serial) == 0 },
		5*time.Second, 20*time.Millisecond, "new connections get the renewed certificate")

	resp, body, err = call(t, kept, "GET", s.base+"/get/reload", "")
	require.NoError(t, err)
	assert.Equal(t, "v", body)
	assert.Equal(t, 0, resp.TLS.PeerCertificates[0].SerialNumber.Cmp(oldSerial), "the kept-alive connection keeps its certificate")

	// A key that does not belong to the certificate: logged, not served.
	stray := s.ca.Issue(t, testpki.ServerLeaf())
	replaceFile(t, s.cert.Key, stray.KeyPEM)
	require.Eventually(t, func() bool { return strings.Contains(s.log.String(), "TLS reload failed") },
		5*time.Second, 20*time.Millisecond)
	assert.Contains(t, s.log.String(), "private key does not match public key")
	assert.Equal(t, 0, serialOf(t, s.Addr().String(), s.ca.Pool()).Cmp(renewed.Serial), "the previous pair is still served")
	resp, _, err = call(t, tlsClient(s.ca.Pool(), true, false), "GET", s.base+"/get/reload", "")
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
}

// Reload (what SIGHUP calls) loads the files at once, whenever they
// changed; a pair that does not load is an error and changes nothing.
func TestTLSReloadMethod(t *testing.T) {
	s := startTLS(t, func(cfg *server.Config, _ string) { cfg.TLSPollInterval = time.Hour })
	renewed := s.ca.Issue(t, testpki.ServerLeaf())
	replaceFile(t, s.cert.CertFile, renewed.CertPEM)
	replaceFile(t, s.cert.Key, renewed.KeyPEM)
	assert.Equal(t, 0, serialOf(t, s.Addr().String(), s.ca.Pool()).Cmp(s.cert.Serial), "not reloaded before Reload")
	require.NoError(t, s.Reload())
	assert.Equal(t, 0, serialOf(t, s.Addr().String(), s.ca.Pool()).Cmp(renewed.Serial))

	require.NoError(t, os.WriteFile(s.cert.CertFile, []byte("-----BEGIN CERTIFICATE-----\ntruncated"), 0o644))
	err := s.Reload()
	require.Error(t, err)
	assert.Contains(t, err.Error(), s.cert.CertFile)
	assert.Equal(t, 0, serialOf(t, s.Addr().String(), s.ca.Pool()).Cmp(renewed.Serial))
}

// The client CA is reloaded with the pair: once its file names a new CA,
// that CA's clients get in and the old one's no longer do.
func TestMTLSReloadsClientCA(t *testing.T) {
	oldCA, newCA := testpki.NewCA(t, "old client CA"), testpki.NewCA(t, "new client CA")
	var caFile string
	s := startTLS(t, func(cfg *server.Config, dir string) {
		caFile = oldCA.WriteCA(t, dir, "clients")
		cfg.TLSClientCAFile = caFile
		cfg.TLSPollInterval = time.Hour
	})
	oldClient := tlsClient(s.ca.Pool(), false, false, oldCA.Issue(t, testpki.Leaf{CommonName: "a", Client: true}).TLSCert)
	newClient := tlsClient(s.ca.Pool(), false, false, newCA.Issue(t, testpki.Leaf{CommonName: "b", Client: true}).TLSCert)
	_, _, err := call(t, oldClient, "GET", s.base+"/get/k", "")
	require.NoError(t, err)
	_, _, err = call(t, newClient, "GET", s.base+"/get/k", "")
	require.Error(t, err)

	replaceFile(t, caFile, newCA.PEM)
	require.NoError(t, s.Reload())
	_, _, err = call(t, newClient, "GET", s.base+"/get/k", "")
	require.NoError(t, err)
	_, _, err = call(t, oldClient, "GET", s.base+"/get/k", "")
	require.Error(t, err)
}

// The plaintext HTTP listener redirects reads to https on the TLS port
// and refuses writes, whose body it must not take in plaintext.
func TestHTTPAddrRedirects(t *testing.T) {
	s := startTLS(t, func(cfg *server.Config, _ string) { cfg.HTTPAddr = "127.0.0.1:0" })
	require.NotNil(t, s.HTTPAddr())
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	plain := "http://" + s.HTTPAddr().String()
	resp, _, err := call(t, noFollow, "GET", plain+"/get/k?wait=1s", "")
	require.NoError(t, err)
	assert.Equal(t, http.StatusPermanentRedirect, resp.StatusCode)
	assert.Equal(t, "https://127.0.0.1:"+portOf(s.Addr())+"/get/k?wait=1s", resp.Header.Get("Location"))
	resp, body, err := call(t, noFollow, "POST", plain+"/set/k", "secret")
	require.NoError(t, err)
	assert.Equal(t, 400, resp.StatusCode)
	assert.Contains(t, body, "https://")
}

func portOf(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return p
}

// Under TLS, --max-conns counts connections still in their handshake: a
// client that connects and says nothing holds its place, so silent
// clients cannot open more than that many descriptors, and the next
// client gets in once one of them is gone.
func TestTLSMaxConnsCountsHandshakes(t *testing.T) {
	s := startTLS(t, func(cfg *server.Config, _ string) { cfg.MaxConns = 2 })
	var silent []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", s.Addr().String())
		require.NoError(t, err)
		defer c.Close()
		silent = append(silent, c)
	}
	time.Sleep(100 * time.Millisecond) // both accepted, in their handshake

	done := make(chan error, 1)
	go func() {
		d := &net.Dialer{Timeout: 10 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", s.Addr().String(), &tls.Config{RootCAs: s.ca.Pool()})
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a third connection was served while two were open: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	silent[0].Close()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting client was not served once a place was free")
	}
}
