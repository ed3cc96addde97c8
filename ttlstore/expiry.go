package ttlstore

// expiryHeap is a min-heap of entries by expiry, so the reaper and a full
// store find expired entries without scanning live ones. Entries that never
// expire are not in it. Each entry records its index so that a TTL refresh
// is one O(log n) fix rather than a search.
type expiryHeap []*entry

// setExpiry gives e a new expiry and moves it in, out of, or within the heap.
// An expiry of 0 removes it from the heap.
func (sh *shard) setExpiry(e *entry, expires int64) {
	h := &sh.exp
	e.expires = expires
	switch {
	case e.heapIdx < 0 && expires != 0:
		e.heapIdx = len(*h)
		*h = append(*h, e)
		h.up(e.heapIdx)
	case e.heapIdx >= 0 && expires == 0:
		h.remove(e.heapIdx)
	case e.heapIdx >= 0:
		if !h.down(e.heapIdx) {
			h.up(e.heapIdx)
		}
	}
}

func (h expiryHeap) less(i, j int) bool { return h[i].expires < h[j].expires }

func (h expiryHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}

func (h expiryHeap) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		j = i
	}
}

// down sifts element i0 down and reports whether it moved.
func (h expiryHeap) down(i0 int) bool {
	i, n := i0, len(h)
	for {
		j := 2*i + 1
		if j >= n {
			break
		}
		if r := j + 1; r < n && h.less(r, j) {
			j = r
		}
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > i0
}

func (h *expiryHeap) remove(i int) {
	old := *h
	n := len(old) - 1
	e := old[i]
	if i != n {
		old.swap(i, n)
	}
	old[n] = nil
	*h = old[:n]
	if i != n {
		if !h.down(i) {
			h.up(i)
		}
	}
	e.heapIdx = -1
}
