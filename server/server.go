// Package server is rendezvous as a library: it composes the store, the
// journal and snapshots, the rate limiter, the change feed, the policy
// core and the HTTP front end, and owns their lifecycle. The rendezvous
// command is a thin wrapper that turns flags into a Config; a Go program
// can embed the same server:
//
//	srv, err := server.New(cfg) // recovers the data, binds the listeners
//	go srv.Serve(ctx)           // serves until ctx is done or Shutdown
//	...
//	err = srv.Shutdown(ctx)     // drains, stops, saves, releases the data
package server

import (
	"context"
	"errors"
	"expvar"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/rendezvous-kv/rendezvous/auth"
	"github.com/rendezvous-kv/rendezvous/clientip"
	"github.com/rendezvous-kv/rendezvous/feed"
	"github.com/rendezvous-kv/rendezvous/gcpace"
	"github.com/rendezvous-kv/rendezvous/handlers"
	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/kvconnect"
	"github.com/rendezvous-kv/rendezvous/limiter"
	"github.com/rendezvous-kv/rendezvous/lineproto"
	"github.com/rendezvous-kv/rendezvous/listener"
	"github.com/rendezvous-kv/rendezvous/metrics"
	"github.com/rendezvous-kv/rendezvous/persist"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/resp"
	"github.com/rendezvous-kv/rendezvous/static"
	"github.com/rendezvous-kv/rendezvous/tlsconf"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// FrontEnd serves one protocol on a listener the Server opened, and is
// stopped by it. *http.Server implements it; so will the listeners of
// other protocols.
type FrontEnd interface {
	// Serve accepts connections on ln until Shutdown or Close; whatever
	// it returns after those began is taken as a normal end.
	Serve(ln net.Listener) error
	// Shutdown stops accepting and waits for the connections in flight
	// to finish, or for ctx to be done.
	Shutdown(ctx context.Context) error
	// Close closes every connection still open.
	Close() error
}

// ErrClosed is returned by Serve on a Server that was shut down.
var ErrClosed = errors.New("server: closed")

// The states of a Server.
const (
	stateNew = iota
	stateServing
	stateClosed // Shutdown began
)

// Server is one rendezvous server: its data, background work and
// listeners. Its methods are safe for concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	lock    *persist.Lock
	store   *ttlstore.Store
	changes *feed.Feed
	journal *persist.Journal // nil in memory
	saver   *persist.Saver   // nil in memory
	limits  *limiter.Limiter // nil with rate limiting off
	svc     *policy.Service
	api     http.Handler
	tls     *tlsconf.Manager // nil without TLS
	acme    *tlsconf.ACME    // nil without ACME
	// loaded says that recovery filled the store, whose ordered index is
	// then built in the background; replayed that its journal records
	// are worth folding into a snapshot soon.
	loaded, replayed bool

	fronts []front // the API first
	// reloads are what Reload re-reads, in order: the token file, and
	// whatever else a part adds with onReload (certificates).
	reloads []reload
	// verifier checks the credentials of every front end (HTTP bearer
	// tokens; Redis AUTH, KV Connect's access token): nil when no auth
	// is configured, and then every caller is anonymous with full access.
	verifier auth.Verifier
	// certs names the identities of verified client certificates (see
	// certIdentity); nil without Config.MTLSIdentityFile.
	certs *auth.CertIdentities

	mu       sync.Mutex
	state    int
	stopBG   context.CancelFunc // set by Serve
	bg       sync.WaitGroup     // background goroutines
	serving  sync.WaitGroup     // the fronts' Serve calls
	stopping chan struct{}      // closed when Shutdown begins
	stopped  chan struct{}      // closed when Shutdown is done
	stopErr  error              // Shutdown's result, set before stopped closes
}

// front is a FrontEnd with its listener.
type front struct {
	name string
	ln   net.Listener
	srv  FrontEnd
}

