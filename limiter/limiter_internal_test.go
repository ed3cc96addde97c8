package limiter

import (
	"hash/maphash"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// TestSweptBucketIsNotSpent replays, one step at a time, the interleaving
// that the concurrent tests can only hope to hit: a request loads a client's
// bucket, a sweep drops that bucket, and only then does the request spend.
// The spend must not land on the dropped bucket, where it would be lost and
// the client would get a fresh burst.
func TestSweptBucketIsNotSpent(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	l, err := New(Config{Tokens: 17, Window: time.Minute})
	require.NoError(t, err)
	client := kv.GroupClient(netip.MustParsePrefix("192.0.2.1/32"))
	require.True(t, l.AllowAt(client, 0, t0).Allowed) // creates a full bucket

	b, ok := l.buckets.Load(client)
	require.True(t, ok)
	require.Equal(t, 1, l.SweepAt(t0))
	require.Equal(t, 0, l.Len())

	_, ok = l.take(b, 17, t0)
	assert.False(t, ok, "a dropped bucket must refuse the spend")
	assert.Equal(t, float64(17), b.lim.TokensAt(t0), "nothing was spent from it")

	// AllowAt retries on a new bucket, and the client gets one burst only.
	assert.Equal(t, Decision{Allowed: true, Limit: 17}, l.AllowAt(client, 17, t0))
	assert.False(t, l.AllowAt(client, 1, t0).Allowed)
	assert.Equal(t, 1, l.Len())
}

// TestClientHasher checks the table's hash agrees with kv.Client
// equality, which the table relies on, and separates the families, the
// names and the rates.
func TestClientHasher(t *testing.T) {
	hc := clientHasher(maphash.MakeSeed())
	h := func(p netip.Prefix, seed uint64) uint64 { return hc(kv.GroupClient(p), seed) }
	p := netip.MustParsePrefix("2001:db8::/64")
	want := h(p, 0)
	for _, same := range []netip.Prefix{
		netip.MustParsePrefix("2001:db8::/64"),
		netip.PrefixFrom(netip.MustParseAddr("2001:db8::"), 64),
	} {
		assert.Equal(t, want, h(same, 0), "%v", same)
		assert.Equal(t, want, h(same, 12345), "xsync's seed is ignored")
	}
	assert.NotEqual(t, want, h(netip.MustParsePrefix("2001:db8::/63"), 0), "the length counts")
	v4 := h(netip.MustParsePrefix("192.0.2.1/32"), 0)
	mapped := h(netip.PrefixFrom(netip.MustParseAddr("::ffff:192.0.2.1"), 128), 0)
	assert.NotEqual(t, v4, mapped, "IPv4 and IPv4-mapped IPv6 prefixes are distinct keys")
	assert.NotEqual(t, h(netip.Prefix{}, 0), h(netip.MustParsePrefix("::/0"), 0))

	alice := kv.Client{Name: "alice"}
	assert.Equal(t, hc(alice, 0), hc(kv.Client{Name: "alice"}, 7))
	assert.NotEqual(t, hc(alice, 0), hc(kv.Client{Name: "bob"}, 0))
	assert.NotEqual(t, hc(alice, 0), hc(kv.Client{}, 0), "an identity is not the zero group")
	assert.NotEqual(t, hc(alice, 0), hc(kv.Client{Name: "alice", Rate: kv.Rate{Tokens: 5, Window: time.Second}}, 0))
}
