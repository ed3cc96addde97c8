package lineproto_test

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/apt"
	"github.com/rendezvous-kv/rendezvous/internal/wiretest"
	"github.com/rendezvous-kv/rendezvous/server"
)

type rig struct {
	srv  *server.Server
	base string
}

func start(t *testing.T, mutate func(*server.Config)) *rig {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Addr, cfg.LineAddr, cfg.Data, cfg.RateOff = "127.0.0.1:0", "127.0.0.1:0", "", true
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := server.New(cfg)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(c))
		<-served
	})
	return &rig{srv: srv, base: "http://" + srv.Addr().String()}
}

// nc sends session to the line protocol with netcat, closing its side at
// the end of input, and returns what the server answered.
func (r *rig) nc(t *testing.T, session string) string {
	t.Helper()
	bin := apt.Installed(t, "nc", "netcat-openbsd")
	host, port, err := net.SplitHostPort(r.srv.LineAddr().String())
	require.NoError(t, err)
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(c, bin, "-N", host, port)
	cmd.Stdin = strings.NewReader(session)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return string(out)
}

// TestSession: reads, writes and the extensions, as typed into nc.
func TestSession(t *testing.T) {
	r := start(t, nil)
	out := r.nc(t, strings.Join([]string{
		"mesh42/node-a=10.0.0.7:9000",
		"mesh42/node-a",
		"missing",
		"",
		"eq=a=b",
		"eq",
		"~ttl=30s",
		"short=v",
		"~ttl=",
		"~ttl=soon",
		"~del=short",
		"short",
		"~del=short",
		"~secret=x",
		"~password=anything",
		"ip/ssh=addr",
		"bad\x01key=v",
		"last-line-without-newline",
	}, "\n"))
	assert.Equal(t, strings.Join([]string{
		"=10.0.0.7:9000",
		"=10.0.0.7:9000",
		"!Not Gotten",
		"=a=b",
		"=a=b",
		"?TTL 30s",
		"=v",
		"?TTL default",
		`!Bad TTL: bad_request: ttl "soon" is not a duration (like 90s, 30m, 1h30m) or a number of seconds`,
		"=",
		"!Not Gotten",
		"!Not Deleted: key_not_found: key not found",
		"!Locked",
		"?Authorized",
		"=addr",
		"!Not Set: bad_request: key contains a control character",
		"!Not Gotten",
	}, "\n")+"\n", out)

	resp, body := wiretest.Do(t, http.MethodGet, r.base+"/get/mesh42/node-a", "")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "10.0.0.7:9000", body)
	resp, body = wiretest.Do(t, http.MethodGet, r.base+"/get/ip/127.0.0.1/ssh", "")
	assert.Equal(t, 200, resp.StatusCode, "ip/ keys are scoped to the caller")
	assert.Equal(t, "addr", body)
}

// TestDefaultTTLAndOwnedKeys: writes get the default TTL, and a key with
// an owner cannot be changed here, where no secret can be given.
func TestDefaultTTLAndOwnedKeys(t *testing.T) {
	r := start(t, func(c *server.Config) { c.MaxTTL = time.Hour })
	before := time.Now()
	assert.Equal(t, "=v\n", r.nc(t, "k=v\n"))
	resp, _ := wiretest.Do(t, http.MethodGet, r.base+"/get/k", "")
	exp := resp.Header.Get("X-Expires-At")
	require.NotEmpty(t, exp)
	secs, err := strconv.ParseInt(exp, 10, 64)
	require.NoError(t, err)
	assert.InDelta(t, before.Add(time.Hour).Unix(), secs, 2)

	resp, _ = wiretest.Do(t, http.MethodPost, r.base+"/set/owned", "mine", "X-Owner-Secret", "s")
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "=mine\n!Not Set: owned: key is owned: wrong or missing owner secret\n!Not Deleted: owned: key is owned: wrong or missing owner secret\n=mine\n",
		r.nc(t, "owned\nowned=yours\n~del=owned\nowned\n"))
}

// TestLongLines: a line beyond the key and value limits is refused and
// skipped without being held, and the session goes on.
func TestLongLines(t *testing.T) {
	r := start(t, nil)
	out := r.nc(t, "k="+strings.Repeat("v", 200000)+"\nk=short\nk\n"+strings.Repeat("x", 5000)+"\n")
	assert.Equal(t, "!Too Long: a line holds at most 1101 bytes (key, '=', value)\n=short\n=short\n"+
		"!Too Long: a line holds at most 1101 bytes (key, '=', value)\n", out)
	assert.Equal(t, "!Not Set: too_large: value too large: value plus owner secret may be at most 1000 bytes\n",
		r.nc(t, "k="+strings.Repeat("v", 1001)+"\n"))
}

// TestRateLimited: the same budget as every other protocol.
func TestRateLimited(t *testing.T) {
	r := start(t, func(c *server.Config) {
		c.RateOff, c.RateTokens, c.RateWindow = false, 5, time.Hour
	})
	out := r.nc(t, "a=1\na\na\na=2\n")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4)
	assert.Equal(t, []string{"=1", "=1", "=1"}, lines[:3])
	assert.True(t, strings.HasPrefix(lines[3], "!Not Set: rate_limited: "), lines[3])
}
