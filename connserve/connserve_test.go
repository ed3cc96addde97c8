package connserve_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/connserve"
)

// echo answers each line it reads until its client leaves, a read fails
// (the idle deadline, Shutdown's wake-up) or a shutdown began.
func echo(s **connserve.Server) func(net.Conn) {
	return func(nc net.Conn) {
		defer nc.Close()
		r := bufio.NewReader(nc)
		for {
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			if (*s).ShuttingDown() && r.Buffered() == 0 {
				return
			}
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			nc.Write([]byte(line))
		}
	}
}

// Shutdown wakes a connection waiting for its client and waits for its
// handler; a connection that sent a line before gets its answer; Serve
// then returns net.ErrClosed, and so does a later Serve.
func TestShutdownWakesAndWaits(t *testing.T) {
	var s *connserve.Server
	s = connserve.New(echo(&s))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	nc, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = nc.Write([]byte("hi\n"))
	require.NoError(t, err)
	r := bufio.NewReader(nc)
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "hi\n", line)
	assert.Equal(t, 1, s.Open())
	assert.EqualValues(t, 1, s.Accepted())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx), "the waiting connection was woken, well before its 10 s deadline")
	assert.Equal(t, 0, s.Open())
	_, err = r.ReadByte()
	assert.Error(t, err, "closed by its handler")
	assert.ErrorIs(t, <-served, net.ErrClosed)
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	assert.ErrorIs(t, s.Serve(ln2), net.ErrClosed)
}

// Close ends every connection at once, even one whose handler does not
// notice the shutdown.
func TestCloseEndsConnections(t *testing.T) {
	block := make(chan struct{})
	s := connserve.New(func(nc net.Conn) {
		defer nc.Close()
		nc.Read(make([]byte, 1)) // no deadline: only Close ends it
		close(block)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	nc, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	require.NoError(t, err)
	defer nc.Close()
	for deadline := time.Now().Add(10 * time.Second); s.Open() == 0; {
		require.True(t, time.Now().Before(deadline), "the connection was never served")
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, s.Close())
	select {
	case <-block:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the connection")
	}
	err = <-served
	assert.True(t, errors.Is(err, net.ErrClosed), "%v", err)
}
