package ttlstore

import (
	"container/heap"
	"slices"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// Snapshot calls fn for every live item, one shard at a time. Each shard is
// copied under its read lock and fn runs with no lock held, so a slow
// consumer (encoding, disk writes) never stalls requests. Items within one
// shard are a consistent cut of single-key writes; shards are visited in
// turn. It stops at the first error fn returns.
//
// Transactions (Commit) are seen whole: every one committed before
// Snapshot started and none committed after. A commit while a snapshot
// runs leaves the snapshot the state before it of each key it changes in
// a shard not yet copied, so a key that a transaction changed during the
// snapshot is shown as it was just before the first such transaction.
// That keeps commits from waiting for the whole snapshot, which for a
// million keys takes a second of encoding and writing: a commit waits at
// most for one shard's copy, and a snapshot's memory grows only by the
// keys that commits change while it runs.
func (s *Store) Snapshot(fn func(Item) error) error {
	cut := &snapCut{}
	s.txMu.Lock()
	s.cuts = append(s.cuts, cut)
	s.txMu.Unlock()
	defer func() {
		s.txMu.Lock()
		s.cuts = slices.DeleteFunc(s.cuts, func(c *snapCut) bool { return c == cut })
		s.txMu.Unlock()
	}()
	var buf []Item
	for i := range s.shards {
		sh := &s.shards[i]
		now := s.now().UnixNano()
		buf = buf[:0]
		s.txMu.RLock()
		sh.rlockTreed()
		buf = slices.Grow(buf, sh.tree.Len())
		sh.tree.Ascend(func(e *entry) bool {
			if e.live(now) {
				buf = append(buf, e.item())
			}
			return true
		})
		sh.mu.RUnlock()
		buf = cut.substitute(i, buf, now)
		cut.next = i + 1
		s.txMu.RUnlock()
		for _, it := range buf {
			if err := fn(it); err != nil {
				return err
			}
		}
		clear(buf) // drop references to values so they can be collected
	}
	return nil
}

// Restore inserts it as loaded from disk, bypassing owner checks, the
// capacity cap and OnChange. An item replaces an existing one only when its
// version is higher, so a journal replayed on top of a newer snapshot
// leaves the newer entries alone. (Replay must still be in journal order:
// deletes leave no tombstone, so a delete replayed before an older set of
// the same key would not shadow it.) Expired
// items are inserted too, because they still shadow older versions of the
// key that a journal may replay after them; Reap removes them. The version
// counter moves past every restored version, so versions never repeat
// after a restart. Restore may keep it.Key's and it.Value's memory rather
// than copy it (it does when the value follows the key in one allocation,
// as persist's decoder lays them out), so the caller must not change them.
// Restore is for bulk loading: it fills only the hash index, and the
// shards it touches build their ordered index later (see BuildTrees).
func (s *Store) Restore(it Item) {
	if it.Version > s.version.Load() {
		s.AdvanceVersion(it.Version)
	}
	sh, h := s.shardFor(it.Key)
	e := newEntryOf(it.Key, it.Value)
	e.expires, e.owner, e.version = it.Expires, ownerOf(it.Owner), it.Version
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !sh.untreed {
		// The index holds every entry, so the tree can be dropped and
		// rebuilt from it.
		sh.untreed, sh.tree, sh.pending = true, nil, nil
	}
	old := sh.index.find(it.Key, h)
	switch {
	case old == nil:
		sh.index.add(e, h, s.seed)
		s.count.Add(1)
		s.bytes.Add(int64(len(it.Key) + len(it.Value)))
	case old.version < it.Version:
		sh.index.replace(old, e, h)
		s.bytes.Add(int64(len(it.Value)) - int64(old.vlen))
	}
}

// AdvanceVersion moves the version counter up to at least v, so the next
// mutation gets a version above v. A loaded snapshot calls it with the
// counter it recorded.
func (s *Store) AdvanceVersion(v uint64) {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	for {
		cur := s.version.Load()
		if v <= cur || s.version.CompareAndSwap(cur, v) {
			return
		}
	}
}

// rangeBatch is how many items one shard hands the merge at a time: small,
// since a page is spread over all shards, and refilled on demand.
const rangeBatch = 16

// Range returns up to limit live items with start <= key < end, in byte
// order of keys. An empty end means no upper bound. Each shard is searched
// through its ordered index and read in small batches merged by key, so
// the cost depends on limit and the shard count, not on the store size.
// A page shows each transaction whole or not at all: it waits for a
// commit in progress, and a commit waits for the pages being read.
func (s *Store) Range(start, end string, limit int) []Item {
	return s.page(start, end, limit, false)
}

// RangeReverse returns up to limit live items with start <= key < end, in
// descending byte order of keys: the last items of the range, as a
// reverse listing (a Deno KV list with reverse set) reads them. An empty
// end means no upper bound. It shows transactions whole, as Range does.
func (s *Store) RangeReverse(start, end string, limit int) []Item {
	return s.page(start, end, limit, true)
}

// page is Range, or RangeReverse when desc is set.
func (s *Store) page(start, end string, limit int, desc bool) []Item {
	if limit <= 0 {
		return nil
	}
	s.txMu.RLock()
	defer s.txMu.RUnlock()
	now := s.now().UnixNano()
	// The first batch of each shard is sized for limit spread evenly over
	// the shards, and all cursors and first batches come from two
	// allocations: a page touches every shard, so per-shard allocations
	// and over-reading dominated the cost. A shard that runs out refills
	// with rangeBatch.
	n := len(s.shards)
	first := min(rangeBatch, limit/n+2)
	cursors := make([]cursor, n)
	slab := make([]Item, n*first)
	h := cursorHeap{desc: desc, cs: make([]*cursor, 0, n)}
	for i := range s.shards {
		c := &cursors[i]
		c.sh, c.lo, c.hi, c.desc, c.batch = &s.shards[i], start, end, desc, first
		c.items = slab[i*first : i*first : (i+1)*first]
		if c.fill(now) {
			h.cs = append(h.cs, c)
		}
	}
	heap.Init(&h)
	out := make([]Item, 0, min(limit, 1024))
	for len(h.cs) > 0 && len(out) < limit {
		c := h.cs[0]
		out = append(out, c.items[c.pos])
		c.pos++
		if c.pos < len(c.items) || c.fill(now) {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	return out
}

// cursor walks one shard's ordered index in batches, upwards from lo or
// (desc) downwards from hi; each fill narrows [lo, hi) past what it read.
type cursor struct {
	sh    *shard
	lo    string // lowest key, inclusive
	hi    string // key bound, exclusive; "" for none
	desc  bool
	items []Item
	pos   int
	done  bool
	batch int   // items to read in the next fill
	pivot entry // search key for the next fill, kept here to save an allocation
}

// fill loads the next batch and reports whether it has any items.
func (c *cursor) fill(now int64) bool {
	if c.done {
		return false
	}
	c.items, c.pos = c.items[:0], 0
	var next string // where the next batch starts, when more is set
	more := false
	take := func(e *entry) bool {
		if len(c.items) == c.batch {
			more = true
			return false
		}
		if e.live(now) {
			c.items = append(c.items, e.item())
		}
		return true
	}
	c.sh.rlockTreed()
	switch {
	case !c.desc:
		c.pivot.setProbe(c.lo)
		c.sh.tree.AscendGreaterOrEqual(&c.pivot, func(e *entry) bool {
			if c.hi != "" && e.key() >= c.hi {
				return false
			}
			next = e.key() // the first key not taken, if take stops here
			return take(e)
		})
	default:
		visit := func(e *entry) bool {
			k := e.key()
			if c.hi != "" && k >= c.hi {
				return true // the bound itself is excluded
			}
			if k < c.lo {
				return false
			}
			if !take(e) {
				return false
			}
			next = k // the last key taken: the next batch's exclusive bound
			return true
		}
		if c.hi != "" {
			c.pivot.setProbe(c.hi)
			c.sh.tree.DescendLessOrEqual(&c.pivot, visit)
		} else {
			c.sh.tree.Descend(visit)
		}
	}
	c.sh.mu.RUnlock()
	c.batch = rangeBatch
	switch {
	case !more:
		c.done = true
	case c.desc:
		c.hi = next
	default:
		c.lo = next
	}
	// more is only set once a batch is full, so an empty batch means done.
	return len(c.items) > 0
}

// cursorHeap orders the cursors of a page by their next item's key,
// descending when desc is set.
type cursorHeap struct {
	desc bool
	cs   []*cursor
}

func (h *cursorHeap) Len() int { return len(h.cs) }
func (h *cursorHeap) Less(i, j int) bool {
	a, b := h.cs[i].items[h.cs[i].pos].Key, h.cs[j].items[h.cs[j].pos].Key
	if h.desc {
		return a > b
	}
	return a < b
}
func (h *cursorHeap) Swap(i, j int) { h.cs[i], h.cs[j] = h.cs[j], h.cs[i] }
func (h *cursorHeap) Push(x any)    { h.cs = append(h.cs, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	c := h.cs[len(h.cs)-1]
	h.cs = h.cs[:len(h.cs)-1]
	return c
}

// RestoreDelete replays a deletion loaded from disk: the entry under key is
// removed only when its version is lower than version, so a replayed delete
// never removes a newer write. Like Restore it bypasses OnChange.
func (s *Store) RestoreDelete(key string, version uint64) {
	if version > s.version.Load() {
		s.AdvanceVersion(version)
	}
	sh, h := s.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.find(key, h)
	if e == nil || e.version >= version {
		return
	}
	s.dropLocked(sh, e)
}

// PrefixEnd returns the smallest key greater than every key that starts
// with prefix, for use as Range's end; "" (unbounded) when there is none.
//
// Deprecated: use kv.PrefixEnd.
func PrefixEnd(prefix string) string { return kv.PrefixEnd(prefix) }

// RestoresConcurrently reports that Restore and RestoreDelete may be called
// from several goroutines at once: each takes its key's shard lock, so
// only calls for the same key need to come in order.
func (s *Store) RestoresConcurrently() bool { return true }
