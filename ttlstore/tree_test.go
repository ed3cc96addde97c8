package ttlstore

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// BenchmarkBuildTrees1M times building the ordered index of 1,000,000
// restored keys (32-byte random keys), which the server does in the
// background after start-up, and reports the memory the trees take per
// key (heap growth across the build, after collection). The other two
// cases build the same trees by plain inserts, for comparison: in random
// order, as keys arrive over HTTP or as loading once did, and in one
// ascending pass.
func BenchmarkBuildTrees1M(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]string, 1_000_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
	}
	value := []byte("0123456789abcdef0123456789abcdef")
	insertAll := func(s *Store, order func([]*entry)) {
		for i := range s.shards {
			sh := &s.shards[i]
			var all []*entry
			for _, e := range sh.index.buckets {
				for ; e != nil; e = e.next {
					all = append(all, e)
				}
			}
			order(all)
			t := newTree()
			for _, e := range all {
				t.ReplaceOrInsert(e)
			}
			sh.tree, sh.untreed = t, false
		}
	}
	cases := []struct {
		name  string
		build func(s *Store)
	}{
		{"BuildTrees", func(s *Store) { s.BuildTrees() }},
		{"random-inserts", func(s *Store) {
			insertAll(s, func(es []*entry) {
				rng.Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
			})
		}},
		{"one-ascending-pass", func(s *Store) {
			insertAll(s, func(es []*entry) {
				slices.SortFunc(es, func(a, b *entry) int { return strings.Compare(a.key(), b.key()) })
			})
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var treeBytes float64
			for b.Loop() {
				b.StopTimer()
				s := New(Options{})
				for i, k := range keys {
					s.Restore(Item{Key: k, Value: value, Version: uint64(i + 1)})
				}
				before := heapAfterGC()
				b.StartTimer()
				c.build(s)
				b.StopTimer()
				treeBytes = float64(heapAfterGC()-before) / float64(len(keys))
				runtime.KeepAlive(s)
				b.StartTimer()
			}
			b.ReportMetric(treeBytes, "tree-B/key")
		})
	}
}

func heapAfterGC() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
