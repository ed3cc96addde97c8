package ttlstore

import (
	"fmt"
	"hash/maphash"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEntryFitsItsSizeClass guards the memory per key: an entry is one
// 48-byte allocation (see entry).
func TestEntryFitsItsSizeClass(t *testing.T) {
	assert.Equal(t, uintptr(48), unsafe.Sizeof(entry{}))
}

func TestEntryKeyAndValue(t *testing.T) {
	key := "k/1"
	value := []byte("value")
	e := newEntry(key, value)
	value[0] = 'X' // the entry holds copies
	assert.Equal(t, "k/1", e.key())
	assert.Equal(t, "value", string(e.value()))

	before := e.value()
	e.setValue([]byte("longer value"))
	assert.Equal(t, "k/1", e.key())
	assert.Equal(t, "longer value", string(e.value()))
	assert.Equal(t, "value", string(before), "a value handed out earlier does not change")

	v := e.value()
	_ = append(v, '!') // must not write into the entry's memory
	assert.Equal(t, "longer value", string(e.value()))

	empty := newEntry("", nil)
	assert.Equal(t, "", empty.key())
	assert.Empty(t, empty.value())
}

// TestIndex adds, finds and removes enough keys for the bucket array to
// grow several times and for chains to form, checking every key after
// each step.
func TestIndex(t *testing.T) {
	seed := maphash.MakeSeed()
	var x index
	entries := make(map[string]*entry)
	hash := func(k string) uint64 { return maphash.String(seed, k) }
	for i := range 1000 {
		k := fmt.Sprintf("key-%d", i)
		e := newEntry(k, nil)
		x.add(e, hash(k), seed)
		entries[k] = e
	}
	require.Equal(t, 1000, x.n)
	assert.GreaterOrEqual(t, len(x.buckets), 1000)
	for k, e := range entries {
		require.Same(t, e, x.find(k, hash(k)), k)
	}
	assert.Nil(t, x.find("absent", hash("absent")))

	for i := 0; i < 1000; i += 2 {
		k := fmt.Sprintf("key-%d", i)
		x.remove(entries[k], hash(k))
	}
	x.remove(newEntry("never added", nil), hash("never added")) // a no-op
	require.Equal(t, 500, x.n)
	for i := range 1000 {
		k := fmt.Sprintf("key-%d", i)
		if i%2 == 0 {
			assert.Nil(t, x.find(k, hash(k)), k)
		} else {
			assert.Same(t, entries[k], x.find(k, hash(k)), k)
		}
	}
}

// TestNewEntryOfAdoptsOneAllocation: a key and value laid out as one
// allocation are kept as they are; anything else is copied.
func TestNewEntryOfAdoptsOneAllocation(t *testing.T) {
	buf := []byte("keyvalue")
	key := unsafe.String(&buf[0], 3)
	e := newEntryOf(key, buf[3:len(buf):len(buf)])
	assert.Equal(t, unsafe.Pointer(&buf[0]), e.kv, "kept, not copied")
	assert.Equal(t, "key", e.key())
	assert.Equal(t, "value", string(e.value()))

	for name, v := range map[string][]byte{
		"separate":  []byte("value"),
		"spare cap": buf[3:5],
		"empty":     buf[3:3:3],
		"not after": buf[4:len(buf):len(buf)],
	} {
		e := newEntryOf(key, v)
		assert.NotEqual(t, unsafe.Pointer(&buf[0]), e.kv, name)
		assert.Equal(t, "key", e.key(), name)
		assert.Equal(t, string(v), string(e.value()), name)
	}
}

// TestRestoreThenBuildTrees: keys loaded with Restore are found before
// their shards have trees; writes and deletes made then are in the trees
// built later, whether BuildTrees, a range scan or the reaper builds them;
// and the trees hold every key in byte order, including keys that tie on
// their first eight bytes.
func TestRestoreThenBuildTrees(t *testing.T) {
	keys := []string{"", "a", "a\x00", "a\x00\x00", "\xff\xff\xff\xff\xff\xff\xff\xff\x00", "\xff\xff\xff\xff\xff\xff\xff\xff"}
	for i := range 500 {
		keys = append(keys, fmt.Sprintf("k%03d", i), fmt.Sprintf("shared-prefix-%03d", i))
	}
	build := map[string]func(s *Store){
		"BuildTrees": func(s *Store) { s.BuildTrees() },
		"Range":      func(s *Store) { s.Range("", "", 1) },
		"Reap":       func(s *Store) { s.Reap(time.Unix(0, 0), 1) },
		"Snapshot":   func(s *Store) { _ = s.Snapshot(func(Item) error { return nil }) },
	}
	for name, buildFn := range build {
		t.Run(name, func(t *testing.T) {
			s := New(Options{Shards: 4})
			for i, k := range keys {
				s.Restore(Item{Key: k, Value: []byte{1}, Version: uint64(i + 1)})
			}
			// A journal's later record replaces; an older one does not.
			s.Restore(Item{Key: "k001", Value: []byte("new"), Version: 10_000})
			s.Restore(Item{Key: "k001", Value: []byte("old"), Version: 2})
			_, err := s.Set("before", Write{Value: []byte("b")})
			require.NoError(t, err)
			_, err = s.Delete("k000", "")
			require.NoError(t, err)
			for i := range s.shards {
				assert.True(t, s.shards[i].untreed, "shard %d", i)
			}
			it, ok := s.Get("k001")
			require.True(t, ok)
			assert.Equal(t, "new", string(it.Value))

			buildFn(s)
			for i := range s.shards {
				sh := &s.shards[i]
				assert.False(t, sh.untreed, "shard %d", i)
				assert.Equal(t, sh.index.n, sh.tree.Len(), "shard %d", i)
			}
			_, err = s.Set("after", Write{Value: []byte("a")})
			require.NoError(t, err)
			_, err = s.Delete("k002", "")
			require.NoError(t, err)

			want := []string{"after", "before"}
			for _, k := range keys {
				if k != "k000" && k != "k002" {
					want = append(want, k)
				}
			}
			slices.Sort(want)
			var got []string
			for _, it := range s.Range("", "", len(keys)+10) {
				got = append(got, it.Key)
			}
			assert.Equal(t, want, got)
			assert.Equal(t, len(want), s.Len())
		})
	}
}
