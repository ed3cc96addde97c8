package kv

import (
	"context"
	"errors"
	"net/netip"
)

// Subscription is one subscriber of a change feed: a read position in the
// feed's history of changes, counted against the feed's caps until it is
// closed. Next, Reset and Cursor must be called from one goroutine at a
// time; Close may be called from any goroutine, and must be called.
//
// The in-memory feed (package feed) implements it; a feed kept elsewhere
// (Redis streams or keyspace notifications) can too, and refuses and ends
// with the same errors below.
type Subscription interface {
	// Next blocks until there are changes after the cursor that match the
	// subscription, and returns them in version order (a transaction's
	// events, which share a version, in one call), advancing the cursor
	// past them. It returns ErrBehind when changes the subscriber had not
	// read left the history, until Reset; ctx.Err() when ctx is done;
	// ErrFeedClosed after the subscription or the feed was closed, once
	// the changes published before the feed closed are delivered. The
	// events' values share memory with the store and must not be
	// modified.
	Next(ctx context.Context) ([]Event, error)
	// Cursor returns the last version the subscription has considered:
	// every matching change up to it has been delivered.
	Cursor() uint64
	// Reset clears ErrBehind and moves the cursor to the feed's head, so
	// that only changes published from then on are delivered, and returns
	// the new cursor.
	Reset() uint64
	// Close releases the subscription's place in the caps and ends a Next
	// in progress with ErrFeedClosed. It is idempotent.
	Close()
}

// SubOptions selects what a Subscription receives and whose caps it
// counts against.
type SubOptions struct {
	// Prefix selects the keys starting with it; "" selects every key.
	Prefix string
	// Exact selects only the key equal to Prefix.
	Exact bool
	// Since resumes after that version: changes with a higher version are
	// delivered. Zero means from now (only changes published after the
	// subscription opened). A resume point the history no longer covers
	// makes the first Next return ErrBehind.
	Since uint64
	// Client is the client the subscription counts against: an address
	// group or an identity, as policy keys clients (see Client).
	Client Client
	// Network is the larger group that Client belongs to, counted against
	// FeedLimits.PerNetwork; the zero Prefix counts against no network.
	Network netip.Prefix
}

// FeedLimits are the subscription caps a change feed enforces: per client
// group, per network, and in all.
type FeedLimits struct {
	PerClient, PerNetwork, Total int
}

// Errors a change feed refuses a subscription with or ends one with.
var (
	// ErrBehind means changes the subscriber had not read were dropped
	// from the history.
	ErrBehind = errors.New("feed: subscriber fell behind the history")
	// ErrFeedClosed means the feed or the subscription was closed.
	ErrFeedClosed = errors.New("feed: closed")
	// ErrTooManyWatchers means the feed has FeedLimits.Total subscribers.
	ErrTooManyWatchers = errors.New("feed: too many subscribers")
	// ErrTooManyWatchersForClient means the client group has
	// FeedLimits.PerClient subscribers.
	ErrTooManyWatchersForClient = errors.New("feed: too many subscribers for this client")
	// ErrTooManyWatchersForNetwork means the network has
	// FeedLimits.PerNetwork subscribers.
	ErrTooManyWatchersForNetwork = errors.New("feed: too many subscribers for this network")
)
