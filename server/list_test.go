package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A listing page holds 100 keys unless the request names a limit, and at
// most MaxScanLimit.
func TestListPageSizes(t *testing.T) {
	cfg := testConfig()
	cfg.MaxScanLimit, cfg.MaxBatchOps = 120, 150
	s := start(t, cfg)
	ops := make([]string, 150)
	for i := range ops {
		ops[i] = fmt.Sprintf(`{"op": "set", "key": "k/%03d", "value": "v"}`, i)
	}
	status, a := s.txnJSON(t, `{"ops": [`+strings.Join(ops, ",")+`]}`)
	require.Equal(t, 200, status, a.Error)

	resp, body := do(t, "GET", s.base+"/list/k/", "")
	require.Equal(t, 200, resp.StatusCode, body)
	assert.Equal(t, 100, strings.Count(body, "\n"), "the default page")
	assert.Equal(t, "k/099", resp.Header.Get("X-Next-After"))
	resp, body = do(t, "GET", s.base+"/list/k/?limit=500", "")
	require.Equal(t, 200, resp.StatusCode, body)
	assert.Equal(t, 120, strings.Count(body, "\n"), "capped by MaxScanLimit")
	assert.Equal(t, "k/119", resp.Header.Get("X-Next-After"))
	resp, body = do(t, "GET", s.base+"/list/k/?limit=7&after=k/140", "")
	require.Equal(t, 200, resp.StatusCode, body)
	assert.Equal(t, "k/141\nk/142\nk/143\nk/144\nk/145\nk/146\nk/147\n", body)
	for _, bad := range []string{"0", "-3", "x"} {
		resp, body = do(t, "GET", s.base+"/list/k/?limit="+bad, "")
		assert.Equal(t, 400, resp.StatusCode, bad)
		assert.Equal(t, "limit must be a positive integer\n", body, bad)
	}
}

// A page costs one read per started 100 keys of its size: the size after
// MaxScanLimit's cap, not the number asked for.
func TestListPageCost(t *testing.T) {
	cfg := testConfig()
	cfg.RateOff, cfg.RateTokens, cfg.RateWindow = false, 3, time.Hour
	cfg.CostRead, cfg.CostWrite = 1, 1
	cfg.MaxScanLimit = 120
	for _, tc := range []struct {
		limit   string
		allowed int // pages of the 3-token bucket
	}{
		{"", 3}, {"?limit=100", 3}, {"?limit=101", 1}, {"?limit=200", 1}, {"?limit=100000", 1},
	} {
		s := start(t, cfg)
		allowed := 0
		for range 5 {
			resp, body := do(t, "GET", s.base+"/list/"+tc.limit, "")
			if resp.StatusCode == 429 {
				break
			}
			require.Equal(t, 200, resp.StatusCode, body)
			allowed++
		}
		assert.Equal(t, tc.allowed, allowed, "pages of %q from 3 tokens", tc.limit)
		require.NoError(t, s.stop(t))
	}
}
