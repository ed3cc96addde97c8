package policy

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"time"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// The limits of KV Connect requests: denokv's, except that a write may
// have 100 checks, as the Deno client allows. Config.MaxValueSize and the
// store's key cap apply too.
const (
	TupleMaxKey          = 2048   // bytes of a key a write names
	TupleMaxReadKey      = 2049   // bytes of a read range's bound
	TupleMaxValue        = 65536  // bytes of a value
	TupleMaxRanges       = 10     // ranges of one read
	TupleMaxReadEntries  = 1000   // the sum of a read's range limits
	TupleMaxChecks       = 100    // checks of one write
	TupleMaxMutations    = 1000   // mutations of one write
	TupleMaxWriteBytes   = 819200 // keys and values of one write together
	TupleMaxWatchKeys    = 10     // keys of one watch
	tupleMaxWriteRetries = 16     // read-modify-write rounds lost to other writers before giving up
)

// TupleRange is one range of a read: keys (tuple encodings) with
// Start <= key < End, at most Limit of them, the last ones first when
// Reverse.
type TupleRange struct {
	Start, End []byte
	Limit      int
	Reverse    bool
}

// TupleEntry is one key as a tuple read returns it.
type TupleEntry struct {
	Key      []byte // the tuple encoding
	Value    []byte // shares memory with the store; must not be modified
	Encoding ValueEncoding
	Version  uint64
}

// TupleRead reads ranges of Deno keys, in Deno's order (the byte order of
// the tuple encoding) across shared string keys and tuple keys. It costs
// CostRead per range.
func (s *Service) TupleRead(c Caller, ranges []TupleRange) ([][]TupleEntry, error) {
	if len(ranges) > TupleMaxRanges {
		return nil, Errorf(KindBadRequest, "too many ranges: at most %d per read", TupleMaxRanges)
	}
	total := 0
	for i, r := range ranges {
		switch {
		case r.Limit < 1:
			return nil, Errorf(KindBadRequest, "ranges[%d]: limit must be at least 1", i)
		case len(r.Start) > TupleMaxReadKey || len(r.End) > TupleMaxReadKey:
			return nil, Errorf(KindBadRequest, "ranges[%d]: a range bound may be at most %d bytes", i, TupleMaxReadKey)
		}
		total += r.Limit
	}
	if total > TupleMaxReadEntries {
		return nil, Errorf(KindBadRequest, "too many entries: the limits of one read may add up to at most %d", TupleMaxReadEntries)
	}
	if err := s.charge(c, s.cfg.CostRead*max(len(ranges), 1)); err != nil {
		return nil, err
	}
	g := s.grants(c)
	if g != nil {
		for i, r := range ranges {
			if err := s.allowRange(c, g, r); err != nil {
				return nil, at("ranges", i, err)
			}
		}
	}
	out := make([][]TupleEntry, len(ranges))
	for i, r := range ranges {
		var err error
		if out[i], err = s.readRange(r, g); err != nil {
			return nil, at("ranges", i, err)
		}
	}
	return out, nil
}

