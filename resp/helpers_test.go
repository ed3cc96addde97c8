package resp_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/wiretest"
	"github.com/rendezvous-kv/rendezvous/server"
)

// rig is a server with the Redis protocol on, serving in this process.
type rig struct {
	srv  *server.Server
	addr string // the Redis listener, host:port
	base string // the HTTP API, http://host:port
}

// testConfig is DefaultConfig on free loopback ports, in memory, without
// rate limits, with the Redis protocol on.
func testConfig() server.Config {
	cfg := server.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.RespAddr = "127.0.0.1:0"
	cfg.Data = ""
	cfg.RateOff = true
	return cfg
}

func start(t *testing.T, cfg server.Config) *rig {
	t.Helper()
	srv, err := server.New(cfg)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		<-served
	})
	return &rig{srv: srv, addr: srv.RespAddr().String(), base: "http://" + srv.Addr().String()}
}

// client is a go-redis client of the rig speaking protocol version proto.
func (r *rig) client(t *testing.T, proto int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.addr, Protocol: proto, MaxRetries: -1,
		DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

// raw is a plain TCP connection to the rig, for frames no client sends.
type raw struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func (r *rig) raw(t *testing.T) *raw {
	t.Helper()
	nc, err := net.DialTimeout("tcp", r.addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &raw{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *raw) send(s string) {
	c.t.Helper()
	_, err := io.WriteString(c.nc, s)
	require.NoError(c.t, err)
}

// line reads one line of reply, without its CRLF.
func (c *raw) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	require.NoError(c.t, err, "reading a reply line")
	return strings.TrimSuffix(l, "\r\n")
}

// closed asserts that the server closed the connection.
func (c *raw) closed() {
	c.t.Helper()
	_, err := c.r.ReadByte()
	// A reset, when the server closed with a request it did not read.
	if !errors.Is(err, syscall.ECONNRESET) {
		require.ErrorIs(c.t, err, io.EOF)
	}
}

// httpGet reads a key over the HTTP API: status and body.
func (r *rig) httpGet(t *testing.T, key string) (int, string) {
	resp, body := wiretest.Do(t, http.MethodGet, r.base+"/get/"+key, "")
	return resp.StatusCode, body
}

// httpSet writes a key over the HTTP API, returning the status.
func (r *rig) httpSet(t *testing.T, key, value string, hdr ...string) int {
	resp, _ := wiretest.Do(t, http.MethodPost, r.base+"/set/"+key, value, hdr...)
	return resp.StatusCode
}

var ctx = context.Background()

var netipLoopback = netip.MustParseAddr("127.0.0.1")

func itoa(i int) string { return strconv.Itoa(i) }