// New validates cfg, takes the lock of the data file, recovers the data,
// builds the parts and binds every listener; it starts no goroutine of its
// own. When it fails, whatever it had opened is released again. A data
// file another Server (in any process) holds fails with an error wrapping
// *persist.LockedError.
func New(cfg Config) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	log := cfg.Logger
	s := &Server{cfg: cfg, log: log, stopping: make(chan struct{}), stopped: make(chan struct{})}
	defer func() {
		if err != nil {
			// Nothing was written since recovery, so there is nothing to
			// save; a repair's records were saved before anything fails.
			s.release(false)
		}
	}()
	if cfg.Data != "" {
		// Before anything is read: a second server on the same files would
		// cut the journal the first one has mapped.
		if s.lock, err = persist.AcquireLock(cfg.Data); err != nil {
			return nil, fmt.Errorf("cannot lock the data file %s: %w", cfg.Data, err)
		}
	}

	s.changes = feed.New(feed.Options{History: cfg.WatchHistory, MaxPerClient: cfg.MaxWatchersPerIP, MaxPerNetwork: cfg.MaxWatchersPerNet, MaxTotal: cfg.MaxWatchers})
	// The journal is opened after recovery, so the store reaches it
	// through s.journal; nothing mutates the store before it is set.
	s.store = ttlstore.New(ttlstore.Options{MaxKeys: cfg.MaxKeys, Now: cfg.Now, OnChange: func(c kv.Change) error {
		// The hook and the journal first: a change they refuse is not
		// applied, so it must never reach watchers.
		if cfg.OnChange != nil {
			if err := cfg.OnChange(c); err != nil {
				return err
			}
		}
		if s.journal != nil {
			if err := s.journal.Append(c); err != nil {
				return err
			}
		}
		s.changes.Publish(c)
		return nil
	}, Prepare: func(c kv.Change) any {
		if s.journal != nil {
			return s.journal.Prepare(c)
		}
		return nil
	}, OnCommit: func(cs []kv.Change, prepared any) error {
		// A transaction: one journal record, one batch of events.
		if cfg.OnChange != nil {
			for _, c := range cs {
				if err := cfg.OnChange(c); err != nil {
					return err
				}
			}
		}
		if s.journal != nil {
			if err := s.journal.AppendTxn(cs, prepared); err != nil {
				return err
			}
		}
		s.changes.PublishBatch(cs)
		return nil
	}, PrepareCommit: func(cs []kv.Change) any {
		if s.journal != nil {
			return s.journal.PrepareTxn(cs)
		}
		return nil
	}})
	if cfg.Data != "" {
		if err := s.recover(); err != nil {
			return nil, err
		}
	}

	if !cfg.RateOff {
		s.limits, err = limiter.New(limiter.Config{
			Tokens:     cfg.RateTokens,
			Window:     cfg.RateWindow,
			Burst:      cfg.burst(),
			MaxClients: cfg.RateClients,
		})
		if err != nil {
			return nil, err
		}
	}
	pcfg := policy.Config{
		MaxKeySize:      cfg.MaxKeySize,
		MaxValueSize:    cfg.MaxValueSize,
		MaxTTL:          cfg.MaxTTL,
		CostRead:        cfg.CostRead,
		CostWrite:       cfg.CostWrite,
		MaxScanLimit:    cfg.MaxScanLimit,
		MaxBatchOps:     cfg.MaxBatchOps,
		MaxWait:         cfg.MaxWait,
		ClientGrouping:  cfg.ClientGrouping,
		NetworkGrouping: cfg.NetworkGrouping,
		MaxInFlight:     cfg.MaxInFlight,
	}
	if !cfg.WatchOff {
		pcfg.Feed = s.changes
	}
	if s.journal != nil {
		pcfg.Commit = s.journal.Commit
	}
	var limits policy.Limiter // a nil interface with rate limiting off: policy skips it
	if s.limits != nil {
		limits = s.limits
	}
	if cfg.authOn() {
		// Validate parsed them already.
		anon, _ := auth.ParseGrants(cfg.Anonymous)
		pcfg.Anonymous = &anon
	}
	if cfg.tokensOn() {
		if s.verifier, err = s.openVerifier(); err != nil {
			return nil, err
		}
	}
	if cfg.MTLSIdentityFile != "" {
		if s.certs, err = s.openCertIdentities(); err != nil {
			return nil, err
		}
	}
	s.svc = policy.New(s.store, limits, pcfg, cfg.Now)

	src := metrics.Sources{
		Keys:            func() float64 { return float64(s.store.Len()) },
		StoredBytes:     func() float64 { return float64(s.store.Bytes()) },
		Watchers:        func() float64 { return float64(s.changes.Active()) },
		DroppedWatchers: func() float64 { return float64(s.changes.Dropped()) },
		InFlight:        func() float64 { return float64(s.svc.InFlight()) },
	}
	if s.saver != nil {
		src.JournalBytes = func() float64 { return float64(s.journal.Size()) }
		src.LastSnapshot = s.saver.Last
	}
	met := metrics.New(src)
	hcfg := handlers.Config{
		ClientIP: clientip.Resolver{Trusted: cfg.TrustedProxies},
		Verifier: s.verifier,
		Landing: static.Vars{
			MaxKey: cfg.MaxKeySize, MaxValue: cfg.MaxValueSize, MaxKeys: cfg.MaxKeys,
			MaxTTL: ttlText(cfg.MaxTTL), Rate: cfg.rateText(),
			CostRead: cfg.CostRead, CostWrite: cfg.CostWrite,
		},
		Log:                log,
		CORSOrigin:         cfg.CORSOrigin,
		IPWriteOrigins:     cfg.IPWriteOrigins,
		Metrics:            observers(met, cfg.Observer),
		WatchKeepAlive:     cfg.WatchKeepAlive,
		StreamWriteTimeout: cfg.StreamWriteTimeout,
	}
	if s.certs != nil {
		hcfg.CertIdentity = s.certIdentity
	}
	if cfg.MetricsAddr == "" {
		hcfg.MetricsHandler = met.Handler()
	}
	if s.journal != nil {
		// Until the next snapshot clears a journal write error (or, after
		// a start on a full disk, until the journal finds room), writes
		// are refused and a load balancer should know.
		hcfg.Ready = s.journal.Err
	}
	if cfg.Ready != nil {
		hcfg.Ready = readyBoth(hcfg.Ready, cfg.Ready)
	}
	kvState, err := kvconnect.LoadState(cfg.Data)
	if err != nil {
		return nil, err
	}
	kcfg := kvconnect.Config{ClientIP: hcfg.ClientIP, State: kvState, PublicURL: cfg.PublicURL, Now: cfg.Now, Log: log,
		Metrics: hcfg.Metrics, Verifier: s.verifier}
	if s.certs != nil {
		kcfg.CertIdentity = s.certIdentity
	}
	deno := kvconnect.New(s.svc, kcfg)
	s.api = mount(handlers.New(s.svc, hcfg), deno)
	api := &http.Server{
		Handler:           s.api,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ConnContext:       listener.ConnContext, // for handlers to see a head framed two ways
		Protocols:         new(http.Protocols),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	api.Protocols.SetHTTP1(true)
	if cfg.TLS() {
		if err := s.setupTLS(); err != nil {
			return nil, err
		}
		// HTTP/2 by ALPN.
		api.Protocols.SetHTTP2(true)
	} else {
		// HTTP/2 without TLS (prior knowledge) shares the port with
		// HTTP/1.1: Deno's KV client speaks only HTTP/2.
		api.Protocols.SetUnencryptedHTTP2(true)
	}
	s.cfg.MaxConns = connBudget(&cfg, log)
	if err := s.listenProtocol("api", cfg.Addr, api, protocolConns{plain: listener.New, tls: httpTLSConn}); err != nil {
		return nil, err
	}
	if cfg.HTTPAddr != "" {
		if err := s.listen("http", cfg.HTTPAddr, s.httpFront()); err != nil {
			return nil, err
		}
	}

	if cfg.RespAddr != "" {
		appendOnly := "no"
		if s.journal != nil {
			appendOnly = "yes"
		}
		rcfg := resp.Config{Service: s.svc, Keys: s.store.Len, Now: cfg.Now, AppendOnly: appendOnly, Log: log,
			Authenticate: s.authenticate, IdleTimeout: cfg.RespIdleTimeout}
		if s.verifier != nil {
			rcfg.Verifier = s.verifier
		}
		if s.certs != nil {
			rcfg.CertIdentity = s.certIdentity
		}
		// The same listener as the API's: TLS with its settings (rediss://),
		// the connection cap under it.
		if err := s.listenProtocol("resp", cfg.RespAddr, resp.New(rcfg), protocolConns{}); err != nil {
			return nil, err
		}
	}
	if cfg.LineAddr != "" {
		lcfg := lineproto.Config{Service: s.svc, Log: log, Authenticate: s.authenticate, IdleTimeout: cfg.LineIdleTimeout}
		if s.verifier != nil {
			lcfg.Verifier = s.verifier
		}
		if s.certs != nil {
			lcfg.CertIdentity = s.certIdentity
		}
		if err := s.listenProtocol("line", cfg.LineAddr, lineproto.New(lcfg), protocolConns{}); err != nil {
			return nil, err
		}
	}
	if cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", met.Handler())
		if err := s.listen("metrics", cfg.MetricsAddr, &http.Server{Handler: mux, ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			WriteTimeout: cfg.WriteTimeout, IdleTimeout: cfg.IdleTimeout, MaxHeaderBytes: cfg.MaxHeaderBytes}); err != nil {
			return nil, err
		}
	}
	if cfg.PprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.Handle("/debug/vars", expvar.Handler())
		// No write timeout: a CPU profile or trace answers after the
		// seconds it was asked for.
		if err := s.listen("pprof", cfg.PprofAddr, &http.Server{Handler: mux, ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			IdleTimeout: cfg.IdleTimeout, MaxHeaderBytes: cfg.MaxHeaderBytes}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// mount serves KV Connect's paths (under /kv) with deno and every other
// path with api: one listener, one port, for curl and Deno alike.
func mount(api, deno http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if kvconnect.Serves(r.URL.Path) {
			deno.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// recover loads the data file into the store and opens the journal.
func (s *Server) recover() error {
	cfg, log := &s.cfg, s.log
	rec, err := persist.Recover(cfg.Data, s.store, cfg.Repair, log)
	if err != nil {
		return fmt.Errorf("cannot load data; refusing to start so nothing is overwritten: %w", err)
	}
	log.Info("data loaded", "file", cfg.Data, "keys", s.store.Len(), "snapshot_keys", rec.SnapshotKeys,
		"journal_files", rec.JournalFiles, "journal_records", rec.JournalRecords, "duration", rec.Duration)
	s.loaded = true
	// Numbering goes on above what the snapshot covers and what a repair
	// moved aside, so the next start finds them in order.
	journal, err := persist.OpenJournalAfter(cfg.Data, cfg.Fsync, rec.LastGeneration)
	if err != nil {
		return fmt.Errorf("cannot open journal: %w", err)
	}
	s.journal = journal
	if err := journal.Err(); err != nil {
		log.Warn("disk full: serving reads, refusing writes until there is room", "err", err)
	}
	s.saver = &persist.Saver{Path: cfg.Data, Source: s.store.Snapshot, Version: s.store.Version, Journal: journal, Log: log}
	switch {
	case len(rec.MovedAside) > 0:
		// Repaired records live only in memory until saved.
		if err := s.saver.Save(); err != nil {
			return fmt.Errorf("cannot save the repaired data: %w", err)
		}
	case rec.JournalRecords > 0:
		// Replayed records are already durable in the journal; folding
		// them into a snapshot only speeds up the next start, so it need
		// not delay this one.
		s.replayed = true
	}
	return nil
}

// listen binds addr for one more front end, with at most
// Config.MaxConns of its connections open at once.
func (s *Server) listen(name, addr string, srv FrontEnd) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s for %s: %w", addr, name, err)
	}
	s.fronts = append(s.fronts, front{name, listener.Limit(ln, s.cfg.MaxConns), srv})
	return nil
}

// Addr returns the address the API listens on, with the port chosen when
// Config.Addr asked for port 0.
func (s *Server) Addr() net.Addr { return s.fronts[0].ln.Addr() }

// MetricsAddr returns the address of the metrics listener, or nil when
// /metrics is served on Addr.
func (s *Server) MetricsAddr() net.Addr { return s.frontAddr("metrics") }

// RespAddr returns the address of the Redis protocol listener, or nil
// when there is none.
func (s *Server) RespAddr() net.Addr { return s.frontAddr("resp") }

// LineAddr returns the address of the line protocol listener, or nil when
// there is none.
func (s *Server) LineAddr() net.Addr { return s.frontAddr("line") }

// PprofAddr returns the address of the profiling listener, or nil when
// there is none.
func (s *Server) PprofAddr() net.Addr { return s.frontAddr("pprof") }

func (s *Server) frontAddr(name string) net.Addr {
	for _, f := range s.fronts {
		if f.name == name {
			return f.ln.Addr()
		}
	}
	return nil
}

// Serve starts the background work (expiry, snapshots, journal syncs,
// rate-limit sweeps) and every front end, and blocks until the server
// stops. When ctx is done or a front end fails, Serve shuts the server
// down itself, draining for at most Config.DrainTimeout; when Shutdown is
// called elsewhere, Serve returns once it is done. It returns nil after a
// clean stop, else what went wrong (a front end's failure, the final
// snapshot's). Serve may be called once; after Shutdown it returns
// ErrClosed.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	switch s.state {
	case stateServing:
		s.mu.Unlock()
		return errors.New("server: Serve called twice")
	case stateClosed:
		s.mu.Unlock()
		return ErrClosed
	}
	s.state = stateServing
	bg, stop := context.WithCancel(context.Background())
	s.stopBG = stop
	s.startBackground(bg)
	failed := make(chan error, len(s.fronts))
	for _, f := range s.fronts {
		s.serving.Add(1)
		go func() {
			defer s.serving.Done()
			err := f.srv.Serve(f.ln)
			select {
			case <-s.stopping:
			default:
				failed <- fmt.Errorf("%s listener: %w", f.name, err)
			}
		}()
	}
	s.mu.Unlock()

	for _, f := range s.fronts[1:] {
		s.log.Info(f.name+" listening", "addr", f.ln.Addr().String())
	}
	if s.tls != nil {
		s.log.Info("TLS on", "cert", s.cfg.TLSCertFile, "acme_domains", strings.Join(s.cfg.ACMEDomains, ","),
			"client_ca", s.cfg.TLSClientCAFile, "client_auth", s.cfg.TLSClientAuth.String())
	}
	s.log.Info("listening", "addr", s.Addr().String(), "data", s.cfg.Data, "fsync", s.cfg.Fsync.String(), "keys", s.store.Len(),
		"max_keys", s.cfg.MaxKeys, "max_ttl", s.cfg.MaxTTL, "rate", s.cfg.rateText())
	var failure error
	select {
	case <-ctx.Done():
		s.log.Info("stopping: draining requests", "timeout", s.cfg.DrainTimeout)
	case failure = <-failed:
		s.log.Error("server failed", "err", failure)
	case <-s.stopping:
		<-s.stopped
		return s.stopErr
	}
	drain, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	return errors.Join(failure, s.Shutdown(drain))
}

