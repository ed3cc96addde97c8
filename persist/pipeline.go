package persist

import (
	"hash/maphash"
	"runtime"
	"sync"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// ConcurrentRestorer is a Restorer that accepts calls for different keys
// from several goroutines at once, as long as each key's calls arrive in
// order. Recover then applies records on more than one goroutine.
type ConcurrentRestorer interface {
	Restorer
	// RestoresConcurrently reports whether concurrent calls are allowed.
	RestoresConcurrently() bool
}

// pipeline applies decoded records on other goroutines, so that decoding
// (checksums, msgpack, copies) and index inserts run on separate cores
// during start-up. Replay needs each key's records in file order, so a
// key always goes to the same lane; a Restorer that is not a
// ConcurrentRestorer gets one lane, which keeps the whole file order.
type pipeline struct {
	into  Restorer
	seed  maphash.Seed
	lanes []*lane
	wg    sync.WaitGroup
}

type lane struct {
	batch []record
	ch    chan []record
}

// record is one decoded snapshot item or journal record.
type record struct {
	item   kv.Item
	delete bool
}

// pipelineBatch balances channel overhead against memory in flight.
const pipelineBatch = 1024

// maxLanes bounds the appliers; inserting into the store's shards scales
// with cores until the one decoder cannot keep up.
const maxLanes = 4

func newPipeline(into Restorer) *pipeline {
	n := 1
	if c, ok := into.(ConcurrentRestorer); ok && c.RestoresConcurrently() {
		n = min(maxLanes, max(1, runtime.GOMAXPROCS(0)))
	}
	p := &pipeline{into: into, seed: maphash.MakeSeed(), lanes: make([]*lane, n)}
	for i := range p.lanes {
		l := &lane{batch: make([]record, 0, pipelineBatch), ch: make(chan []record, 8)}
		p.lanes[i] = l
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for batch := range l.ch {
				for _, r := range batch {
					if r.delete {
						into.RestoreDelete(r.item.Key, r.item.Version)
					} else {
						into.Restore(r.item)
					}
				}
			}
		}()
	}
	return p
}

func (p *pipeline) add(r record) {
	l := p.lanes[0]
	if len(p.lanes) > 1 {
		l = p.lanes[maphash.String(p.seed, r.item.Key)%uint64(len(p.lanes))]
	}
	l.batch = append(l.batch, r)
	if len(l.batch) == pipelineBatch {
		l.ch <- l.batch
		l.batch = make([]record, 0, pipelineBatch)
	}
}

// Restore implements Restorer.
func (p *pipeline) Restore(it kv.Item) { p.add(record{item: it}) }

// RestoreDelete implements Restorer.
func (p *pipeline) RestoreDelete(key string, version uint64) {
	p.add(record{item: kv.Item{Key: key, Version: version}, delete: true})
}

// AdvanceVersion implements Restorer; it commutes with every record.
func (p *pipeline) AdvanceVersion(v uint64) { p.into.AdvanceVersion(v) }

// close applies what is queued and returns once every record is applied.
func (p *pipeline) close() {
	for _, l := range p.lanes {
		if len(l.batch) > 0 {
			l.ch <- l.batch
		}
		close(l.ch)
	}
	p.wg.Wait()
}
