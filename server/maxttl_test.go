package server_test

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/fakeclock"
)

// --max-ttl 0: keys written without a TTL never expire, across a restart
// too, and a TTL given is kept whatever its length.
func TestMaxTTLZeroMeansNoExpiry(t *testing.T) {
	clk := fakeclock.New(time.Unix(1_700_000_000, 0))
	cfg := testConfig()
	cfg.MaxTTL = 0
	cfg.Now = clk.Now
	cfg.Data = filepath.Join(t.TempDir(), "db")
	s := start(t, cfg)

	resp, _ := do(t, http.MethodPost, s.base+"/set/forever", "v")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("X-Expires-At"), "no expiry")
	resp, _ = do(t, http.MethodPost, s.base+"/set/brief?ttl=10s", "v")
	assert.Equal(t, "1700000010", resp.Header.Get("X-Expires-At"))
	resp, _ = do(t, http.MethodPost, s.base+"/set/long?ttl=100000h", "v")
	assert.Equal(t, "2060000000", resp.Header.Get("X-Expires-At"), "not capped")
	resp, body := do(t, http.MethodGet, s.base+"/", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotContains(t, body, "{{", "the landing page renders")

	clk.Advance(20 * time.Second)
	resp, _ = do(t, http.MethodGet, s.base+"/get/brief", "")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "a given TTL still expires")
	require.NoError(t, s.stop(t))

	clk.Advance(1000 * 24 * time.Hour)
	s = start(t, cfg)
	resp, body = do(t, http.MethodGet, s.base+"/get/forever", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "after a restart and 1000 days")
	assert.Equal(t, "v", body)
}