// startBackground starts the goroutines that run until ctx is done, or
// until their work is finished; s.bg counts them.
func (s *Server) startBackground(ctx context.Context) {
	run := func(f func()) {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			f()
		}()
	}
	if s.loaded {
		// Loading fills only the hash index; the ordered index is built
		// while the server starts serving.
		run(func() {
			start := time.Now()
			s.store.BuildTrees()
			s.log.Info("ordered index built", "duration", time.Since(start))
		})
	}
	if s.replayed {
		run(func() { s.saver.Save() })
	}
	run(func() {
		// Expired entries loaded from disk are invisible already; this
		// frees their memory without delaying the start.
		if n := s.store.Reap(s.cfg.Now(), math.MaxInt); n > 0 {
			s.log.Info("expired entries dropped after load", "count", n)
		}
		s.store.RunReaper(ctx, time.Second, 100000)
	})
	if s.limits != nil {
		run(func() { s.limits.Run(ctx, 30*time.Second) })
	}
	if s.cfg.PaceGC && !gcpace.Overridden() { // GOGC from the environment wins
		run(func() { gcpace.Run(ctx, gcpace.DefaultFloor, time.Second) })
	}
	if s.tls != nil {
		run(func() { s.tls.Run(ctx, s.cfg.TLSPollInterval) })
	}
	if s.acme != nil {
		run(func() { s.acme.Prefetch(ctx) })
	}
	if s.saver != nil {
		run(func() { s.saver.Run(ctx, s.cfg.SaveInterval) })
		run(func() { s.journal.Run(ctx) })
	}
}

