package tlsconf

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// DefaultHandshakeTimeout bounds a handshake when ListenerOptions does
// not: a client that opens a connection and sends nothing is closed
// after it.
const DefaultHandshakeTimeout = 10 * time.Second

// ListenerOptions tune NewListener.
type ListenerOptions struct {
	// HandshakeTimeout bounds each handshake; 0 means
	// DefaultHandshakeTimeout. An ACME certificate obtained during the
	// first handshake for a name has to fit in it too.
	HandshakeTimeout time.Duration
	// Wrap, when set, is applied to each connection once its handshake is
	// done, before Accept returns it. The HTTP front end scans what its
	// HTTP/1 connections read (package listener).
	Wrap func(*tls.Conn) net.Conn
	// Log receives failed handshakes at debug level; nil discards them.
	Log *slog.Logger
}

// NewListener returns a listener whose Accept returns TLS connections with
// their handshake done, using cfg (a Manager's Config). Handshakes run
// each on a goroutine of its own, so a slow or silent client never holds
// up the next one, and a failed handshake never reaches the front end;
// a connection that only answered a TLS-ALPN-01 challenge (acme-tls/1) is
// closed once its handshake is done. Because every front end gets
// connections whose protocol was already negotiated, the same listener
// serves HTTP and any other protocol.
//
// Limits on the number of connections belong to inner, so that they count
// the connections still in their handshake.
func NewListener(inner net.Listener, cfg *tls.Config, opts ListenerOptions) net.Listener {
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &tlsListener{
		inner:   inner,
		cfg:     cfg,
		opts:    opts,
		ready:   make(chan net.Conn),
		errs:    make(chan error),
		done:    make(chan struct{}),
		pending: map[net.Conn]struct{}{},
	}
}

type tlsListener struct {
	inner net.Listener
	cfg   *tls.Config
	opts  ListenerOptions

	start sync.Once
	ready chan net.Conn // handshaken connections
	errs  chan error    // errors of the inner Accept
	done  chan struct{} // closed by Close

	mu      sync.Mutex
	closed  bool
	pending map[net.Conn]struct{} // in their handshake, closed by Close
}

// Accept returns the next connection whose handshake succeeded, or the
// inner listener's error.
func (l *tlsListener) Accept() (net.Conn, error) {
	l.start.Do(func() { go l.acceptLoop() })
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// acceptLoop accepts connections and starts their handshakes until the
// listener is closed. An error of the inner Accept is handed to an Accept
// call, which decides (as net/http does for a temporary one) whether to
// try again.
func (l *tlsListener) acceptLoop() {
	for {
		c, err := l.inner.Accept()
		if err != nil {
			select {
			case l.errs <- err:
				continue
			case <-l.done:
				return
			}
		}
		if !l.track(c) {
			c.Close()
			return
		}
		go l.handshake(c)
	}
}

// track records c as in its handshake, unless the listener is closed.
func (l *tlsListener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.pending[c] = struct{}{}
	return true
}

func (l *tlsListener) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.pending, c)
	l.mu.Unlock()
}

// handshake runs the TLS handshake on raw and hands the connection to
// Accept.
func (l *tlsListener) handshake(raw net.Conn) {
	defer l.untrack(raw)
	tc := tls.Server(raw, l.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.HandshakeTimeout)
	defer cancel()
	// The deadline also bounds what the handshake writes to a client that
	// does not read.
	raw.SetDeadline(time.Now().Add(l.opts.HandshakeTimeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		var rh tls.RecordHeaderError
		if errors.As(err, &rh) && rh.Conn != nil && looksLikeHTTP(rh.RecordHeader) {
			// A plaintext request to the TLS port: a one-line answer says
			// what is wrong better than a reset.
			io.WriteString(rh.Conn, "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nthis port speaks HTTPS; use https://\n")
		}
		l.opts.Log.Debug("TLS handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
		raw.Close()
		return
	}
	raw.SetDeadline(time.Time{})
	state := tc.ConnectionState()
	if state.NegotiatedProtocol == "acme-tls/1" {
		// The ACME server only wanted the challenge certificate.
		tc.Close()
		return
	}
	var c net.Conn = tc
	if l.opts.Wrap != nil {
		c = l.opts.Wrap(tc)
	}
	select {
	case l.ready <- c:
	case <-l.done:
		c.Close()
	}
}

// looksLikeHTTP reports whether the first five bytes of a connection start
// an HTTP/1 request rather than a TLS record.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH":
		return true
	}
	return false
}

// Close stops accepting and closes the connections still in their
// handshake; connections already returned by Accept are their front
// end's to close.
func (l *tlsListener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	for c := range l.pending {
		c.Close()
	}
	l.mu.Unlock()
	return l.inner.Close()
}

// Addr returns the inner listener's address.
func (l *tlsListener) Addr() net.Addr { return l.inner.Addr() }
