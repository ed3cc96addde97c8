package policy_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/limiter"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

func TestPageSize(t *testing.T) {
	for _, tc := range []struct {
		maxScan, limit, want int
	}{
		{0, 0, policy.DefaultPageSize},
		{0, -5, policy.DefaultPageSize},
		{0, 1, 1},
		{0, 5000, policy.DefaultMaxScanLimit},
		{250, 0, policy.DefaultPageSize},
		{250, 300, 250},
		{50, 0, 50},
	} {
		cfg := testConfig
		cfg.MaxScanLimit = tc.maxScan
		svc := policy.New(ttlstore.New(ttlstore.Options{}), nil, cfg, nil)
		assert.Equal(t, tc.want, svc.PageSize(tc.limit), "MaxScanLimit %d, limit %d", tc.maxScan, tc.limit)
	}
}

func TestParsePageSize(t *testing.T) {
	for in, want := range map[string]int{"1": 1, "100": 100, "5000": 5000} {
		n, err := policy.ParsePageSize(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, n, in)
	}
	for _, in := range []string{"", "0", "-1", "x", "1.5", " 7", "99999999999999999999"} {
		_, err := policy.ParsePageSize(in)
		pe := policyErr(t, err, policy.KindBadRequest)
		assert.Equal(t, "limit must be a positive integer", pe.Message, "%q", in)
	}
}

// List holds PageSize keys, and charges a read per started KeysPerRead of
// them: of the page size, not of the number asked for beyond the cap.
func TestListPageSizeAndCost(t *testing.T) {
	store := ttlstore.New(ttlstore.Options{})
	for i := range 1200 {
		_, err := store.Set(fmt.Sprintf("k/%04d", i), ttlstore.Write{Value: []byte("v")})
		require.NoError(t, err)
	}
	svc := policy.New(store, nil, testConfig, nil)
	page, err := svc.List(v4, "k/", "", 0)
	require.NoError(t, err)
	assert.Equal(t, policy.DefaultPageSize, len(page.Items))
	assert.Equal(t, "k/0099", page.Next)
	page, err = svc.List(v4, "k/", "", 5000)
	require.NoError(t, err)
	assert.Equal(t, policy.DefaultMaxScanLimit, len(page.Items), "a zero MaxScanLimit caps at the default")
	assert.Equal(t, "k/0999", page.Next)

	spent := func(maxScan, limit int) int {
		t.Helper()
		lim, err := limiter.New(limiter.Config{Tokens: 1000, Window: time.Hour})
		require.NoError(t, err)
		cfg := testConfig
		cfg.MaxScanLimit = maxScan
		svc := policy.New(store, lim, cfg, nil)
		_, err = svc.List(v4, "k/", "", limit)
		require.NoError(t, err)
		// v4's client under the default grouping: its own address.
		return 1000 - lim.Allow(kv.GroupClient(netip.PrefixFrom(v4.IP, 32)), 0).Remaining
	}
	assert.Equal(t, 1, spent(0, 0), "the default page")
	assert.Equal(t, 1, spent(0, 100))
	assert.Equal(t, 2, spent(0, 101))
	assert.Equal(t, 10, spent(0, 5000), "capped at 1000 keys")
	assert.Equal(t, 3, spent(250, 100000), "capped at 250 keys")
}
