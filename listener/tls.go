package listener

import (
	"crypto/tls"
	"net"
	"sync/atomic"
)

// TLS wraps a server's TLS connection, handshake done, so that the
// request heads it reads are scanned as those of Listen's connections are
// (see FramingConflict): a proxy in front may speak TLS to this server as
// well. It is for HTTP/1 connections; HTTP/2 frames its messages itself.
// The wrapper keeps ConnectionState, through which net/http still fills
// in Request.TLS, and has no read-ahead: the TLS layer buffers already.
func TLS(c *tls.Conn) net.Conn { return &tlsConn{Conn: c} }

type tlsConn struct {
	*tls.Conn
	heads    framing
	conflict atomic.Bool // as conn.conflict
}

// Read reads decrypted bytes and scans them for request heads.
func (c *tlsConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.heads.off && c.heads.scan(p[:n]) {
		c.conflict.Store(true)
	}
	return n, err
}
