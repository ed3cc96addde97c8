package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/apt"
	"github.com/rendezvous-kv/rendezvous/internal/testpki"
	"github.com/rendezvous-kv/rendezvous/server"
	"github.com/rendezvous-kv/rendezvous/tlsconf"
)

// lineSession is a line protocol connection and its reader.
type lineSession struct {
	net.Conn
	br *bufio.Reader
}

func (l *lineSession) line(t *testing.T) string {
	t.Helper()
	s, err := l.br.ReadString('\n')
	require.NoError(t, err)
	return strings.TrimRight(s, "\r\n")
}

func (l *lineSession) send(t *testing.T, lines ...string) {
	t.Helper()
	_, err := l.Write([]byte(strings.Join(lines, "\n") + "\n"))
	require.NoError(t, err)
}

// dialLineTLS opens a line protocol session over TLS, trusting the
// server's test CA and presenting certs.
func dialLineTLS(t *testing.T, s *tlsServer, certs ...tls.Certificate) *lineSession {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.LineAddr().String(),
		&tls.Config{RootCAs: s.ca.Pool(), ServerName: "localhost", Certificates: certs})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	return &lineSession{Conn: c, br: bufio.NewReader(c)}
}

// With TLS configured, the Redis and line protocols are served over TLS
// with the API's certificate: go-redis with rediss://'s settings and
// redis-cli --tls speak to the Redis listener, a TLS client to the line
// listener, and a plaintext client gets nowhere on either.
func TestRespAndLineOverTLS(t *testing.T) {
	s := startTLS(t, func(cfg *server.Config, _ string) {
		cfg.RespAddr = "127.0.0.1:0"
		cfg.LineAddr = "127.0.0.1:0"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	opts, err := redis.ParseURL("rediss://" + s.RespAddr().String())
	require.NoError(t, err)
	opts.TLSConfig.RootCAs = s.ca.Pool()
	opts.MaxRetries = -1
	rc := redis.NewClient(opts)
	defer rc.Close()
	require.NoError(t, rc.Set(ctx, "mesh42/node-a", "10.0.0.7:9000", 0).Err())
	v, err := rc.Get(ctx, "mesh42/node-a").Result()
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.7:9000", v)
	resp, body := send(t, tlsClient(s.ca.Pool(), false, false), "GET", s.base+"/get/mesh42/node-a", "")
	assertStatus(t, resp, body, http.StatusOK, "")
	assert.Equal(t, "10.0.0.7:9000", body, "the same store as HTTPS")

	// A client that does not trust the CA fails its handshake.
	bad, err := redis.ParseURL("rediss://" + s.RespAddr().String())
	require.NoError(t, err)
	bad.MaxRetries = -1
	untrusting := redis.NewClient(bad)
	defer untrusting.Close()
	assert.Error(t, untrusting.Ping(ctx).Err())

	// Plaintext RESP on the TLS port: no reply in RESP.
	plain, err := net.DialTimeout("tcp", s.RespAddr().String(), 5*time.Second)
	require.NoError(t, err)
	defer plain.Close()
	require.NoError(t, plain.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = plain.Write([]byte("PING\r\n"))
	require.NoError(t, err)
	buf := make([]byte, 64)
	n, _ := plain.Read(buf)
	assert.NotContains(t, string(buf[:n]), "PONG")

	// redis-cli, Debian's build with TLS.
	bin := apt.Installed(t, "redis-cli", "redis-tools")
	host, port, err := net.SplitHostPort(s.RespAddr().String())
	require.NoError(t, err)
	caFile := s.ca.WriteCA(t, s.dir, "ca")
	cli := func(args ...string) (string, error) {
		c, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(c, bin, append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
		return string(out), err
	}
	out, err := cli("--tls", "--cacert", caFile, "SET", "cli/k", "over tls")
	require.NoError(t, err, out)
	assert.Equal(t, "OK\n", out)
	out, err = cli("--tls", "--cacert", caFile, "GET", "cli/k")
	require.NoError(t, err, out)
	assert.Equal(t, "over tls\n", out)
	out, _ = cli("--tls", "GET", "cli/k")
	assert.NotContains(t, out, "over tls", "redis-cli without the CA refuses the certificate")

	// The line protocol over TLS.
	ls := dialLineTLS(t, s)
	ls.send(t, "cli/k", "line/k=v1", "line/k")
	assert.Equal(t, "=over tls", ls.line(t))
	assert.Equal(t, "=v1", ls.line(t))
	assert.Equal(t, "=v1", ls.line(t))
	lp, err := net.DialTimeout("tcp", s.LineAddr().String(), 5*time.Second)
	require.NoError(t, err)
	defer lp.Close()
	require.NoError(t, lp.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = lp.Write([]byte("cli/k\n"))
	require.NoError(t, err)
	n, _ = lp.Read(buf)
	assert.NotContains(t, string(buf[:n]), "over tls", "plaintext gets no reply")
}

// A client certificate the mTLS identity file names authenticates a Redis
// or line protocol connection as that identity, with its grants, and
// without AUTH; AUTH with a token replaces it, and a certificate the
// file does not name leaves the connection anonymous (NOAUTH, "?Needs
// Auth", when tokens are configured). Removing the name from the file
// and reloading takes it from connections already open.
func TestRespAndLineCertIdentity(t *testing.T) {
	s := startMTLS(t, "", []string{"alice alice rw:alice/", "carol carol rw:carol/"}, func(cfg *server.Config, dir string) {
		cfg.AuthFile = writeFile(t, dir, "tokens", "tok-bob bob rw:bob/\n")
		cfg.TLSClientAuth = tlsconf.ClientAuthOptional
		cfg.RespAddr = "127.0.0.1:0"
		cfg.LineAddr = "127.0.0.1:0"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cert := func(cn string) tls.Certificate {
		return s.clients.Issue(t, testpki.Leaf{CommonName: cn, Client: true}).TLSCert
	}
	redisAs := func(password string, certs ...tls.Certificate) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: s.RespAddr().String(), Password: password, MaxRetries: -1, PoolSize: 1,
			TLSConfig: &tls.Config{RootCAs: s.ca.Pool(), ServerName: "localhost", Certificates: certs}})
		t.Cleanup(func() { c.Close() })
		return c
	}
	alice := redisAs("", cert("alice"))
	require.NoError(t, alice.Set(ctx, "alice/k", "a", 0).Err(), "no AUTH needed")
	err := alice.Set(ctx, "bob/k", "a", 0).Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "NOPERM", "alice's grants only")

	aliceAsBob := redisAs("tok-bob", cert("alice"))
	require.NoError(t, aliceAsBob.Set(ctx, "bob/k", "b", 0).Err(), "AUTH's token wins")
	err = aliceAsBob.Set(ctx, "alice/k", "b", 0).Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "NOPERM")

	for _, c := range []*redis.Client{redisAs("", cert("mallory")), redisAs("")} {
		err = c.Get(ctx, "alice/k").Err()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "NOAUTH")
	}

	// The line protocol.
	ls := dialLineTLS(t, s.tlsServer, cert("alice"))
	ls.send(t, "alice/k", "bob/k=x")
	assert.Equal(t, "=a", ls.line(t), "no greeting, no ~password")
	assert.True(t, strings.HasPrefix(ls.line(t), "!Not Set"), "alice's grants only")
	anon := dialLineTLS(t, s.tlsServer, cert("mallory"))
	assert.Equal(t, "?Needs Auth", anon.line(t))
	byToken := dialLineTLS(t, s.tlsServer, cert("alice"))
	byToken.send(t, "~password=tok-bob", "bob/k=y")
	assert.Equal(t, "?Authorized", byToken.line(t))
	assert.Equal(t, "=y", byToken.line(t))

	// carol is removed from the file: her open connections lose her.
	carol := redisAs("", cert("carol"))
	require.NoError(t, carol.Set(ctx, "carol/k", "c", 0).Err())
	carolLine := dialLineTLS(t, s.tlsServer, cert("carol"))
	carolLine.send(t, "carol/k")
	assert.Equal(t, "=c", carolLine.line(t))
	writeFile(t, s.dir, "identities", "alice alice rw:alice/\n")
	require.NoError(t, s.Reload())
	err = carol.Get(ctx, "carol/k").Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "NOAUTH", "on the connection opened before the reload")
	carolLine.send(t, "carol/k")
	assert.Equal(t, "!Not Authorized", carolLine.line(t))
	require.NoError(t, alice.Get(ctx, "alice/k").Err(), "alice is still listed")
}
