package policy

import (
	"errors"
	"strings"
	"time"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// StoredKey returns key as a command of the caller names it in the store,
// after the key rules: for a write (write set) an ip/ key is scoped to the
// caller's address as Write scopes it, and refused to another site's page;
// for a read it is taken literally, as Get takes it. Front ends whose
// commands read and write keys in one step (Redis's INCR, MULTI/EXEC) name
// the keys they pass to Atomic by it.
func (s *Service) StoredKey(c Caller, key string, write bool) (string, error) {
	if !write {
		return key, s.checkKey(key)
	}
	stored, _, err := s.scopeKey(c, key)
	return stored, err
}

// AtomicOp is one write an Atomic asks for, on a key as StoredKey returned
// it for a write.
type AtomicOp struct {
	Key    string
	Delete bool
	Value  []byte
	// TTL is the new value's lifetime; 0 means the default, and a longer
	// one than Config.MaxTTL is capped to it, as with Write.
	TTL time.Duration
	// KeepTTL keeps the expiry the key had when it was read (Redis's
	// KEEPTTL, INCR, APPEND); a key that was absent gets TTL.
	KeepTTL bool
	// Secret is the owner secret of this write: it must match an owned
	// key's, and claims a key that has none.
	Secret string
	// Cause is what the write does, for the change feed's readers
	// (kv.Change.Cause); the zero value is a plain write.
	Cause kv.Cause
}

// Watched is a key, as stored, that an Atomic commits only if it is still
// at Version (0: still absent), as Redis's WATCH asks.
type Watched struct {
	Key     string
	Version uint64
}

// AtomicRequest is a read-modify-write of any keys: Decide reads what it
// needs through read and returns the writes; they commit only if nothing
// it read changed meanwhile.
type AtomicRequest struct {
	// Reads and Writes are what the command costs, in reads and writes
	// (one per key touched): charged once, however often Decide runs.
	Reads, Writes int
	// Watch lists keys that must be unchanged since the caller saw them.
	Watch []Watched
	// Decide is called with a reader of live items by stored key (read
	// keys literally, written ones as StoredKey scoped them), and may be
	// called again when a key it read changed before the commit; it must
	// have no other effect. Its error is returned as it is. The items'
	// values share memory with the store and must not be modified.
	Decide func(read func(key string) (kv.Item, bool)) ([]AtomicOp, error)
}

// maxAtomicAttempts bounds the retries of an Atomic whose keys keep
// changing under it.
const maxAtomicAttempts = 16

var (
	errWatchChanged = &Error{Kind: KindCheckFailed, Message: "a watched key changed"}
	errContended    = &Error{Kind: KindConflict, Message: "the keys changed too often while this command ran; retry"}
)

// Atomic runs req: every write Decide returns commits under one version,
// and only if every key it read (and every watched key) is as it was when
// read, so the command acts on one consistent state, and no other client
// sees part of it. When a key Decide read changed, it runs again (a few
// times at most, then KindConflict); when a watched key changed, nothing
// is written and the error is KindCheckFailed with Failed listing the
// indexes in Watch of the changed keys. A command that writes nothing
// commits only its checks, so its reads were one state too.
//
// Every write meets the rules of a single Write or Delete: key syntax and
// size (and an ip/ key only under the caller's own address, never for
// another site's page), value plus secret size, TTL bounds, the owner's
// secret and the store's key cap. It costs Reads reads and Writes writes,
// and at most Config.MaxBatchOps writes and as many checks may commit
// together.
func (s *Service) Atomic(c Caller, req AtomicRequest) (TxnResult, error) {
	if err := s.charge(c, s.cfg.CostRead*req.Reads+s.cfg.CostWrite*req.Writes); err != nil {
		return TxnResult{}, err
	}
	limit := s.BatchLimit()
	for attempt := 0; attempt < maxAtomicAttempts; attempt++ {
		read := make(map[string]kv.Item)
		var order []string
		var refused error // the first read the rules refuse
		reader := func(key string) (kv.Item, bool) {
			it, seen := read[key]
			if !seen {
				// Every read a rule decides is decided here (the
				// caller's read right too), so a
				// Decide cannot see what a Get would refuse.
				err := s.checkKey(key)
				if err == nil {
					err = s.allow(c, key, AccessRead)
				}
				if err != nil {
					if refused == nil {
						refused = err
					}
					return kv.Item{}, false
				}
				it, _ = s.store.Get(key)
				read[key] = it
				order = append(order, key)
			}
			return it, it.Version != 0
		}
		ops, err := req.Decide(reader)
		if err == nil {
			err = refused
		}
		if err != nil {
			return TxnResult{}, err
		}
		if len(ops) > limit {
			return TxnResult{}, Errorf(KindBadRequest, "too many writes: at most %d in one command or transaction", limit)
		}
		if len(order)+len(req.Watch) > limit {
			return TxnResult{}, Errorf(KindBadRequest, "too many keys: at most %d read or watched in one command or transaction", limit)
		}
		t := kv.Txn{Checks: make([]kv.Check, 0, len(req.Watch)+len(order)), Ops: make([]kv.TxnOp, len(ops))}
		for _, w := range req.Watch {
			t.Checks = append(t.Checks, versionCheck(w.Key, w.Version))
		}
		for _, key := range order {
			t.Checks = append(t.Checks, versionCheck(key, read[key].Version))
		}
		now := s.now()
		for i, op := range ops {
			so, err := s.atomicOp(c, op, read, now)
			if err != nil {
				return TxnResult{}, err
			}
			t.Ops[i] = so
		}
		res, err := s.store.Commit(t)
		if err != nil {
			var te *kv.TxnError
			if asTxnError(err, &te) && len(te.Failed) > 0 {
				var watched []int
				for _, f := range te.Failed {
					if f < len(req.Watch) {
						watched = append(watched, f)
					}
				}
				if len(watched) > 0 {
					e := *errWatchChanged
					e.Failed = watched
					return TxnResult{}, &e
				}
				continue // something Decide read changed: decide again
			}
			if asTxnError(err, &te) && te.Op >= 0 {
				return TxnResult{}, fromStore(te.Err, kv.Item{})
			}
			return TxnResult{}, fromCommit(err)
		}
		if len(res.Changes) > 0 {
			if err := s.commit(); err != nil {
				return TxnResult{}, err
			}
		}
		return TxnResult{Version: res.Version}, nil
	}
	return TxnResult{}, errContended
}

// atomicOp checks op by the rules of a single write (the caller's
// write right on op.Key too) and turns it into the
// store's form.
func (s *Service) atomicOp(c Caller, op AtomicOp, read map[string]kv.Item, now time.Time) (kv.TxnOp, error) {
	if err := s.checkStoredWrite(c, op.Key); err != nil {
		return kv.TxnOp{}, err
	}
	so := kv.TxnOp{Key: op.Key, Owner: kv.HashSecret(op.Secret)}
	if op.Delete {
		so.Op = kv.OpDelete
		return so, nil
	}
	if err := s.checkValue(op.Value, op.Secret); err != nil {
		return kv.TxnOp{}, err
	}
	so.Op, so.Value, so.Cause = kv.OpSet, op.Value, op.Cause
	if cur, ok := read[op.Key]; ok && op.KeepTTL && cur.Version != 0 {
		// Kept as it was, within today's cap.
		capped, err := s.expiry(now, 0)
		if err != nil {
			return kv.TxnOp{}, err
		}
		so.Expires = cur.Expires
		if so.Expires == 0 || so.Expires > capped {
			so.Expires = capped
		}
		return so, nil
	}
	var err error
	so.Expires, err = s.expiry(now, op.TTL)
	return so, err
}

// checkStoredWrite checks a key already in stored form for a write by c:
// the key rules, and that an ip/ key lies in c's own address space.
func (s *Service) checkStoredWrite(c Caller, key string) error {
	if strings.HasPrefix(key, "ip/") {
		if err := WriteAllowed(c, key); err != nil {
			return err
		}
		ip := kv.CanonicalIP(c.IP)
		if !ip.IsValid() || !strings.HasPrefix(key, "ip/"+ip.String()+"/") || len(key) == len("ip/"+ip.String()+"/") {
			return Errorf(KindForbidden, "ip/ keys are written only under the writer's own address")
		}
	}
	if err := s.checkKey(key); err != nil {
		return err
	}
	return s.allow(c, key, AccessWrite)
}

func versionCheck(key string, version uint64) kv.Check {
	if version == 0 {
		return kv.Check{Kind: kv.CheckAbsent, Key: key}
	}
	return kv.Check{Kind: kv.CheckVersion, Key: key, Version: version}
}

func asTxnError(err error, te **kv.TxnError) bool { return errors.As(err, te) }
