// Command rendezvous is a public, no-registration key-value service: store a
// small value under a key with curl, read it back, let it expire.
package main

import (
	"context"
	"errors"
	"expvar"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rendezvous-kv/rendezvous/feed"
	"github.com/rendezvous-kv/rendezvous/gcpace"
	"github.com/rendezvous-kv/rendezvous/handlers"
	"github.com/rendezvous-kv/rendezvous/limiter"
	"github.com/rendezvous-kv/rendezvous/listener"
	"github.com/rendezvous-kv/rendezvous/metrics"
	"github.com/rendezvous-kv/rendezvous/persist"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/static"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// drainTimeout bounds how long shutdown waits for in-flight requests.
const drainTimeout = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stderr))
}

// run starts the server and blocks until ctx is done. It returns the exit
// code: 0 after a clean stop, 1 when start-up or the final save failed, 2
// for bad configuration.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "rendezvous:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if cfg.Data != "" {
		// Before anything is read: a second server on the same files would
		// cut the journal the first one has mapped.
		lock, err := persist.AcquireLock(cfg.Data)
		var held *persist.LockedError
		switch {
		case errors.As(err, &held):
			log.Error("another rendezvous server is using this data file; stop it or give this one its own --data",
				"file", cfg.Data, "lock_file", held.LockFile, "pid", held.PID)
			return 1
		case err != nil:
			log.Error("cannot lock the data file", "file", cfg.Data, "err", err)
			return 1
		}
		defer lock.Release()
	}

	// The journal is opened after recovery, so the store reaches it through
	// this variable; nothing mutates the store before it is set.
	var journal *persist.Journal
	changes := feed.New(feed.Options{MaxPerClient: cfg.WatchersPerIP, MaxPerNetwork: cfg.WatchersNet, MaxTotal: cfg.MaxWatchers})
	store := ttlstore.New(ttlstore.Options{MaxKeys: cfg.MaxKeys, OnChange: func(c ttlstore.Change) error {
		// The journal first: a change it refuses is not applied, so it
		// must never reach watchers.
		if journal != nil {
			if err := journal.Append(c); err != nil {
				return err
			}
		}
		changes.Publish(c)
		return nil
	}, Prepare: func(c ttlstore.Change) any {
		if journal != nil {
			return journal.Prepare(c)
		}
		return nil
	}})
	var saver *persist.Saver
	if cfg.Data != "" {
		rec, err := persist.Recover(cfg.Data, store, cfg.Repair, log)
		if err != nil {
			log.Error("cannot load data; refusing to start so nothing is overwritten", "err", err)
			return 1
		}
		log.Info("data loaded", "file", cfg.Data, "keys", store.Len(), "snapshot_keys", rec.SnapshotKeys,
			"journal_files", rec.JournalFiles, "journal_records", rec.JournalRecords, "duration", rec.Duration)
		// Loading fills only the hash index; the ordered index is built
		// while the server starts serving.
		go func() {
			start := time.Now()
			store.BuildTrees()
			log.Info("ordered index built", "duration", time.Since(start))
		}()
		// Numbering goes on above what the snapshot covers and what a
		// repair moved aside, so the next start finds them in order.
		if journal, err = persist.OpenJournalAfter(cfg.Data, cfg.Fsync, rec.LastGeneration); err != nil {
			log.Error("cannot open journal", "err", err)
			return 1
		}
		if err := journal.Err(); err != nil {
			log.Warn("disk full: serving reads, refusing writes until there is room", "err", err)
		}
		saver = &persist.Saver{Path: cfg.Data, Source: store.Snapshot, Version: store.Version, Journal: journal, Log: log}
		switch {
		case len(rec.MovedAside) > 0:
			// Repaired records live only in memory until saved.
			if err := saver.Save(); err != nil {
				return 1
			}
		case rec.JournalRecords > 0:
			// Replayed records are already durable in the journal; folding
			// them into a snapshot only speeds up the next start, so it
			// need not delay this one.
			go saver.Save()
		}
	}

	var limits *limiter.Limiter
	if !cfg.Rate.Off {
		limits, err = limiter.New(limiter.Config{
			Tokens:     cfg.Rate.Tokens,
			Window:     cfg.Rate.Window,
			Burst:      cfg.burst(),
			IPv4Prefix: cfg.IPv4Prefix,
			IPv6Prefix: cfg.IPv6Prefix,
			MaxClients: cfg.RateClients,
		})
		if err != nil {
			fmt.Fprintln(stderr, "rendezvous:", err)
			return 2
		}
	}
	svc := policy.New(store, limits, policy.Config{
		MaxKeySize:   cfg.MaxKeySize,
		MaxValueSize: cfg.MaxValueSize,
		MaxTTL:       cfg.MaxTTL,
		CostRead:     cfg.CostRead,
		CostWrite:    cfg.CostWrite,
		Commit:       commitFunc(journal),
		MaxScanLimit: cfg.MaxScanLimit,
		MaxWait:      cfg.MaxWait,
		Feed:         changes,
		IPv4Prefix:   cfg.IPv4Prefix,
		IPv6Prefix:   cfg.IPv6Prefix,
		// A network holds whole clients: never narrower than the grouping
		// of --rate-ipv4-prefix and --rate-ipv6-prefix.
		NetIPv4Prefix: min(cfg.WatchNetV4, cfg.IPv4Prefix),
		NetIPv6Prefix: min(cfg.WatchNetV6, cfg.IPv6Prefix),
	}, nil)
	src := metrics.Sources{
		Keys:            func() float64 { return float64(store.Len()) },
		StoredBytes:     func() float64 { return float64(store.Bytes()) },
		Watchers:        func() float64 { return float64(changes.Active()) },
		DroppedWatchers: func() float64 { return float64(changes.Dropped()) },
	}
	if saver != nil {
		src.JournalBytes = func() float64 { return float64(journal.Size()) }
		src.LastSnapshot = saver.Last
	}
	met := metrics.New(src)
	var metricsOnMain http.Handler
	if cfg.MetricsAddr == "" {
		metricsOnMain = met.Handler()
	}
	api := handlers.New(svc, handlers.Config{
		ClientIP: handlers.ClientIP{Trusted: cfg.TrustedProxy},
		Landing: static.Vars{
			MaxKey: cfg.MaxKeySize, MaxValue: cfg.MaxValueSize, MaxKeys: cfg.MaxKeys,
			MaxTTL: shortDuration(cfg.MaxTTL), Rate: cfg.rateText(),
			CostRead: cfg.CostRead, CostWrite: cfg.CostWrite,
		},
		Log:            log,
		CORSOrigin:     cfg.CORSOrigin,
		IPWriteOrigins: cfg.IPWriteOrigin,
		Metrics:        met,
		MetricsHandler: metricsOnMain,
		Ready:          readyFunc(journal),
	})

	ln, err := listener.Listen(cfg.Addr)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.Addr, "err", err)
		return 1
	}
	if cfg.PprofAddr != "" {
		pln, err := net.Listen("tcp", cfg.PprofAddr)
		if err != nil {
			log.Error("cannot listen", "addr", cfg.PprofAddr, "err", err)
			return 1
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.Handle("/debug/vars", expvar.Handler())
		psrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go psrv.Serve(pln)
		defer psrv.Close()
		log.Info("pprof listening", "addr", pln.Addr().String())
	}
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			log.Error("cannot listen", "addr", cfg.MetricsAddr, "err", err)
			return 1
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", met.Handler())
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
		go msrv.Serve(mln)
		defer msrv.Close()
		log.Info("metrics listening", "addr", mln.Addr().String())
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ConnContext:       listener.ConnContext, // for handlers to see a head framed two ways
		Protocols:         new(http.Protocols),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	// HTTP/2 without TLS (prior knowledge) shares the port with HTTP/1.1:
	// Deno's KV client speaks only HTTP/2.
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	// Watch streams end when shutdown starts instead of holding the drain.
	srv.RegisterOnShutdown(changes.Close)

	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	go func() {
		// Expired entries loaded from disk are invisible already; this
		// frees their memory without delaying the start.
		if n := store.Reap(time.Now(), math.MaxInt); n > 0 {
			log.Info("expired entries dropped after load", "count", n)
		}
		store.RunReaper(bg, time.Second, 100000)
	}()
	if limits != nil {
		go limits.Run(bg, 30*time.Second)
	}
	if !gcpace.Overridden() { // GOGC from the environment wins
		go gcpace.Run(bg, gcpace.DefaultFloor, time.Second)
	}
	if saver != nil {
		go saver.Run(bg, cfg.SaveInterval)
		go journal.Run(bg)
	}

	log.Info("listening", "addr", ln.Addr().String(), "data", cfg.Data, "fsync", cfg.Fsync.String(), "keys", store.Len(),
		"max_keys", cfg.MaxKeys, "max_ttl", cfg.MaxTTL, "rate", cfg.rateText())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	code := 0
	select {
	case <-ctx.Done():
		log.Info("stopping: draining requests", "timeout", drainTimeout)
	case err := <-served:
		log.Error("server failed", "err", err)
		code = 1
	}
	drainCtx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := srv.Shutdown(drainCtx); err != nil {
		log.Warn("drain timed out; closing remaining connections", "err", err)
		srv.Close()
	}
	stopBG()
	if saver != nil {
		if err := saver.Save(); err != nil {
			code = 1
		}
		if err := journal.Close(); err != nil {
			log.Error("closing journal", "err", err)
			code = 1
		}
	}
	log.Info("stopped", "keys", store.Len())
	return code
}

// commitFunc returns the journal's Commit, or nil when running in memory.
func commitFunc(j *persist.Journal) func() error {
	if j == nil {
		return nil
	}
	return j.Commit
}

// readyFunc reports the journal's write error, if any: until the next
// snapshot clears it (or, after a start on a full disk, until the journal
// finds room), writes are refused and a load balancer should know.
func readyFunc(j *persist.Journal) func() error {
	if j == nil {
		return nil
	}
	return j.Err
}

// rateText describes the rate limit for logs and the landing page.
func (c *config) rateText() string {
	if c.Rate.Off {
		return "off"
	}
	return fmt.Sprintf("%d tokens per %s, burst %d", c.Rate.Tokens, shortDuration(c.Rate.Window), c.burst())
}
