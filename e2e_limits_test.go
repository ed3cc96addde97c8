package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/apt"
)

// sockets counts the open sockets of process pid.
func sockets(t *testing.T, pid int) int {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	fds, err := os.ReadDir(dir)
	require.NoError(t, err)
	n := 0
	for _, fd := range fds {
		if link, err := os.Readlink(dir + fd.Name()); err == nil && strings.HasPrefix(link, "socket:") {
			n++
		}
	}
	return n
}

// dialHealth opens n connections to addr, each sending GET /healthz, and
// returns them with how many were answered within wait.
func dialHealth(t *testing.T, addr string, n int, wait time.Duration) ([]net.Conn, int) {
	t.Helper()
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		require.NoError(t, err, "client %d: the kernel queues clients beyond the limit", i)
		t.Cleanup(func() { c.Close() })
		_, err = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		conns[i] = c
	}
	answered := 0
	deadline := time.Now().Add(wait)
	for _, c := range conns {
		c.SetReadDeadline(deadline)
		if res, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil && res.StatusCode == http.StatusOK {
			answered++
		}
	}
	return conns, answered
}

// TestEndToEndMaxConns: with --max-conns 8 and 16 clients, the process
// holds a socket for 8 of them and the listener, never for the 16; when
// they leave, it serves again.
func TestEndToEndMaxConns(t *testing.T) {
	const limit = 8
	s := startServer(t, "--data", "", "--rate", "off", "--max-conns", strconv.Itoa(limit))
	addr := strings.TrimPrefix(s.base, "http://")
	conns, answered := dialHealth(t, addr, 2*limit, 2*time.Second)
	assert.Equal(t, limit, answered, "clients answered")
	assert.LessOrEqual(t, sockets(t, s.cmd.Process.Pid), limit+1, "sockets held: the connections and the listener")
	for _, c := range conns {
		c.Close()
	}
	res, _ := do(t, http.MethodGet, s.base+"/healthz", "")
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, 0, s.stop(t))
}

// TestEndToEndMaxConnsFitsTheFileLimit: a --max-conns the open-file limit
// cannot hold is lowered at start, with a warning that says so, and then
// more clients than the limit itself neither exhaust the process's
// descriptors nor stop it serving.
func TestEndToEndMaxConnsFitsTheFileLimit(t *testing.T) {
	prlimit := apt.Installed(t, "prlimit", "util-linux")
	const files = 128
	s := startServerUnder(t, []string{prlimit, "--nofile=" + strconv.Itoa(files) + ":" + strconv.Itoa(files)},
		"--data", "", "--rate", "off", "--max-conns", "1000")
	assert.Contains(t, s.log.String(), "max_conns=1000 lowered_to=64 open_file_limit=128")
	addr := strings.TrimPrefix(s.base, "http://")
	conns, answered := dialHealth(t, addr, files+50, 3*time.Second)
	assert.Equal(t, 64, answered)
	assert.LessOrEqual(t, sockets(t, s.cmd.Process.Pid), 65)
	for _, c := range conns {
		c.Close()
	}
	res, _ := do(t, http.MethodGet, s.base+"/healthz", "")
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.NotContains(t, s.log.String(), "too many open files")
	assert.Equal(t, 0, s.stop(t))
}

// The Redis and line protocol listeners may each hold --max-conns
// connections too, so they share the open-file limit with the API's.
func TestEndToEndMaxConnsCountsEveryListener(t *testing.T) {
	prlimit := apt.Installed(t, "prlimit", "util-linux")
	s := startServerUnder(t, []string{prlimit, "--nofile=256:256"},
		"--data", "", "--rate", "off", "--max-conns", "1000", "--resp-addr", "127.0.0.1:0", "--line-addr", "127.0.0.1:0")
	// (256 - 64 kept for the rest) / 3 listeners.
	assert.Contains(t, s.log.String(), "max_conns=1000 lowered_to=64 open_file_limit=256 listeners=3")
	assert.Equal(t, 0, s.stop(t))
}
