package listener

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// accepted runs Accept on ln in the background and delivers its result.
func accepted(ln net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		ch <- c
	}()
	return ch
}

// TestLimitWaitsForAClose: with two connections open, a third is taken
// from the kernel only once one of them closes, and a second Close of the
// same connection does not free a second slot. It holds for this
// package's connections, which keep their type, and for any other
// listener's.
func TestLimitWaitsForAClose(t *testing.T) {
	for _, own := range []bool{true, false} {
		t.Run(map[bool]string{true: "own", false: "other"}[own], func(t *testing.T) {
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			if own {
				inner = New(inner)
			}
			ln := Limit(inner, 2)
			t.Cleanup(func() { ln.Close() })
			for range 4 {
				c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
				require.NoError(t, err, "the kernel completes the handshake of waiting clients")
				t.Cleanup(func() { c.Close() })
			}
			first, err := ln.Accept()
			require.NoError(t, err)
			second, err := ln.Accept()
			require.NoError(t, err)
			if own {
				assert.IsType(t, (*conn)(nil), first, "ConnContext must still find it")
			} else {
				nc, ok := first.(interface{ NetConn() net.Conn })
				require.True(t, ok)
				assert.IsType(t, (*net.TCPConn)(nil), nc.NetConn())
			}

			third := accepted(ln)
			select {
			case <-third:
				t.Fatal("a third connection was accepted while two were open")
			case <-time.After(200 * time.Millisecond):
			}
			require.NoError(t, first.Close())
			select {
			case c := <-third:
				require.NotNil(t, c)
				t.Cleanup(func() { c.Close() })
			case <-time.After(5 * time.Second):
				t.Fatal("closing a connection did not let the next one in")
			}

			first.Close() // again: no second slot
			fourth := accepted(ln)
			select {
			case <-fourth:
				t.Fatal("closing a connection twice freed two slots")
			case <-time.After(200 * time.Millisecond):
			}
			second.Close()
			select {
			case c := <-fourth:
				require.NotNil(t, c)
				c.Close()
			case <-time.After(5 * time.Second):
				t.Fatal("closing the second connection did not let the fourth in")
			}
		})
	}
}

// TestLimitCloseEndsAWaitingAccept: a server that stops while every slot
// is taken is not left blocked in Accept.
func TestLimitCloseEndsAWaitingAccept(t *testing.T) {
	inner, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	ln := Limit(inner, 1)
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	held, err := ln.Accept()
	require.NoError(t, err)
	defer held.Close()

	errs := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		errs <- err
	}()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, ln.Close())
	select {
	case err := <-errs:
		assert.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waits after Close")
	}
}
