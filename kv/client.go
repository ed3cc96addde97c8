package kv

import "net/netip"

// Client is the key a client's budgets are kept under, its rate-limit
// bucket and its watcher places alike: for an anonymous caller the group
// of its address (Grouping.Group), for an authenticated one its identity,
// which keeps one budget from any address. Two callers with equal keys
// are one client under every rule.
type Client struct {
	// Group is an anonymous caller's address group; the zero Prefix for
	// an identity (and for a caller without a usable address).
	Group netip.Prefix
	// Name is the identity's name, "" for an anonymous caller.
	Name string
	// Rate is the identity's own rate, the zero Rate for the server's
	// default. It is part of the key, so a changed rate takes effect with
	// a bucket of its own.
	Rate Rate
}

// GroupClient returns the key of the anonymous callers of group.
func GroupClient(group netip.Prefix) Client { return Client{Group: group} }
