package ttlstore

import (
	"bytes"
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
)

// Options configures a Store. The zero value is usable.
type Options struct {
	// Shards is the number of independently locked shards, rounded up to a
	// power of two. Default 64: enough that two cores rarely contend, few
	// enough that an ordered range scan merges cheaply.
	Shards int
	// MaxKeys caps the number of live keys; 0 means no cap.
	MaxKeys int
	// Now is the clock; default time.Now. Tests pass a fake one.
	Now func() time.Time
	// OnChange, when set, is called for every mutation while the key's shard
	// lock is held, before the mutation becomes visible, in strictly
	// increasing version order across the whole store. Returning an error
	// aborts the mutation and the operation returns that error, which lets a
	// journal refuse writes it could not record. It must not block for long
	// and must not call back into the Store.
	OnChange func(Change) error
}

// Store is a sharded in-memory key-value map with per-key expiry.
// It is safe for concurrent use.
type Store struct {
	shards   []shard
	mask     uint64
	seed     maphash.Seed
	maxKeys  int64
	count    atomic.Int64 // entries held, including expired ones not yet reaped
	bytes    atomic.Int64 // key and value bytes of those entries
	version  atomic.Uint64
	now      func() time.Time
	onChange func(Change) error
	reapNext atomic.Uint32 // shard where the next reaper pass starts
	seqMu    sync.Mutex    // orders version assignment with OnChange calls
}

type shard struct {
	mu   sync.RWMutex
	m    map[string]*entry
	tree *btree.BTreeG[*entry] // the same entries ordered by key, for range scans
	exp  expiryHeap            // entries that expire, soonest first
	_    [64]byte              // keeps neighbouring shard locks off one cache line
}

type entry struct {
	key     string
	value   []byte
	expires int64
	version uint64
	owner   Owner
	heapIdx int // position in the shard's expiry heap, -1 when absent
}

func (e *entry) item() Item {
	return Item{Key: e.key, Value: e.value, Expires: e.expires, Owner: e.owner, Version: e.version}
}

func (e *entry) live(now int64) bool { return e.expires == 0 || e.expires > now }

func entryLess(a, b *entry) bool { return a.key < b.key }

// New returns an empty Store.
func New(opts Options) *Store {
	n := 64
	if opts.Shards > 0 {
		n = 1
		for n < opts.Shards {
			n <<= 1
		}
	}
	s := &Store{
		shards:   make([]shard, n),
		mask:     uint64(n - 1),
		seed:     maphash.MakeSeed(),
		maxKeys:  int64(opts.MaxKeys),
		now:      opts.Now,
		onChange: opts.OnChange,
	}
	if s.now == nil {
		s.now = time.Now
	}
	for i := range s.shards {
		s.shards[i].m = make(map[string]*entry)
		s.shards[i].tree = btree.NewG(32, entryLess)
	}
	return s
}

func (s *Store) shardFor(key string) *shard {
	return &s.shards[maphash.String(s.seed, key)&s.mask]
}

// Get returns the live item stored under key.
func (s *Store) Get(key string) (Item, bool) {
	sh := s.shardFor(key)
	now := s.now().UnixNano()
	sh.mu.RLock()
	e, ok := sh.m[key]
	if !ok || !e.live(now) {
		sh.mu.RUnlock()
		return Item{}, false
	}
	it := e.item()
	sh.mu.RUnlock()
	return it, true
}

// Len returns the number of entries held. It may include entries that have
// expired but have not been reaped yet.
func (s *Store) Len() int { return int(s.count.Load()) }

// Bytes returns the key and value bytes held, the payload the store's
// memory is mostly spent on.
func (s *Store) Bytes() int64 { return s.bytes.Load() }

// Version returns the highest version assigned so far.
func (s *Store) Version() uint64 { return s.version.Load() }

// writeMode selects the precondition of a write.
type writeMode uint8

const (
	modeSet    writeMode = iota // always write (owner permitting)
	modeCreate                  // write only when the key is absent
	modeCAS                     // write only when present and equal to expected
	modeCASOC                   // write when absent, or present and equal to expected
)

