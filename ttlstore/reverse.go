package ttlstore

import "container/heap"

// RangeReverse returns up to limit live items with start <= key < end, in
// descending byte order of keys: the last items of the range, as a
// reverse listing (a Deno KV list with reverse set) reads them. An empty
// end means no upper bound. It shows transactions whole, as Range does.
func (s *Store) RangeReverse(start, end string, limit int) []Item {
	if limit <= 0 {
		return nil
	}
	s.txMu.RLock()
	defer s.txMu.RUnlock()
	now := s.now().UnixNano()
	n := len(s.shards)
	first := min(rangeBatch, limit/n+2)
	cursors := make([]revCursor, n)
	h := make(revHeap, 0, n)
	for i := range s.shards {
		c := &cursors[i]
		c.sh, c.start, c.below, c.bounded, c.batch = &s.shards[i], start, end, end != "", first
		if c.fill(now) {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	out := make([]Item, 0, min(limit, 1024))
	for len(h) > 0 && len(out) < limit {
		c := h[0]
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

// revCursor walks one shard's ordered index downwards in batches.
type revCursor struct {
	sh      *shard
	start   string // lowest key, inclusive
	below   string // next batch holds keys below this one
	bounded bool   // below is set; otherwise start from the top
	items   []Item
	pos     int
	done    bool
	batch   int
	pivot   entry
}

func (c *revCursor) fill(now int64) bool {
	if c.done {
		return false
	}
	c.items, c.pos = c.items[:0], 0
	var last string
	more := false
	visit := func(e *entry) bool {
		k := e.key()
		if c.bounded && k >= c.below {
			return true // the bound itself is excluded
		}
		if k < c.start {
			return false
		}
		if len(c.items) == c.batch {
			more = true
			return false
		}
		last = k
		if e.live(now) {
			c.items = append(c.items, e.item())
		}
		return true
	}
	c.sh.rlockTreed()
	if c.bounded {
		c.pivot.setProbe(c.below)
		c.sh.tree.DescendLessOrEqual(&c.pivot, visit)
	} else {
		c.sh.tree.Descend(visit)
	}
	c.sh.mu.RUnlock()
	c.batch = rangeBatch
	if more {
		c.below, c.bounded = last, true
	} else {
		c.done = true
	}
	return len(c.items) > 0
}

type revHeap []*revCursor

func (h revHeap) Len() int { return len(h) }
func (h revHeap) Less(i, j int) bool {
	return h[i].items[h[i].pos].Key > h[j].items[h[j].pos].Key
}
func (h revHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *revHeap) Push(x any)   { *h = append(*h, x.(*revCursor)) }
func (h *revHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}
