package kv

import (
	"errors"
	"fmt"
	"net/netip"
)

// CanonicalIP returns ip unmapped from IPv4-in-IPv6 and without a zone:
// the one form of a client's address, in ip/ keys, rate-limit buckets and
// watcher caps alike, so a client reaching a dual-stack socket
// (::ffff:a.b.c.d) or a link-local one (fe80::1%eth0) is the same client
// as over plain IPv4 or IPv6, whichever front end saw it.
func CanonicalIP(ip netip.Addr) netip.Addr {
	return ip.Unmap().WithZone("")
}

// The default client group: one IPv4 address, and the IPv6 /64 one end
// site is normally handed, so that rotating interface identifiers within
// it does not make a new client. A zero length in a Grouping means these.
const (
	DefaultIPv4Prefix = 32
	DefaultIPv6Prefix = 64
)

// Grouping says how many leading bits of a client's address make one
// client for per-client budgets and caps (or, with shorter lengths, one
// network): addresses that share them share a rate-limit bucket and
// watcher places. Grouping by bits rather than by address is what keeps an
// IPv6 end site, which holds a whole /64 or more, from minting a fresh
// budget per address.
type Grouping struct {
	// V4 is the prefix length of an IPv4 group, 1 to 32.
	V4 int
	// V6 is the prefix length of an IPv6 group, 1 to 128.
	V6 int
}

// Group returns the group ip belongs to: CanonicalIP(ip) masked to V4 or
// V6 bits. It never fails, so that no request escapes its limits by a bad
// setting: a zero (or negative) length means DefaultIPv4Prefix or
// DefaultIPv6Prefix, one beyond the address length is clamped to it, and
// every invalid address maps to the zero Prefix, so requests without a
// usable address share one group rather than each getting its own.
func (g Grouping) Group(ip netip.Addr) netip.Prefix {
	ip = CanonicalIP(ip)
	var bits int
	switch {
	case ip.Is4():
		bits = clampBits(g.V4, DefaultIPv4Prefix, 32)
	case ip.Is6():
		bits = clampBits(g.V6, DefaultIPv6Prefix, 128)
	default:
		return netip.Prefix{}
	}
	p, _ := ip.Prefix(bits) // cannot fail: bits is within the address length
	return p
}

func clampBits(bits, def, max int) int {
	switch {
	case bits <= 0:
		return def
	case bits > max:
		return max
	}
	return bits
}

// The reasons Validate gives, for errors.Is.
var (
	ErrIPv4PrefixLength = errors.New("must be 1..32")
	ErrIPv6PrefixLength = errors.New("must be 1..128")
)

// GroupingError is Validate's refusal of one prefix length.
type GroupingError struct {
	// Field is "V4" or "V6".
	Field string
	// Bits is the refused length.
	Bits int
	// Err is ErrIPv4PrefixLength or ErrIPv6PrefixLength.
	Err error
}

// Error names the length and the range it must be in.
func (e *GroupingError) Error() string {
	return fmt.Sprintf("kv: invalid Grouping.%s %d: %v", e.Field, e.Bits, e.Err)
}

// Unwrap returns the reason, so that a configuration naming the length its
// own way (a flag, a field) can word the same refusal.
func (e *GroupingError) Unwrap() error { return e.Err }

// Validate reports the first length out of range as a *GroupingError: V4
// outside 1..32 or V6 outside 1..128. Zero is refused too: Group's
// fallbacks keep a request from failing, but a configuration says what it
// groups by, and a typo must not silently become the default.
func (g Grouping) Validate() error {
	switch {
	case g.V4 < 1 || g.V4 > 32:
		return &GroupingError{Field: "V4", Bits: g.V4, Err: ErrIPv4PrefixLength}
	case g.V6 < 1 || g.V6 > 128:
		return &GroupingError{Field: "V6", Bits: g.V6, Err: ErrIPv6PrefixLength}
	}
	return nil
}
