package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/fakeclock"
	"github.com/rendezvous-kv/rendezvous/persist"
	"github.com/rendezvous-kv/rendezvous/server"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

func TestRestartKeepsKeys(t *testing.T) {
	cfg := testConfig()
	cfg.Data = filepath.Join(t.TempDir(), "rendezvous.db")
	s := start(t, cfg)

	resp, body := do(t, "POST", s.base+"/set/mesh42/node-a?ttl=10m", "10.0.0.7:9000")
	require.Equal(t, 200, resp.StatusCode, body)
	assert.Equal(t, "OK", body)
	expires := resp.Header.Get("X-Expires-At")
	require.NotEmpty(t, expires)

	resp, body = do(t, "POST", s.base+"/set/owned", "v1", "X-Owner-Secret", "s3cret")
	require.Equal(t, 200, resp.StatusCode, body)

	resp, body = do(t, "POST", s.base+"/set/ip/ssh", "addr")
	require.Equal(t, 200, resp.StatusCode, body)
	assert.Equal(t, "127.0.0.1", body)

	require.NoError(t, s.stop(t), s.log.String())
	info, err := os.Stat(cfg.Data)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	s2 := start(t, cfg)
	resp, body = do(t, "GET", s2.base+"/get/mesh42/node-a", "")
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "10.0.0.7:9000", body)
	assert.Equal(t, expires, resp.Header.Get("X-Expires-At"), "expiry survives the restart")

	resp, body = do(t, "GET", s2.base+"/get/ip/127.0.0.1/ssh", "")
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "addr", body)

	// The owner survives the restart: a write without the secret is refused.
	resp, _ = do(t, "POST", s2.base+"/set/owned", "stolen")
	assert.Equal(t, 403, resp.StatusCode)
	resp, _ = do(t, "POST", s2.base+"/set/owned", "v2", "X-Owner-Secret", "s3cret")
	assert.Equal(t, 200, resp.StatusCode)
	_, body = do(t, "GET", s2.base+"/get/owned", "")
	assert.Equal(t, "v2", body)
	require.NoError(t, s2.stop(t))
	assert.Contains(t, s2.log.String(), "snapshot written")
}

