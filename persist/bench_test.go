package persist

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// benchItems mimics a full store of small entries: 32-byte keys, 200-byte
// values, a mix of owners and expiries.
func benchItems() []ttlstore.Item {
	items := make([]ttlstore.Item, 100_000)
	value := bytes.Repeat([]byte("v"), 200)
	for i := range items {
		items[i] = ttlstore.Item{
			Key:     fmt.Sprintf("%032d", i),
			Value:   value,
			Version: uint64(i + 1),
		}
		if i%2 == 0 {
			items[i].Expires = 1_800_000_000_000_000_000 + int64(i)
		}
		if i%4 == 0 {
			items[i].Owner = owner("bench")
		}
	}
	return items
}

func BenchmarkEncode(b *testing.B) {
	items := benchItems()
	size := int64(len(encode(b, items)))
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Encode(io.Discard, iterateOver(items)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	data := encode(b, benchItems())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Decode(bytes.NewReader(data), func(ttlstore.Item) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