// readRange merges the shared string keys and the tuple keys of r, of
// those g lets its holder read (all of them for a nil g).
func (s *Service) readRange(r TupleRange, g *Grants) ([]TupleEntry, error) {
	if bytes.Compare(r.Start, r.End) >= 0 {
		return nil, nil
	}
	if n := len(r.Start); len(r.End) == n+1 && r.End[n] == 0 && bytes.Equal(r.Start, r.End[:n]) {
		// [k, k+0x00) holds k alone: Deno's get, read as one key rather
		// than a scan of every shard. (TupleRead refuses it when g does
		// not let its holder read it.)
		if g != nil {
			key, shared := s.storeKey(r.Start)
			if !shared {
				key = tupleGrantKey(r.Start)
			}
			if !g.Allows(key, AccessRead) {
				return nil, nil
			}
		}
		return s.pointRead(r.Start), nil
	}
	var strs, tuples []kv.Item
	var err error
	lo, hi, ok := stringBounds(r.Start, r.End)
	switch {
	case ok && g == nil:
		strs = s.storeRange(lo, hi, r.Limit, r.Reverse)
	case ok:
		if strs, err = s.readableStrings(g, lo, hi, r.Limit, r.Reverse); err != nil {
			return nil, err
		}
	}
	lo, hi = tupleBounds(r.Start, r.End)
	if g == nil {
		tuples = s.storeRange(lo, hi, r.Limit, r.Reverse)
	} else if tuples, err = s.readableTuples(g, lo, hi, r.Limit, r.Reverse); err != nil {
		return nil, err
	}
	out := make([]TupleEntry, 0, min(r.Limit, len(strs)+len(tuples)))
	var nextStr *TupleEntry
	for len(out) < r.Limit && (len(strs) > 0 || len(tuples) > 0) {
		if nextStr == nil && len(strs) > 0 {
			e, ok := s.sharedEntry(strs[0])
			if !ok {
				strs = strs[1:]
				continue
			}
			nextStr = &e
		}
		var takeStr bool
		switch {
		case nextStr == nil:
		case len(tuples) == 0:
			takeStr = true
		default:
			cmp := bytes.Compare(nextStr.Key, tupleOf(tuples[0].Key))
			takeStr = (cmp < 0) != r.Reverse
		}
		if takeStr {
			out = append(out, *nextStr)
			nextStr, strs = nil, strs[1:]
			continue
		}
		out = append(out, tupleEntry(tuples[0]))
		tuples = tuples[1:]
	}
	return out, nil
}

// pointRead reads the one key a tuple names.
func (s *Service) pointRead(tuple []byte) []TupleEntry {
	key, shared := s.storeKey(tuple)
	it, ok := s.store.Get(key)
	if !ok {
		return nil
	}
	if !shared {
		return []TupleEntry{tupleEntry(it)}
	}
	if e, ok := s.sharedEntry(it); ok {
		return []TupleEntry{e}
	}
	return nil
}

// tupleEntry decodes an item of the tuple space: the value is kept after
// one byte of its encoding.
func tupleEntry(it kv.Item) TupleEntry {
	e := TupleEntry{Key: tupleOf(it.Key), Version: it.Version, Encoding: EncodingBytes, Value: it.Value}
	if len(it.Value) > 0 && it.Value[0] >= byte(EncodingV8) && it.Value[0] <= byte(EncodingBytes) {
		e.Encoding, e.Value = ValueEncoding(it.Value[0]), it.Value[1:]
	}
	return e
}

// sharedEntry returns the entry of a shared string key. Its value is
// kept as it is, so that curl reads what Deno wrote; how Deno encoded it
// is kept beside it, under encodingSpace, written in the same commit and
// so at the same version. A later write over HTTP gives the key a new
// version, which makes that record stale: the value is then bytes. ok is
// false when the key was removed while it was read.
func (s *Service) sharedEntry(it kv.Item) (TupleEntry, bool) {
	for range 4 {
		if !encodedShape(it.Value) {
			break // no record can be kept for such a value: bytes
		}
		if sc, ok := s.store.Get(encodingSpace + it.Key); ok && sc.Version == it.Version && len(sc.Value) == 1 {
			return TupleEntry{Key: tupleOf(it.Key), Value: it.Value, Encoding: ValueEncoding(sc.Value[0]), Version: it.Version}, true
		}
		// No record of this version: the value is bytes, unless the key
		// changed between the two reads (then read the new one).
		again, ok := s.store.Get(it.Key)
		if !ok {
			return TupleEntry{}, false
		}
		if again.Version == it.Version {
			break
		}
		it = again
	}
	return TupleEntry{Key: tupleOf(it.Key), Value: it.Value, Encoding: EncodingBytes, Version: it.Version}, true
}

// DenoEncoding returns how a Deno client encoded the value of the string
// key it names, for the string front ends to mark values that are not
// plain bytes: "v8" (a JS value in V8's serialization), "le64" (a
// Deno.KvU64) or "" (bytes, as curl writes them).
func (s *Service) DenoEncoding(it kv.Item) string {
	if !encodedShape(it.Value) {
		return ""
	}
	sc, ok := s.store.Get(encodingSpace + it.Key)
	if !ok || sc.Version != it.Version || len(sc.Value) != 1 {
		return ""
	}
	switch ValueEncoding(sc.Value[0]) {
	case EncodingV8:
		return "v8"
	case EncodingLE64:
		return "le64"
	}
	return ""
}

