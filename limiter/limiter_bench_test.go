package limiter_test

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/limiter"
)

// The benchmarks advance a fake clock so that the allowed and the denied
// paths are measured separately and without the cost of time.Now.

// generous never runs out at the step the benchmarks advance time by, so
// every request takes the allowed path.
var generous = limiter.Config{Tokens: 1 << 30, Window: time.Second, Burst: 1 << 30}

func BenchmarkAllowSameClient(b *testing.B) {
	client := kv.GroupClient(netip.MustParsePrefix("2001:db8::/64"))
	b.Run("allowed", func(b *testing.B) {
		l := newLimiter(b, generous)
		now := t0
		l.AllowAt(client, 1, now) // create the bucket outside the timed loop
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			now = now.Add(time.Microsecond)
			if !l.AllowAt(client, 1, now).Allowed {
				b.Fatal("denied")
			}
		}
	})
	b.Run("denied", func(b *testing.B) {
		l := newLimiter(b, defaultCfg)
		l.AllowAt(client, 17, t0)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if l.AllowAt(client, 1, t0).Allowed {
				b.Fatal("allowed")
			}
		}
	})
	b.Run("wall-clock", func(b *testing.B) {
		l := newLimiter(b, generous)
		l.Allow(client, 1)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			l.Allow(client, 1)
		}
	})
}

func BenchmarkAllowManyClients(b *testing.B) {
	const clients = 10000
	keys := make([]kv.Client, clients)
	for i := range keys {
		if i%2 == 0 {
			keys[i] = kv.GroupClient(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32))
		} else {
			keys[i] = kv.GroupClient(netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 6: byte(i >> 8), 7: byte(i)}), 64))
		}
	}
	l := newLimiter(b, generous)
	now := t0
	for _, k := range keys {
		l.AllowAt(k, 1, now)
	}
	if l.Len() != clients {
		b.Fatalf("Len %d, want %d", l.Len(), clients)
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		now = now.Add(time.Microsecond)
		l.AllowAt(keys[i], 1, now)
		if i++; i == clients {
			i = 0
		}
	}
}

func BenchmarkAllowParallel(b *testing.B) {
	b.Run("same-client", func(b *testing.B) {
		l := newLimiter(b, generous)
		client := kv.GroupClient(netip.MustParsePrefix("192.0.2.1/32"))
		l.Allow(client, 1)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Allow(client, 1)
			}
		})
	})
	b.Run("own-client", func(b *testing.B) {
		l := newLimiter(b, generous)
		var next atomic.Uint32
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			n := next.Add(1)
			client := kv.GroupClient(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), 32))
			for pb.Next() {
				l.Allow(client, 1)
			}
		})
	})
}

// BenchmarkPeekUnknown is the check every valid bearer token meets
// (policy.Service.Authenticate): a key that has never been charged, so
// has no bucket.
func BenchmarkPeekUnknown(b *testing.B) {
	l := newLimiter(b, defaultCfg)
	client := kv.Client{Group: netip.MustParsePrefix("192.0.2.1/32"), Name: "refused credentials"}
	b.ReportAllocs()
	for b.Loop() {
		if !l.PeekAt(client, 3, t0).Allowed {
			b.Fatal("denied")
		}
	}
}
