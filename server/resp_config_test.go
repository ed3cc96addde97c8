package server_test

import (
	"errors"
	"testing"

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