// Set stores w under key, creating or overwriting it. It fails with
// ErrForbidden when the key is owned and w.Owner does not match, and with
// ErrFull when the key is new and the store is at capacity.
func (s *Store) Set(key string, w Write) (Item, error) {
	return s.write(key, w, modeSet, nil)
}

// LoadOrStore stores w under key only if the key is absent. When the key is
// live it returns the current item and ErrExists, writing nothing.
func (s *Store) LoadOrStore(key string, w Write) (Item, error) {
	return s.write(key, w, modeCreate, nil)
}

// CompareAndSwap replaces the value under key with w when the current value
// equals expected. It returns ErrNotFound when the key is absent, and the
// current item with ErrMismatch when the value differs.
func (s *Store) CompareAndSwap(key string, expected []byte, w Write) (Item, error) {
	return s.write(key, w, modeCAS, expected)
}

// CompareAndSwapOrCreate is CompareAndSwap that also creates an absent key.
func (s *Store) CompareAndSwapOrCreate(key string, expected []byte, w Write) (Item, error) {
	return s.write(key, w, modeCASOC, expected)
}

func (s *Store) write(key string, w Write, mode writeMode, expected []byte) (Item, error) {
	it, err := s.tryWrite(key, w, mode, expected)
	if err == errNeedReclaim {
		// The shard lock is released here, so sweeping other shards cannot
		// deadlock against a writer that holds one of them.
		s.reclaim()
		it, err = s.tryWrite(key, w, mode, expected)
		if err == errNeedReclaim {
			err = ErrFull
		}
	}
	return it, err
}

// errNeedReclaim asks write to free expired entries in every shard and retry.
var errNeedReclaim = errors.New("store is full of entries, some possibly expired")

func (s *Store) tryWrite(key string, w Write, mode writeMode, expected []byte) (Item, error) {
	sh := s.shardFor(key)
	nowTime := s.now()
	now := nowTime.UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()

	e := sh.m[key]
	if e != nil && !e.live(now) {
		if _, err := s.removeLocked(sh, e, OpExpire); err != nil {
			return Item{}, err
		}
		e = nil
	}
	if e == nil {
		if mode == modeCAS {
			return Item{}, ErrNotFound
		}
		if w.IfVersion != 0 {
			return Item{}, ErrVersionMismatch
		}
		return s.createLocked(sh, key, w, now)
	}
	if mode == modeCreate {
		return e.item(), ErrExists
	}
	if e.owner != "" && !e.owner.matches(w.Owner) {
		return Item{}, ErrForbidden
	}
	if w.IfVersion != 0 && w.IfVersion != e.version {
		return e.item(), ErrVersionMismatch
	}
	if (mode == modeCAS || mode == modeCASOC) && !bytes.Equal(e.value, expected) {
		return e.item(), ErrMismatch
	}
	owner := e.owner
	if owner == "" {
		owner = w.Owner
	}
	next := Item{Key: e.key, Value: w.Value, Expires: w.Expires, Owner: owner}
	if err := s.stamp(OpSet, &next); err != nil {
		return Item{}, err
	}
	s.bytes.Add(int64(len(next.Value) - len(e.value)))
	e.value, e.owner, e.version = next.Value, next.Owner, next.Version
	sh.setExpiry(e, w.Expires)
	return next, nil
}

func (s *Store) createLocked(sh *shard, key string, w Write, now int64) (Item, error) {
	if !s.reserve() {
		// Expired entries in this shard can be dropped at once; others need
		// the lock released first.
		if sh.popExpired(s, now, -1) == 0 || !s.reserve() {
			return Item{}, errNeedReclaim
		}
	}
	next := Item{Key: key, Value: w.Value, Expires: w.Expires, Owner: w.Owner}
	if err := s.stamp(OpSet, &next); err != nil {
		s.count.Add(-1)
		return Item{}, err
	}
	e := &entry{key: key, value: w.Value, owner: w.Owner, version: next.Version, heapIdx: -1}
	sh.m[key] = e
	sh.tree.ReplaceOrInsert(e)
	sh.setExpiry(e, w.Expires)
	s.bytes.Add(int64(len(key) + len(w.Value)))
	return next, nil
}

