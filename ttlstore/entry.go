package ttlstore

import (
	"sync"
	"unsafe"
)

// entry is one key. It is kept to 48 bytes, a malloc size class: the key
// and value share one allocation, reached through kv, instead of a string
// and a slice header (40 bytes of headers and two allocations), and the
// owner is a pointer, since few keys are owned. That left room for next,
// the hash index's chain, within the 64 bytes an entry used to take.
type entry struct {
	kv      unsafe.Pointer // klen key bytes, then vlen value bytes; never written after it is set
	klen    uint32
	vlen    uint32
	expires int64
	version uint64
	owner   *Owner
	next    *entry // the next entry in the same index bucket
}

// newEntry returns an entry holding copies of key and value.
func newEntry(key string, value []byte) *entry {
	e := &entry{klen: uint32(len(key))}
	e.store(key, value)
	return e
}

// newEntryOf returns an entry holding key and value, keeping their memory
// when they are one allocation with the value right after the key, as a
// decoder can lay them out; otherwise it copies them.
func newEntryOf(key string, value []byte) *entry {
	if len(key) == 0 || len(value) == 0 || cap(value) != len(value) ||
		uintptr(unsafe.Pointer(unsafe.StringData(key)))+uintptr(len(key)) != uintptr(unsafe.Pointer(unsafe.SliceData(value))) {
		return newEntry(key, value)
	}
	return &entry{kv: unsafe.Pointer(unsafe.StringData(key)), klen: uint32(len(key)), vlen: uint32(len(value))}
}

// setValue replaces the value. The old bytes are left as they were, since
// items handed out earlier may still refer to them.
func (e *entry) setValue(value []byte) { e.store(e.key(), value) }

func (e *entry) store(key string, value []byte) {
	buf := make([]byte, len(key)+len(value))
	copy(buf, key)
	copy(buf[len(key):], value)
	e.kv, e.vlen = unsafe.Pointer(unsafe.SliceData(buf)), uint32(len(value))
}

// key returns the key, sharing the entry's memory.
func (e *entry) key() string { return unsafe.String((*byte)(e.kv), e.klen) }

// value returns the value, sharing the entry's memory, with its capacity
// cut to its length so an append by a caller copies instead of writing
// past it.
func (e *entry) value() []byte {
	// Sliced from the whole allocation rather than built from a pointer
	// past the key, which for an empty value would point past the end of
	// the allocation (the race detector's checkptr catches that).
	all := unsafe.Slice((*byte)(e.kv), int(e.klen)+int(e.vlen))
	return all[e.klen:len(all):len(all)]
}

// setProbe makes e a search key for key: only the key is set, pointing at
// key's own bytes, so a probe must never be stored. "" clears it.
func (e *entry) setProbe(key string) {
	e.kv, e.klen = unsafe.Pointer(unsafe.StringData(key)), uint32(len(key))
}

func (e *entry) item() Item {
	it := Item{Key: e.key(), Value: e.value(), Expires: e.expires, Version: e.version}
	if e.owner != nil {
		it.Owner = *e.owner
	}
	return it
}

// ownerOf returns the stored form of an owner: nil for none.
func ownerOf(o Owner) *Owner {
	if o == "" {
		return nil
	}
	p := new(Owner) // only here, so an unowned write does not allocate
	*p = o
	return p
}

// probes are throwaway entries for tree searches; pooling them keeps a
// search from allocating, since the tree's comparison function makes any
// search key escape.
var probes = sync.Pool{New: func() any { return new(entry) }}

func (e *entry) live(now int64) bool { return e.expires == 0 || e.expires > now }

func entryLess(a, b *entry) bool { return a.key() < b.key() }
