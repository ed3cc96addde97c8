package listener

import (
	"net"
	"sync"
	"sync/atomic"
)

// Limit returns ln with at most max of its connections open at once. When
// max are open, Accept waits for one of them to close before it takes the
// next connection from the kernel, so the process holds at most max file
// descriptors for ln however many clients connect: the others wait in the
// kernel's accept queue (their handshake done, nothing read), and once
// that queue is full the kernel drops further connection attempts, which
// the clients retry. Waiting, rather than accepting and closing at once,
// costs no system call per refused client and keeps the clients that wait
// in the order they came.
//
// Any listener can be limited, whatever it serves; a connection from a
// listener of this package keeps its type (so ConnContext still finds
// it), others are wrapped in a net.Conn whose NetConn returns them. A
// slot is given back when a connection is closed, once however often
// Close is called. Closing the returned listener ends a waiting Accept.
// max must be positive.
//
// Under TLS, limit the TCP listener and wrap the result, as in
// tls.NewListener(Limit(ln, max), cfg): net/http recognises a *tls.Conn
// only as the connection it accepts, and a limited one is wrapped.
func Limit(ln net.Listener, max int) net.Listener {
	return &limited{Listener: ln, slots: make(chan struct{}, max), done: make(chan struct{})}
}

type limited struct {
	net.Listener
	slots     chan struct{} // one element per open connection
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

// Accept waits for a free slot, then for the next connection.
func (l *limited) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: l.Addr().Network(), Addr: l.Addr(), Err: net.ErrClosed}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.release()
		return nil, err
	}
	if own, ok := c.(*conn); ok {
		own.limit = l
		return own, nil
	}
	return &limitedConn{Conn: c, limit: l}, nil
}

// Close closes the listener and ends an Accept waiting for a slot.
func (l *limited) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func (l *limited) release() { <-l.slots }

// limitedConn is a connection of another kind of listener, counted by a
// limit until it is closed.
type limitedConn struct {
	net.Conn
	limit  *limited
	closed atomic.Bool
}

// Close closes the connection and gives its slot back.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.limit.release()
	}
	return err
}

// NetConn returns the connection that was accepted, as crypto/tls's
// Conn.NetConn does for the connection it wraps.
func (c *limitedConn) NetConn() net.Conn { return c.Conn }
