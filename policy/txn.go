package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// DefaultMaxBatchOps caps a transaction's operations, and separately its
// checks, when Config.MaxBatchOps is zero.
const DefaultMaxBatchOps = 100

// CheckKind names what a TxnCheck asserts about its key.
type CheckKind uint8

// The conditions a transaction can commit under.
const (
	CheckAbsent  CheckKind = iota + 1 // the key is missing or expired
	CheckVersion                      // the key is live at exactly TxnCheck.Version (its ETag)
	CheckValue                        // the key is live and holds exactly TxnCheck.Value
)

// TxnCheck is a condition of a transaction, evaluated when it commits,
// against the state before any of its writes.
type TxnCheck struct {
	Kind CheckKind
	// Key is scoped like an operation's key: a check of ip/name checks
	// ip/<caller>/name, the key a write of ip/name in the same transaction
	// writes. (A check is a read, and reads are otherwise literal; but a
	// check guards the transaction's own writes, and a check and a write
	// that name one key must mean one key.)
	Key     string
	Version uint64 // for CheckVersion; must not be 0
	Value   []byte // for CheckValue
}

// TxnOpKind selects what a TxnOp does.
type TxnOpKind uint8

// The operations of a transaction.
const (
	TxnSet    TxnOpKind = iota + 1 // create or overwrite, as Write with OpSet
	TxnDelete                      // remove; a key that is already absent is no error
)

// TxnOp is one write of a transaction, checked by the same rules as the
// single-key Write (OpSet) and Delete.
type TxnOp struct {
	Op     TxnOpKind
	Key    string
	Value  []byte        // for TxnSet
	TTL    time.Duration // for TxnSet; 0 means the default (Config.MaxTTL)
	Secret string        // owner secret, or empty
}

// TxnRequest is a transaction as a front end parsed it.
type TxnRequest struct {
	Checks []TxnCheck
	Ops    []TxnOp
}

// TxnResult reports a committed transaction.
type TxnResult struct {
	// Version is the commit's version, which every key it wrote now
	// carries. A transaction that changed nothing (say, only deletes of
	// absent keys) takes no version of its own: Version is then the
	// store's version when it was decided.
	Version uint64
}

