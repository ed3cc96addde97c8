package main

import (
	"crypto/tls"
	"net"
	"net/http"
	"os"
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
