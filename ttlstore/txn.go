package ttlstore

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// The transaction types are package kv's too, aliased here like Item.
type (
	// CheckKind is kv.CheckKind.
	//
	// Deprecated: use kv.CheckKind.
	CheckKind = kv.CheckKind
	// Check is kv.Check.
	//
	// Deprecated: use kv.Check.
	Check = kv.Check
	// TxnOp is kv.TxnOp.
	//
	// Deprecated: use kv.TxnOp.
	TxnOp = kv.TxnOp
	// Txn is kv.Txn.
	//
	// Deprecated: use kv.Txn.
	Txn = kv.Txn
	// CommitResult is kv.CommitResult.
	//
	// Deprecated: use kv.CommitResult.
	CommitResult = kv.CommitResult
	// TxnError is kv.TxnError.
	//
	// Deprecated: use kv.TxnError.
	TxnError = kv.TxnError
)

// The kinds of check, as aliases of kv's.
const (
	// CheckAbsent is kv.CheckAbsent.
	//
	// Deprecated: use kv.CheckAbsent.
	CheckAbsent = kv.CheckAbsent
	// CheckVersion is kv.CheckVersion.
	//
	// Deprecated: use kv.CheckVersion.
	CheckVersion = kv.CheckVersion
	// CheckValue is kv.CheckValue.
	//
	// Deprecated: use kv.CheckValue.
	CheckValue = kv.CheckValue
)

// The transaction errors, as aliases of kv's (the same values).
var (
	// ErrCheckFailed is kv.ErrCheckFailed.
	//
	// Deprecated: use kv.ErrCheckFailed.
	ErrCheckFailed = kv.ErrCheckFailed
	// ErrInvalidTxn is kv.ErrInvalidTxn.
	//
	// Deprecated: use kv.ErrInvalidTxn.
	ErrInvalidTxn = kv.ErrInvalidTxn
)

// errNoCommitHook refuses a commit on a store that reports changes one by
// one but has nowhere to report a transaction whole.
var errNoCommitHook = errors.New("ttlstore: Options.OnCommit must be set to commit transactions when OnChange is")

// txnKey is one distinct key of a transaction with the state its ops leave
// it in so far.
type txnKey struct {
	key   string
	h     uint64
	shard int
	e     *entry // the live entry when the commit was decided, or nil

	present bool
	value   []byte
	expires int64
	owner   *Owner
	touched bool     // an op wrote it
	cause   kv.Cause // of the last op that set it
	created *entry   // the entry a create will insert
}

// txnPlan is a transaction's keys, found once and kept across a retry.
type txnPlan struct {
	keys   []txnKey
	ops    []int // index in keys of each op's key
	checks []int // index in keys of each check's key
	shards []int // the shards to lock, ascending, each once
	index  map[string]int
}

// txnMapAt is the key count from which a plan finds keys through a map
// rather than a scan: the scan costs no allocation, the map no quadratic
// time for a hundred ops.
const txnMapAt = 16

func (p *txnPlan) slot(s *Store, key string) int {
	if p.index != nil {
		if i, ok := p.index[key]; ok {
			return i
		}
	} else {
		for i := range p.keys {
			if p.keys[i].key == key {
				return i
			}
		}
	}
	_, h := s.shardFor(key)
	i := len(p.keys)
	p.keys = append(p.keys, txnKey{key: key, h: h, shard: int(h & s.mask)})
	switch {
	case p.index != nil:
		p.index[key] = i
	case len(p.keys) == txnMapAt:
		p.index = make(map[string]int, 2*txnMapAt)
		for j := range p.keys {
			p.index[p.keys[j].key] = j
		}
	}
	return i
}

func (s *Store) plan(t Txn) (*txnPlan, error) {
	for i, op := range t.Ops {
		if op.Op != OpSet && op.Op != OpDelete {
			return nil, fmt.Errorf("%w: operation %d is %v, want set or delete", ErrInvalidTxn, i, op.Op)
		}
	}
	for i, c := range t.Checks {
		if c.Kind < CheckAbsent || c.Kind > CheckValue {
			return nil, fmt.Errorf("%w: check %d has unknown kind %d", ErrInvalidTxn, i, c.Kind)
		}
	}
	p := &txnPlan{
		keys:   make([]txnKey, 0, len(t.Ops)+len(t.Checks)),
		ops:    make([]int, len(t.Ops)),
		checks: make([]int, len(t.Checks)),
	}
	// Op keys first: changes come out in the order of p.keys.
	for i, op := range t.Ops {
		p.ops[i] = p.slot(s, op.Key)
	}
	for i, c := range t.Checks {
		p.checks[i] = p.slot(s, c.Key)
	}
	p.shards = make([]int, len(p.keys))
	for i := range p.keys {
		p.shards[i] = p.keys[i].shard
	}
	slices.Sort(p.shards)
	p.shards = slices.Compact(p.shards)
	return p, nil
}