// reserve takes one slot of capacity, atomically, so concurrent creates
// can never push the count past the cap. It compares before it adds: an
// add-then-undo would let Len report more than MaxKeys for a moment and
// make a concurrent create fail although a slot had been freed.
func (s *Store) reserve() bool {
	if s.maxKeys <= 0 {
		s.count.Add(1)
		return true
	}
	for {
		n := s.count.Load()
		if n >= s.maxKeys {
			return false
		}
		if s.count.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// stamp gives it the next version and reports the change to OnChange as one
// step under seqMu, so OnChange sees changes in strictly increasing version
// order across all shards (a journal replays in that order; a change feed
// delivers in it). A refused change takes no version, leaving no gap.
func (s *Store) stamp(op Op, it *Item) error {
	if s.onChange == nil {
		it.Version = s.version.Add(1)
		return nil
	}
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	it.Version = s.version.Load() + 1
	if err := s.onChange(Change{Op: op, Item: *it}); err != nil {
		return err
	}
	s.version.Store(it.Version)
	return nil
}

// removeLocked deletes e from sh, reporting op with a fresh version, and
// returns the removed item carrying that version.
func (s *Store) removeLocked(sh *shard, e *entry, op Op) (Item, error) {
	gone := e.item()
	if err := s.stamp(op, &gone); err != nil {
		return Item{}, err
	}
	delete(sh.m, e.key)
	sh.tree.Delete(e)
	sh.setExpiry(e, 0)
	s.count.Add(-1)
	s.bytes.Add(-int64(len(e.key) + len(e.value)))
	return gone, nil
}

// Delete removes key. It returns ErrNotFound when the key is absent and
// ErrForbidden when the key is owned and owner does not match. On success it
// returns the removed item with the version assigned to the removal.
func (s *Store) Delete(key string, owner Owner) (Item, error) {
	sh := s.shardFor(key)
	now := s.now().UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[key]
	if e == nil {
		return Item{}, ErrNotFound
	}
	if !e.live(now) {
		if _, err := s.removeLocked(sh, e, OpExpire); err != nil {
			return Item{}, err
		}
		return Item{}, ErrNotFound
	}
	if e.owner != "" && !e.owner.matches(owner) {
		return Item{}, ErrForbidden
	}
	return s.removeLocked(sh, e, OpDelete)
}

// popExpired removes up to budget expired entries from sh (all of them when
// budget < 0). The caller holds sh.mu.
func (sh *shard) popExpired(s *Store, now int64, budget int) int {
	n := 0
	for len(sh.exp) > 0 && sh.exp[0].expires <= now && budget != 0 {
		if _, err := s.removeLocked(sh, sh.exp[0], OpExpire); err != nil {
			break
		}
		n++
		budget--
	}
	return n
}

// reclaim removes every expired entry, one shard at a time.
func (s *Store) reclaim() {
	now := s.now().UnixNano()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.popExpired(s, now, -1)
		sh.mu.Unlock()
	}
}

// reapBatch bounds how long the reaper holds one shard lock.
const reapBatch = 256

// Reap removes up to budget entries that expired at or before now, visiting
// shards in turn and holding each lock for at most a small batch, so
// requests never wait behind a full sweep. It returns how many it removed.
func (s *Store) Reap(now time.Time, budget int) int {
	ns := now.UnixNano()
	removed := 0
	start := int(s.reapNext.Add(1))
	for i := 0; i < len(s.shards) && removed < budget; i++ {
		sh := &s.shards[(start+i)&int(s.mask)]
		for removed < budget {
			sh.mu.Lock()
			n := sh.popExpired(s, ns, min(reapBatch, budget-removed))
			sh.mu.Unlock()
			removed += n
			if n < reapBatch {
				break
			}
		}
	}
	return removed
}

// RunReaper calls Reap every interval with budget until ctx is done.
func (s *Store) RunReaper(ctx context.Context, interval time.Duration, budget int) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Reap(s.now(), budget)
		}
	}
}
