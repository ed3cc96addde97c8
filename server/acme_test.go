package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/apt"
	"github.com/rendezvous-kv/rendezvous/internal/testpki"
	"github.com/rendezvous-kv/rendezvous/server"
)

// pebble is a Pebble ACME server run by a test on loopback.
type pebble struct {
	directory string // the ACME directory URL
	caFile    string // trust for its HTTPS
	mgmt      string // its management API, for the issuing root
	stop      func()
}

// freePort returns a loopback port nothing listens on just now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// pebbleOptions say how Pebble validates challenges.
type pebbleOptions struct {
	// validate makes Pebble really check each challenge, on tlsPort of
	// the address its DNS server (dns) gives; otherwise every challenge
	// passes without a connection (PEBBLE_VA_ALWAYS_VALID).
	validate bool
	tlsPort  int
	dns      string
}

// startPebble runs Debian's pebble (installed when missing) on loopback,
// with an HTTPS certificate of a CA made here.
func startPebble(t *testing.T, o pebbleOptions) *pebble {
	t.Helper()
	bin := apt.Installed(t, "pebble", "pebble")
	dir := t.TempDir()
	ca := testpki.NewCA(t, "pebble listener CA")
	cert := ca.Issue(t, testpki.ServerLeaf()).Write(t, dir, "pebble")
	acmePort, mgmtPort := freePort(t), freePort(t)
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", acmePort),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", mgmtPort),
		"certificate":                    cert.CertFile,
		"privateKey":                     cert.Key,
		"httpPort":                       freePort(t),
		"tlsPort":                        o.tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}}
	confFile := filepath.Join(dir, "pebble.json")
	b, err := json.Marshal(conf)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(confFile, b, 0o644))

	args := []string{"-config", confFile}
	env := append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=100")
	if o.validate {
		args = append(args, "-dnsserver", o.dns)
	} else {
		env = append(env, "PEBBLE_VA_ALWAYS_VALID=1")
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	out := &logBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop := func() {
		select {
		case <-done:
			return
		default:
		}
		cmd.Process.Kill()
		<-done
	}
	t.Cleanup(stop)

	p := &pebble{
		directory: fmt.Sprintf("https://127.0.0.1:%d/dir", acmePort),
		caFile:    ca.WriteCA(t, dir, "pebble-ca"),
		mgmt:      fmt.Sprintf("https://127.0.0.1:%d", mgmtPort),
		stop:      stop,
	}
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	require.Eventually(t, func() bool {
		resp, err := c.Get(p.directory)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 20*time.Second, 50*time.Millisecond, "pebble did not start:\n%s", out)
	return p
}

// root fetches the root that Pebble issues certificates under (a new one
// at each start).
func (p *pebble) root(t *testing.T) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(p.caFile)
	require.NoError(t, err)
	trust := x509.NewCertPool()
	require.True(t, trust.AppendCertsFromPEM(pem))
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trust}}}
	resp, err := c.Get(p.mgmt + "/roots/0")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(b), "a PEM root: %s", b)
	return pool
}

// clientFor reaches the server at addr under the DNS name host, trusting
// roots: the name is only for TLS, the connection goes to loopback.
func clientFor(addr, host string, roots *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: host},
		ForceAttemptHTTP2: true,
	}}
}

