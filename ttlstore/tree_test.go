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

// TestPendingEntriesReachTheTree creates and deletes keys in one shard in
// random order, so that deletes hit both entries still pending and entries
// already in the tree, and checks after each step that the tree and the
// pending batch together hold exactly the index's entries, and that Range
// lists exactly the keys a map says are live, in order.
func TestPendingEntriesReachTheTree(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	s := New(Options{Shards: 1})
	sh := &s.shards[0]
	live := map[string]bool{}
	check := func(step int) {
		t.Helper()
		inIndex := map[*entry]bool{}
		for _, e := range sh.index.buckets {
			for ; e != nil; e = e.next {
				inIndex[e] = true
			}
		}
		if len(sh.pending) >= pendingMax {
			t.Fatalf("step %d: %d entries pending, the batch is %d", step, len(sh.pending), pendingMax)
		}
		seen := map[*entry]bool{}
		sh.tree.Ascend(func(e *entry) bool {
			seen[e] = true
			return true
		})
		for _, e := range sh.pending {
			if seen[e] {
				t.Fatalf("step %d: %q is both pending and in the tree", step, e.key())
			}
			seen[e] = true
		}
		if len(seen) != len(inIndex) {
			t.Fatalf("step %d: tree and pending hold %d entries, the index %d", step, len(seen), len(inIndex))
		}
		for e := range inIndex {
			if !seen[e] {
				t.Fatalf("step %d: %q is in the index only", step, e.key())
			}
		}
	}
	checkRange := func(step int) {
		t.Helper()
		var want []string
		for k := range live {
			want = append(want, k)
		}
		slices.Sort(want)
		var got []string
		for _, it := range s.Range("", "", len(live)+1) {
			got = append(got, it.Key)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: Range lists %d keys, want %d", step, len(got), len(want))
		}
		if len(sh.pending) != 0 {
			t.Fatalf("step %d: %d entries still pending after a Range", step, len(sh.pending))
		}
	}
	var keys []string
	created := 0
	for step := range 10_000 {
		// Ranges are rare, so that pending batches also fill up and are
		// inserted by the create that fills them.
		switch r := rng.IntN(1000); {
		case step%2500 == 2499:
			checkRange(step)
		case r < 650 || len(keys) == 0:
			k := fmt.Sprintf("k%06d", rng.IntN(1_000_000))
			if _, err := s.Set(k, Write{Value: []byte("v")}); err != nil {
				t.Fatal(err)
			}
			if !live[k] {
				keys = append(keys, k)
				created++
			}
			live[k] = true
		default:
			i := rng.IntN(len(keys))
			k := keys[i]
			keys[i] = keys[len(keys)-1]
			keys = keys[:len(keys)-1]
			if _, err := s.Delete(k, ""); err != nil {
				t.Fatalf("step %d: delete %q: %v", step, k, err)
			}
			delete(live, k)
		}
		if step%25 == 0 || len(sh.pending) == pendingMax-1 {
			check(step)
		}
	}
	check(-1)
	checkRange(-1)
	if created < 4*pendingMax {
		t.Fatalf("only %d creates: too few to fill a pending batch", created)
	}
}
