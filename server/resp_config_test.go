package server_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/server"
)

// The Redis and line protocols are plaintext like HTTP: off loopback only
// with Insecure, and off unless asked for.
func TestProtocolAddrsSafeDefault(t *testing.T) {
	cfg := testConfig()
	require.NoError(t, cfg.Validate())
	for _, field := range []string{"RespAddr", "LineAddr"} {
		c := testConfig()
		addr := "0.0.0.0:6379"
		if field == "RespAddr" {
			c.RespAddr = addr
		} else {
			c.LineAddr = addr
		}
		var ce *server.ConfigError
		require.True(t, errors.As(c.Validate(), &ce), field)
		assert.Equal(t, field, ce.Field)
		assert.ErrorIs(t, ce, server.ErrPlaintext)
		c.Insecure = true
		assert.NoError(t, c.Validate(), field)
	}
	c := testConfig()
	c.RespAddr = "nonsense"
	assert.Error(t, c.Validate())

	r := start(t, testConfig())
	resp, _ := do(t, "GET", r.base+"/healthz", "") // serving, so the stop finds Serve running
	assert.Equal(t, 200, resp.StatusCode)
	assert.Nil(t, r.RespAddr(), "off by default")
	assert.Nil(t, r.LineAddr())
}

// RespIdleTimeout and LineIdleTimeout close a silent connection of their
// protocol, and not before the bound; CONFIG GET timeout reports it.
func TestProtocolIdleTimeouts(t *testing.T) {
	cfg := testConfig()
	cfg.RespAddr, cfg.LineAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.RespIdleTimeout, cfg.LineIdleTimeout = 300*time.Millisecond, 200*time.Millisecond
	r := start(t, cfg)
	for _, c := range []struct {
		addr  net.Addr
		bound time.Duration
	}{{r.RespAddr(), cfg.RespIdleTimeout}, {r.LineAddr(), cfg.LineIdleTimeout}} {
		nc, err := net.DialTimeout("tcp", c.addr.String(), 5*time.Second)
		require.NoError(t, err)
		defer nc.Close()
		opened := time.Now()
		require.NoError(t, nc.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, err = nc.Read(make([]byte, 1))
		assert.ErrorIs(t, err, io.EOF, "the server closed the silent connection")
		assert.GreaterOrEqual(t, time.Since(opened), c.bound, "not before the bound")
	}

	c := redis.NewClient(&redis.Options{Addr: r.RespAddr().String(), MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfgTimeout, err := c.ConfigGet(ctx, "timeout").Result()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"timeout": "1"}, cfgTimeout, "in whole seconds, as Redis, rounded up (0 would be never)")
}
