package resp_test

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/apt"
	"github.com/rendezvous-kv/rendezvous/internal/denoclient"
)

// receive reads the next message of ps, bounded in time.
func receive(t *testing.T, ps *redis.PubSub) *redis.Message {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := ps.ReceiveMessage(c)
	require.NoError(t, err)
	return m
}

// TestKeyspaceNotifications: SUBSCRIBE and PSUBSCRIBE see the writes of
// every protocol, as Redis's keyspace and keyevent notifications, in
// RESP2 and RESP3.
func TestKeyspaceNotifications(t *testing.T) {
	r := start(t, testConfig())
	for _, proto := range []int{2, 3} {
		c := r.client(t, proto)
		ps := c.PSubscribe(ctx, "__keyspace@0__:mesh42/*")
		t.Cleanup(func() { ps.Close() })
		_, err := ps.Receive(ctx) // the subscription's confirmation
		require.NoError(t, err)
		require.NoError(t, ps.Subscribe(ctx, "__keyevent@0__:del"))

		require.Equal(t, 200, r.httpSet(t, "mesh42/node-a", "10.0.0.7"))
		m := receive(t, ps)
		assert.Equal(t, "__keyspace@0__:mesh42/node-a", m.Channel)
		assert.Equal(t, "__keyspace@0__:mesh42/*", m.Pattern)
		assert.Equal(t, "set", m.Payload)

		w := r.client(t, 2)
		require.NoError(t, w.Set(ctx, "elsewhere", "v", 0).Err())
		require.NoError(t, w.Del(ctx, "mesh42/node-a").Err())
		m = receive(t, ps)
		assert.Equal(t, "__keyspace@0__:mesh42/node-a", m.Channel, "RESP%d: writes elsewhere match no pattern", proto)
		assert.Equal(t, "del", m.Payload)
		m = receive(t, ps)
		assert.Equal(t, "__keyevent@0__:del", m.Channel)
		assert.Equal(t, "mesh42/node-a", m.Payload)
		require.NoError(t, ps.Close())
	}
}

// TestSubscribedMode: in RESP2 a subscribed connection takes only the
// pub/sub commands and PING; unsubscribing from everything ends it; the
// watch counts against the per-client cap of watchers.
func TestSubscribedMode(t *testing.T) {
	cfg := testConfig()
	cfg.MaxWatchersPerIP = 2
	r := start(t, cfg)
	c := r.raw(t)
	c.send("SUBSCRIBE a b\r\n")
	for _, want := range []string{"*3", "$9", "subscribe", "$1", "a", ":1", "*3", "$9", "subscribe", "$1", "b", ":2"} {
		assert.Equal(t, want, c.line())
	}
	c.send("GET x\r\nPING\r\n")
	assert.Contains(t, c.line(), "-ERR Can't execute 'get'")
	for _, want := range []string{"*2", "$4", "pong", "$0", ""} {
		assert.Equal(t, want, c.line())
	}
	c.send("UNSUBSCRIBE\r\nGET x\r\n")
	for _, want := range []string{"*3", "$11", "unsubscribe", "$1", "a", ":1", "*3", "$11", "unsubscribe", "$1", "b", ":0", "$-1"} {
		assert.Equal(t, want, c.line())
	}
	c.send("PUNSUBSCRIBE\r\n")
	for _, want := range []string{"*3", "$12", "punsubscribe", "$-1", ":0"} {
		assert.Equal(t, want, c.line())
	}

	// Two watches are the cap: two subscribed connections hold them.
	w := r.client(t, 3)
	ps := w.Subscribe(ctx, "x")
	t.Cleanup(func() { ps.Close() })
	_, err := ps.Receive(ctx)
	require.NoError(t, err)
	ps2 := r.client(t, 3).Subscribe(ctx, "y")
	t.Cleanup(func() { ps2.Close() })
	_, err = ps2.Receive(ctx)
	require.NoError(t, err)
	third := r.raw(t)
	third.send("SUBSCRIBE z\r\n")
	assert.Contains(t, third.line(), "-ERR too_many_watches: too many open watches")
}

