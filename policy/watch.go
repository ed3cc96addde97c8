package policy

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"time"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// DefaultMaxWait caps long-polls when Config.MaxWait is zero.
const DefaultMaxWait = time.Minute

var (
	errNoFeed = &Error{Kind: KindWatchDisabled, Message: "watching and waiting are not enabled on this server"}
	errClosed = &Error{Kind: KindShuttingDown, Message: "server is shutting down; retry shortly"}
)

// watchClient is the group whose watches and long-polls share the
// per-client cap: the caller's client key, which its rate-limit bucket is
// kept under too (by default the IPv4 address and the IPv6 /64, or the
// caller's identity), so one client is one client under every rule and
// rotating interface identifiers does not mint more.
func (s *Service) watchClient(c Caller) kv.Client {
	return s.clientKey(c)
}

// watchNetwork is the larger group whose watches share the per-network
// cap: without it one IPv6 /48 holds 65536 /64s, each with its own
// per-client allowance, and fills the total cap for everyone. An
// identity counts against no network: the operator issued it, so it
// cannot be minted by the thousand, and its places follow it from any
// address.
func (s *Service) watchNetwork(c Caller) netip.Prefix {
	if c.Identity != nil {
		return netip.Prefix{}
	}
	return s.networks.Group(c.IP)
}

// subscribe opens a subscription for c, counted against c's client and
// network caps.
func (s *Service) subscribe(c Caller, o kv.SubOptions) (kv.Subscription, error) {
	o.Client, o.Network = s.watchClient(c), s.watchNetwork(c)
	sub, err := s.cfg.Feed.Subscribe(o)
	if err != nil {
		return nil, s.fromFeed(err)
	}
	return sub, nil
}

// Watch subscribes c to the changes (sets, deletes and expiries) of the
// keys starting with prefix, or of the key prefix alone when exact, after
// version since (0: from now). The caller reads the watch's steps with
// the Watcher's Next and must Close it.
//
// A watch costs CostRead once, when it opens: the events it then carries
// were paid for by their writers, and what a watch holds (a connection and
// a goroutine) is bounded by the per-client and total caps of the feed, not
// by tokens. Reconnecting is charged again, so a reconnect loop is rate
// limited like reads.
//
// The prefix follows the key syntax except that it may be empty (every
// key). Like reads, it is not rewritten for ip/: anyone may watch
// ip/<addr>/, as anyone may read it. A caller with grants sees only the
// changes of keys it may read, and is refused a watch under which it may
// read none.
func (s *Service) Watch(c Caller, prefix string, since uint64, exact bool) (*Watcher, error) {
	if err := s.charge(c, s.cfg.CostRead); err != nil {
		return nil, err
	}
	if prefix != "" || exact {
		if err := s.checkKey(prefix); err != nil {
			return nil, err
		}
	}
	if exact {
		if err := s.allow(c, prefix, AccessRead); err != nil {
			return nil, err
		}
	} else if err := s.allowUnder(c, prefix); err != nil {
		return nil, err
	}
	f := s.cfg.Feed
	if f == nil {
		return nil, errNoFeed
	}
	w, err := s.watcher(c, kv.SubOptions{Prefix: prefix, Exact: exact, Since: since})
	if err == nil && prefix == "" {
		// Only a watch of everything can meet Deno's tuple keys, which
		// string front ends never show.
		w.stringsOnly = true
	}
	return w, err
}

// fromFeed turns a feed error into an Error.
func (s *Service) fromFeed(err error) error {
	limits := s.cfg.Feed.Limits()
	switch {
	case errors.Is(err, kv.ErrTooManyWatchersForClient):
		return &Error{Kind: KindTooManyWatches, Message: "too many open watches and long-polls from your address: at most " +
			strconv.Itoa(limits.PerClient) + " at once; close one first"}
	case errors.Is(err, kv.ErrTooManyWatchersForNetwork):
		return &Error{Kind: KindTooManyWatches, Message: "too many open watches and long-polls from your network: at most " +
			strconv.Itoa(limits.PerNetwork) + " at once; retry later"}
	case errors.Is(err, kv.ErrTooManyWatchers):
		return &Error{Kind: KindTooManyWatches, Message: "the server has as many open watches and long-polls as it allows (" +
			strconv.Itoa(limits.Total) + "); retry later"}
	case errors.Is(err, kv.ErrFeedClosed):
		return errClosed
	}
	return &Error{Kind: KindUnavailable, Message: "watch unavailable: " + err.Error()}
}

