// Package feed is the one change feed of the store: every mutation,
// including deletes and expiries, in version order. SSE watches, long-polls
// and later protocols all read it. The changes of one transaction share a
// version (PublishBatch) and travel together: in one Next, in history, and
// in a resume, which takes all of them or none.
//
// # Pull, not push
//
// Publish is called by the store under its sequencing lock, so it must cost
// the same whether nobody or a thousand clients are watching. It appends the
// change to a bounded ring (History events, HistoryBytes of keys and values)
// under a short mutex and nudges one dispatcher goroutine with a
// non-blocking send; it never loops over subscribers and never waits for
// one.
//
// Each subscriber (Sub) owns a cursor, the last version it has considered,
// and pulls from the ring with Next. The dispatcher, off the write path,
// matches new events against the subscribers' filters (a map lookup per
// event for exact keys, one per distinct prefix length for prefixes) and
// wakes only the subscribers an event concerns, so a thousand idle watchers
// of unrelated prefixes cost the writer nothing and are not woken by every
// write.
//
// # Falling behind
//
// History is bounded. A subscriber whose cursor falls out of it gets
// ErrBehind from Next, once, and must either Reset (continue from the head,
// after telling its client to list again) or close. The feed never skips an
// event silently: a subscriber that was idle only because nothing matched is
// moved forward using the dispatcher's record that nothing matched, never
// on a guess.
package feed
