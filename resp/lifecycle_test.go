package resp_test

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/resp"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// serveAlone runs a resp.Server on its own listener, with idle.
func serveAlone(t *testing.T, idle time.Duration) (*resp.Server, string) {
	t.Helper()
	svc := policy.New(ttlstore.New(ttlstore.Options{MaxKeys: 100}), nil,
		policy.Config{MaxKeySize: 100, MaxValueSize: 1000, MaxTTL: time.Hour, CostRead: 1, CostWrite: 3}, nil)
	srv := resp.New(resp.Config{Service: svc, IdleTimeout: idle})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return srv, ln.Addr().String()
}

// TestIdleTimeout: a connection that sends nothing is closed.
func TestIdleTimeout(t *testing.T) {
	_, addr := serveAlone(t, 200*time.Millisecond)
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = nc.Write([]byte("PING\r\n"))
	require.NoError(t, err)
	r := bufio.NewReader(nc)
	l, err := r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "+PONG\r\n", l)
	start := time.Now()
	_, err = r.ReadByte()
	assert.Error(t, err, "closed")
	assert.Less(t, time.Since(start), 5*time.Second)
}

// TestShutdownEndsIdleConnections: Shutdown closes connections waiting
// for a command and returns once they are gone; the listener stops.
func TestShutdownEndsIdleConnections(t *testing.T) {
	srv, addr := serveAlone(t, time.Hour)
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = nc.Write([]byte("PING\r\n"))
	require.NoError(t, err)
	r := bufio.NewReader(nc)
	_, err = r.ReadString('\n')
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx))
	_, err = r.ReadByte()
	assert.Error(t, err)
	_, err = net.DialTimeout("tcp", addr, time.Second)
	assert.Error(t, err, "no longer accepting")
}