// Shutdown stops the server, in this order: it ends watch streams and
// long-polls, stops the front ends from accepting and waits for the
// requests in flight (until ctx is done; then it closes the connections
// left), stops the background work and waits for it, writes the final
// snapshot, closes the journal and releases the data file. Only the drain
// is bounded by ctx: what follows runs to the end, so that no
// acknowledged write is lost. It works whether or not Serve was called.
// Later calls wait for the first (or for their ctx) and return its
// result: nil, or why the final snapshot or the journal failed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		select {
		case <-s.stopped:
			return s.stopErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	served := s.state == stateServing
	s.state = stateClosed
	close(s.stopping)
	s.mu.Unlock()

	// Watch streams would otherwise hold the drain for as long as their
	// clients stay.
	s.changes.Close()
	if served {
		var wg sync.WaitGroup
		for _, f := range s.fronts {
			wg.Go(func() {
				if err := f.srv.Shutdown(ctx); err != nil {
					s.log.Warn("drain timed out; closing remaining connections", "listener", f.name, "err", err)
					f.srv.Close()
				}
			})
		}
		wg.Wait()
		s.serving.Wait()
		s.stopBG()
		s.bg.Wait()
	}
	s.stopErr = s.release(true)
	s.log.Info("stopped", "keys", s.store.Len())
	close(s.stopped)
	return s.stopErr
}

