package kv

// Event is one change as a watcher reads it from a change feed. For
// OpDelete and OpExpire, Value and Expires describe the removed entry.
// Value shares memory with the store and must not be modified.
//
// The changes of one transaction are events with one Version; a feed
// delivers them together.
type Event struct {
	Op      Op
	Cause   Cause // of an OpSet: see Change.Cause
	Key     string
	Value   []byte
	Expires int64 // Unix nanoseconds; 0 means the entry never expired
	Version uint64
}
