// Package listener opens the server's TCP listener so that each
// connection costs as few system calls as it can.
//
// Two costs are cut. First, Go turns on TCP keep-alive probes for every
// accepted connection, which takes four setsockopt(2) calls; with
// `Connection: close` that was 4% of the server's CPU time. The server
// does not need the probes: its read, idle and write timeouts close every
// connection that stays silent, a watch stream writes a comment line every
// 25 s, and while data is unacknowledged Linux sends no probes anyway.
//
// Second, the API server speaks HTTP/1.1 and, on the same port, HTTP/2
// without TLS (Deno's KV client speaks only HTTP/2). To tell them apart
// net/http peeks at the first 14 bytes of every connection, reading no
// more than that, so an HTTP/1.1 request over a new connection took two
// read(2) calls instead of one: with `Connection: close` that was about
// one system call in twelve of the server's, and its CPU time per request
// was 6% above that of a server without HTTP/2. Here the first read fills
// a buffer of its own, and the reads after it are served from that buffer
// until it is drained.
//
// The connections also watch for request heads framed two ways, to close
// a connection that could smuggle a request past a proxy (see
// FramingConflict).
package listener

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// readAhead is the size of the first read. It matches net/http's read
// buffer, which holds any request line and headers it will accept in one
// piece without growing.
const readAhead = 4 << 10

var buffers = sync.Pool{New: func() any { return new([readAhead]byte) }}

// Listen listens on the TCP address addr with keep-alive probes off and
// wraps the listener with New (see the package comment).
func Listen(addr string) (net.Listener, error) {
	ln, err := ListenTCP(addr)
	if err != nil {
		return nil, err
	}
	return New(ln), nil
}

// ListenTCP listens on the TCP address addr with keep-alive probes off
// (see the package comment), without New's wrapping: for a listener whose
// connections another layer reads first, such as TLS (see TLS).
func ListenTCP(addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(context.Background(), "tcp", addr)
}

// New returns a listener whose TCP connections make their first read
// through a buffer (see the package comment). Other connections are
// returned as accepted.
func New(ln net.Listener) net.Listener { return listener{ln} }

type listener struct{ net.Listener }

// Accept waits for the next connection.
func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	return &conn{TCPConn: tc, first: true}, nil
}

// conn is a TCP connection whose first read goes through buf. Embedding
// *net.TCPConn keeps the methods net/http looks for (CloseWrite, ReadFrom
// for sendfile); WriteTo is redefined so it cannot skip buffered bytes.
// Like a net.Conn, it allows one Read at a time.
type conn struct {
	*net.TCPConn
	first bool             // no read has been made yet
	buf   *[readAhead]byte // read ahead; nil once drained
	r, w  int              // buf[r:w] is not yet returned
	heads framing          // the scan of what Read returned
	// conflict is set once a head with both Transfer-Encoding and
	// Content-Length was read. Handlers read it while net/http's
	// background read of the next request may be scanning.
	conflict atomic.Bool
	// limit, when the connection came through Limit, gets its slot back
	// when the connection is first closed.
	limit  *limited
	closed atomic.Bool
}

// Close closes the connection and, if it was counted by a limit, gives
// its slot back.
func (c *conn) Close() error {
	err := c.TCPConn.Close()
	if c.limit != nil && c.closed.CompareAndSwap(false, true) {
		c.limit.release()
	}
	return err
}

// Read reads from the buffered bytes first, then from the connection, and
// scans what it returns for request heads.
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.read(p)
	if !c.heads.off && c.heads.scan(p[:n]) {
		c.conflict.Store(true)
	}
	return n, err
}

func (c *conn) read(p []byte) (int, error) {
	if c.first {
		c.first = false
		if len(p) < readAhead {
			buf := buffers.Get().(*[readAhead]byte)
			n, err := c.TCPConn.Read(buf[:])
			if n == 0 {
				buffers.Put(buf)
				return 0, err
			}
			// An error with data (rare for TCP) is seen again by the next
			// read from the connection.
			c.buf, c.r, c.w = buf, 0, n
		}
	}
	if c.buf == nil {
		return c.TCPConn.Read(p)
	}
	n := copy(p, c.buf[c.r:c.w])
	c.r += n
	if c.r == c.w {
		buffers.Put(c.buf)
		c.buf = nil
	}
	return n, nil
}

// WriteTo writes the buffered bytes, then copies the connection to w.
func (c *conn) WriteTo(w io.Writer) (int64, error) {
	var written int64
	if c.buf != nil {
		n, err := w.Write(c.buf[c.r:c.w])
		written += int64(n)
		c.r += n
		if err != nil {
			return written, err
		}
		buffers.Put(c.buf)
		c.buf = nil
	}
	c.first = false
	// Copied out whole, the connection is no longer read as requests.
	c.heads.off = true
	n, err := c.TCPConn.WriteTo(w)
	return written + n, err
}
