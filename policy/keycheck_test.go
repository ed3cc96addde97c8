package policy

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// BenchmarkKeyRules measures the key checks every request pays: syntax
// for a read, and ip/ scoping plus syntax for a write.
func BenchmarkKeyRules(b *testing.B) {
	s := &Service{cfg: Config{MaxKeySize: 100, MaxValueSize: 1000, MaxTTL: time.Hour}}
	c := Caller{IP: netip.MustParseAddr("2001:db8::7")}
	key := "mesh42/" + strings.Repeat("node", 5)
	b.Run("read", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := s.checkKey(key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("write-ip-scoped", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := s.scopeKey(c, "ip/ssh"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
