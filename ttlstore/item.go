// Package ttlstore is a sharded in-memory key-value map with per-key expiry,
// owner hashes, a capacity cap on live keys and one monotonic version counter.
// It is the in-memory implementation of policy.Store; the types it takes and
// returns (items, writes, changes, transactions, errors) are package kv's.
//
// Every operation is atomic per key: the decision (is the key live, does the
// owner match, does the value match) and the write happen under one shard
// lock, so concurrent writers cannot both win a race for the same key.
// Commit applies a transaction (kv.Txn) on many keys as one: checks and
// writes decided and applied under the locks of all its shards, with one
// version, seen whole or not at all by every reader.
// Time comes from Options.Now, so expiry can be tested without sleeping.
package ttlstore

import (
	"crypto/subtle"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// The store's types are package kv's, which every layer shares. These
// aliases are the names ttlstore's own code uses, and they keep code written
// against ttlstore.Item and the like compiling; new code names kv.
type (
	// Owner is kv.Owner.
	//
	// Deprecated: use kv.Owner.
	Owner = kv.Owner
	// Item is kv.Item.
	//
	// Deprecated: use kv.Item.
	Item = kv.Item
	// Write is kv.Write.
	//
	// Deprecated: use kv.Write.
	Write = kv.Write
	// Op is kv.Op.
	//
	// Deprecated: use kv.Op.
	Op = kv.Op
	// Change is kv.Change.
	//
	// Deprecated: use kv.Change.
	Change = kv.Change
)

// The kinds of change, as aliases of kv's.
const (
	// OpSet is kv.OpSet.
	//
	// Deprecated: use kv.OpSet.
	OpSet = kv.OpSet
	// OpDelete is kv.OpDelete.
	//
	// Deprecated: use kv.OpDelete.
	OpDelete = kv.OpDelete
	// OpExpire is kv.OpExpire.
	//
	// Deprecated: use kv.OpExpire.
	OpExpire = kv.OpExpire
)

// The store's errors, as aliases of kv's: the same values, so errors.Is
// matches either name.
var (
	// ErrNotFound is kv.ErrNotFound.
	//
	// Deprecated: use kv.ErrNotFound.
	ErrNotFound = kv.ErrNotFound
	// ErrForbidden is kv.ErrForbidden.
	//
	// Deprecated: use kv.ErrForbidden.
	ErrForbidden = kv.ErrForbidden
	// ErrMismatch is kv.ErrMismatch.
	//
	// Deprecated: use kv.ErrMismatch.
	ErrMismatch = kv.ErrMismatch
	// ErrExists is kv.ErrExists.
	//
	// Deprecated: use kv.ErrExists.
	ErrExists = kv.ErrExists
	// ErrFull is kv.ErrFull.
	//
	// Deprecated: use kv.ErrFull.
	ErrFull = kv.ErrFull
	// ErrVersionMismatch is kv.ErrVersionMismatch.
	//
	// Deprecated: use kv.ErrVersionMismatch.
	ErrVersionMismatch = kv.ErrVersionMismatch
)

// HashSecret returns the Owner for secret, or the empty Owner when secret is
// empty.
//
// Deprecated: use kv.HashSecret.
func HashSecret(secret string) kv.Owner { return kv.HashSecret(secret) }

// ownerMatches reports in constant time (for equal lengths) whether the
// stored owner o equals other.
func ownerMatches(o *kv.Owner, other kv.Owner) bool {
	if len(*o) != len(other) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(*o), []byte(other)) == 1
}
