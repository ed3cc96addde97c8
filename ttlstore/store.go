package ttlstore

import (
	"bytes"
	"context"
	"errors"
	"hash/maphash"
	"math"
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
	// Prepare, when set with OnChange, is called for every mutation just
	// before OnChange, under the shard lock but outside the store-wide
	// lock that orders OnChange calls, with the change's Version still 0.
	// Its result reaches OnChange as Change.Prepared. Work that does not
	// need the version (encoding a journal record) belongs here: every
	// write of the store passes through OnChange one at a time.
	Prepare func(Change) any
	// OnCommit, when set, is called for every transaction that changes
	// something (Commit) with all of its changes at once, which share one
	// version: under the same lock and in the same version order as
	// OnChange, while the transaction's shards are locked and before any of
	// it becomes visible. Returning an error refuses the whole transaction
	// and Commit returns that error. A store with OnChange commits
	// transactions only when OnCommit is set too: a journal that recorded
	// a transaction change by change could keep part of it after a crash.
	// The same rules as for OnChange apply.
	OnCommit func(changes []Change, prepared any) error
	// PrepareCommit, when set with OnCommit, is to OnCommit what Prepare is
	// to OnChange: called just before it, outside the ordering lock, with
	// the changes' versions still 0; its result reaches OnCommit as
	// prepared.
	PrepareCommit func(changes []Change) any
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
	prepare  func(Change) any
	// onCommit and prepareCommit are Options.OnCommit and PrepareCommit.
	onCommit      func([]Change, any) error
	prepareCommit func([]Change) any
	reapNext      atomic.Uint32 // shard where the next reaper pass starts
	// lastReclaim is when a full store last swept every shard (Unix ns).
	lastReclaim atomic.Int64
	seqMu       sync.Mutex // orders version assignment with OnChange calls
	// txMu keeps readers of many shards from seeing part of a transaction:
	// Commit holds it for writing while it decides and applies, a Range
	// page and each shard copy of a Snapshot hold it for reading. Single-key
	// operations never take it, so they cost what they did before
	// transactions existed. It is taken before any shard lock.
	txMu sync.RWMutex
	cuts []*snapCut // running Snapshots; guarded by txMu
}

// shard holds its entries twice over: in a chained hash index, for point
// lookups (see index), and in a B-tree ordered by key, for range scans and
// the expiry sweep. A lookup in the tree alone compares the key with about
// a dozen others, each behind two pointers, and under load those are cache
// misses: a profile of GETs and overwrites over new connections showed the
// tree search at 6% of the server's time. Expired entries are found by a
// sweep that walks the tree from a cursor, a bounded batch at a time, so
// no per-entry expiry index is needed.
type shard struct {
	mu    sync.RWMutex
	index index // every entry, always
	tree  *btree.BTreeG[*entry]
	// untreed is set by Restore: bulk loading fills only the index, and
	// the tree is built later in one sorted pass (buildTreeLocked), by
	// BuildTrees or by the first scan that needs it. Inserting a million
	// keys one by one in random order, each descent comparing with keys
	// that are cache misses, took most of start-up.
	untreed bool
	// pending holds the entries created since the tree was last brought
	// up to date: they are in the index, not yet in the tree. Inserting
	// them a batch at a time in key order (syncTreeLocked) compares each
	// with keys the previous insert just brought into cache, where one
	// insert per create missed the cache on most comparisons; a profile of
	// SETs of new keys over fresh connections showed those inserts at 5%
	// of the server's time. Everything that reads the tree syncs it first.
	// An untreed shard has none: its tree will be built from the index.
	pending []*entry
	sweep   string // key where the next expiry sweep of this shard resumes
	// lastReclaim is when a full shard was last swept for room (Unix ns),
	// so a store that is genuinely full does not sweep on every create.
	lastReclaim int64
	_           [64]byte // keeps neighbouring shard locks off one cache line
}

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
		prepare:  opts.Prepare,

		onCommit:      opts.OnCommit,
		prepareCommit: opts.PrepareCommit,
	}
	if s.now == nil {
		s.now = time.Now
	}
	for i := range s.shards {
		s.shards[i].tree = newTree()
	}
	return s
}

// shardFor returns key's shard and hash; the shard takes the hash's low
// bits, its index the high ones.
func (s *Store) shardFor(key string) (*shard, uint64) {
	h := maphash.String(s.seed, key)
	return &s.shards[h&s.mask], h
}

// insertLocked adds e, whose key is absent, to sh.
func (s *Store) insertLocked(sh *shard, e *entry, h uint64) {
	sh.index.add(e, h, s.seed)
	if !sh.untreed {
		sh.pending = append(sh.pending, e)
		if len(sh.pending) >= pendingMax {
			sh.syncTreeLocked()
		}
	}
}