// TupleMutationKind selects what a TupleMutation does.
type TupleMutationKind uint8

// The mutations of a tuple write.
const (
	MutationSet    TupleMutationKind = iota + 1 // store Value
	MutationDelete                              // remove; an absent key is no error
	MutationSum                                 // wrapping add of a Deno.KvU64
	MutationMax                                 // unsigned maximum of a Deno.KvU64
	MutationMin                                 // unsigned minimum of a Deno.KvU64
	// MutationSetSuffixVersionstamp stores Value under Key with a final
	// string part of the commit's versionstamp in hex.
	MutationSetSuffixVersionstamp
)

// TupleMutation is one mutation of a tuple write.
type TupleMutation struct {
	Kind     TupleMutationKind
	Key      []byte
	Value    []byte
	Encoding ValueEncoding
	// ExpireAtMs is an absolute expiry in Unix milliseconds; 0 (or -1)
	// means the server's default TTL.
	ExpireAtMs int64
}

// TupleCheck is a condition of a tuple write: the key is absent, or live
// at exactly Version.
type TupleCheck struct {
	Key     []byte
	Absent  bool
	Version uint64 // 0 never matches
}

// TupleWrite is an atomic write of Deno keys.
type TupleWrite struct {
	Checks    []TupleCheck
	Mutations []TupleMutation
}

// tupleKey is the store key a tuple write names, with its ip/ scoping
// applied when it is a shared string key.
func (s *Service) tupleWriteKey(c Caller, tuple []byte) (key string, shared bool, err error) {
	switch {
	case len(tuple) == 0:
		return "", false, Errorf(KindBadRequest, "key is empty")
	case len(tuple) > TupleMaxKey:
		return "", false, Errorf(KindBadRequest, "key too long: at most %d bytes", TupleMaxKey)
	}
	key, shared = s.storeKey(tuple)
	if !shared {
		return key, false, nil
	}
	key, _, err = s.scopeKey(c, key)
	return key, true, err
}

// valueState is what a key of a write holds so far.
type valueState struct {
	present bool
	value   []byte
	enc     ValueEncoding
}