// Commit commits t: if every check holds and every op is allowed, all of
// t's writes take effect under one new version, else none does.
//
// It refuses with a *TxnError: ErrCheckFailed listing every failed check;
// ErrForbidden naming the first op on a key owned by another secret; or
// ErrFull when the keys t creates, less those it deletes, do not fit under
// MaxKeys (expired entries are reclaimed first, as for Set). An error from
// Options.OnCommit is returned as it is, and ErrInvalidTxn for a malformed
// t.
//
// No reader sees part of a commit: Get waits on the key's shard, which the
// commit locks while it applies, and Range pages and Snapshot wait for a
// commit in progress (see Snapshot for what it shows). The shards are
// locked in index order, each once, so that commits on overlapping keys
// cannot deadlock; for now commits also run one at a time, under the
// store-wide lock that keeps them apart from those readers.
func (s *Store) Commit(t Txn) (CommitResult, error) {
	if s.onChange != nil && s.onCommit == nil {
		return CommitResult{}, errNoCommitHook
	}
	p, err := s.plan(t)
	if err != nil {
		return CommitResult{}, err
	}
	res, err := s.tryCommit(t, p)
	if err == errNeedReclaim {
		// Every lock is released here, so the sweep of all shards cannot
		// deadlock against a writer holding one of them.
		s.reclaim()
		res, err = s.tryCommit(t, p)
		if err == errNeedReclaim {
			err = &TxnError{Err: ErrFull, Op: -1}
		}
	}
	return res, err
}

func (s *Store) tryCommit(t Txn, p *txnPlan) (CommitResult, error) {
	s.txMu.Lock()
	for _, i := range p.shards {
		s.shards[i].mu.Lock()
	}
	defer func() {
		for _, i := range p.shards {
			s.shards[i].mu.Unlock()
		}
		s.txMu.Unlock()
	}()
	now := s.now().UnixNano()

	for i := range p.keys {
		k := &p.keys[i]
		sh := &s.shards[k.shard]
		e := sh.find(k.key, k.h)
		if e != nil && !e.live(now) {
			// As a single write does: the expiry is reported, in its own
			// version, whatever the commit's outcome.
			if _, err := s.removeLocked(sh, e, OpExpire); err != nil {
				return CommitResult{}, err
			}
			e = nil
		}
		*k = txnKey{key: k.key, h: k.h, shard: k.shard, e: e}
		if e != nil {
			k.present, k.value, k.expires, k.owner = true, e.value(), e.expires, e.owner
		}
	}

	var failed []int
	for i, c := range t.Checks {
		e := p.keys[p.checks[i]].e
		var ok bool
		switch c.Kind {
		case CheckAbsent:
			ok = e == nil
		case CheckVersion:
			ok = e != nil && e.version == c.Version
		case CheckValue:
			ok = e != nil && bytes.Equal(e.value(), c.Value)
		}
		if !ok {
			failed = append(failed, i)
		}
	}
	if failed != nil {
		return CommitResult{}, &TxnError{Err: ErrCheckFailed, Op: -1, Failed: failed}
	}

	for i, op := range t.Ops {
		k := &p.keys[p.ops[i]]
		if op.Op == OpDelete && !k.present {
			continue
		}
		if k.owner != nil && !ownerMatches(k.owner, op.Owner) {
			return CommitResult{}, &TxnError{Err: ErrForbidden, Op: i}
		}
		k.touched = true
		if op.Op == OpDelete {
			k.present, k.value, k.expires, k.owner = false, nil, 0, nil
			continue
		}
		if k.owner == nil {
			k.owner = ownerOf(op.Owner)
		}
		k.present, k.value, k.expires, k.cause = true, op.Value, op.Expires, op.Cause
	}

	n, net := 0, int64(0)
	for i := range p.keys {
		k := &p.keys[i]
		switch {
		case !k.touched || (!k.present && k.e == nil):
			continue
		case !k.present:
			net--
		case k.e == nil:
			net++
		}
		n++
	}
	if n == 0 {
		return CommitResult{Version: s.version.Load()}, nil
	}
	if net > 0 && !s.reserveN(net) {
		// As createLocked does: what has expired in the shards held can be
		// dropped at once; the others need the locks released first.
		swept := 0
		for _, i := range p.shards {
			sh := &s.shards[i]
			if now-sh.lastReclaim >= reclaimEvery {
				sh.lastReclaim = now
				swept += s.sweepLocked(sh, now, "", -1)
			}
		}
		if swept == 0 || !s.reserveN(net) {
			return CommitResult{}, errNeedReclaim
		}
	}

	changes := make([]Change, 0, n)
	for i := range p.keys {
		k := &p.keys[i]
		switch {
		case !k.touched || (!k.present && k.e == nil):
			continue
		case !k.present:
			gone := k.e.item()
			gone.Version = 0
			changes = append(changes, Change{Op: OpDelete, Item: gone})
			continue
		}
		it := Item{Value: k.value, Expires: k.expires}
		if k.e != nil {
			it.Key = k.e.key()
		} else {
			// Created now, so the change shares the entry's copy of the
			// key, not the caller's (often a slice of a whole request).
			k.created = newEntry(k.key, k.value)
			it.Key, it.Value = k.created.key(), k.created.value()
		}
		if k.owner != nil {
			it.Owner = *k.owner
		}
		changes = append(changes, Change{Op: OpSet, Cause: k.cause, Item: it})
	}

	v, err := s.stampCommit(changes, t.AtVersion)
	if err != nil {
		if net > 0 {
			s.count.Add(-net)
		}
		return CommitResult{}, err
	}
	for _, cut := range s.cuts {
		cut.remember(p)
	}

	c := 0
	for i := range p.keys {
		k := &p.keys[i]
		if !k.touched || (!k.present && k.e == nil) {
			continue
		}
		ch := &changes[c]
		c++
		sh := &s.shards[k.shard]
		switch {
		case !k.present:
			s.unlinkLocked(sh, k.e)
		case k.created != nil:
			e := k.created
			e.expires, e.owner, e.version = k.expires, k.owner, v
			s.insertLocked(sh, e, k.h)
			s.bytes.Add(int64(len(k.key) + len(k.value)))
		default:
			e := k.e
			s.bytes.Add(int64(len(k.value)) - int64(e.vlen))
			e.setValue(k.value)
			e.owner, e.version, e.expires = k.owner, v, k.expires
			ch.Item.Value = e.value()
		}
	}
	if net < 0 {
		s.count.Add(net)
	}
	return CommitResult{Version: v, Changes: changes}, nil
}

