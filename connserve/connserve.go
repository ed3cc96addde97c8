// Package connserve is the connection lifecycle that the front ends of
// rendezvous's own TCP protocols (Redis, the line protocol) share: the
// accept loop, the set of open connections, a graceful Shutdown that lets
// each connection finish what it has read, and Close. The protocol is the
// handler's; what this package decides is only when connections start and
// end.
package connserve

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Server accepts connections on the listeners given to Serve and runs the
// handler on each, one goroutine per connection. Its methods are those of
// server.FrontEnd, so a protocol's server can embed it.
type Server struct {
	handle func(net.Conn)

	mu       sync.Mutex
	lns      []net.Listener
	conns    map[net.Conn]struct{}
	shutting atomic.Bool
	wg       sync.WaitGroup
	accepted atomic.Int64
}

// New returns a Server that serves each connection with handle, which
// owns the connection: it must close it before it returns. A handler that
// waits for a client must give its reads a deadline and check
// ShuttingDown after setting one (Shutdown wakes it by moving the read
// deadline to now).
func New(handle func(net.Conn)) *Server {
	return &Server{handle: handle, conns: map[net.Conn]struct{}{}}
}

// Serve accepts connections on ln until Shutdown or Close, after which it
// returns net.ErrClosed; otherwise it returns the listener's failure. A
// temporary failure to accept (out of file descriptors) is retried.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		ln.Close()
		return net.ErrClosed
	}
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return net.ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		s.mu.Lock()
		if s.shutting.Load() {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.accepted.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(nc)
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
		}()
	}
}

// ShuttingDown reports whether Shutdown or Close began: a handler ends
// its connection once it has answered what it read.
func (s *Server) ShuttingDown() bool { return s.shutting.Load() }

// Shutdown stops accepting, wakes every connection waiting for its
// client (its read deadline is moved to now), and waits for the handlers
// to return, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutting.Store(true)
	for _, ln := range s.lns {
		ln.Close()
	}
	for nc := range s.conns {
		nc.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes every listener and connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutting.Store(true)
	for _, ln := range s.lns {
		ln.Close()
	}
	for nc := range s.conns {
		nc.Close()
	}
	return nil
}

// Open returns how many connections are open now.
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Accepted returns how many connections Serve accepted in all.
func (s *Server) Accepted() int64 { return s.accepted.Load() }