// The server obtains a certificate for its name from a real ACME server
// (Pebble), serves it, and a client that trusts Pebble's root writes and
// reads a key over it. After a restart the certificate comes from the
// cache, with the ACME server gone.
func TestACMEWithPebble(t *testing.T) {
	p := startPebble(t, pebbleOptions{tlsPort: freePort(t)})
	const host = "kv.rendezvous.test"
	cache := filepath.Join(t.TempDir(), "acme")
	cfg := testConfig()
	cfg.ACMEDomains = []string{host}
	cfg.ACMEEmail = "ops@rendezvous.test"
	cfg.ACMECache = cache
	cfg.ACMEDirectory = p.directory
	cfg.ACMEDirectoryCAFile = p.caFile
	s := start(t, cfg)
	require.Eventually(t, func() bool { return strings.Contains(s.log.String(), "ACME: certificate ready") }, 60*time.Second, 50*time.Millisecond,
		"no certificate obtained:\n%s", s.log)
	fi, err := os.Stat(cache)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "the cache holds private keys")

	roots := p.root(t)
	c := clientFor(s.Addr().String(), host, roots)
	base := "https://" + host + ":" + portOf(s.Addr())
	resp, body, err := call(t, c, "POST", base+"/set/acme/greeting", "hello over ACME")
	require.NoError(t, err, s.log.String())
	require.Equal(t, 200, resp.StatusCode, body)
	resp, body, err = call(t, c, "GET", base+"/get/acme/greeting", "")
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "hello over ACME", body)
	assert.Equal(t, "HTTP/2.0", resp.Proto)
	leaf := resp.TLS.PeerCertificates[0]
	assert.Equal(t, []string{host}, leaf.DNSNames)
	assert.Contains(t, leaf.Issuer.CommonName, "Pebble")
	serial := leaf.SerialNumber

	// A name the server was not given gets no certificate.
	_, _, err = call(t, clientFor(s.Addr().String(), "other.rendezvous.test", roots), "GET", "https://other.rendezvous.test/get/x", "")
	require.Error(t, err)

	require.NoError(t, s.stop(t))
	p.stop()
	s2 := start(t, cfg)
	resp, body, err = call(t, clientFor(s2.Addr().String(), host, roots), "GET", "https://"+host+":"+portOf(s2.Addr())+"/get/x", "")
	require.NoError(t, err, s2.log.String())
	assert.Equal(t, 404, resp.StatusCode, body)
	assert.Equal(t, 0, resp.TLS.PeerCertificates[0].SerialNumber.Cmp(serial), "the cached certificate")
}

// Without --acme-cache the cache sits beside the data file.
func TestACMECacheDefaultsBesideData(t *testing.T) {
	cfg := testConfig()
	cfg.Data = filepath.Join(t.TempDir(), "rendezvous.db")
	cfg.ACMEDomains = []string{"kv.rendezvous.test"}
	cfg.ACMEDirectory = "https://127.0.0.1:1/dir" // never asked: nothing connects
	srv, err := server.New(cfg)
	require.NoError(t, err)
	defer srv.Close()
	fi, err := os.Stat(cfg.Data + ".acme")
	require.NoError(t, err)
	assert.True(t, fi.IsDir())
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
}

// startFakeDNS runs Pebble's challenge test server as a DNS server only,
// on loopback, answering every A query with 127.0.0.1 and no AAAA query,
// and returns its address.
func startFakeDNS(t *testing.T) string {
	t.Helper()
	bin := apt.Installed(t, "pebble-challtestsrv", "pebble")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "-dns01", addr, "-http01", "", "-https01", "", "-tlsalpn01", "",
		"-management", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	out := &logBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second) // it serves DNS over TCP too
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "the DNS server did not start:\n%s", out)
	return addr
}

// The TLS-ALPN-01 challenge itself: Pebble, told by a DNS server of the
// test that the name is 127.0.0.1, connects to the server's TLS port with
// ALPN acme-tls/1 and checks the challenge certificate before it issues.
func TestACMETLSALPN01WithPebble(t *testing.T) {
	port := freePort(t)
	p := startPebble(t, pebbleOptions{validate: true, tlsPort: port, dns: startFakeDNS(t)})
	const host = "alpn.rendezvous.test"
	cfg := testConfig()
	cfg.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	cfg.ACMEDomains = []string{host}
	cfg.ACMECache = filepath.Join(t.TempDir(), "acme")
	cfg.ACMEDirectory = p.directory
	cfg.ACMEDirectoryCAFile = p.caFile
	s := start(t, cfg)
	require.Eventually(t, func() bool { return strings.Contains(s.log.String(), "ACME: certificate ready") }, 60*time.Second, 50*time.Millisecond,
		"no certificate obtained:\n%s", s.log)

	c := clientFor(s.Addr().String(), host, p.root(t))
	resp, body, err := call(t, c, "POST", "https://"+host+"/set/alpn", "validated")
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode, body)
	assert.Equal(t, []string{host}, resp.TLS.PeerCertificates[0].DNSNames)
}
