// Command rendezvous is a public, no-registration key-value service: store a
// small value under a key with curl, read it back, let it expire.
//
// The server itself is package server; this command turns flags and
// environment variables into its Config, runs it until SIGINT or SIGTERM,
// reloads what can change (TLS certificates) on SIGHUP, and maps the
// outcome to an exit code.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/rendezvous-kv/rendezvous/persist"
	"github.com/rendezvous-kv/rendezvous/server"
)

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
	cfg.Logger = log
	cfg.PaceGC = true
	// Before New: a SIGHUP from a renewal hook while the data loads must
	// not end the process, as it would without a handler.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	srv, err := server.New(cfg)
	var held *persist.LockedError
	var bad *server.ConfigError
	var damaged *persist.RepairError
	switch {
	case errors.As(err, &held):
		log.Error("another rendezvous server is using this data file; stop it or give this one its own --data",
			"file", cfg.Data, "lock_file", held.LockFile, "pid", held.PID)
		return 1
	case errors.As(err, &bad):
		fmt.Fprintln(stderr, "rendezvous:", flagError(err))
		return 2
	case errors.As(err, &damaged):
		log.Error("cannot start", "err", fmt.Sprintf("%v (start with --repair to %s)", err, damaged.Repair))
		return 1
	case err != nil:
		log.Error("cannot start", "err", err)
		return 1
	}
	served, reloads := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(reloads)
		for {
			select {
			case <-served:
				return
			case <-hup:
				// What failed to load was logged, and the previous
				// settings stay.
				if srv.Reload() == nil {
					log.Info("reloaded on SIGHUP")
				}
			}
		}
	}()
	// Serve has logged what went wrong, if anything did.
	err = srv.Serve(ctx)
	close(served)
	<-reloads
	if err != nil {
		return 1
	}
	return 0
}
