package resp

import (
	"bytes"
	"sync"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// notesKept is how many recent writes keep their event name: a
// subscriber further behind than that hears "set" for them.
const notesKept = 4096

// note names the keyspace event of one write a Redis command makes that
// Redis does not call "set" (expire, incrby, append, persist). The change
// feed says only that the key was set, so the write is recognised by its
// key and value, and once its commit is known, its version.
type note struct {
	key     string
	value   []byte
	event   string
	version uint64 // 0 while the commit is in flight
	dead    bool   // its write was not committed
}

// notes are the recent notes of one server, for all its subscribers.
type notes struct {
	mu    sync.Mutex
	byKey map[string][]*note
	ring  [notesKept]*note
	next  int
}

func newNotes() *notes { return &notes{byKey: make(map[string][]*note)} }

// add records a write about to be committed.
func (n *notes) add(key string, value []byte, event string) *note {
	nt := &note{key: key, value: value, event: event}
	n.mu.Lock()
	defer n.mu.Unlock()
	if old := n.ring[n.next]; old != nil {
		list := n.byKey[old.key]
		for i, x := range list {
			if x == old {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(n.byKey, old.key)
		} else {
			n.byKey[old.key] = list
		}
	}
	n.ring[n.next] = nt
	n.byKey[key] = append(n.byKey[key], nt)
	n.next = (n.next + 1) % notesKept
	return nt
}

// settle records how the writes of ns ended: committed at version, or
// (version 0) not at all.
func (n *notes) settle(ns []*note, version uint64) {
	if len(ns) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, nt := range ns {
		if version == 0 {
			nt.dead = true
		} else {
			nt.version = version
		}
	}
}

// event names a set event: the note's event when one matches it, "set"
// otherwise.
func (n *notes) event(ev *kv.Event) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, nt := range n.byKey[ev.Key] {
		if !nt.dead && (nt.version == 0 || nt.version == ev.Version) && bytes.Equal(nt.value, ev.Value) {
			return nt.event
		}
	}
	return "set"
}
