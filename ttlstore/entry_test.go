package ttlstore

import (
	"fmt"
	"hash/maphash"
	"testing"
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

// TestRestoreThenBuildIndex: keys loaded with Restore are found through
// the tree before BuildIndex and through the index after it, and writes
// and deletes on either side keep both in step.
func TestRestoreThenBuildIndex(t *testing.T) {
	s := New(Options{Shards: 4})
	for i := range 500 {
		s.Restore(Item{Key: fmt.Sprintf("k%03d", i), Value: []byte{byte(i)}, Version: uint64(i + 1)})
	}
	_, err := s.Set("before", Write{Value: []byte("b")})
	require.NoError(t, err)
	_, err = s.Delete("k000", "")
	require.NoError(t, err)
	for i := range s.shards {
		assert.True(t, s.shards[i].unindexed, "shard %d", i)
	}
	check := func(when string) {
		for i := 1; i < 500; i++ {
			it, ok := s.Get(fmt.Sprintf("k%03d", i))
			require.True(t, ok, "%s: k%03d", when, i)
			assert.Equal(t, []byte{byte(i)}, it.Value)
		}
		_, ok := s.Get("k000")
		assert.False(t, ok, when)
		_, ok = s.Get("before")
		assert.True(t, ok, when)
	}
	check("before BuildIndex")

	s.BuildIndex()
	for i := range s.shards {
		sh := &s.shards[i]
		assert.False(t, sh.unindexed, "shard %d", i)
		assert.Equal(t, sh.tree.Len(), sh.index.n, "shard %d", i)
	}
	check("after BuildIndex")
	_, err = s.Set("after", Write{Value: []byte("a")})
	require.NoError(t, err)
	_, err = s.Delete("k001", "")
	require.NoError(t, err)
	_, ok := s.Get("k001")
	assert.False(t, ok)
	_, ok = s.Get("after")
	assert.True(t, ok)
	total := 0
	for i := range s.shards {
		total += s.shards[i].index.n
	}
	assert.Equal(t, s.Len(), total)
}