// TupleCommit commits w atomically: when every check holds, all its
// mutations take effect under one version, otherwise none does. SUM, MIN
// and MAX read the values they combine and commit only if those are still
// current, retrying when another writer came first, so a failing mutation
// (a type mismatch) commits nothing. It costs CostWrite per mutation (a
// write of checks alone costs a read). A check that fails is a
// KindCheckFailed Error listing the failed checks.
func (s *Service) TupleCommit(c Caller, w TupleWrite) (uint64, error) {
	switch {
	case len(w.Checks) > TupleMaxChecks:
		return 0, Errorf(KindBadRequest, "too many checks: at most %d per write", TupleMaxChecks)
	case len(w.Mutations) > TupleMaxMutations:
		return 0, Errorf(KindBadRequest, "too many mutations: at most %d per write", TupleMaxMutations)
	}
	size := 0
	for _, ck := range w.Checks {
		size += len(ck.Key)
	}
	for _, m := range w.Mutations {
		size += len(m.Key) + len(m.Value)
	}
	if size > TupleMaxWriteBytes {
		return 0, Errorf(KindBadRequest, "write too large: keys and values may be at most %d bytes together", TupleMaxWriteBytes)
	}
	cost := s.cfg.CostWrite * len(w.Mutations)
	if cost == 0 {
		cost = s.cfg.CostRead
	}
	if err := s.charge(c, cost); err != nil {
		return 0, err
	}
	checks := make([]kv.Check, len(w.Checks))
	for i, ck := range w.Checks {
		key, shared, err := s.tupleWriteKey(c, ck.Key)
		if err == nil {
			err = s.allowTuple(c, ck.Key, key, shared, AccessRead)
		}
		if err != nil {
			return 0, at("checks", i, err)
		}
		if ck.Absent {
			checks[i] = kv.Check{Kind: kv.CheckAbsent, Key: key}
		} else {
			checks[i] = kv.Check{Kind: kv.CheckVersion, Key: key, Version: ck.Version}
		}
	}
	if v, ok, err := s.singleSet(c, w, checks); ok {
		return v, err
	}
	suffixed := false
	for _, m := range w.Mutations {
		suffixed = suffixed || m.Kind == MutationSetSuffixVersionstamp
	}
	versions, _ := s.store.(interface{ Version() uint64 })
	if suffixed && versions == nil {
		return 0, Errorf(KindBadRequest, "versionstamped keys are not supported by this server's store")
	}
	for range tupleMaxWriteRetries {
		// A versionstamped key names the commit's version, which is
		// predicted, and the commit made conditional on it.
		var next uint64
		if suffixed {
			next = versions.Version() + 1
		}
		t, opMut, err := s.planTuple(c, w, checks, next)
		if err != nil {
			return 0, err
		}
		t.AtVersion = next
		res, err := s.store.Commit(t)
		var te *kv.TxnError
		switch {
		case err == nil:
			if err := s.commit(); err != nil {
				return 0, err
			}
			return res.Version, nil
		case !errors.As(err, &te):
			return 0, fromStore(err, kv.Item{})
		case errors.Is(te.Err, kv.ErrVersionTaken):
			continue // another write took the predicted version
		case errors.Is(te.Err, kv.ErrCheckFailed):
			var failed []int
			for _, f := range te.Failed {
				if f < len(w.Checks) {
					failed = append(failed, f)
				}
			}
			if failed != nil {
				return 0, &Error{Kind: KindCheckFailed, Failed: failed, Message: "write not committed: a check failed"}
			}
			continue // a value SUM, MIN or MAX read changed: read it again
		case te.Op >= 0 && errors.Is(te.Err, kv.ErrForbidden):
			return 0, errOwnedByHTTP(opMut[te.Op])
		case te.Op >= 0:
			return 0, at("mutations", opMut[te.Op], fromStore(te.Err, kv.Item{}))
		default:
			return 0, fromStore(te.Err, kv.Item{})
		}
	}
	return 0, Errorf(KindUnavailable, "write not committed: the values it combines kept changing; retry")
}

// singleSet commits a write of one SET and no checks as a single-key
// write, which takes only its key's shard lock where a transaction takes
// the store's: the common kv.set. ok is false when w is not one, or
// needs a transaction (a value not stored as bytes under a shared key, or
// such a key whose encoding record must go).
func (s *Service) singleSet(c Caller, w TupleWrite, checks []kv.Check) (uint64, bool, error) {
	if len(checks) != 0 || len(w.Mutations) != 1 || w.Mutations[0].Kind != MutationSet {
		return 0, false, nil
	}
	m := w.Mutations[0]
	key, shared, err := s.tupleWriteKey(c, m.Key)
	if err == nil {
		err = s.allowTuple(c, m.Key, key, shared, AccessWrite)
	}
	if err != nil || m.Encoding < EncodingV8 || m.Encoding > EncodingBytes {
		return 0, false, nil // the transaction path words the refusal
	}
	if shared {
		if m.Encoding != EncodingBytes {
			return 0, false, nil
		}
		// A record left by an earlier JS value would be stale once this
		// write gives the key a new version, but it would linger.
		if _, ok := s.store.Get(encodingSpace + key); ok {
			return 0, false, nil
		}
	}
	now := s.now()
	expires, gone, err := s.tupleExpiry(now, m.ExpireAtMs)
	if err != nil || gone || (m.Encoding == EncodingLE64 && len(m.Value) != 8) || len(m.Value) > min(TupleMaxValue, s.cfg.MaxValueSize) {
		return 0, false, nil
	}
	value := m.Value
	if !shared {
		value = make([]byte, 1+len(m.Value))
		value[0] = byte(m.Encoding)
		copy(value[1:], m.Value)
	}
	it, err := s.store.Set(key, kv.Write{Value: value, Expires: expires})
	switch {
	case errors.Is(err, kv.ErrForbidden):
		return 0, true, errOwnedByHTTP(0)
	case err != nil:
		return 0, true, at("mutations", 0, fromStore(err, it))
	}
	if err := s.commit(); err != nil {
		return 0, true, err
	}
	return it.Version, true, nil
}