// TestRedisCLISubscribe: redis-cli's SUBSCRIBE prints a write made with
// curl.
func TestRedisCLISubscribe(t *testing.T) {
	bin := apt.Installed(t, "redis-cli", "redis-tools")
	r := start(t, testConfig())
	host, port, err := net.SplitHostPort(r.addr)
	require.NoError(t, err)
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(c, bin, "-h", host, "-p", port, "SUBSCRIBE", "__keyspace@0__:cfg")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	lines := bufio.NewScanner(out)
	next := func() string {
		require.True(t, lines.Scan(), "redis-cli ended")
		return lines.Text()
	}
	for _, want := range []string{"subscribe", "__keyspace@0__:cfg", "1"} {
		assert.Equal(t, want, next())
	}
	curl := apt.Installed(t, "curl", "curl")
	require.NoError(t, exec.CommandContext(c, curl, "-sf", "-d", "v1", r.base+"/set/cfg").Run())
	var got []string
	for range 3 {
		got = append(got, next())
	}
	assert.Equal(t, "message,__keyspace@0__:cfg,set", strings.Join(got, ","))
}

// TestEventNames: Redis's own event names for the writes of INCR,
// EXPIRE and APPEND; "set" for a SET of any protocol.
func TestEventNames(t *testing.T) {
	r := start(t, testConfig())
	c := r.client(t, 3)
	ps := c.PSubscribe(ctx, "__keyspace@0__:ev/*", "__keyevent@0__:incrby")
	t.Cleanup(func() { ps.Close() })
	for range 2 {
		_, err := ps.Receive(ctx)
		require.NoError(t, err)
	}
	w := r.client(t, 2)
	require.NoError(t, w.Incr(ctx, "ev/n").Err())
	m := receive(t, ps)
	assert.Equal(t, "incrby", m.Payload)
	m = receive(t, ps)
	assert.Equal(t, "__keyevent@0__:incrby", m.Channel)
	assert.Equal(t, "ev/n", m.Payload)
	require.NoError(t, w.Expire(ctx, "ev/n", time.Minute).Err())
	assert.Equal(t, "expire", receive(t, ps).Payload)
	require.NoError(t, w.Append(ctx, "ev/n", "0").Err())
	assert.Equal(t, "append", receive(t, ps).Payload)
	require.Equal(t, 200, r.httpSet(t, "ev/n", "10"))
	assert.Equal(t, "set", receive(t, ps).Payload, "the same value over HTTP is a set")
	require.NoError(t, w.Set(ctx, "ev/n", "11", 0).Err())
	assert.Equal(t, "set", receive(t, ps).Payload)
	require.NoError(t, w.Del(ctx, "ev/n").Err())
	assert.Equal(t, "del", receive(t, ps).Payload)
}

// TestEventNamesOfDenoKV: the event name comes with the change itself,
// so a write over KV Connect is named too: Deno's sum is an incrby, its
// set a set, its delete a del.
func TestEventNamesOfDenoKV(t *testing.T) {
	cfg := testConfig()
	cfg.MaxValueSize = 65536
	r := start(t, cfg)
	ps := r.client(t, 3).PSubscribe(ctx, "__keyspace@0__:ev/*")
	t.Cleanup(func() { ps.Close() })
	_, err := ps.Receive(ctx)
	require.NoError(t, err)

	deno, err := denoclient.Install()
	require.NoError(t, err, "installing Deno")
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	script, err := filepath.Abs(filepath.Join("testdata", "events.ts"))
	require.NoError(t, err)
	cmd := exec.CommandContext(c, deno.Deno, "run", "--quiet", "--no-config", "--no-lock", "--unstable-kv", "--allow-net", "--allow-env", script)
	cmd.Env = append(os.Environ(), "DENO_NO_UPDATE_CHECK=1", "DENO_DIR="+filepath.Join(denoclient.Dir(), "deno-dir"),
		"DENO_KV_ACCESS_TOKEN=anything", "BASE="+r.base)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	var got []string
	for range 3 {
		m := receive(t, ps)
		got = append(got, m.Channel+" "+m.Payload)
	}
	assert.Equal(t, []string{"__keyspace@0__:ev/u set", "__keyspace@0__:ev/u incrby", "__keyspace@0__:ev/u del"}, got)
}
