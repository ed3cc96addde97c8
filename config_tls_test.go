package main

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/testpki"
	"github.com/rendezvous-kv/rendezvous/tlsconf"
)

// The TLS and ACME flags, from the command line and the environment,
// reach the server's Config; TLS lifts the loopback-only default.
func TestConfigTLSFlags(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	cert := ca.Issue(t, testpki.ServerLeaf()).Write(t, dir, "server")
	caFile := ca.WriteCA(t, dir, "clients")
	c, err := parseConfig([]string{"--addr", "0.0.0.0:8443", "--tls-cert", cert.CertFile, "--tls-key", cert.Key,
		"--tls-client-ca", caFile, "--tls-client-auth", "optional", "--http-addr", ":8080"}, env(nil), io.Discard)
	require.NoError(t, err, "TLS on a public address needs no --insecure")
	assert.Equal(t, cert.CertFile, c.TLSCertFile)
	assert.Equal(t, cert.Key, c.TLSKeyFile)
	assert.Equal(t, caFile, c.TLSClientCAFile)
	assert.Equal(t, tlsconf.ClientAuthOptional, c.TLSClientAuth)
	assert.Equal(t, ":8080", c.HTTPAddr)

	c, err = parseConfig([]string{"--tls-cert", cert.CertFile, "--tls-key", cert.Key, "--tls-client-ca", caFile}, env(nil), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, tlsconf.ClientAuthRequire, c.TLSClientAuth, "require is the default with a client CA")

	c, err = parseConfig([]string{"--acme-domain", "KV.example.org,b.example.org", "--acme-domain", "c.example.org",
		"--acme-email", "ops@example.org", "--acme-directory", "https://127.0.0.1:14000/dir"},
		env(map[string]string{"RENDEZVOUS_ACME_DIRECTORY_CA": caFile, "RENDEZVOUS_ACME_CACHE": filepath.Join(dir, "acme")}), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []string{"kv.example.org", "b.example.org", "c.example.org"}, c.ACMEDomains)
	assert.Equal(t, "ops@example.org", c.ACMEEmail)
	assert.Equal(t, "https://127.0.0.1:14000/dir", c.ACMEDirectory)
	assert.Equal(t, caFile, c.ACMEDirectoryCAFile)
	assert.Equal(t, filepath.Join(dir, "acme"), c.ACMECache)
}

// Bad TLS settings are refused with one line that names the flags.
func TestConfigTLSRejects(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	cert := ca.Issue(t, testpki.ServerLeaf()).Write(t, dir, "server")
	missing := filepath.Join(dir, "nope.pem")
	require.NoFileExists(t, missing)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", cert.CertFile}, "invalid value " + quote(cert.CertFile) + " for flag --tls-cert: needs --tls-key"},
		{[]string{"--tls-key", cert.Key}, "flag --tls-key: needs --tls-cert"},
		{[]string{"--tls-cert", missing, "--tls-key", cert.Key}, "flag --tls-cert: open " + missing + ": no such file or directory"},
		{[]string{"--tls-client-ca", cert.CertFile}, "flag --tls-client-ca: needs TLS (--tls-cert or --acme-domain)"},
		{[]string{"--tls-cert", cert.CertFile, "--tls-key", cert.Key, "--tls-client-auth", "sometimes"}, `"sometimes" is neither require nor optional`},
		{[]string{"--tls-cert", cert.CertFile, "--tls-key", cert.Key, "--tls-client-auth", "optional"}, "--tls-client-auth needs --tls-client-ca"},
		{[]string{"--tls-cert", cert.CertFile, "--tls-key", cert.Key, "--acme-domain", "kv.example.org"}, "either --tls-cert or --acme-domain"},
		{[]string{"--tls-cert", cert.CertFile, "--tls-key", cert.Key, "--mtls-identity-file", cert.CertFile}, "flag --mtls-identity-file: needs --tls-client-ca"},
		{[]string{"--acme-domain", "kv.example.org", "--data", ""}, "flag --acme-cache: needed when --data is empty"},
		{[]string{"--acme-email", "ops@example.org"}, "flag --acme-email: needs --acme-domain"},
		{[]string{"--http-addr", ":80"}, "flag --http-addr: needs TLS"},
	} {
		_, err := parseConfig(tc.args, env(nil), io.Discard)
		require.Error(t, err, "%v", tc.args)
		assert.Contains(t, err.Error(), tc.want)
	}
}

func quote(s string) string { return `"` + s + `"` }