// Close stops the server as Shutdown does, without waiting for requests in
// flight.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Shutdown(ctx)
	if errors.Is(err, context.Canceled) {
		// An earlier Shutdown is still running; its end is this one's.
		<-s.stopped
		return s.stopErr
	}
	return err
}

// release closes what New opened: listeners, the change feed, the journal
// (after the final snapshot, when save is set) and the lock. It runs when
// nothing else uses them.
func (s *Server) release(save bool) error {
	var errs []error
	for _, f := range s.fronts {
		f.ln.Close() // already closed when Serve ran
	}
	if s.changes != nil {
		s.changes.Close()
	}
	if save && s.saver != nil {
		if err := s.saver.Save(); err != nil {
			errs = append(errs, fmt.Errorf("final snapshot: %w", err))
		}
	}
	if s.journal != nil {
		if err := s.journal.Close(); err != nil {
			s.log.Error("closing journal", "err", err)
			errs = append(errs, fmt.Errorf("closing journal: %w", err))
		}
	}
	if err := s.lock.Release(); err != nil {
		errs = append(errs, fmt.Errorf("releasing the data file's lock: %w", err))
	}
	return errors.Join(errs...)
}

// authenticate is the caller of the Redis and line protocols' connections
// that proved id: they hold no cross-site notion, a browser cannot speak
// them.
func (s *Server) authenticate(ip netip.Addr, id *policy.Identity) policy.Caller {
	return s.svc.Authenticated(ip, false, id)
}
