package policy

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// tupleFixture is a store holding string keys and tuple keys, and the
// tuple encodings of all of them, sorted: the model a read must match.
func tupleFixture(t testing.TB) (*Service, [][]byte) {
	store := ttlstore.New(ttlstore.Options{})
	s := New(store, nil, Config{MaxKeySize: 100, MaxValueSize: 1000, MaxTTL: time.Hour, CostRead: 1, CostWrite: 1}, nil)
	var all [][]byte
	for _, k := range []string{"a", "a/b", "ab", "b", "mesh42/node-a", "z", "é", "~"} {
		if _, err := store.Set(k, kv.Write{Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
		all = append(all, tupleOf(k))
	}
	for _, tuple := range [][]byte{
		{0x01, 0x00}, {0x02, 0x00}, {0x02, 'a', 0x00, 0x02, 'x', 0x00}, {0x02, 'a', 0x00, 0xff, 0x00},
		{0x02, 'a', 0x00, 0x15, 0x01}, {0x02, 'a', 0x0a, 0x00}, {0x02, 'b', 0x00, 0x14}, {0x14}, {0x21, 0x80, 0, 0, 0, 0, 0, 0, 0}, {0x26}, {0x27},
	} {
		if _, err := store.Set(TupleSpace+string(tuple), kv.Write{Value: []byte{byte(EncodingBytes), 'v'}}); err != nil {
			t.Fatal(err)
		}
		all = append(all, tuple)
	}
	slices.SortFunc(all, bytes.Compare)
	return s, all
}

// checkRange compares a read of [start, end) with the model.
func checkRange(t *testing.T, s *Service, all [][]byte, start, end []byte, limit int, reverse bool) {
	t.Helper()
	var want [][]byte
	for _, k := range all {
		if bytes.Compare(k, start) >= 0 && bytes.Compare(k, end) < 0 {
			want = append(want, k)
		}
	}
	if reverse {
		slices.Reverse(want)
	}
	want = want[:min(len(want), limit)]
	var got [][]byte
	es, err := s.readRange(TupleRange{Start: start, End: end, Limit: limit, Reverse: reverse}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		got = append(got, e.Key)
	}
	if len(got) != len(want) {
		t.Fatalf("range [%q, %q) limit %d reverse %v: got %q, want %q", start, end, limit, reverse, got, want)
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("range [%q, %q) limit %d reverse %v: got %q, want %q", start, end, limit, reverse, got, want)
		}
	}
}

// Reads over shared string keys and tuple keys return exactly the keys in
// range, in Deno's order (the byte order of the encodings), both ways.
func TestTupleRangesMatchTheModel(t *testing.T) {
	s, all := tupleFixture(t)
	bounds := append([][]byte{{}, {0x00}, {0x02}, {0x02, 'a'}, {0x02, 'a', 0x00, 0x00}, {0x02, 'a', 0x00, 0xff}, {0x03}, {0xff}, {0xff, 0xff}}, all...)
	for _, k := range all {
		bounds = append(bounds, append(slices.Clone(k), 0x00), append(slices.Clone(k), 0xff))
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 3000 {
		start, end := bounds[r.IntN(len(bounds))], bounds[r.IntN(len(bounds))]
		checkRange(t, s, all, start, end, 1+r.IntN(25), r.IntN(2) == 0)
	}
}

// FuzzTupleRange reads arbitrary ranges: never a panic, always the model.
func FuzzTupleRange(f *testing.F) {
	f.Add([]byte{0x02, 'a'}, []byte{0x02, 'b', 0x00}, uint8(5), false)
	f.Add([]byte{}, []byte{0xff}, uint8(30), true)
	f.Add([]byte{0x02, 'a', 0x00, 0x00}, []byte{0x02, 'a', 0x00, 0xff}, uint8(3), true)
	s, all := tupleFixture(f)
	f.Fuzz(func(t *testing.T, start, end []byte, limit uint8, reverse bool) {
		checkRange(t, s, all, start, end, int(limit)+1, reverse)
	})
}
