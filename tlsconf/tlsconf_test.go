package tlsconf_test

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/testpki"
	"github.com/rendezvous-kv/rendezvous/tlsconf"
)

// serve listens on loopback with m's config and returns the listener;
// the test closes it.
func serve(t *testing.T, m *tlsconf.Manager, opts tlsconf.ListenerOptions) net.Listener {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln := tlsconf.NewListener(inner, m.Config(), opts)
	t.Cleanup(func() { ln.Close() })
	return ln
}

func manager(t *testing.T, clientCA *testpki.CA, auth tlsconf.ClientAuth) (*tlsconf.Manager, *testpki.CA) {
	t.Helper()
	dir := t.TempDir()
	ca := testpki.NewCA(t, "server CA")
	cert := ca.Issue(t, testpki.ServerLeaf()).Write(t, dir, "server")
	opts := tlsconf.Options{CertFile: cert.CertFile, KeyFile: cert.Key, ClientAuth: auth}
	if clientCA != nil {
		opts.ClientCAFile = clientCA.WriteCA(t, dir, "clients")
	}
	m, err := tlsconf.New(opts)
	require.NoError(t, err)
	return m, ca
}

// accepted dials ln with cfg and returns the server's side once its
// handshake is done.
func accepted(t *testing.T, ln net.Listener, cfg *tls.Config) *tls.Conn {
	t.Helper()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			got <- c
		}
	}()
	client, err := tls.Dial("tcp", ln.Addr().String(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	// TLS 1.3 finishes the client's side before the server has read its
	// certificate; a round trip makes sure the server got it.
	go client.Write([]byte("x"))
	select {
	case c := <-got:
		t.Cleanup(func() { c.Close() })
		return c.(*tls.Conn)
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted")
		return nil
	}
}

// The names of a verified client certificate are its common name, DNS
// names and URIs, in that order; a connection without a verified
// certificate names nobody.
func TestClientNames(t *testing.T) {
	clientCA := testpki.NewCA(t, "client CA")
	m, serverCA := manager(t, clientCA, tlsconf.ClientAuthOptional)
	ln := serve(t, m, tlsconf.ListenerOptions{})
	leaf := clientCA.Issue(t, testpki.Leaf{CommonName: "alice", DNSNames: []string{"alice.team.example", "a.example"},
		URIs: []string{"spiffe://team.example/alice"}, Client: true})
	c := accepted(t, ln, &tls.Config{RootCAs: serverCA.Pool(), Certificates: []tls.Certificate{leaf.TLSCert}})
	cs := c.ConnectionState()
	assert.Equal(t, []string{"alice", "alice.team.example", "a.example", "spiffe://team.example/alice"}, tlsconf.ClientNames(&cs))

	c = accepted(t, ln, &tls.Config{RootCAs: serverCA.Pool()})
	cs = c.ConnectionState()
	assert.Empty(t, tlsconf.ClientNames(&cs), "no certificate sent")
	assert.Empty(t, tlsconf.ClientNames(nil))

	// Without a client CA a certificate is not asked for, and one that is
	// presented anyway would not be verified: it names nobody.
	m2, serverCA2 := manager(t, nil, tlsconf.ClientAuthRequire)
	ln2 := serve(t, m2, tlsconf.ListenerOptions{})
	c = accepted(t, ln2, &tls.Config{RootCAs: serverCA2.Pool(), Certificates: []tls.Certificate{leaf.TLSCert}})
	cs = c.ConnectionState()
	assert.Empty(t, tlsconf.ClientNames(&cs))
}

// A client that connects and never speaks is closed when the handshake
// timeout passes, and the listener keeps accepting others meanwhile.
func TestListenerHandshakeTimeout(t *testing.T) {
	m, ca := manager(t, nil, tlsconf.ClientAuthRequire)
	ln := serve(t, m, tlsconf.ListenerOptions{HandshakeTimeout: 300 * time.Millisecond})
	silent, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer silent.Close()

	accepted(t, ln, &tls.Config{RootCAs: ca.Pool()}) // not held up by the silent one

	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(silent)
	require.NoError(t, err, "closed by the server, not by our deadline")
	assert.Less(t, time.Since(start), 3*time.Second)
}

// Close ends Accept and closes the connections still in their handshake.
func TestListenerClose(t *testing.T) {
	m, _ := manager(t, nil, tlsconf.ClientAuthRequire)
	ln := serve(t, m, tlsconf.ListenerOptions{HandshakeTimeout: time.Minute})
	accepting := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		accepting <- err
	}()
	silent, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer silent.Close()
	time.Sleep(50 * time.Millisecond) // let the handshake start
	require.NoError(t, ln.Close())
	select {
	case err := <-accepting:
		require.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(silent)
	require.NoError(t, err, "the pending connection was closed")
}

// A connection that negotiated acme-tls/1 only answered a challenge: it
// never reaches a front end.
func TestListenerDropsACMEChallengeConns(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "server CA")
	cert := ca.Issue(t, testpki.ServerLeaf()).Write(t, dir, "server")
	m, err := tlsconf.New(tlsconf.Options{CertFile: cert.CertFile, KeyFile: cert.Key, ExtraProtos: []string{"acme-tls/1"}})
	require.NoError(t, err)
	ln := serve(t, m, tlsconf.ListenerOptions{})
	got := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			got <- c
		}
	}()
	challenge, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"acme-tls/1"}})
	require.NoError(t, err)
	defer challenge.Close()
	assert.Equal(t, "acme-tls/1", challenge.ConnectionState().NegotiatedProtocol)
	challenge.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(challenge)
	require.NoError(t, err, "closed by the server")

	client, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2"}})
	require.NoError(t, err)
	defer client.Close()
	select {
	case c := <-got:
		defer c.Close()
		assert.Equal(t, "h2", c.(*tls.Conn).ConnectionState().NegotiatedProtocol, "the first connection accepted is the next one")
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted")
	}
}