// dropLocked takes e out of sh and out of the counts.
func (s *Store) dropLocked(sh *shard, e *entry) {
	s.unlinkLocked(sh, e)
	s.count.Add(-1)
}

// unlinkLocked takes e out of sh and its bytes out of the count, leaving
// the entry count to the caller: a commit settles it once for all its keys.
func (s *Store) unlinkLocked(sh *shard, e *entry) {
	sh.index.remove(e, maphash.String(s.seed, e.key()))
	if !sh.untreed {
		sh.untree(e)
	}
	s.bytes.Add(-int64(e.klen) - int64(e.vlen))
}

// find returns the entry for key, whose hash is h, or nil. The caller
// holds sh.mu.
func (sh *shard) find(key string, h uint64) *entry { return sh.index.find(key, h) }

// BuildTrees builds the ordered index of the shards that Restore loaded,
// one shard lock at a time. The server runs it in the background once
// recovery is done, so start-up does not wait for it; a range scan or
// expiry sweep that reaches a shard first builds that shard's tree itself.
func (s *Store) BuildTrees() {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.syncTreeLocked()
		sh.mu.Unlock()
	}
}

// rlockTreed read-locks sh with its tree up to date.
func (sh *shard) rlockTreed() {
	sh.mu.RLock()
	for sh.untreed || len(sh.pending) > 0 {
		sh.mu.RUnlock()
		sh.mu.Lock()
		sh.syncTreeLocked()
		sh.mu.Unlock()
		sh.mu.RLock()
	}
}

// Get returns the live item stored under key.
func (s *Store) Get(key string) (Item, bool) {
	sh, h := s.shardFor(key)
	now := s.now().UnixNano()
	sh.mu.RLock()
	e := sh.find(key, h)
	if e == nil || !e.live(now) {
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
	sh, h := s.shardFor(key)
	nowTime := s.now()
	now := nowTime.UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()

	e := sh.find(key, h)
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
		return s.createLocked(sh, key, h, w, now)
	}
	if mode == modeCreate {
		return e.item(), ErrExists
	}
	if e.owner != nil && !ownerMatches(e.owner, w.Owner) {
		return Item{}, ErrForbidden
	}
	if w.IfVersion != 0 && w.IfVersion != e.version {
		return e.item(), ErrVersionMismatch
	}
	if (mode == modeCAS || mode == modeCASOC) && !bytes.Equal(e.value(), expected) {
		return e.item(), ErrMismatch
	}
	owner := e.owner
	if owner == nil {
		owner = ownerOf(w.Owner)
	}
	next := Item{Key: e.key(), Value: w.Value, Expires: w.Expires, Owner: w.Owner}
	if owner != nil {
		next.Owner = *owner
	}
	if err := s.stamp(OpSet, &next); err != nil {
		return Item{}, err
	}
	s.bytes.Add(int64(len(next.Value)) - int64(e.vlen))
	e.setValue(next.Value)
	e.owner, e.version, e.expires = owner, next.Version, next.Expires
	next.Key, next.Value = e.key(), e.value() // the stored copies
	return next, nil
}

// reclaimEvery bounds how often a full store sweeps a shard (or all of
// them) for expired entries to make room: a store full of live keys would
// otherwise sweep on every refused create.
const reclaimEvery = int64(100 * time.Millisecond)

