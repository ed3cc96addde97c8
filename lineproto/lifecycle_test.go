package lineproto_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/lineproto"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// TestIdleTimeout: a connection that sends nothing is closed.
func TestIdleTimeout(t *testing.T) {
	svc := policy.New(ttlstore.New(ttlstore.Options{MaxKeys: 100}), nil,
		policy.Config{MaxKeySize: 100, MaxValueSize: 1000, MaxTTL: time.Hour, CostRead: 1, CostWrite: 3}, nil)
	srv := lineproto.New(lineproto.Config{Service: svc, IdleTimeout: 200 * time.Millisecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		<-done
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = nc.Write([]byte("k=v\n"))
	require.NoError(t, err)
	r := bufio.NewReader(nc)
	l, err := r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "=v\n", l)
	start := time.Now()
	_, err = r.ReadByte()
	assert.Error(t, err, "closed")
	assert.Less(t, time.Since(start), 5*time.Second)
}
