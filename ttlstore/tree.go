package ttlstore

import (
	"cmp"
	"encoding/binary"
	"slices"
	"strings"

	"github.com/google/btree"
)

// treeDegree is the B-tree's degree: nodes hold 31 to 63 entries.
const treeDegree = 32

func newTree() *btree.BTreeG[*entry] { return btree.NewG(treeDegree, entryLess) }

// sortable is an entry with its key's first eight bytes, so that sorting
// compares integers held in the slice and reaches the key's memory only
// to break a tie.
type sortable struct {
	prefix uint64
	e      *entry
}

// keyPrefix returns key's first eight bytes as a big-endian integer, zero
// padded, which orders as the bytes do; keys that differ only after their
// eighth byte, or in trailing zero bytes, tie and are compared in full.
func keyPrefix(key string) uint64 {
	var b [8]byte
	copy(b[:], key)
	return binary.BigEndian.Uint64(b[:])
}

// buildTreeLocked gives an untreed shard its ordered index, from the hash
// index, which holds every entry. The caller holds sh.mu for writing.
//
// The entries are sorted first, then inserted in two ascending passes:
// every other entry, then the rest. Ascending inserts compare a key only
// with keys just inserted, which are still in cache, where random inserts
// miss on nearly every comparison. One ascending pass would leave every
// node that splits half full, since the B-tree splits a full node in the
// middle and nothing lands left of the split again; the second pass fills
// the first pass's half-full leaves to about 62 of 63, denser than random
// insertion leaves them.
func (sh *shard) buildTreeLocked() {
	if !sh.untreed {
		return
	}
	all := make([]sortable, 0, sh.index.n)
	for _, e := range sh.index.buckets {
		for ; e != nil; e = e.next {
			all = append(all, sortable{keyPrefix(e.key()), e})
		}
	}
	slices.SortFunc(all, func(a, b sortable) int {
		if c := cmp.Compare(a.prefix, b.prefix); c != 0 {
			return c
		}
		return strings.Compare(a.e.key(), b.e.key())
	})
	t := newTree()
	for i := 0; i < len(all); i += 2 {
		t.ReplaceOrInsert(all[i].e)
	}
	for i := 1; i < len(all); i += 2 {
		t.ReplaceOrInsert(all[i].e)
	}
	sh.tree, sh.untreed = t, false
}

// pendingMax is how many created entries a shard holds back from its tree
// before inserting them as one sorted batch. The larger the batch, the
// more of each insert's comparisons hit keys a neighbour's insert just
// read (BenchmarkSetNewShuffled, 1M keys, in one session: 3.8 to 4.2 µs
// per create with one insert each; 3.3 to 4.5 with batches of 64, 2.3 to
// 2.5 with 512, 1.9 with 1024); but a batch is inserted under the shard's
// write lock, by the create that fills it or by the next reader of the
// tree, so it is kept to about half a millisecond of work.
const pendingMax = 512

// syncTreeLocked brings sh's tree up to date with its index: it builds an
// untreed shard's tree, or inserts the pending entries. The caller holds
// sh.mu for writing.
func (sh *shard) syncTreeLocked() {
	if sh.untreed {
		sh.buildTreeLocked()
		return
	}
	if len(sh.pending) == 0 {
		return
	}
	slices.SortFunc(sh.pending, func(a, b *entry) int { return strings.Compare(a.key(), b.key()) })
	for _, e := range sh.pending {
		sh.tree.ReplaceOrInsert(e)
	}
	clear(sh.pending) // the entries may be dropped later; do not pin them
	sh.pending = sh.pending[:0]
}

// untree takes e out of sh's ordered index: out of the tree, or, when it
// is not there, out of the pending entries.
func (sh *shard) untree(e *entry) {
	if _, found := sh.tree.Delete(e); found {
		return
	}
	for i, p := range sh.pending {
		if p == e {
			last := len(sh.pending) - 1
			sh.pending[i] = sh.pending[last]
			sh.pending[last] = nil
			sh.pending = sh.pending[:last]
			return
		}
	}
}
