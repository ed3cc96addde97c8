package server

import (
	"github.com/rendezvous-kv/rendezvous/feed"
	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/limiter"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// The parts a Server builds are policy's backends. These fail the build,
// here rather than at the call of policy.New, if one of them drifts from
// the interface another implementation will be written against.
var (
	_ policy.Store   = (*ttlstore.Store)(nil)
	_ policy.Limiter = (*limiter.Limiter)(nil)
	_ policy.Feed    = (*feed.Feed)(nil)
	// What the feed's Subscribe returns, policy reads as this.
	_ kv.Subscription = (*feed.Sub)(nil)
)
