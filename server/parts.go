package server

import (
	"net/http"
	"time"

	"github.com/rendezvous-kv/rendezvous/feed"
	"github.com/rendezvous-kv/rendezvous/handlers"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// Handler returns the HTTP API, the handler Serve runs on Addr, for a
// program that serves it on a listener or under a path of its own; it may
// do so without calling Serve, and Shutdown then still ends the watch
// streams and saves the data. The client's address is taken from each
// request's RemoteAddr (and the headers of Config.TrustedProxies). Tests
// use it to serve requests from chosen addresses.
func (s *Server) Handler() http.Handler { return s.api }

// Service returns the policy core every front end calls, so that a
// program embedding the server can read, write and watch keys in-process
// under the same rules as a client of the API.
func (s *Server) Service() *policy.Service { return s.svc }

// Internals are the in-memory backends a Server composed.
type Internals struct {
	// Store holds the keys.
	Store *ttlstore.Store
	// Feed publishes their changes to watchers.
	Feed *feed.Feed
}

// Internals returns the backends under the policy core. They are the
// documented seam for tests that look below the API (how many keys are
// stored or watchers open, an expiry sweep run now rather than on the
// next tick, the feed closed alone as Shutdown's first step does); a
// program embedding the server should use Handler and Service, as these
// backends may be replaced by others.
func (s *Server) Internals() Internals { return Internals{Store: s.store, Feed: s.changes} }

// observers returns an Observer that tells each of its non-nil arguments.
func observers(met handlers.Observer, extra handlers.Observer) handlers.Observer {
	if extra == nil {
		return met
	}
	return observerPair{met, extra}
}

type observerPair struct{ a, b handlers.Observer }

func (p observerPair) Observe(route string, status int, took time.Duration) {
	p.a.Observe(route, status, took)
	p.b.Observe(route, status, took)
}

// readyBoth reports the first of a's and b's refusals; a may be nil.
func readyBoth(a, b func() error) func() error {
	if a == nil {
		return b
	}
	return func() error {
		if err := a(); err != nil {
			return err
		}
		return b()
	}
}