func (s *Store) createLocked(sh *shard, key string, h uint64, w Write, now int64) (Item, error) {
	if !s.reserve() {
		// Expired entries in this shard can be dropped at once; others need
		// the lock released first.
		if now-sh.lastReclaim < reclaimEvery {
			return Item{}, errNeedReclaim
		}
		sh.lastReclaim = now
		if s.sweepLocked(sh, now, "", -1) == 0 || !s.reserve() {
			return Item{}, errNeedReclaim
		}
	}
	// The entry copies the key and value into one allocation: callers
	// often pass a substring of a request, and keeping that alive would
	// keep the whole request line in memory.
	e := newEntry(key, w.Value)
	e.expires, e.owner = w.Expires, ownerOf(w.Owner)
	next := Item{Key: e.key(), Value: e.value(), Expires: w.Expires, Owner: w.Owner}
	if err := s.stamp(OpSet, &next); err != nil {
		s.count.Add(-1)
		return Item{}, err
	}
	e.version = next.Version
	s.insertLocked(sh, e, h)
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
	var prepared any
	if s.prepare != nil {
		// A removal carries the removed item's version until stamped.
		c := Change{Op: op, Item: *it}
		c.Item.Version = 0
		prepared = s.prepare(c)
	}
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	it.Version = s.version.Load() + 1
	if err := s.onChange(Change{Op: op, Item: *it, Prepared: prepared}); err != nil {
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
	s.dropLocked(sh, e)
	return gone, nil
}

// Delete removes key. It returns ErrNotFound when the key is absent and
// ErrForbidden when the key is owned and owner does not match. On success it
// returns the removed item with the version assigned to the removal.
func (s *Store) Delete(key string, owner Owner) (Item, error) {
	sh, h := s.shardFor(key)
	now := s.now().UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.find(key, h)
	if e == nil {
		return Item{}, ErrNotFound
	}
	if !e.live(now) {
		if _, err := s.removeLocked(sh, e, OpExpire); err != nil {
			return Item{}, err
		}
		return Item{}, ErrNotFound
	}
	if e.owner != nil && !ownerMatches(e.owner, owner) {
		return Item{}, ErrForbidden
	}
	return s.removeLocked(sh, e, OpDelete)
}

// sweepLocked removes expired entries from sh, scanning at most limit
// entries (all when limit < 0) from key from onwards, and returns how many
// it removed. The caller holds sh.mu.
func (s *Store) sweepLocked(sh *shard, now int64, from string, limit int) int {
	expired, next := sh.scanExpired(now, from, limit)
	n := 0
	for _, e := range expired {
		if _, err := s.removeLocked(sh, e, OpExpire); err != nil {
			break
		}
		n++
	}
	if limit >= 0 {
		sh.sweep = next
	}
	return n
}

// scanExpired collects the expired entries among at most limit entries
// from key from onwards (the tree cannot change during its iteration), and
// returns where a later scan should resume: "" after the last key. The
// caller holds sh.mu for writing, since the tree is brought up to date
// first.
func (sh *shard) scanExpired(now int64, from string, limit int) (expired []*entry, next string) {
	sh.syncTreeLocked()
	p := probes.Get().(*entry)
	p.setProbe(from)
	seen := 0
	sh.tree.AscendGreaterOrEqual(p, func(e *entry) bool {
		if limit >= 0 && seen == limit {
			next = e.key()
			return false
		}
		seen++
		if !e.live(now) {
			expired = append(expired, e)
		}
		return true
	})
	p.setProbe("")
	probes.Put(p)
	return expired, next
}

// reclaim removes every expired entry, one shard at a time, at most once
// per reclaimEvery.
func (s *Store) reclaim() {
	now := s.now().UnixNano()
	last := s.lastReclaim.Load()
	if now-last < reclaimEvery || !s.lastReclaim.CompareAndSwap(last, now) {
		return
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		s.sweepLocked(sh, now, "", -1)
		sh.mu.Unlock()
	}
}

// reapBatch bounds how many entries the reaper scans under one shard lock.
const reapBatch = 512

// Reap removes up to budget entries that expired at or before now. It
// resumes each shard's sweep where the last one stopped and holds a shard
// lock for one small batch at a time, so requests never wait behind a full
// sweep; one call scans each entry at most once. It returns how many it
// removed.
func (s *Store) Reap(now time.Time, budget int) int {
	return s.reap(now.UnixNano(), budget, -1)
}

// reap is Reap with a bound on the entries scanned (scanBudget < 0: one
// full pass at most), which is what keeps each reaper tick's work bounded
// on a store of millions of live keys.
func (s *Store) reap(now int64, budget, scanBudget int) int {
	removed := 0
	start := int(s.reapNext.Add(1))
	for i := 0; i < len(s.shards) && removed < budget && scanBudget != 0; i++ {
		sh := &s.shards[(start+i)&int(s.mask)]
		first := true
		for removed < budget && scanBudget != 0 {
			sh.mu.Lock()
			if !first && sh.sweep == "" {
				sh.mu.Unlock()
				break // came round to the start of this shard
			}
			first = false
			batch := reapBatch
			if scanBudget > 0 {
				batch = min(batch, scanBudget)
				scanBudget -= batch
			}
			expired, next := sh.scanExpired(now, sh.sweep, batch)
			n, refused := 0, false
			for _, e := range expired {
				if removed+n == budget {
					next = e.key() // resume at the first one left
					break
				}
				if _, err := s.removeLocked(sh, e, OpExpire); err != nil {
					// OnChange refused (say, a journal error): retry this
					// entry at a later tick rather than spin on it now.
					next, refused = e.key(), true
					break
				}
				n++
			}
			sh.sweep = next
			sh.mu.Unlock()
			removed += n
			if next == "" || refused {
				break
			}
		}
	}
	return removed
}

// RunReaper reaps every interval, scanning at most scanBudget entries per
// tick, until ctx is done.
func (s *Store) RunReaper(ctx context.Context, interval time.Duration, scanBudget int) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.reap(s.now().UnixNano(), math.MaxInt, scanBudget)
		}
	}
}
