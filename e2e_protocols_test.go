package main

import (
	"context"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/apt"
)

// The binary with --resp-addr and --line-addr: redis-cli and nc reach the
// keys curl writes, and the server still stops cleanly.
func TestProtocolFlags(t *testing.T) {
	cli := apt.Installed(t, "redis-cli", "redis-tools")
	nc := apt.Installed(t, "nc", "netcat-openbsd")
	s := startServer(t, "--data", "", "--rate", "off", "--resp-addr", "127.0.0.1:0", "--line-addr", "127.0.0.1:0")
	addrOf := func(name string) (string, string) {
		m := regexp.MustCompile(`msg="` + name + ` listening" addr=(\S+)`).FindStringSubmatch(s.log.String())
		require.NotNil(t, m, "a %s listening line in\n%s", name, s.log)
		host, port, err := net.SplitHostPort(m[1])
		require.NoError(t, err)
		return host, port
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host, port := addrOf("resp")
	out, err := exec.CommandContext(ctx, cli, "-h", host, "-p", port, "SET", "mesh42/node-a", "10.0.0.7:9000").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "OK\n", string(out))

	host, port = addrOf("line")
	cmd := exec.CommandContext(ctx, nc, "-N", host, port)
	cmd.Stdin = strings.NewReader("mesh42/node-a\nmesh42/node-b=from nc\n")
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "=10.0.0.7:9000\n=from nc\n", string(out))

	resp, body := do(t, "GET", s.base+"/get/mesh42/node-b", "")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "from nc", body)
	assert.Equal(t, 0, s.stop(t))
}