// WaitKey is a long-poll read of key. It costs CostRead once. When the key
// is live and etag is 0 or differs from its version, it returns the item at
// once. Otherwise it waits, up to wait capped by Config.MaxWait, for the
// key to be set to a version other than etag, and returns (item, true).
//
// On timeout it returns ok=false, with the item when the key is still live
// at version etag (so a front end can answer "not modified") and the zero
// Item when it is absent. A waiting long-poll holds a place in the same
// per-client and total caps as a watch. When ctx is done it returns
// ctx.Err().
func (s *Service) WaitKey(ctx context.Context, c Caller, key string, etag uint64, wait time.Duration) (kv.Item, bool, error) {
	if err := s.charge(c, s.cfg.CostRead); err != nil {
		return kv.Item{}, false, err
	}
	if err := s.checkKey(key); err != nil {
		return kv.Item{}, false, err
	}
	if err := s.allow(c, key, AccessRead); err != nil {
		return kv.Item{}, false, err
	}
	if it, ok := s.changed(key, etag); ok {
		return it, true, nil
	}
	wait = s.WaitLimit(wait)
	if wait <= 0 {
		return s.unchanged(key, etag)
	}
	f := s.cfg.Feed
	if f == nil {
		return kv.Item{}, false, errNoFeed
	}
	// Subscribe from the head, then read again. A write with a version up
	// to the cursor was published before Subscribe read the head, while
	// its writer held the key's shard lock until the write was applied, so
	// the second read sees it; every later write is delivered by Next. A
	// write between the first read and Subscribe is therefore never lost.
	wt, err := s.watcher(c, kv.SubOptions{Prefix: key, Exact: true})
	if err != nil {
		return kv.Item{}, false, err
	}
	defer wt.Close()
	if it, ok := s.changed(key, etag); ok {
		return it, true, nil
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		step, err := wt.Next(wctx)
		switch {
		case err == nil && step.Kind == WatchEvents:
			if !hasSet(step.Events) {
				continue // deleted or expired: keep waiting for a set
			}
		case err == nil:
			// WatchDropped, the only other step of a watch that does not
			// resume; only possible after a burst of thousands of writes.
			// A long-poll loses nothing by it: the store, read after
			// skipping, tells what was missed.
			wt.skipLost()
		case ctx.Err() != nil:
			return kv.Item{}, false, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			return s.unchanged(key, etag)
		default:
			return kv.Item{}, false, err // errClosed at shutdown
		}
		if it, ok := s.changed(key, etag); ok {
			return it, true, nil
		}
	}
}

func hasSet(evs []kv.Event) bool {
	for i := range evs {
		if evs[i].Op == kv.OpSet {
			return true
		}
	}
	return false
}

// changed returns the live item under key when its version is not etag.
func (s *Service) changed(key string, etag uint64) (kv.Item, bool) {
	it, ok := s.store.Get(key)
	if !ok || (etag != 0 && it.Version == etag) {
		return kv.Item{}, false
	}
	return it, true
}

// unchanged is WaitKey's answer when the wait is over: the item if it
// changed at the last moment, else the item still at etag, or nothing.
func (s *Service) unchanged(key string, etag uint64) (kv.Item, bool, error) {
	it, ok := s.store.Get(key)
	switch {
	case !ok:
		return kv.Item{}, false, nil
	case etag != 0 && it.Version == etag:
		return it, false, nil
	}
	return it, true, nil
}

// WaitLimit returns how long WaitKey holds a long-poll that asks for wait:
// wait capped by Config.MaxWait, or by DefaultMaxWait when that is unset.
// Front ends size their own timeouts by it.
func (s *Service) WaitLimit(wait time.Duration) time.Duration {
	maxWait := s.cfg.MaxWait
	if maxWait <= 0 {
		maxWait = DefaultMaxWait
	}
	return min(wait, maxWait)
}

// ParseWait parses a long-poll wait given as a Go duration ("30s", "1m")
// or as plain seconds ("30"). Zero means do not wait; negative and
// unparsable waits are errors; a huge wait saturates, and WaitKey caps it
// to MaxWait.
func ParseWait(s string) (time.Duration, error) {
	d, ok := parseLength(s)
	if !ok {
		return 0, Errorf(KindBadRequest, "wait %q is not a duration (like 30s, 1m) or a number of seconds", s)
	}
	if d < 0 {
		return 0, Errorf(KindBadRequest, "wait must not be negative")
	}
	return d, nil
}
