package kv

import (
	"errors"
	"fmt"
)

// CheckKind names what a Check asserts about its key.
type CheckKind uint8

// The kinds of check a transaction can commit under.
const (
	CheckAbsent  CheckKind = iota + 1 // the key is not live
	CheckVersion                      // the key is live at exactly Check.Version
	CheckValue                        // the key is live and its value equals Check.Value
)

// Check is a condition of a transaction, evaluated when it commits against
// the state before any of its writes. An expired key counts as absent.
type Check struct {
	Kind CheckKind
	Key  string
	// Version is what CheckVersion compares with; live keys never have
	// version 0, so a CheckVersion of 0 always fails.
	Version uint64
	// Value is what CheckValue compares with; nil equals an empty value.
	Value []byte
}

// TxnOp is one write of a transaction.
type TxnOp struct {
	// Op is OpSet or OpDelete.
	Op Op
	// Cause is what an OpSet does, for the Change it makes (the last one
	// of the transaction on its key decides).
	Cause Cause
	Key   string
	// Value and Expires are the new state an OpSet asks for, as in Write.
	// Value is kept by the store: the caller must not modify it after the
	// call.
	Value   []byte
	Expires int64
	// Owner is the hash of the caller's secret, or empty. As with single
	// writes and deletes, an owned key refuses an OpSet or OpDelete whose
	// Owner does not match, and an OpSet with an Owner claims a new or
	// unowned key.
	Owner Owner
}

// Txn is a transaction: checks and writes on any keys, committed
// together under one version or not at all.
//
// The writes apply in order, each seeing the ones before it: setting a key
// twice keeps the second value, and an OpSet that claims a key makes a
// later op on it need the same owner. A delete of a key that is absent
// (or was deleted by an earlier op) does nothing, as a delete inside
// MULTI/EXEC or an atomic write does, instead of failing the commit.
type Txn struct {
	Checks []Check
	Ops    []TxnOp
	// AtVersion, when non-zero, makes the commit conditional on taking
	// exactly this version: a writer that names keys after its own
	// commit's version (Deno's versionstamped keys) predicts it, and
	// retries when another write took it first (ErrVersionTaken).
	AtVersion uint64
}

// CommitResult describes a committed transaction.
type CommitResult struct {
	// Version is the commit's version, which every one of its changes
	// carries. A commit that changes nothing (only checks, deletes of
	// absent keys, a key created and deleted again) takes no version of
	// its own: Version is then the store's version when it was decided.
	Version uint64
	// Changes are the changes the commit made, one per key it changed, in
	// the order the keys first appear in Txn.Ops; nil when it changed
	// nothing. They are what the store's commit hook received, with Key
	// and Value sharing the store's memory like an Item's.
	Changes []Change
}

// ErrCheckFailed means a check of a transaction did not hold; TxnError.Failed
// lists which.
var ErrCheckFailed = errors.New("transaction check failed")

// ErrVersionTaken means a transaction with Txn.AtVersion would have
// committed under another version; nothing of it was written.
var ErrVersionTaken = errors.New("transaction version taken by another write")

// ErrInvalidTxn means a transaction names an unknown operation or check
// kind: a mistake of the program calling Commit, which a front end checks
// for before, not of its client.
var ErrInvalidTxn = errors.New("invalid transaction")

// TxnError is how a store's Commit refuses a transaction for a reason tied
// to it: Err is ErrCheckFailed, ErrForbidden or ErrFull (errors.Is works
// through it). Nothing of a refused transaction is written.
type TxnError struct {
	Err error
	// Op is the index in Txn.Ops of the operation that refused the commit
	// (ErrForbidden), or -1.
	Op int
	// Failed holds the indexes in Txn.Checks of every check that failed,
	// ascending (ErrCheckFailed).
	Failed []int
}

func (e *TxnError) Error() string {
	switch {
	case len(e.Failed) > 0:
		return fmt.Sprintf("%v: checks %v", e.Err, e.Failed)
	case e.Op >= 0:
		return fmt.Sprintf("operation %d: %v", e.Op, e.Err)
	}
	return e.Err.Error()
}

func (e *TxnError) Unwrap() error { return e.Err }
