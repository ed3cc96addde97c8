package main

import (
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/testpki"
)

// The binary serves TLS with --tls-cert and --tls-key, and a SIGHUP makes
// it load a renewed pair at once; a pair that does not load is logged and
// the previous one stays.
func TestEndToEndTLSReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	cert := ca.Issue(t, testpki.ServerLeaf()).Write(t, dir, "server")
	s := startServer(t, "--data", "", "--rate", "off", "--tls-cert", cert.CertFile, "--tls-key", cert.Key)
	addr := strings.TrimPrefix(s.base, "http://")
	https := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true, DisableKeepAlives: true}}
	serial := func() string {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: ca.Pool()})
		require.NoError(t, err)
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}

	resp, err := https.Post("https://"+addr+"/set/greeting", "", strings.NewReader("hello"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "HTTP/2.0", resp.Proto)
	assert.Equal(t, cert.Serial.String(), serial())

	renewed := ca.Issue(t, testpki.ServerLeaf())
	require.NoError(t, os.WriteFile(cert.CertFile, renewed.CertPEM, 0o644))
	require.NoError(t, os.WriteFile(cert.Key, renewed.KeyPEM, 0o600))
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(s.log.String(), "reloaded on SIGHUP") }, 5*time.Second, 10*time.Millisecond, s.log.String())
	assert.Equal(t, renewed.Serial.String(), serial())

	require.NoError(t, os.WriteFile(cert.Key, []byte("garbage"), 0o600))
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(s.log.String(), "TLS reload failed") }, 5*time.Second, 10*time.Millisecond, s.log.String())
	assert.Equal(t, renewed.Serial.String(), serial(), "the previous pair is still served")
	resp, err = https.Get("https://" + addr + "/get/greeting")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, 0, s.stop(t))
}

// The binary maps client certificates to identities with
// --mtls-identity-file, and a SIGHUP re-reads the file: a removed name
// is anonymous at once (--anonymous r: then only reads); a malformed file
// keeps the names it had, with the file and line in the log.
func TestEndToEndMTLSIdentityReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	clients := testpki.NewCA(t, "client CA")
	cert := ca.Issue(t, testpki.ServerLeaf()).Write(t, dir, "server")
	ids := filepath.Join(dir, "identities")
	require.NoError(t, os.WriteFile(ids, []byte("alice alice rw:\nci.example.org ci rw:builds/\n"), 0o600))
	s := startServer(t, "--data", "", "--rate", "off", "--tls-cert", cert.CertFile, "--tls-key", cert.Key,
		"--tls-client-ca", clients.WriteCA(t, dir, "clients"), "--mtls-identity-file", ids, "--anonymous", "r:")
	base := "https://" + strings.TrimPrefix(s.base, "http://")
	as := func(leaf testpki.Leaf) *http.Client {
		leaf.Client = true
		c := clients.Issue(t, leaf).TLSCert
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{c}}, DisableKeepAlives: true}}
	}
	post := func(c *http.Client, path string) int {
		resp, err := c.Post(base+path, "", strings.NewReader("v"))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	alice, ci := as(testpki.Leaf{CommonName: "alice"}), as(testpki.Leaf{CommonName: "runner", DNSNames: []string{"ci.example.org"}})
	assert.Equal(t, http.StatusOK, post(alice, "/set/k"))
	assert.Equal(t, http.StatusOK, post(ci, "/set/builds/1"))
	assert.Equal(t, http.StatusForbidden, post(ci, "/set/k"))

	require.NoError(t, os.WriteFile(ids, []byte("ci.example.org ci rw:builds/\n"), 0o600))
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return post(alice, "/set/k") == http.StatusUnauthorized }, 10*time.Second, 20*time.Millisecond,
		"the removed name stops working")

	require.NoError(t, os.WriteFile(ids, []byte("alice alice rw:\nsha256:"+strings.Repeat("ab", 32)+" x rw:\n"), 0o600))
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(s.log.String(), ids+":2:") }, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, http.StatusUnauthorized, post(alice, "/set/k"), "the previous names stay")
	assert.Equal(t, http.StatusOK, post(ci, "/set/builds/2"))
	assert.Equal(t, 0, s.stop(t))
}
