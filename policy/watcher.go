package policy

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// WatchStepKind says what a WatchStep tells a front end.
type WatchStepKind uint8

// The steps of a watch. Every front end (the SSE stream, later KV Connect's
// watch and Redis keyspace notifications) acts on these alone, so the rule
// that turns a feed's state into "list again" or "too slow" is decided here
// once.
const (
	// WatchEvents carries the next changes in Events.
	WatchEvents WatchStepKind = iota + 1
	// WatchRelist means the watch was asked to resume from a point the
	// feed's history no longer covers: changes after it are lost, so the
	// client must list the keys again. The watch goes on live after
	// Cursor, which a front end gives its client as the point it relisted
	// from. It comes at most once, before any events.
	WatchRelist
	// WatchDropped means the watcher read too slowly: changes it had not
	// read left the history and it cannot go on without losing them. The
	// front end tells its client so and ends the watch; every later Next
	// returns this step again.
	WatchDropped
)

// WatchStep is one step of a watch, as Watcher.Next returns it.
type WatchStep struct {
	Kind WatchStepKind
	// Events holds, for WatchEvents, one or more changes in version order,
	// up to a few hundred. The events of one transaction share a version
	// and always come in one step, so a front end knows the last event of
	// a version in Events is the last of that version it gets. Their
	// values share memory with the store and must not be modified.
	Events []kv.Event
	// Cursor is, for WatchEvents, the version up to which every matching
	// change has been delivered (at least the last event's version), and
	// for WatchRelist the version the watch continues after. It is zero
	// for WatchDropped.
	Cursor uint64
}

// ErrWatcherClosed is what Next returns once the Watcher itself was closed.
var ErrWatcherClosed = errors.New("policy: watcher closed")

// Watcher is one open watch: the changes of a prefix or a key, read step
// by step with Next. Next must be called from one goroutine at a time;
// Close may be called from any goroutine, and must be called.
type Watcher struct {
	svc *Service
	sub kv.Subscription
	// resuming is true while a watch opened with a resume point has
	// delivered nothing yet: falling out of history then means the point
	// was already gone (relist), later that the watcher was too slow.
	resuming bool
	// stringsOnly leaves out the changes of reserved keys (Deno's tuple
	// space), for the string front ends.
	stringsOnly bool
	closed      atomic.Bool
	// grants, when set, hide the events of keys the caller may not read.
	grants *Grants
}

// watcher opens a subscription for c with o and wraps it.
func (s *Service) watcher(c Caller, o kv.SubOptions) (*Watcher, error) {
	sub, err := s.subscribe(c, o)
	if err != nil {
		return nil, err
	}
	return &Watcher{svc: s, sub: sub, resuming: o.Since != 0, grants: s.grants(c)}, nil
}

// Next blocks until the watch has a step to take, and returns it. The end
// of a watch is an error, not a step: ctx.Err() when ctx is done (so a
// front end times its keep-alives with ctx's deadline), an *Error of
// KindShuttingDown when the server is stopping (the changes published
// before come out first), and ErrWatcherClosed after Close.
func (w *Watcher) Next(ctx context.Context) (WatchStep, error) {
	evs, err := w.sub.Next(ctx)
	for err == nil && (w.stringsOnly || w.grants != nil) {
		// The feed hands each Next a slice of its own, so it is filtered
		// in place; a step of only hidden events (tuple keys for a
		// string front end, keys the caller may not read) is no step.
		if w.stringsOnly {
			evs = stringEvents(evs)
		}
		if w.grants != nil {
			evs = slices.DeleteFunc(evs, func(e kv.Event) bool { return !w.grants.Allows(e.Key, AccessRead) })
		}
		if len(evs) > 0 {
			break
		}
		w.resuming = false
		evs, err = w.sub.Next(ctx)
	}
	switch {
	case err == nil:
		w.resuming = false
		return WatchStep{Kind: WatchEvents, Events: evs, Cursor: w.sub.Cursor()}, nil
	case errors.Is(err, kv.ErrBehind) && w.resuming:
		w.resuming = false
		return WatchStep{Kind: WatchRelist, Cursor: w.sub.Reset()}, nil
	case errors.Is(err, kv.ErrBehind):
		return WatchStep{Kind: WatchDropped}, nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return WatchStep{}, err
	case w.closed.Load():
		return WatchStep{}, ErrWatcherClosed
	}
	return WatchStep{}, w.svc.fromFeed(err)
}

// skipLost moves a dropped watcher to the head, for a reader that learns
// what it missed from the store instead of from the events (a long-poll).
func (w *Watcher) skipLost() { w.sub.Reset() }

// Close ends the watch, releasing its place in the caps, and ends a Next
// in progress with ErrWatcherClosed. It is idempotent.
func (w *Watcher) Close() {
	w.closed.Store(true)
	w.sub.Close()
}

// stringEvents returns evs without the changes of reserved keys; evs
// itself when it has none, since the feed's slices are shared and must
// not be changed.
func stringEvents(evs []kv.Event) []kv.Event {
	n := 0
	for i := range evs {
		if Reserved(evs[i].Key) {
			n++
		}
	}
	if n == 0 {
		return evs
	}
	out := make([]kv.Event, 0, len(evs)-n)
	for i := range evs {
		if !Reserved(evs[i].Key) {
			out = append(out, evs[i])
		}
	}
	return out
}
