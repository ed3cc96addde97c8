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
