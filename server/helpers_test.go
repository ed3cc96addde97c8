package server_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/wiretest"
	"github.com/rendezvous-kv/rendezvous/server"
)

// logBuffer collects a server's log; tests read it while the server
// still writes.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// running is a server serving in this process.
type running struct {
	*server.Server
	base   string
	log    *logBuffer
	served chan error // Serve's result
}

// testConfig is DefaultConfig on a free loopback port, in memory, without
// rate limits, unless a test says otherwise.
func testConfig() server.Config {
	cfg := server.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = ""
	cfg.RateOff = true
	return cfg
}

// start runs a server with cfg until the test ends.
func start(t *testing.T, cfg server.Config) *running {
	t.Helper()
	lb := &logBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(lb, nil))
	}
	srv, err := server.New(cfg)
	require.NoError(t, err)
	r := &running{Server: srv, base: "http://" + srv.Addr().String(), log: lb, served: make(chan error, 1)}
	go func() { r.served <- srv.Serve(context.Background()) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop shuts the server down and returns what Serve returned.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := r.Shutdown(ctx)
	select {
	case serr := <-r.served:
		// A test that stops at once may shut down before the goroutine
		// of start has called Serve, which then refuses to start.
		if !errors.Is(serr, server.ErrClosed) {
			require.Equal(t, err, serr, "Serve returns what Shutdown returned")
		}
		r.served <- serr // for a second stop
	case <-time.After(20 * time.Second):
		t.Fatalf("Serve did not return after Shutdown:\n%s", r.log)
	}
	return err
}

// client and do talk to the server under test (see wiretest).
var (
	client = wiretest.Client
	do     = wiretest.Do
)
