package server_test

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Redis and line protocols authenticate through the server's token
// file, and the grants that come with a token hold on them as on HTTP:
// even for the read-modify-write commands (INCR, MSET, EXEC).
func TestRespAndLineProtocolGrants(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(file, []byte("tok-reader reader r:\ntok-mesh mesh rw:mesh/ r:\n"), 0o600))
	cfg := testConfig()
	cfg.AuthFile = file
	cfg.RespAddr = "127.0.0.1:0"
	cfg.LineAddr = "127.0.0.1:0"
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	anon := redis.NewClient(&redis.Options{Addr: r.RespAddr().String(), Protocol: 2, MaxRetries: -1})
	defer anon.Close()
	err := anon.Get(ctx, "mesh/a").Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "NOAUTH")

	mesh := redis.NewClient(&redis.Options{Addr: r.RespAddr().String(), Password: "tok-mesh", Protocol: 2, MaxRetries: -1})
	defer mesh.Close()
	require.NoError(t, mesh.Set(ctx, "mesh/a", "1", 0).Err())
	require.NoError(t, mesh.Incr(ctx, "mesh/a").Err())
	err = mesh.Set(ctx, "other", "x", 0).Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "NOPERM")
	err = mesh.MSet(ctx, "mesh/b", "1", "other", "2").Err()
	require.Error(t, err, "an MSET touching a key without the grant is refused whole")
	assert.Equal(t, redis.Nil, mesh.Get(ctx, "mesh/b").Err(), "nothing of it was written")

	reader := redis.NewClient(&redis.Options{Addr: r.RespAddr().String(), Password: "tok-reader", Protocol: 3, MaxRetries: -1})
	defer reader.Close()
	v, err := reader.Get(ctx, "mesh/a").Result()
	require.NoError(t, err)
	assert.Equal(t, "2", v)
	for _, err := range []error{reader.Incr(ctx, "mesh/a").Err(), reader.Set(ctx, "mesh/a", "9", 0).Err(), reader.Del(ctx, "mesh/a").Err()} {
		require.Error(t, err)
		assert.Contains(t, err.Error(), "NOPERM")
	}
	_, err = reader.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "mesh/a", "9", 0)
		return nil
	})
	require.Error(t, err, "EXEC of a write without the grant")
	v, _ = mesh.Get(ctx, "mesh/a").Result()
	assert.Equal(t, "2", v, "no command of the reader changed the key")

	// The line protocol: the same token file, the same grants.
	c, err := net.DialTimeout("tcp", r.LineAddr().String(), 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	br := bufio.NewReader(c)
	line := func() string {
		s, err := br.ReadString('\n')
		require.NoError(t, err)
		return strings.TrimRight(s, "\r\n")
	}
	assert.Equal(t, "?Needs Auth", line())
	_, err = c.Write([]byte("~password=tok-reader\nmesh/a\nmesh/a=5\n"))
	require.NoError(t, err)
	assert.Equal(t, "?Authorized", line())
	assert.Equal(t, "=2", line())
	assert.True(t, strings.HasPrefix(line(), "!"), "a write without the grant is refused")
}

// Guessing tokens over Redis AUTH or the line protocol's ~password= is
// throttled as on HTTP: refused tokens are charged to the address, and
// once its budget of refusals is spent even a correct token waits.
func TestRespAndLineRefusedTokensAreThrottled(t *testing.T) {
	cfg := testConfig()
	cfg.RateOff, cfg.RateTokens, cfg.RateWindow = false, 9, time.Hour
	cfg.CostRead, cfg.CostWrite = 1, 3
	cfg.AuthFile = writeFile(t, t.TempDir(), "tokens", "tok-a alice rw:\n")
	cfg.RespAddr = "127.0.0.1:0"
	cfg.LineAddr = "127.0.0.1:0"
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	c := redis.NewClient(&redis.Options{Addr: r.RespAddr().String(), Protocol: 2, MaxRetries: -1, PoolSize: 1})
	defer c.Close()
	conn := c.Conn()
	defer conn.Close()
	auth := func(token string) error { return conn.Do(ctx, "AUTH", token).Err() }
	for i := 0; i < 3; i++ {
		err := auth("guess")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "WRONGPASS")
	}
	err := auth("tok-a")
	require.Error(t, err, "the address spent its refusals: even a right token waits")
	assert.Contains(t, err.Error(), "too many refused tokens")
	assert.NotContains(t, err.Error(), "WRONGPASS")

	// The line protocol shares the address's budget of refusals.
	nc, err := net.DialTimeout("tcp", r.LineAddr().String(), 5*time.Second)
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.SetDeadline(time.Now().Add(10*time.Second)))
	br := bufio.NewReader(nc)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "?Needs Auth\n", line)
	_, err = nc.Write([]byte("~password=tok-a\n"))
	require.NoError(t, err)
	line, err = br.ReadString('\n')
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(line, "!Not Authorized: rate_limited"), line)
}
