package persist

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// BenchmarkRecover1M measures start-up: loading a snapshot of 1,000,000
// keys (32-byte keys, 200-byte values) plus a journal of 100,000 records
// into an empty store. Issue target: under 2 s. Two key shapes: random
// hex, and zero-padded counters whose long shared prefix is the worst case
// for the ordered index's comparisons.
func BenchmarkRecover1M(b *testing.B) {
	b.Run("random-keys", func(b *testing.B) {
		benchRecover(b, func(i int) string { return fmt.Sprintf("%016x%016x", rand.Uint64(), uint64(i)) })
	})
	b.Run("padded-counter-keys", func(b *testing.B) {
		benchRecover(b, func(i int) string { return fmt.Sprintf("key-%028d", i) })
	})
}

func benchRecover(b *testing.B, keyOf func(int) string) {
	dir := b.TempDir()
	path := filepath.Join(dir, "rendezvous.db")
	src := ttlstore.New(ttlstore.Options{})
	value := make([]byte, 200)
	exp := time.Now().Add(time.Hour).UnixNano()
	keys := make([]string, 1_000_000)
	for i := range keys {
		keys[i] = keyOf(i)
		src.Set(keys[i], ttlstore.Write{Value: value, Expires: exp})
	}
	if _, err := WriteFileVersion(path, src.Version(), src.Snapshot); err != nil {
		b.Fatal(err)
	}
	j, err := OpenJournal(path, SyncNo)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 100_000 {
		it := ttlstore.Item{Key: keys[i*7], Value: value, Expires: exp, Version: src.Version() + uint64(i) + 1}
		if err := j.Append(ttlstore.Change{Op: ttlstore.OpSet, Item: it}); err != nil {
			b.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		dst := ttlstore.New(ttlstore.Options{})
		st, err := Recover(path, dst, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		if st.SnapshotKeys != 1_000_000 || st.JournalRecords != 100_000 || dst.Len() != 1_000_000 {
			b.Fatalf("recovered %+v, %d keys", st, dst.Len())
		}
	}
}
