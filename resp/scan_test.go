package resp_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestScan: SCAN pages through every key under a pattern with integer
// cursors, KEYS answers at most --max-scan-limit keys, both with Redis's
// glob patterns.
func TestScan(t *testing.T) {
	cfg := testConfig()
	cfg.MaxScanLimit = 100
	r := start(t, cfg)
	c := r.client(t, 3)
	var want []string
	pipe := c.Pipeline()
	for i := range 250 {
		k := fmt.Sprintf("scan/%03d", i)
		want = append(want, k)
		pipe.Set(ctx, k, "v", 0)
	}
	pipe.Set(ctx, "other", "v", 0)
	pipe.Set(ctx, "scanner", "v", 0)
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)

	var got []string
	iter := c.Scan(ctx, 0, "scan/*", 40).Iterator()
	for iter.Next(ctx) {
		got = append(got, iter.Val())
	}
	require.NoError(t, iter.Err())
	assert.Equal(t, want, got, "every key once, in order")

	got = nil
	iter = c.Scan(ctx, 0, "scan/1?5", 30).Iterator()
	for iter.Next(ctx) {
		got = append(got, iter.Val())
	}
	require.NoError(t, iter.Err())
	assert.Equal(t, []string{"scan/105", "scan/115", "scan/125", "scan/135", "scan/145", "scan/155", "scan/165", "scan/175", "scan/185", "scan/195"}, got)

	all, err := c.Keys(ctx, "*").Result()
	require.NoError(t, err)
	assert.Len(t, all, 100, "KEYS is bounded by --max-scan-limit")
	keys, err := c.Keys(ctx, "scan[n]*").Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"scanner"}, keys)
	keys, err = c.Keys(ctx, "other").Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"other"}, keys)
	assert.ErrorContains(t, c.Do(ctx, "SCAN", "12345").Err(), "invalid cursor")
	assert.ErrorContains(t, c.Do(ctx, "SCAN", "0", "COUNT", "0").Err(), "syntax error")
	res, err := c.Do(ctx, "SCAN", "0", "TYPE", "hash").Slice()
	require.NoError(t, err)
	assert.Empty(t, res[1])

	out := r.cli(t, "", "--scan", "--pattern", "scan/*")
	lines := strings.Fields(out)
	sort.Strings(lines)
	assert.Equal(t, want, lines, "redis-cli --scan")
}
