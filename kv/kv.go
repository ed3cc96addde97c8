// Package kv holds the types every layer of rendezvous shares: the item a
// key holds, the owner of a key, the writes and transactions a store takes,
// the changes it reports, the errors it refuses with, a change feed's
// subscription and refusals, the rate limiter's decision and the canonical
// form of a client's address.
//
// Front ends (the HTTP handlers, later the KV Connect, Redis and line
// protocols) and backends (the in-memory store, the journal and snapshots,
// the change feed, the rate limiter, later their Redis-backed versions)
// import kv rather than one another, so a backend can be replaced behind
// policy's interfaces without a front end noticing. kv depends on nothing
// of the project and holds no state.
package kv

import (
	"crypto/sha256"
	"errors"
	"time"
)

// Owner is the SHA-256 hash of an owner secret. The empty Owner means "no
// owner". A store never sees a secret in plaintext.
type Owner string

// HashSecret returns the Owner for secret, or the empty Owner when secret is
// empty.
func HashSecret(secret string) Owner {
	if secret == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(secret))
	return Owner(sum[:])
}

// Item is a copy of one entry as seen at one moment.
// Value shares memory with the store and must not be modified.
type Item struct {
	Key     string
	Value   []byte
	Expires int64 // Unix nanoseconds; 0 means the entry never expires.
	Owner   Owner
	Version uint64
}

// ExpiresAt returns the expiry as a time.Time, or the zero Time when the item
// never expires.
func (it Item) ExpiresAt() time.Time {
	if it.Expires == 0 {
		return time.Time{}
	}
	return time.Unix(0, it.Expires)
}

// Owned reports whether the item has an owner.
func (it Item) Owned() bool { return it.Owner != "" }

// Write is the new state a write operation asks for.
type Write struct {
	// Value is kept by the store, not copied: the caller must not modify it
	// after the call.
	Value   []byte
	Expires int64 // Unix nanoseconds; 0 means never.
	// Owner is the hash of the caller's secret, or empty. On a new or unowned
	// key a non-empty Owner claims it; on an owned key it must match.
	Owner Owner
	// IfVersion, when non-zero, makes the write conditional on the key being
	// live at exactly this version (HTTP If-Match); otherwise it fails with
	// ErrVersionMismatch and the current item.
	IfVersion uint64
}

// Op names the kind of a Change.
type Op uint8

// The kinds of change a store reports.
const (
	OpSet    Op = iota + 1 // a key was created or overwritten
	OpDelete               // a key was deleted by a caller
	OpExpire               // a key was removed because its expiry passed
)

func (op Op) String() string {
	switch op {
	case OpSet:
		return "set"
	case OpDelete:
		return "delete"
	case OpExpire:
		return "expire"
	}
	return "unknown"
}

// Cause says what a set did to its key beyond storing a value, so that a
// change feed's readers can name it as Redis's keyspace notifications do
// (expire, incrby, append, persist). Front ends that know it (the Redis
// commands, Deno's sum) put it on their transaction's ops; the zero Cause
// is a plain write, which is what every other write is.
type Cause uint8

// The causes of a set.
const (
	CauseWrite   Cause = iota // a value was written (SET, HTTP's /set, Deno's set)
	CauseExpire               // only the expiry changed (EXPIRE, PEXPIREAT...)
	CausePersist              // the expiry was removed (PERSIST)
	CauseIncr                 // an integer was added to (INCRBY, DECR, Deno's sum)
	CauseAppend               // bytes were appended (APPEND)
)

// Change describes one mutation. For OpSet, Item is the new state. For
// OpDelete and OpExpire, Item carries the key, the removed value and owner,
// and the new Version assigned to the removal.
type Change struct {
	Op Op
	// Cause is what made an OpSet, from the op that asked for it; the
	// zero Cause for single writes and for removals.
	Cause Cause
	Item  Item
	// Prepared is what the store's prepare hook returned for this change,
	// if it has one (a journal encodes its record there).
	Prepared any
}

// Errors a store refuses with. ErrMismatch and ErrExists come with the
// current Item so a caller can show it, and so does ErrVersionMismatch when
// the key is live.
var (
	ErrNotFound  = errors.New("key not found")
	ErrForbidden = errors.New("key is owned by another secret")
	ErrMismatch  = errors.New("value does not match")
	ErrExists    = errors.New("key already exists")
	ErrFull      = errors.New("store is full")
	// ErrVersionMismatch means Write.IfVersion did not match.
	ErrVersionMismatch = errors.New("version does not match")
)