// Txn commits req atomically: when every check holds, all its operations
// take effect under one version, and otherwise none does. The operations
// apply in order, each seeing the ones before it.
//
// Every operation meets the rules of its single-key form, and one that
// fails any refuses the whole transaction: key syntax and size, ip/
// scoping (and the refusal of ip/ writes from other sites' pages), the
// caller's grants (write on each op's key as stored, read on each
// check's), the owner's secret, the value size and the TTL bounds; a transaction whose
// new keys do not fit under the store's key cap is refused with KindFull.
// A failed check refuses it with KindCheckFailed, whose Error lists every
// failed check in Failed.
//
// It costs CostWrite per operation, as the same writes sent one by one
// would; checks are free, as the If-Match of a single write is. A
// transaction needs at least one operation, so that it always costs
// something, and may have at most Config.MaxBatchOps operations and as
// many checks.
//
// As with Write, the answer waits until the commit is durable.
func (s *Service) Txn(c Caller, req TxnRequest) (TxnResult, error) {
	limit := s.BatchLimit()
	switch {
	case len(req.Ops) == 0:
		return TxnResult{}, Errorf(KindBadRequest, "a transaction needs at least one op")
	case len(req.Ops) > limit:
		return TxnResult{}, Errorf(KindBadRequest, "too many ops: at most %d per transaction", limit)
	case len(req.Checks) > limit:
		return TxnResult{}, Errorf(KindBadRequest, "too many checks: at most %d per transaction", limit)
	}
	if err := s.charge(c, s.cfg.CostWrite*len(req.Ops)); err != nil {
		return TxnResult{}, err
	}
	t := kv.Txn{Checks: make([]kv.Check, len(req.Checks)), Ops: make([]kv.TxnOp, len(req.Ops))}
	for i, ck := range req.Checks {
		key, _, err := s.scopeKey(c, ck.Key)
		if err != nil {
			return TxnResult{}, at("checks", i, err)
		}
		// A check tells whether the key holds a value, as a read does.
		if err := s.allow(c, key, AccessRead); err != nil {
			return TxnResult{}, at("checks", i, err)
		}
		sc := kv.Check{Key: key}
		switch ck.Kind {
		case CheckAbsent:
			sc.Kind = kv.CheckAbsent
		case CheckVersion:
			if ck.Version == 0 {
				return TxnResult{}, at("checks", i, errZeroVersion)
			}
			sc.Kind, sc.Version = kv.CheckVersion, ck.Version
		case CheckValue:
			sc.Kind, sc.Value = kv.CheckValue, ck.Value
		default:
			return TxnResult{}, at("checks", i, Errorf(KindBadRequest, "unknown kind of check"))
		}
		t.Checks[i] = sc
	}
	now := s.now()
	for i, op := range req.Ops {
		key, _, err := s.scopeKey(c, op.Key)
		if err != nil {
			return TxnResult{}, at("ops", i, err)
		}
		if err := s.allow(c, key, AccessWrite); err != nil {
			return TxnResult{}, at("ops", i, err)
		}
		so := kv.TxnOp{Key: key, Owner: kv.HashSecret(op.Secret)}
		switch op.Op {
		case TxnSet:
			if err := s.checkValue(op.Value, op.Secret); err != nil {
				return TxnResult{}, at("ops", i, err)
			}
			if so.Expires, err = s.expiry(now, op.TTL); err != nil {
				return TxnResult{}, at("ops", i, err)
			}
			so.Op, so.Value = kv.OpSet, op.Value
		case TxnDelete:
			so.Op = kv.OpDelete
		default:
			return TxnResult{}, at("ops", i, Errorf(KindBadRequest, "unknown op"))
		}
		t.Ops[i] = so
	}
	res, err := s.store.Commit(t)
	if err != nil {
		return TxnResult{}, fromCommit(err)
	}
	if err := s.commit(); err != nil {
		return TxnResult{}, err
	}
	return TxnResult{Version: res.Version}, nil
}

// BatchLimit returns the most operations, and the most checks, one
// transaction may have: Config.MaxBatchOps, or DefaultMaxBatchOps when
// that is unset. Front ends size their request limits by it.
func (s *Service) BatchLimit() int {
	if s.cfg.MaxBatchOps <= 0 {
		return DefaultMaxBatchOps
	}
	return s.cfg.MaxBatchOps
}

var errZeroVersion = Errorf(KindBadRequest, "version must be a version as an ETag gives it, never 0; to require a missing key, check absent")

// fromCommit turns an error of Store.Commit into an Error.
func fromCommit(err error) error {
	var te *kv.TxnError
	if !errors.As(err, &te) {
		return fromStore(err, kv.Item{})
	}
	switch {
	case errors.Is(te.Err, kv.ErrCheckFailed):
		idx := make([]string, len(te.Failed))
		for i, f := range te.Failed {
			idx[i] = strconv.Itoa(f)
		}
		return &Error{Kind: KindCheckFailed, Failed: te.Failed,
			Message: "transaction not committed: checks " + strings.Join(idx, ", ") + " failed"}
	case te.Op >= 0:
		return at("ops", te.Op, fromStore(te.Err, kv.Item{}))
	}
	return fromStore(te.Err, kv.Item{})
}

// at names the element of a transaction that err refuses, as
// "ops[2]: <message>", keeping err's kind.
func at(list string, i int, err error) error {
	var pe *Error
	if !errors.As(err, &pe) {
		return err
	}
	named := *pe
	named.Message = fmt.Sprintf("%s[%d]: %s", list, i, pe.Message)
	return &named
}
