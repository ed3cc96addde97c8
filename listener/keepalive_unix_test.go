//go:build unix

package listener

import (
	"net"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// keepAlive reports whether the socket under c has SO_KEEPALIVE set.
func keepAlive(t *testing.T, c net.Conn) bool {
	t.Helper()
	sc, ok := c.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	require.True(t, ok, "%T has no SyscallConn", c)
	raw, err := sc.SyscallConn()
	require.NoError(t, err)
	var v int
	var serr error
	require.NoError(t, raw.Control(func(fd uintptr) {
		v, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
	}))
	require.NoError(t, serr)
	return v != 0
}

// TestListenTurnsKeepAliveProbesOff: connections accepted through Listen
// have no TCP keep-alive, while a plain net.Listen (the check's control)
// turns it on, so the check can tell the two apart.
func TestListenTurnsKeepAliveProbesOff(t *testing.T) {
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	server, _ := connect(t, plain)
	assert.True(t, keepAlive(t, server), "control: net.Listen")

	ln, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	c, _ := connect(t, ln)
	assert.IsType(t, &conn{}, c, "Listen wraps the listener")
	assert.False(t, keepAlive(t, c))
}
