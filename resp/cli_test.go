package resp_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/apt"
)

// cli runs redis-cli against the rig with args and stdin, returning its
// output.
func (r *rig) cli(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	bin := apt.Installed(t, "redis-cli", "redis-tools")
	host, port, err := net.SplitHostPort(r.addr)
	require.NoError(t, err)
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(c, bin, append([]string{"-h", host, "-p", port}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "redis-cli %v: %s", args, out)
	return string(out)
}

// TestRedisCLI: Debian's redis-cli, one command at a time, in RESP3, and
// a --pipe mass insert.
func TestRedisCLI(t *testing.T) {
	r := start(t, testConfig())
	assert.Equal(t, "OK\n", r.cli(t, "", "SET", "mesh42/node-a", "10.0.0.7:9000"))
	assert.Equal(t, "10.0.0.7:9000\n", r.cli(t, "", "GET", "mesh42/node-a"))
	assert.Equal(t, "1\n", r.cli(t, "", "INCR", "counter"))
	assert.Equal(t, "PONG\n", r.cli(t, "", "PING"))
	assert.Equal(t, "(integer) 2\n", r.cli(t, "", "--no-raw", "INCR", "counter"))
	assert.Equal(t, "(nil)\n", r.cli(t, "", "--no-raw", "GET", "missing"))
	assert.Contains(t, r.cli(t, "", "-3", "--no-raw", "HELLO", "3"), `"proto"`)
	assert.Equal(t, "(nil)\n", r.cli(t, "", "-3", "--no-raw", "GET", "missing"))
	assert.Contains(t, r.cli(t, "", "FROB"), "ERR unknown command 'FROB'")
	// Commands read from stdin, one per line, on one connection.
	assert.Equal(t, "OK\nv\n", r.cli(t, "SET x v\nGET x\n"))

	var b strings.Builder
	for i := range 1000 {
		key, val := fmt.Sprintf("mass/%04d", i), fmt.Sprint(i)
		fmt.Fprintf(&b, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(key), key, len(val), val)
	}
	out := r.cli(t, b.String(), "--pipe")
	assert.Contains(t, out, "errors: 0, replies: 1000")
	assert.Equal(t, "999\n", r.cli(t, "", "GET", "mass/0999"))
	status, body := r.httpGet(t, "mass/0500")
	assert.Equal(t, 200, status)
	assert.Equal(t, "500", body)
}

// TestRedisBenchmark: redis-benchmark's tests run against the server to
// the end without an error (the figures are bench/'s business).
func TestRedisBenchmark(t *testing.T) {
	bin := apt.Installed(t, "redis-benchmark", "redis-tools")
	r := start(t, testConfig())
	host, port, err := net.SplitHostPort(r.addr)
	require.NoError(t, err)
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(c, bin, "-h", host, "-p", port, "-t", "ping,set,get,incr,mset",
		"-n", "2000", "-c", "10", "-P", "4", "-q").CombinedOutput()
	require.NoError(t, err, "%s", out)
	text := string(out)
	for _, name := range []string{"PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "MSET (10 keys)"} {
		assert.Contains(t, text, name+": ", "%s", text)
	}
	assert.NotContains(t, strings.ToLower(text), "error", "%s", text)
	assert.NotContains(t, text, "WARNING", "%s", text)
}