// stampCommit gives changes one new version and reports them to OnCommit
// as one step under seqMu, in version order with every other change (see
// stamp). A refused commit takes no version; so does one whose version
// would not be at (when at is set).
func (s *Store) stampCommit(changes []Change, at uint64) (uint64, error) {
	var prepared any
	if s.prepareCommit != nil && s.onCommit != nil {
		prepared = s.prepareCommit(changes)
	}
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	v := s.version.Load() + 1
	if at != 0 && v != at {
		return 0, &TxnError{Err: kv.ErrVersionTaken, Op: -1}
	}
	for i := range changes {
		changes[i].Item.Version = v
	}
	if s.onCommit != nil {
		if err := s.onCommit(changes, prepared); err != nil {
			return 0, err
		}
	}
	s.version.Store(v)
	return v, nil
}

// reserveN takes n slots of capacity at once, or none; see reserve.
func (s *Store) reserveN(n int64) bool {
	if s.maxKeys <= 0 {
		s.count.Add(n)
		return true
	}
	for {
		c := s.count.Load()
		if c+n > s.maxKeys {
			return false
		}
		if s.count.CompareAndSwap(c, c+n) {
			return true
		}
	}
}

// snapCut is what a running Snapshot needs to leave out every transaction
// committed after it started: for each key such a transaction changed in a
// shard the snapshot has not copied yet, the key's state before the first
// of them. Fields are guarded by Store.txMu; the snapshot writes next
// while holding it for reading, which no commit does.
type snapCut struct {
	next  int // shards below next are copied
	prior map[int]map[string]priorState
}

type priorState struct {
	item    Item
	present bool
}

// remember records the state before p's commit of each key it changes in
// a shard not copied yet, unless an earlier commit recorded it.
func (c *snapCut) remember(p *txnPlan) {
	for i := range p.keys {
		k := &p.keys[i]
		if !k.touched || (!k.present && k.e == nil) || k.shard < c.next {
			continue
		}
		if c.prior == nil {
			c.prior = make(map[int]map[string]priorState)
		}
		m := c.prior[k.shard]
		if m == nil {
			m = make(map[string]priorState)
			c.prior[k.shard] = m
		}
		if _, ok := m[k.key]; ok {
			continue
		}
		var ps priorState
		if k.e != nil {
			ps = priorState{item: k.e.item(), present: true}
		}
		m[k.key] = ps
	}
}

// substitute replaces, in the live items copied from shard i, the keys a
// transaction changed since the snapshot started by their prior state.
func (c *snapCut) substitute(i int, items []Item, now int64) []Item {
	m := c.prior[i]
	if len(m) == 0 {
		return items
	}
	kept := items[:0]
	for _, it := range items {
		if _, ok := m[it.Key]; !ok {
			kept = append(kept, it)
		}
	}
	clear(items[len(kept):])
	for _, ps := range m {
		if ps.present && (ps.item.Expires == 0 || ps.item.Expires > now) {
			kept = append(kept, ps.item)
		}
	}
	return kept
}