func errOwnedByHTTP(i int) error {
	return Errorf(KindOwned, "mutations[%d]: key is owned (it was written with an owner secret over HTTP); a Deno KV write carries no secret and cannot change or delete it", i)
}

// planTuple turns w into one store transaction: user checks first, then
// a check on every value a SUM, MIN or MAX read. opMut maps each store op
// to its mutation.
func (s *Service) planTuple(c Caller, w TupleWrite, checks []kv.Check, version uint64) (kv.Txn, []int, error) {
	now := s.now()
	t := kv.Txn{Checks: append([]kv.Check(nil), checks...)}
	var opMut []int
	pending := make(map[string]valueState)
	add := func(i int, op kv.TxnOp) {
		t.Ops = append(t.Ops, op)
		opMut = append(opMut, i)
	}
	set := func(i int, key string, shared bool, value []byte, enc ValueEncoding, expires int64) {
		pending[key] = valueState{present: true, value: value, enc: enc}
		var cause kv.Cause
		if w.Mutations[i].Kind == MutationSum {
			cause = kv.CauseIncr // as Redis names an addition
		}
		if !shared {
			stored := make([]byte, 1+len(value))
			stored[0] = byte(enc)
			copy(stored[1:], value)
			add(i, kv.TxnOp{Op: kv.OpSet, Cause: cause, Key: key, Value: stored, Expires: expires})
			return
		}
		add(i, kv.TxnOp{Op: kv.OpSet, Cause: cause, Key: key, Value: value, Expires: expires})
		if enc == EncodingBytes {
			add(i, kv.TxnOp{Op: kv.OpDelete, Key: encodingSpace + key})
		} else {
			add(i, kv.TxnOp{Op: kv.OpSet, Key: encodingSpace + key, Value: []byte{byte(enc)}, Expires: expires})
		}
	}
	del := func(i int, key string, shared bool) {
		pending[key] = valueState{}
		add(i, kv.TxnOp{Op: kv.OpDelete, Key: key})
		if shared {
			add(i, kv.TxnOp{Op: kv.OpDelete, Key: encodingSpace + key})
		}
	}
	maxValue := min(TupleMaxValue, s.cfg.MaxValueSize)
	for i, m := range w.Mutations {
		tuple := m.Key
		if m.Kind == MutationSetSuffixVersionstamp {
			// The key gains a last string part: the versionstamp in hex.
			tuple = append(append([]byte(nil), m.Key...), tupleString)
			tuple = hex.AppendEncode(tuple, Versionstamp(version))
			tuple = append(tuple, 0)
		}
		key, shared, err := s.tupleWriteKey(c, tuple)
		if err == nil {
			err = s.allowTuple(c, tuple, key, shared, AccessWrite)
		}
		if err != nil {
			return kv.Txn{}, nil, at("mutations", i, err)
		}
		if m.Kind != MutationDelete {
			switch {
			case m.Encoding < EncodingV8 || m.Encoding > EncodingBytes:
				return kv.Txn{}, nil, Errorf(KindBadRequest, "mutations[%d]: unknown value encoding", i)
			case m.Encoding == EncodingLE64 && len(m.Value) != 8:
				return kv.Txn{}, nil, Errorf(KindBadRequest, "mutations[%d]: a Deno.KvU64 value is 8 bytes", i)
			case m.Encoding == EncodingV8 && !v8Shaped(m.Value):
				return kv.Txn{}, nil, Errorf(KindBadRequest, "mutations[%d]: a V8-serialized value starts with its version tag, 0xff", i)
			case len(m.Value) > maxValue:
				return kv.Txn{}, nil, Errorf(KindTooLarge, "mutations[%d]: value too large: at most %d bytes", i, maxValue)
			}
		}
		switch m.Kind {
		case MutationSet, MutationSetSuffixVersionstamp:
			expires, gone, err := s.tupleExpiry(now, m.ExpireAtMs)
			if err != nil {
				return kv.Txn{}, nil, at("mutations", i, err)
			}
			if gone {
				del(i, key, shared) // expired already: as if set and expired
			} else {
				set(i, key, shared, m.Value, m.Encoding, expires)
			}
		case MutationDelete:
			del(i, key, shared)
		case MutationSum, MutationMax, MutationMin:
			if m.Encoding != EncodingLE64 {
				return kv.Txn{}, nil, Errorf(KindBadRequest, "mutations[%d]: sum, min and max take a Deno.KvU64 operand; a number or bigint operand is not supported", i)
			}
			cur, ok := pending[key]
			if !ok {
				var version uint64
				cur, version = s.currentValue(key, shared)
				ck := kv.Check{Kind: kv.CheckAbsent, Key: key}
				if cur.present {
					ck = kv.Check{Kind: kv.CheckVersion, Key: key, Version: version}
				}
				t.Checks = append(t.Checks, ck)
			}
			result := m.Value
			if cur.present {
				if cur.enc != EncodingLE64 || len(cur.value) != 8 {
					return kv.Txn{}, nil, Errorf(KindBadRequest, "mutations[%d]: the stored value is not a Deno.KvU64, so it cannot be combined; nothing was written", i)
				}
				a, b := binary.LittleEndian.Uint64(cur.value), binary.LittleEndian.Uint64(m.Value)
				var r uint64
				switch m.Kind {
				case MutationSum:
					r = a + b
				case MutationMax:
					r = max(a, b)
				default:
					r = min(a, b)
				}
				result = binary.LittleEndian.AppendUint64(nil, r)
			}
			expires, _, _ := s.tupleExpiry(now, 0)
			set(i, key, shared, result, EncodingLE64, expires)
		default:
			return kv.Txn{}, nil, Errorf(KindBadRequest, "mutations[%d]: invalid mutation kind", i)
		}
	}
	return t, opMut, nil
}

