package resp

import (
	"time"

	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/policy"
)

// tx is the state a data command (or a MULTI's queue of them) acts on:
// the keys as read from the store, overlaid with the command's own
// writes, which become the AtomicOps policy commits. A command writes
// exactly one reply to w, computed from this state only, so when policy
// runs it again after a concurrent change the reply is computed again.
type tx struct {
	c       *conn
	w       *writer
	read    func(key string) (kv.Item, bool)
	keys    map[string]*entry
	written []string // stored keys written, in the order first written
	now     time.Time
	// fail is the refusal of a read made through policy directly (rate
	// limit), which replaces the command's reply.
	fail error
}

// entry is one key's state within a tx.
type entry struct {
	live    bool
	value   []byte
	expires int64 // Unix ns; 0 never
	dirty   bool
	op      policy.AtomicOp
}

// clock returns the time the tx reads as now.
func (t *tx) clock() time.Time { return t.now }

func (c *conn) newTx(read func(string) (kv.Item, bool)) *tx {
	return &tx{c: c, w: &c.w, read: read, keys: map[string]*entry{}, now: c.s.cfg.Now()}
}

// key returns name as the command stores it (scoped when write is set),
// or writes the refusal and returns false.
func (t *tx) key(name []byte, write bool) (string, bool) {
	k, err := t.c.s.svc.StoredKey(t.c.caller, string(name), write)
	if err != nil {
		t.w.err(errorLine(err))
		return "", false
	}
	return k, true
}

func (t *tx) get(key string) *entry {
	if e, ok := t.keys[key]; ok {
		return e
	}
	it, ok := t.read(key)
	e := &entry{live: ok}
	if ok {
		e.value, e.expires = it.Value, it.Expires
	}
	t.keys[key] = e
	return e
}

// ttlSpec is how a write sets its key's lifetime.
type ttlSpec struct {
	ttl  time.Duration // 0: the default
	keep bool          // keep the key's current expiry
}

// put writes value under key with lifetime ttl and the secret.
func (t *tx) put(key string, value []byte, ttl ttlSpec, secret string) {
	e := t.get(key)
	if !e.dirty {
		t.written = append(t.written, key)
	}
	op := policy.AtomicOp{Key: key, Value: value, TTL: ttl.ttl, Secret: secret}
	switch {
	case ttl.keep && e.dirty && e.live:
		// Kept from this command's earlier write of the key.
		op.TTL, op.KeepTTL = e.op.TTL, e.op.KeepTTL
	case ttl.keep && e.live:
		op.KeepTTL = true
	case ttl.keep:
		op.TTL = 0
		e.expires = t.expiry(0)
	default:
		e.expires = t.expiry(ttl.ttl)
	}
	e.live, e.value, e.dirty, e.op = true, value, true, op
}

// putEvent is put for a write whose keyspace event Redis names other
// than "set": the cause travels with the change, so every subscriber
// hears it.
func (t *tx) putEvent(key string, value []byte, ttl ttlSpec, secret string, cause kv.Cause) {
	t.put(key, value, ttl, secret)
	t.keys[key].op.Cause = cause
}

// del removes key.
func (t *tx) del(key, secret string) {
	e := t.get(key)
	if !e.dirty {
		t.written = append(t.written, key)
	}
	e.live, e.value, e.dirty = false, nil, true
	e.op = policy.AtomicOp{Key: key, Delete: true, Secret: secret}
}

// expiry is when a write with ttl made now expires, as policy computes
// it, for TTL replies within the same transaction.
func (t *tx) expiry(ttl time.Duration) int64 {
	maxTTL := t.c.s.svc.Config().MaxTTL
	if maxTTL <= 0 && ttl == 0 {
		return 0
	}
	if ttl == 0 || (maxTTL > 0 && ttl > maxTTL) {
		ttl = maxTTL
	}
	return t.now.Add(ttl).UnixNano()
}

// ops returns the writes to commit.
func (t *tx) ops() []policy.AtomicOp {
	if len(t.written) == 0 {
		return nil
	}
	ops := make([]policy.AtomicOp, len(t.written))
	for i, k := range t.written {
		ops[i] = t.keys[k].op
	}
	return ops
}