// Writes acknowledged while Shutdown drains are in the final snapshot: it
// is written after the front end stopped taking requests, and the journal
// it replaces is gone.
func TestShutdownSnapshotHoldsEveryAcknowledgedWrite(t *testing.T) {
	cfg := testConfig()
	cfg.Data = filepath.Join(t.TempDir(), "rendezvous.db")
	cfg.SaveInterval = time.Hour // only the final snapshot
	s := start(t, cfg)

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var mu sync.Mutex
	acked := map[string]string{}
	var wg sync.WaitGroup
	started := make(chan struct{}, 4)
	for w := range 4 {
		wg.Go(func() {
			for i := range 3000 {
				key, value := fmt.Sprintf("w%d/k%d", w, i%100), fmt.Sprintf("v%d", i)
				resp, err := c.Post(s.base+"/set/"+key, "text/plain", strings.NewReader(value))
				if err != nil {
					return // the server stopped listening
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					return // answered while shutting down
				}
				mu.Lock()
				acked[key] = value
				mu.Unlock()
				if i == 10 {
					started <- struct{}{}
				}
			}
		})
	}
	for range 4 {
		<-started
	}
	require.NoError(t, s.stop(t), s.log.String())
	wg.Wait()
	t.Logf("%d keys acknowledged", len(acked))

	gens, err := filepath.Glob(cfg.Data + ".journal.*")
	require.NoError(t, err)
	for _, g := range gens {
		info, err := os.Stat(g)
		require.NoError(t, err)
		assert.LessOrEqual(t, info.Size(), int64(len(persist.JournalMagic)), "%s holds no record: the snapshot has them all", g)
	}
	saved := map[string]string{}
	_, err = persist.ReadFile(cfg.Data, func(it ttlstore.Item) error {
		saved[it.Key] = string(it.Value)
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, acked)
	for key, want := range acked {
		assert.Equal(t, want, saved[key], "acknowledged write of %s is in the snapshot", key)
	}
}

// After Shutdown nothing of the server keeps running: not the front ends
// and their connections, not a watch stream, not the background work.
func TestShutdownStopsEveryGoroutine(t *testing.T) {
	tr := &http.Transport{}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	baseline := runtime.NumGoroutine()

	cfg := testConfig()
	cfg.Data = filepath.Join(t.TempDir(), "rendezvous.db")
	cfg.RateOff = false
	cfg.RateTokens = 1000
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.PprofAddr = "127.0.0.1:0"
	cfg.PaceGC = true
	cfg.Fsync = persist.SyncEverySec
	srv, err := server.New(cfg)
	require.NoError(t, err)
	base := "http://" + srv.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()

	resp, err := c.Post(base+"/set/k", "text/plain", strings.NewReader("v"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	for _, u := range []string{"http://" + srv.MetricsAddr().String() + "/metrics", "http://" + srv.PprofAddr().String() + "/debug/vars"} {
		resp, err := c.Get(u)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, u)
	}
	watch, err := c.Get(base + "/watch/")
	require.NoError(t, err)
	require.Equal(t, 200, watch.StatusCode)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	began := time.Now()
	require.NoError(t, srv.Shutdown(ctx))
	require.NoError(t, <-served)
	assert.Less(t, time.Since(began), 5*time.Second, "an open watch stream does not hold the drain")
	// The stream was ended by the server, not by this client.
	sc := bufio.NewScanner(watch.Body)
	for sc.Scan() {
	}
	watch.Body.Close()
	tr.CloseIdleConnections()

	assertGoroutinesBack(t, baseline)

	// Shutdown and Close are idempotent and keep their answer.
	assert.NoError(t, srv.Shutdown(ctx))
	assert.NoError(t, srv.Close())
	assert.ErrorIs(t, srv.Serve(context.Background()), server.ErrClosed)
}

// assertGoroutinesBack waits up to 5 s for the goroutine count to fall back
// to baseline (goroutines that were told to stop may take a moment to
// return), and shows every goroutine left when it does not.
func assertGoroutinesBack(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines left, %d before:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
	}
}

// Serve stops the server itself when its context ends, as the command
// does on SIGTERM.
func TestServeStopsWhenContextEnds(t *testing.T) {
	cfg := testConfig()
	cfg.Data = filepath.Join(t.TempDir(), "rendezvous.db")
	srv, err := server.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	base := "http://" + srv.Addr().String()
	resp, body := do(t, "POST", base+"/set/k", "v")
	require.Equal(t, 200, resp.StatusCode, body)
	cancel()
	select {
	case err := <-served:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	_, err = net.DialTimeout("tcp", srv.Addr().String(), time.Second)
	assert.Error(t, err, "the listener is closed")
	again := start(t, cfg)
	_, body = do(t, "GET", again.base+"/get/k", "")
	assert.Equal(t, "v", body, "the data file was saved and released")
}

// A server that never served still stops in order: its data saved, its
// listener closed, its data file released.
func TestCloseWithoutServe(t *testing.T) {
	cfg := testConfig()
	cfg.Data = filepath.Join(t.TempDir(), "rendezvous.db")
	srv, err := server.New(cfg)
	require.NoError(t, err)
	addr := srv.Addr().String()
	require.NoError(t, srv.Close())
	require.NoError(t, srv.Close(), "a second Close")
	assert.ErrorIs(t, srv.Serve(context.Background()), server.ErrClosed)
	_, err = net.DialTimeout("tcp", addr, time.Second)
	assert.Error(t, err, "the listener is closed")
	_, err = os.Stat(cfg.Data)
	assert.NoError(t, err, "the final snapshot is written")
	again := start(t, cfg)
	resp, _ := do(t, "GET", again.base+"/healthz", "")
	assert.Equal(t, 200, resp.StatusCode)
	assert.EqualError(t, again.Serve(context.Background()), "server: Serve called twice")
}

func TestSecondServerOnOneDataFileIsRefused(t *testing.T) {
	cfg := testConfig()
	cfg.Data = filepath.Join(t.TempDir(), "rendezvous.db")
	first := start(t, cfg)
	resp, body := do(t, "POST", first.base+"/set/kept", "v1")
	require.Equal(t, 200, resp.StatusCode, body)

	second, err := server.New(cfg)
	require.Error(t, err, "a second server on the same data file must not start")
	assert.Nil(t, second)
	var held *persist.LockedError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, cfg.Data+persist.LockSuffix, held.LockFile)
	assert.Equal(t, os.Getpid(), held.PID)

	// The first server was not disturbed: its writes go on and survive.
	resp, body = do(t, "POST", first.base+"/set/after", "v2")
	require.Equal(t, 200, resp.StatusCode, body)
	require.NoError(t, first.stop(t))
	again := start(t, cfg)
	for key, want := range map[string]string{"kept": "v1", "after": "v2"} {
		resp, body = do(t, "GET", again.base+"/get/"+key, "")
		assert.Equal(t, 200, resp.StatusCode, key)
		assert.Equal(t, want, body, key)
	}
}

// openFiles counts this process's file descriptors.
func openFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd to count open files")
	}
	return len(fds)
}

