// Package clientip finds whose address an HTTP request comes from: the
// TCP peer, or, behind proxies the operator trusts, the client they name.
// Every HTTP front end (the API, KV Connect) asks it, so that ip/ keys and
// rate limit buckets are the same whichever one a request arrives on.
package clientip

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// Resolver finds the caller's address. The TCP peer is the answer unless
// the peer is a trusted proxy; only then are X-Forwarded-For (the
// right-most address that is not itself a trusted proxy) and X-Real-IP
// believed. Anyone else can send those headers, so honouring them from
// untrusted peers would let a caller pick its own ip/ namespace and rate
// limit bucket.
type Resolver struct {
	Trusted []netip.Prefix
}

// Resolve returns the canonical client address of r.
func (c Resolver) Resolve(r *http.Request) netip.Addr {
	peer := peerAddr(r.RemoteAddr)
	if !c.trusted(peer) {
		return peer
	}
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		// Walk the hops right to left: the right-most entries were added by
		// our own proxies, the first untrusted one is the real client.
		for i := len(xff) - 1; i >= 0; i-- {
			hops := xff[i]
			for hops != "" {
				var hop string
				if j := strings.LastIndexByte(hops, ','); j >= 0 {
					hop, hops = hops[j+1:], hops[:j]
				} else {
					hop, hops = hops, ""
				}
				ip, err := netip.ParseAddr(strings.TrimSpace(hop))
				if err != nil {
					// A garbled hop means we cannot tell who is behind it;
					// the last proxy we trust is all we know.
					return peer
				}
				ip = kv.CanonicalIP(ip)
				if !c.trusted(ip) {
					return ip
				}
				peer = ip
			}
		}
		return peer
	}
	if xr := r.Header.Get("X-Real-IP"); xr != "" {
		if ip, err := netip.ParseAddr(strings.TrimSpace(xr)); err == nil {
			return kv.CanonicalIP(ip)
		}
	}
	return peer
}

func (c Resolver) trusted(ip netip.Addr) bool {
	for _, p := range c.Trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// peerAddr parses an http.Request RemoteAddr ("ip:port").
func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return kv.CanonicalIP(ap.Addr())
	}
	if ip, err := netip.ParseAddr(remote); err == nil {
		return kv.CanonicalIP(ip)
	}
	return netip.Addr{}
}

// TrustedPeer reports whether r's TCP peer is one of the trusted proxies,
// whose forwarding headers (X-Forwarded-Proto, X-Forwarded-Host as well as
// the addresses) other front ends on the same listener may believe.
func (c Resolver) TrustedPeer(r *http.Request) bool {
	return c.trusted(peerAddr(r.RemoteAddr))
}
