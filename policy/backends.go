package policy

import (
	"github.com/rendezvous-kv/rendezvous/kv"
)

// Store is the key-value store a Service applies its rules to: the
// operations it calls, in kv's types. *ttlstore.Store, the in-memory
// store, implements it; a store kept elsewhere (Redis) can too.
//
// The Service has checked the caller's rights, the key and the sizes
// before it calls; what the Store decides is what depends on the stored
// state, and it decides it atomically per key: the check (is the key live,
// does its owner match, does its value or version match) and the write
// happen as one step, so of two concurrent writers only one can win.
// Expired keys are absent for every method. Refusals are kv's errors
// (errors.Is), and the current item comes with kv.ErrExists, kv.ErrMismatch
// and, when the key is live, kv.ErrVersionMismatch.
type Store interface {
	// Get returns the live item under key.
	Get(key string) (kv.Item, bool)
	// Set creates or overwrites key. It fails with kv.ErrForbidden when
	// the key is owned by another owner, kv.ErrVersionMismatch when
	// w.IfVersion is set and differs, and kv.ErrFull when the key is new
	// and the store is at capacity.
	Set(key string, w kv.Write) (kv.Item, error)
	// LoadOrStore creates key only if it is absent; when it is live it
	// returns the current item and kv.ErrExists.
	LoadOrStore(key string, w kv.Write) (kv.Item, error)
	// CompareAndSwap overwrites key when its value equals expected:
	// kv.ErrNotFound when it is absent, kv.ErrMismatch when it differs.
	CompareAndSwap(key string, expected []byte, w kv.Write) (kv.Item, error)
	// CompareAndSwapOrCreate is CompareAndSwap that also creates an absent
	// key.
	CompareAndSwapOrCreate(key string, expected []byte, w kv.Write) (kv.Item, error)
	// Delete removes key, returning the removed item with the removal's
	// version: kv.ErrNotFound when it is absent, kv.ErrForbidden when it
	// is owned by another owner.
	Delete(key string, owner kv.Owner) (kv.Item, error)
	// Range returns up to limit live items with start <= key < end (no
	// upper bound when end is ""), in byte order of keys, showing each
	// transaction whole or not at all.
	Range(start, end string, limit int) []kv.Item
	// Commit applies t's writes under one new version if all its checks
	// hold and all its ops are allowed, else none of them; a refusal tied
	// to t is a *kv.TxnError. No reader sees part of a commit.
	Commit(t kv.Txn) (kv.CommitResult, error)
}

// Limiter decides whether a client may spend cost tokens now, and spends
// them if so. *limiter.Limiter, per-client token buckets in memory,
// implements it. Allow is called on every request, so an implementation
// should not allocate for a client it knows.
//
// client is the caller's client key (see Service.Caller and
// Service.Authenticated): the group of addresses that counts as one
// anonymous client, or an identity with its own rate. A Limiter keeps one
// budget per key and groups nothing itself, so the rate limit and the
// watcher caps always agree on who one client is.
//
// A nil Limiter turns rate limiting off. So does a nil *limiter.Limiter
// passed as one, which allows everything: a Service treats both alike.
type Limiter interface {
	Allow(client kv.Client, cost int) kv.Decision
}

// Feed is the change feed that watches and long-polls read, in kv's
// types. *feed.Feed, a bounded history in memory, implements it; a feed
// kept elsewhere (Redis) can too.
//
// Subscribe opens a subscription counted against o.Client's and
// o.Network's caps, or refuses with kv.ErrTooManyWatchersForClient,
// kv.ErrTooManyWatchersForNetwork, kv.ErrTooManyWatchers or
// kv.ErrFeedClosed; the subscription ends with kv.ErrFeedClosed and falls
// behind with kv.ErrBehind (see kv.Subscription). Those errors are all the
// Service reads: it turns them into its watch steps and error kinds, so a
// front end never sees a feed's own.
type Feed interface {
	Subscribe(o kv.SubOptions) (kv.Subscription, error)
	// Limits returns the caps Subscribe enforces, for the refusals' wording.
	Limits() kv.FeedLimits
}