// A start that fails at its last step (a listener whose address is taken)
// leaves nothing open: not the data file's lock, not the journal, not the
// listeners bound before, not a goroutine.
func TestFailedStartReleasesWhatItOpened(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()

	cfg := testConfig()
	cfg.Data = filepath.Join(t.TempDir(), "rendezvous.db")
	s := start(t, cfg) // leaves a snapshot and a journal to recover
	resp, body := do(t, "POST", s.base+"/set/k", "v")
	require.Equal(t, 200, resp.StatusCode, body)
	require.NoError(t, s.stop(t))
	client.CloseIdleConnections()

	files, goroutines := openFiles(t), runtime.NumGoroutine()
	for _, busy := range []func(*server.Config){
		func(c *server.Config) { c.Addr = taken.Addr().String() },
		func(c *server.Config) { c.MetricsAddr = taken.Addr().String() },
		func(c *server.Config) { c.PprofAddr = taken.Addr().String() },
	} {
		bad := cfg
		busy(&bad)
		srv, err := server.New(bad)
		require.Error(t, err)
		assert.Nil(t, srv)
		assert.Contains(t, err.Error(), taken.Addr().String())
		assert.Equal(t, files, openFiles(t), "every file and listener opened was closed")
		assertGoroutinesBack(t, goroutines)
	}

	again := start(t, cfg)
	_, body = do(t, "GET", again.base+"/get/k", "")
	assert.Equal(t, "v", body, "the data file is free and whole")
}

func TestCorruptSnapshotRefusesToStart(t *testing.T) {
	cfg := testConfig()
	cfg.Data = filepath.Join(t.TempDir(), "rendezvous.db")
	s := start(t, cfg)
	for i := range 20 {
		resp, _ := do(t, "POST", s.base+"/set/k"+strconv.Itoa(i), "value")
		require.Equal(t, 200, resp.StatusCode)
	}
	require.NoError(t, s.stop(t))

	raw, err := os.ReadFile(cfg.Data)
	require.NoError(t, err)
	raw[len(raw)/2] ^= 0xff
	require.NoError(t, os.WriteFile(cfg.Data, raw, 0o600))

	srv, err := server.New(cfg)
	require.Error(t, err, "start-up on a corrupt snapshot must fail")
	assert.Nil(t, srv)
	assert.Contains(t, err.Error(), cfg.Data, "the message names the file")
	assert.ErrorIs(t, err, persist.ErrCorrupt)
	after, err := os.ReadFile(cfg.Data)
	require.NoError(t, err)
	assert.Equal(t, raw, after, "the damaged file is left as it was")

	// The refusal released the data file: a repair can start at once.
	cfg.Repair = true
	repaired := start(t, cfg)
	resp, _ := do(t, "GET", repaired.base+"/healthz", "")
	assert.Equal(t, 200, resp.StatusCode)
}

