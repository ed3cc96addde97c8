package persist

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// keyedRecorder is a ConcurrentRestorer that keeps each key's calls in
// the order they arrive.
type keyedRecorder struct {
	mu    sync.Mutex
	byKey map[string][]uint64 // versions; deletes are negated by adding 1<<63
}

func (r *keyedRecorder) add(key string, v uint64) {
	r.mu.Lock()
	r.byKey[key] = append(r.byKey[key], v)
	r.mu.Unlock()
}
func (r *keyedRecorder) Restore(it ttlstore.Item)                 { r.add(it.Key, it.Version) }
func (r *keyedRecorder) RestoreDelete(key string, version uint64) { r.add(key, version|1<<63) }
func (r *keyedRecorder) AdvanceVersion(uint64)                    {}
func (r *keyedRecorder) RestoresConcurrently() bool               { return true }

// TestPipelineKeepsEachKeysOrder sends interleaved sets and deletes of a
// few keys through a pipeline with several lanes: every key's calls must
// come out in the order they went in.
func TestPipelineKeepsEachKeysOrder(t *testing.T) {
	rec := &keyedRecorder{byKey: make(map[string][]uint64)}
	p := newPipeline(rec)
	want := make(map[string][]uint64)
	for i := range 20000 {
		key := fmt.Sprintf("k%d", i%37)
		v := uint64(i + 1)
		if i%5 == 0 {
			p.RestoreDelete(key, v)
			v |= 1 << 63
		} else {
			p.Restore(ttlstore.Item{Key: key, Version: v})
		}
		want[key] = append(want[key], v)
	}
	p.close()
	require.Len(t, rec.byKey, len(want))
	for k, w := range want {
		assert.Equal(t, w, rec.byKey[k], k)
	}
}
