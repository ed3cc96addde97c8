package kv

import "net/netip"

// CanonicalIP returns ip unmapped from IPv4-in-IPv6 and without a zone:
// the one form of a client's address, in ip/ keys, rate-limit buckets and
// watcher caps alike, so a client reaching a dual-stack socket
// (::ffff:a.b.c.d) or a link-local one (fe80::1%eth0) is the same client
// as over plain IPv4 or IPv6, whichever front end saw it.
func CanonicalIP(ip netip.Addr) netip.Addr {
	return ip.Unmap().WithZone("")
}

// The default client groups of ClientKey: one IPv4 address, and the IPv6
// /64 one end site is normally handed, so that rotating interface
// identifiers within it does not make a new client.
const (
	DefaultIPv4Prefix = 32
	DefaultIPv6Prefix = 64
)

// ClientKey returns the group that ip counts as for per-client budgets
// and caps: CanonicalIP(ip) masked to v4bits or v6bits. Zero (or negative)
// bits mean DefaultIPv4Prefix and DefaultIPv6Prefix, and bits beyond the
// address length are clamped to it, so ClientKey never fails. Every
// invalid address maps to the zero Prefix, so requests without a usable
// address share one group rather than each escaping its limits.
func ClientKey(ip netip.Addr, v4bits, v6bits int) netip.Prefix {
	ip = CanonicalIP(ip)
	var bits int
	switch {
	case ip.Is4():
		bits = clampBits(v4bits, DefaultIPv4Prefix, 32)
	case ip.Is6():
		bits = clampBits(v6bits, DefaultIPv6Prefix, 128)
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