func TestValidateRefuses(t *testing.T) {
	def := server.DefaultConfig()
	require.NoError(t, def.Validate())
	cases := []struct {
		field string
		edit  func(*server.Config)
	}{
		{"MaxKeySize", func(c *server.Config) { c.MaxKeySize = 0 }},
		{"MaxValueSize", func(c *server.Config) { c.MaxValueSize = -1 }},
		{"MaxKeys", func(c *server.Config) { c.MaxKeys = 0 }},
		{"MaxWatchersPerNet", func(c *server.Config) { c.MaxWatchersPerNet = 0 }},
		{"MaxTTL", func(c *server.Config) { c.MaxTTL = -time.Second }},
		{"MaxWait", func(c *server.Config) { c.MaxWait = 0 }},
		{"MaxBatchOps", func(c *server.Config) { c.MaxBatchOps = 0 }},
		{"SaveInterval", func(c *server.Config) { c.SaveInterval = 0 }},
		{"StreamWriteTimeout", func(c *server.Config) { c.StreamWriteTimeout = -1 }},
		{"RateBurst", func(c *server.Config) { c.RateBurst = -1 }},
		{"RateBurst", func(c *server.Config) { c.RateTokens = 2 }}, // smaller than a write's cost
		{"RateTokens", func(c *server.Config) { c.RateTokens = 0 }},
		{"RateWindow", func(c *server.Config) { c.RateWindow = 0 }},
		{"ClientGrouping.V4", func(c *server.Config) { c.ClientGrouping.V4 = 33 }},
		{"NetworkGrouping.V6", func(c *server.Config) { c.NetworkGrouping.V6 = 0 }},
		{"Fsync", func(c *server.Config) { c.Fsync = 9 }},
		{"TrustedProxies", func(c *server.Config) { c.TrustedProxies = []netip.Prefix{{}} }},
		{"TrustedProxies", func(c *server.Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}
		}},
		{"IPWriteOrigins", func(c *server.Config) { c.IPWriteOrigins = []string{"https://app.example/path"} }},
		{"IPWriteOrigins", func(c *server.Config) { c.IPWriteOrigins = []string{"https://App.Example"} }},
		{"Addr", func(c *server.Config) { c.Addr = "8080" }},
		{"Addr", func(c *server.Config) { c.Addr = "0.0.0.0:8080" }},
		{"MetricsAddr", func(c *server.Config) { c.MetricsAddr = "[::]:9090" }},
		{"PprofAddr", func(c *server.Config) { c.PprofAddr = "0.0.0.0:6060"; c.Insecure = true }},
	}
	for _, tc := range cases {
		cfg := server.DefaultConfig()
		cfg.Data = filepath.Join(t.TempDir(), "rendezvous.db")
		tc.edit(&cfg)
		err := cfg.Validate()
		var ce *server.ConfigError
		require.ErrorAs(t, err, &ce, tc.field)
		assert.Equal(t, tc.field, ce.Field)
		assert.NotContains(t, err.Error(), "\n")
		assert.NotContains(t, err.Error(), "--", "no flag names: those are the command's")
		srv, nerr := server.New(cfg)
		assert.Nil(t, srv)
		assert.Equal(t, err, nerr, "New refuses what Validate refuses")
		_, serr := os.Stat(cfg.Data + persist.LockSuffix)
		assert.ErrorIs(t, serr, os.ErrNotExist, "%s: refused before touching the data", tc.field)
	}

	plain := server.DefaultConfig()
	plain.Addr = "0.0.0.0:8080"
	assert.ErrorIs(t, plain.Validate(), server.ErrPlaintext)
	plain.Insecure = true
	assert.NoError(t, plain.Validate(), "Insecure allows a public plaintext address")
	off := server.DefaultConfig()
	off.RateOff, off.RateTokens, off.RateWindow = true, 0, 0
	assert.NoError(t, off.Validate(), "with rate limiting off its settings do not matter")
}

// Time comes from Config.Now, so a test controls expiry without sleeping.
func TestInjectedClockDrivesExpiry(t *testing.T) {
	clk := fakeclock.New(time.Unix(1_700_000_000, 0))
	cfg := testConfig()
	cfg.Now = clk.Now
	s := start(t, cfg)
	resp, body := do(t, "POST", s.base+"/set/k?ttl=10s", "v")
	require.Equal(t, 200, resp.StatusCode, body)
	assert.Equal(t, "1700000010", resp.Header.Get("X-Expires-At"))
	clk.Advance(9 * time.Second)
	resp, _ = do(t, "GET", s.base+"/get/k", "")
	assert.Equal(t, 200, resp.StatusCode)
	clk.Advance(time.Second)
	resp, _ = do(t, "GET", s.base+"/get/k", "")
	assert.Equal(t, 404, resp.StatusCode, "expired at 10 s on the injected clock")
}

// Two servers in one process keep their own settings: one's short watch
// keep-alive is not the other's.
func TestEmbeddedServersDoNotShareSettings(t *testing.T) {
	short := testConfig()
	short.WatchKeepAlive = 50 * time.Millisecond
	a, b := start(t, short), start(t, testConfig())
	firstLine := func(base string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "GET", base+"/watch/", nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		return line, err
	}
	line, err := firstLine(a.base)
	require.NoError(t, err)
	assert.Equal(t, ": keep-alive\n", line)
	_, err = firstLine(b.base)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "the other server keeps the default: nothing in 500 ms, got %v", err)
}
