package ttlstore

import "hash/maphash"

// index finds a shard's entries by key: a power-of-two array of buckets,
// each a chain through entry.next. It doubles when it holds more entries
// than buckets, so chains stay about one entry long and a lookup follows
// two or three pointers where the B-tree follows twenty. It costs the
// bucket array, 8 to 16 bytes per key; the chain link lives in the
// entry's spare room. The caller holds the shard's lock.
type index struct {
	buckets []*entry
	n       int
}

// bucket picks a bucket from the hash's high bits; the shard was picked
// by its low ones.
func (x *index) bucket(h uint64) int { return int(h>>32) & (len(x.buckets) - 1) }

func (x *index) find(key string, h uint64) *entry {
	if x.n == 0 {
		return nil
	}
	for e := x.buckets[x.bucket(h)]; e != nil; e = e.next {
		if e.key() == key {
			return e
		}
	}
	return nil
}

// add links e, whose key is absent, under hash h. seed rehashes the
// entries when the array grows.
func (x *index) add(e *entry, h uint64, seed maphash.Seed) {
	if x.n >= len(x.buckets) {
		x.grow(seed)
	}
	b := x.bucket(h)
	e.next = x.buckets[b]
	x.buckets[b] = e
	x.n++
}

// remove unlinks e, stored under hash h.
func (x *index) remove(e *entry, h uint64) {
	if x.n == 0 {
		return
	}
	for p := &x.buckets[x.bucket(h)]; *p != nil; p = &(*p).next {
		if *p == e {
			*p = e.next
			e.next = nil
			x.n--
			return
		}
	}
}

// replace puts e, with the same key, in old's place under hash h.
func (x *index) replace(old, e *entry, h uint64) {
	for p := &x.buckets[x.bucket(h)]; *p != nil; p = &(*p).next {
		if *p == old {
			e.next, old.next = old.next, nil
			*p = e
			return
		}
	}
}

func (x *index) grow(seed maphash.Seed) {
	old := x.buckets
	x.buckets = make([]*entry, max(8, 2*len(old)))
	for _, e := range old {
		for e != nil {
			next := e.next
			b := x.bucket(maphash.String(seed, e.key()))
			e.next = x.buckets[b]
			x.buckets[b] = e
			e = next
		}
	}
}
