package listener

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
)

// A request with both Transfer-Encoding and Content-Length is framed two
// ways: net/http goes by the chunked coding, a proxy in front may go by
// the length, and the bytes they disagree about run as a request of their
// own that the proxy never saw. RFC 9112 §6.1 has the server close the
// connection after answering such a request. net/http deletes the
// Content-Length header of a chunked request before a handler runs, so
// the connection watches the bytes it reads for a request head that names
// both, and the handler asks it (FramingConflict) when a request is
// chunked, which few are.
//
// The scan knows nothing of message bodies: it looks at every line start
// for the two header names, and forgets them at each blank line. A request
// head has no blank line inside it, so a head with both names is always
// seen; a body that happens to hold two such lines is taken for one too,
// and a chunked request after it on that connection is refused, which its
// client can retry on a new connection.

// The header names as they start a line, lower case, with their colon:
// net/http allows no space before it.
const (
	transferEncoding = "transfer-encoding:"
	contentLength    = "content-length:"
)

// http2Preface starts every HTTP/2 connection; after it come binary frames,
// which have no request heads to scan.
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// framing is the scan's state between reads, so that a line split across
// two reads is matched as one.
type framing struct {
	state   uint8 // one of the states below
	name    string
	matched int   // bytes of name matched so far, in stateName
	seen    uint8 // the names seen since the last blank line, as bits
	preface int   // bytes of http2Preface matched so far; -1: not HTTP/2
	off     bool  // nothing more to look for
}

const (
	stateLine  uint8 = iota // inside a line: skip to its end
	stateStart              // at the start of a line
	stateCR                 // after a CR at the start of a line
	stateName               // at matched bytes into name
)

const (
	seenTE uint8 = 1 << iota
	seenCL
)

// scan reads p, the next bytes of the connection, and reports whether a
// block of lines with both names has been seen. The connection starts at
// the start of a line.
func (f *framing) scan(p []byte) bool {
	if f.preface >= 0 {
		n := min(len(p), len(http2Preface)-f.preface)
		if string(p[:n]) != http2Preface[f.preface:f.preface+n] {
			f.preface = -1
		} else if f.preface += n; f.preface == len(http2Preface) {
			f.off = true
			return false
		}
	}
	for i := 0; i < len(p); {
		switch f.state {
		case stateLine:
			j := bytes.IndexByte(p[i:], '\n')
			if j < 0 {
				return false
			}
			i += j + 1
			f.state = stateStart
		case stateStart:
			switch lower(p[i]) {
			case 't':
				f.state, f.name, f.matched = stateName, transferEncoding, 1
			case 'c':
				f.state, f.name, f.matched = stateName, contentLength, 1
			case '\n':
				f.seen = 0
			case '\r':
				f.state = stateCR
			default:
				f.state = stateLine
			}
			i++
		case stateCR:
			if p[i] == '\n' {
				f.seen = 0
				f.state = stateStart
				i++
			} else {
				f.state = stateLine
			}
		case stateName:
			if lower(p[i]) != f.name[f.matched] {
				f.state = stateLine // p[i] may end the line: look at it again
				continue
			}
			i++
			if f.matched++; f.matched < len(f.name) {
				continue
			}
			if f.name == transferEncoding {
				f.seen |= seenTE
			} else {
				f.seen |= seenCL
			}
			if f.seen == seenTE|seenCL {
				f.off = true
				return true
			}
			f.state = stateLine
		}
	}
	return false
}

// lower folds an ASCII upper-case letter to lower case.
func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

type connKey struct{}

// ConnContext is for http.Server.ConnContext: it makes a connection this
// package accepted, or wrapped with TLS, known to FramingConflict.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	switch c := c.(type) {
	case *conn:
		return context.WithValue(ctx, connKey{}, &c.conflict)
	case *tlsConn:
		return context.WithValue(ctx, connKey{}, &c.conflict)
	}
	return ctx
}

// FramingConflict reports whether the connection that the request with
// context ctx came on has sent a request head with both Transfer-Encoding
// and Content-Length (see ConnContext). Once true it stays true for that
// connection.
func FramingConflict(ctx context.Context) bool {
	conflict, ok := ctx.Value(connKey{}).(*atomic.Bool)
	return ok && conflict.Load()
}
