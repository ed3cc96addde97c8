package persist

import (
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// pipeline applies decoded records on a second goroutine, in the order they
// were decoded, so that decoding (checksums, msgpack, copies) and index
// inserts run on two cores at once during start-up. One applier keeps the
// exact file order, which replay needs.
type pipeline struct {
	into  Restorer
	batch []record
	ch    chan []record
	done  chan struct{}
}

// record is one decoded snapshot item or journal record.
type record struct {
	item   ttlstore.Item
	delete bool
}

// pipelineBatch balances channel overhead against memory in flight.
const pipelineBatch = 1024

func newPipeline(into Restorer) *pipeline {
	p := &pipeline{into: into, batch: make([]record, 0, pipelineBatch), ch: make(chan []record, 8), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for batch := range p.ch {
			for _, r := range batch {
				if r.delete {
					into.RestoreDelete(r.item.Key, r.item.Version)
				} else {
					into.Restore(r.item)
				}
			}
		}
	}()
	return p
}

func (p *pipeline) add(r record) {
	p.batch = append(p.batch, r)
	if len(p.batch) == pipelineBatch {
		p.ch <- p.batch
		p.batch = make([]record, 0, pipelineBatch)
	}
}

// Restore implements Restorer.
func (p *pipeline) Restore(it ttlstore.Item) { p.add(record{item: it}) }

// RestoreDelete implements Restorer.
func (p *pipeline) RestoreDelete(key string, version uint64) {
	p.add(record{item: ttlstore.Item{Key: key, Version: version}, delete: true})
}

// AdvanceVersion implements Restorer; it commutes with every record.
func (p *pipeline) AdvanceVersion(v uint64) { p.into.AdvanceVersion(v) }

// close applies what is queued and returns once every record is applied.
func (p *pipeline) close() {
	if len(p.batch) > 0 {
		p.ch <- p.batch
	}
	close(p.ch)
	<-p.done
}
