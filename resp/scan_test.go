package resp_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/fakeclock"
)

// TestScan: SCAN pages through every key under a pattern with integer
// cursors, KEYS answers at most --max-scan-limit keys, both with Redis's
// glob patterns.
func TestScan(t *testing.T) {
	cfg := testConfig()
	cfg.MaxScanLimit = 100
	r := start(t, cfg)
	c := r.client(t, 3)
	var want []string
	pipe := c.Pipeline()
	for i := range 250 {
		k := fmt.Sprintf("scan/%03d", i)
		want = append(want, k)
		pipe.Set(ctx, k, "v", 0)
	}
	pipe.Set(ctx, "other", "v", 0)
	pipe.Set(ctx, "scanner", "v", 0)
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)

	var got []string
	iter := c.Scan(ctx, 0, "scan/*", 40).Iterator()
	for iter.Next(ctx) {
		got = append(got, iter.Val())
	}
	require.NoError(t, iter.Err())
	assert.Equal(t, want, got, "every key once, in order")

	got = nil
	iter = c.Scan(ctx, 0, "scan/1?5", 30).Iterator()
	for iter.Next(ctx) {
		got = append(got, iter.Val())
	}
	require.NoError(t, iter.Err())
	assert.Equal(t, []string{"scan/105", "scan/115", "scan/125", "scan/135", "scan/145", "scan/155", "scan/165", "scan/175", "scan/185", "scan/195"}, got)

	all, err := c.Keys(ctx, "*").Result()
	require.NoError(t, err)
	assert.Len(t, all, 100, "KEYS is bounded by --max-scan-limit")
	keys, err := c.Keys(ctx, "scan[n]*").Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"scanner"}, keys)
	keys, err = c.Keys(ctx, "other").Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"other"}, keys)
	assert.ErrorContains(t, c.Do(ctx, "SCAN", "12345").Err(), "invalid cursor")
	assert.ErrorContains(t, c.Do(ctx, "SCAN", "0", "COUNT", "0").Err(), "syntax error")
	res, err := c.Do(ctx, "SCAN", "0", "TYPE", "hash").Slice()
	require.NoError(t, err)
	assert.Empty(t, res[1])

	out := r.cli(t, "", "--scan", "--pattern", "scan/*")
	lines := strings.Fields(out)
	sort.Strings(lines)
	assert.Equal(t, want, lines, "redis-cli --scan")
}

// scanConn is a connection of a client's pool that records how many SCANs
// continuing a cursor it carried.
type scanConn struct {
	net.Conn
	continued *atomic.Int64
}

func (c scanConn) Write(p []byte) (int, error) {
	// go-redis writes one command per call here: *2\r\n$4\r\nscan\r\n$N\r\ncursor...
	if i := bytes.Index(bytes.ToLower(p), []byte("\r\nscan\r\n$")); i >= 0 && !bytes.HasPrefix(p[i+9:], []byte("1\r\n0\r\n")) {
		c.continued.Add(1)
	}
	return c.Conn.Write(p)
}

// TestScanAcrossConnections: a SCAN cursor is the server's, not a
// connection's, so a client library whose pool sends the next page on
// another connection (go-redis's ScanIterator under load) pages through
// every key once; a cursor from one client continues on another; an
// unknown one is refused with a clear error.
func TestScanAcrossConnections(t *testing.T) {
	r := start(t, testConfig())
	var want []string
	pipe := r.client(t, 2).Pipeline()
	for i := range 200 {
		k := fmt.Sprintf("pool/%03d", i)
		want = append(want, k)
		pipe.Set(ctx, k, "v", 0)
	}
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)

	// Two clients, one connection each: the cursor one got, the other uses.
	a, b := r.client(t, 2), r.client(t, 3)
	keys, cur, err := a.Scan(ctx, 0, "pool/*", 50).Result()
	require.NoError(t, err)
	require.NotZero(t, cur)
	got := keys
	for cur != 0 {
		keys, cur, err = b.Scan(ctx, cur, "pool/*", 50).Result()
		require.NoError(t, err)
		got = append(got, keys...)
		a, b = b, a
	}
	assert.Equal(t, want, got)

	// A pool of connections under concurrent load: the iterator's pages
	// go out on whichever connection is free (three loaders and the
	// iterator share two).
	var conns []*atomic.Int64
	var mu sync.Mutex
	pool := redis.NewClient(&redis.Options{Addr: r.addr, PoolSize: 2, MaxRetries: -1, DialTimeout: 5 * time.Second,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			n := new(atomic.Int64)
			mu.Lock()
			conns = append(conns, n)
			mu.Unlock()
			return scanConn{Conn: nc, continued: n}, nil
		}})
	defer pool.Close()
	done := make(chan struct{})
	var load, started sync.WaitGroup
	for range 3 {
		started.Add(1)
		load.Go(func() {
			for i := range 20000 {
				if i == 1 {
					started.Done()
				}
				select {
				case <-done:
					return
				default:
				}
				pool.Get(ctx, "pool/000")
			}
		})
	}
	started.Wait()
	carried := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, c := range conns {
			if c.Load() > 0 {
				n++
			}
		}
		return n
	}
	// Which connection is free is up to the scheduler: a few scans, until
	// two connections carried continuing pages.
	for range 20 {
		got = nil
		iter := pool.Scan(ctx, 0, "pool/*", 4).Iterator()
		for iter.Next(ctx) {
			got = append(got, iter.Val())
		}
		require.NoError(t, iter.Err())
		require.Equal(t, want, got, "every key once, in order")
		if carried() >= 2 {
			break
		}
	}
	close(done)
	load.Wait()
	assert.GreaterOrEqual(t, carried(), 2, "the continuing SCANs went out on more than one connection")

	err = a.Do(ctx, "SCAN", "4611686018427387904").Err()
	require.Error(t, err)
	assert.Equal(t, "ERR invalid cursor: unknown or expired (a cursor is valid for 10m0s after the reply that gave it); start again with SCAN 0", err.Error())
}

// TestScanCursorExpires: a cursor is kept 10 minutes after the reply that
// gave it, and may be sent again meanwhile (a retried page).
func TestScanCursorExpires(t *testing.T) {
	clk := fakeclock.New(time.Unix(1_700_000_000, 0))
	cfg := testConfig()
	cfg.MaxTTL = 0
	cfg.Now = clk.Now
	r := start(t, cfg)
	c := r.client(t, 2)
	for i := range 3 {
		require.NoError(t, c.Set(ctx, fmt.Sprintf("exp/%d", i), "v", 0).Err())
	}
	_, cur, err := c.Scan(ctx, 0, "exp/*", 1).Result()
	require.NoError(t, err)
	clk.Advance(9 * time.Minute)
	for range 2 {
		keys, _, err := c.Scan(ctx, cur, "exp/*", 1).Result()
		require.NoError(t, err)
		assert.Equal(t, []string{"exp/1"}, keys)
	}
	clk.Advance(2 * time.Minute)
	assert.ErrorContains(t, c.Scan(ctx, cur, "exp/*", 1).Err(), "ERR invalid cursor: unknown or expired")
}