// currentValue reads what key holds now, and at which version, for a
// SUM, MIN or MAX.
func (s *Service) currentValue(key string, shared bool) (valueState, uint64) {
	it, ok := s.store.Get(key)
	if !ok {
		return valueState{}, 0
	}
	var e TupleEntry
	if shared {
		if e, ok = s.sharedEntry(it); !ok {
			return valueState{}, 0
		}
	} else {
		e = tupleEntry(it)
	}
	return valueState{present: true, value: e.Value, enc: e.Encoding}, e.Version
}

// tupleExpiry turns a KV Connect expiry (absolute Unix milliseconds, 0 or
// -1 for none) into the store's, with the server's TTL rules: none gets
// the default TTL and a later one is capped. gone is set when the expiry
// has passed already.
func (s *Service) tupleExpiry(now time.Time, atMs int64) (expires int64, gone bool, err error) {
	switch {
	case atMs == 0 || atMs == -1:
		expires, err = s.expiry(now, 0)
		return expires, false, err
	case atMs < -1:
		return 0, false, Errorf(KindBadRequest, "expiry must be a time in Unix milliseconds")
	}
	ttl := time.UnixMilli(atMs).Sub(now)
	if ttl <= 0 {
		return 0, true, nil
	}
	expires, err = s.expiry(now, ttl)
	return expires, false, err
}

// Versionstamp returns the KV Connect versionstamp of a version: the
// store's version counter in 8 big-endian bytes, then 2 zero bytes. It is
// the same counter as the HTTP API's ETags, so one write has one version
// whichever protocol made it.
func Versionstamp(v uint64) []byte {
	b := make([]byte, 10)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// v8Shaped reports whether value can be V8's serialization, which always
// starts with its version tag, 0xff (no UTF-8 text does).
func v8Shaped(value []byte) bool { return len(value) > 0 && value[0] == 0xff }

// encodedShape reports whether a shared key's value may have been written
// as a V8 value or a Deno.KvU64 (8 bytes): only then is its encoding
// record looked up, so plain values cost no second read.
func encodedShape(value []byte) bool { return len(value) == 8 || v8Shaped(value) }
