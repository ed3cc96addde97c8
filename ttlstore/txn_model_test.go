package ttlstore_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// txnModelEntry is one key of the sequential reference of
// TestCommitAgainstModel.
type txnModelEntry struct {
	value   string
	expires int64
	owner   ttlstore.Owner
	version uint64
}

// TestCommitAgainstModel runs random transactions, mixed with single-key
// writes, deletes, expiry and reaping, against the store and a plain map
// that applies each transaction one op at a time, and compares every
// outcome (which checks failed, which op was refused, a full store, the
// changes and their version) and the state a user can read after each
// step.
func TestCommitAgainstModel(t *testing.T) {
	for _, shards := range []int{1, 8} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("shards=%d/seed=%d", shards, seed), func(t *testing.T) {
				runTxnModel(t, shards, seed)
			})
		}
	}
}

func runTxnModel(t *testing.T, shards int, seed uint64) {
	const (
		maxKeys = 12
		keySpan = 18
	)
	rng := rand.New(rand.NewPCG(seed, 7))
	var rec commitRecorder
	s, clk := newStore(rec.opts(ttlstore.Options{Shards: shards, MaxKeys: maxKeys}))
	model := map[string]txnModelEntry{} // live keys only
	owners := []ttlstore.Owner{"", "", ttlstore.HashSecret("a"), ttlstore.HashSecret("b")}
	var lastVersion uint64
	outcomes := map[string]int{}

	now := func() int64 { return clk.Now().UnixNano() }
	prune := func() {
		for k, e := range model {
			if e.expires != 0 && e.expires <= now() {
				delete(model, k)
			}
		}
	}
	randKey := func() string { return fmt.Sprintf("k%02d", rng.IntN(keySpan)) }
	randValue := func() string { return fmt.Sprint(rng.IntN(3)) }
	randExpires := func() int64 {
		if rng.IntN(3) == 0 {
			return clk.at(time.Duration(1+rng.IntN(8)) * 500 * time.Millisecond)
		}
		return 0
	}
	// nextVersion checks that v is a new version and remembers it.
	nextVersion := func(step int, v uint64) {
		t.Helper()
		require.Greater(t, v, lastVersion, "step %d", step)
		lastVersion = v
	}
	// checkReported checks what the hooks saw since the last step: a
	// commit's changes arrive as one call sharing its version, in
	// increasing version order with everything else.
	checkReported := func(step int, commit []ttlstore.Change) {
		t.Helper()
		var prev uint64
		var found bool
		for _, call := range rec.take() {
			v := call[0].Item.Version
			require.Greater(t, v, prev, "step %d: versions reported out of order", step)
			prev = v
			for _, c := range call {
				require.Equal(t, v, c.Item.Version, "step %d: one call, one version", step)
			}
			if commit != nil && v == commit[0].Item.Version {
				require.Equal(t, commit, call, "step %d", step)
				found = true
			}
		}
		if commit != nil {
			require.True(t, found, "step %d: the commit was not reported", step)
		}
	}
	// randTxn returns a transaction whose checks mostly hold and whose ops
	// mostly bring the right owner, so that every outcome is common.
	randTxn := func() ttlstore.Txn {
		var txn ttlstore.Txn
		for range rng.IntN(3) {
			k := randKey()
			c := ttlstore.Check{Key: k}
			cur, ok := model[k]
			holds := rng.IntN(4) != 0
			switch kind := rng.IntN(3); {
			case kind == 0 || !ok && holds:
				c.Kind = ttlstore.CheckAbsent
			case kind == 1:
				c.Kind, c.Version = ttlstore.CheckVersion, cur.version
				if !holds {
					c.Version = lastVersion - uint64(rng.IntN(3))
				}
			default:
				c.Kind, c.Value = ttlstore.CheckValue, []byte(cur.value)
				if !holds {
					c.Value = []byte(randValue())
				}
			}
			txn.Checks = append(txn.Checks, c)
		}
		for range 1 + rng.IntN(5) {
			op := ttlstore.TxnOp{Op: ttlstore.OpSet, Key: randKey(), Owner: owners[rng.IntN(len(owners))]}
			if cur, ok := model[op.Key]; ok && rng.IntN(4) != 0 {
				op.Owner = cur.owner
			}
			if rng.IntN(3) == 0 {
				op.Op = ttlstore.OpDelete
			} else {
				op.Value, op.Expires = []byte(randValue()), randExpires()
			}
			txn.Ops = append(txn.Ops, op)
		}
		return txn
	}

	for step := range 1500 {
		prune()
		switch r := rng.IntN(100); {
		case r < 55: // a transaction
			txn := randTxn()
			var failed []int
			for i, c := range txn.Checks {
				cur, ok := model[c.Key]
				var holds bool
				switch c.Kind {
				case ttlstore.CheckAbsent:
					holds = !ok
				case ttlstore.CheckVersion:
					holds = ok && cur.version == c.Version
				case ttlstore.CheckValue:
					holds = ok && cur.value == string(c.Value)
				}
				if !holds {
					failed = append(failed, i)
				}
			}
			// Apply the ops one at a time to a copy of the touched keys.
			after := map[string]*txnModelEntry{}
			var order []string
			forbidden := -1
			for i, op := range txn.Ops {
				e, seen := after[op.Key]
				if !seen {
					order = append(order, op.Key)
					if cur, ok := model[op.Key]; ok {
						e = &cur
					}
				}
				if op.Op == ttlstore.OpDelete && e == nil {
					after[op.Key] = nil
					continue
				}
				if e != nil && e.owner != "" && e.owner != op.Owner {
					forbidden = i
					break
				}
				if op.Op == ttlstore.OpDelete {
					after[op.Key] = nil
					continue
				}
				owner := op.Owner
				if e != nil && e.owner != "" {
					owner = e.owner
				}
				after[op.Key] = &txnModelEntry{value: string(op.Value), expires: op.Expires, owner: owner}
			}
			var changed []string
			net := 0
			for _, k := range order {
				_, before := model[k]
				switch e := after[k]; {
				case e == nil && !before:
					continue
				case e == nil:
					net--
				case !before:
					net++
				}
				changed = append(changed, k)
			}

			res, err := s.Commit(txn)
			outcome := "committed"
			switch {
			case failed != nil:
				outcome = "check failed"
			case forbidden >= 0:
				outcome = "forbidden"
			case len(model)+net > maxKeys:
				outcome = "full"
			case len(changed) == 0:
				outcome = "no change"
			}
			outcomes[outcome]++
			switch {
			case failed != nil:
				require.Equal(t, failed, txnErr(t, err, ttlstore.ErrCheckFailed).Failed, "step %d", step)
				checkReported(step, nil)
			case forbidden >= 0:
				require.Equal(t, forbidden, txnErr(t, err, ttlstore.ErrForbidden).Op, "step %d", step)
				checkReported(step, nil)
			case len(model)+net > maxKeys:
				txnErr(t, err, ttlstore.ErrFull)
				checkReported(step, nil)
			case len(changed) == 0:
				require.NoError(t, err, "step %d", step)
				require.Nil(t, res.Changes, "step %d", step)
				require.Equal(t, s.Version(), res.Version, "step %d", step)
				checkReported(step, nil)
			default:
				require.NoError(t, err, "step %d", step)
				nextVersion(step, res.Version)
				require.Len(t, res.Changes, len(changed), "step %d", step)
				for i, k := range changed {
					c := res.Changes[i]
					require.Equal(t, k, c.Item.Key, "step %d", step)
					require.Equal(t, res.Version, c.Item.Version, "step %d", step)
					if e := after[k]; e == nil {
						require.Equal(t, ttlstore.OpDelete, c.Op, "step %d", step)
						require.Equal(t, model[k].value, string(c.Item.Value), "step %d", step)
						delete(model, k)
					} else {
						require.Equal(t, ttlstore.OpSet, c.Op, "step %d", step)
						require.Equal(t, e.value, string(c.Item.Value), "step %d", step)
						require.Equal(t, e.owner, c.Item.Owner, "step %d", step)
						e.version = res.Version
						model[k] = *e
					}
				}
				checkReported(step, res.Changes)
			}
		case r < 70: // a single-key set
			k, w := randKey(), ttlstore.Write{Value: []byte(randValue()), Expires: randExpires(), Owner: owners[rng.IntN(len(owners))]}
			cur, ok := model[k]
			it, err := s.Set(k, w)
			switch {
			case ok && cur.owner != "" && cur.owner != w.Owner:
				require.ErrorIs(t, err, ttlstore.ErrForbidden, "step %d", step)
			case !ok && len(model) >= maxKeys:
				require.ErrorIs(t, err, ttlstore.ErrFull, "step %d", step)
			default:
				require.NoError(t, err, "step %d", step)
				nextVersion(step, it.Version)
				model[k] = txnModelEntry{value: string(w.Value), expires: w.Expires, owner: it.Owner, version: it.Version}
			}
			checkReported(step, nil)
		case r < 78: // a single-key delete
			k, o := randKey(), owners[rng.IntN(len(owners))]
			cur, ok := model[k]
			it, err := s.Delete(k, o)
			switch {
			case !ok:
				require.ErrorIs(t, err, ttlstore.ErrNotFound, "step %d", step)
			case cur.owner != "" && cur.owner != o:
				require.ErrorIs(t, err, ttlstore.ErrForbidden, "step %d", step)
			default:
				require.NoError(t, err, "step %d", step)
				nextVersion(step, it.Version)
				delete(model, k)
			}
			checkReported(step, nil)
		case r < 90: // time passes; at least the store's reclaim interval
			clk.Advance(time.Duration(1+rng.IntN(10)) * 200 * time.Millisecond)
		case r < 94:
			s.Reap(clk.Now(), rng.IntN(4))
			checkReported(step, nil)
		default:
			// Expiry removals take versions the model does not predict.
			lastVersion = s.Version()
		}
		prune()
		// Everything a user can read matches the model after every step.
		for i := range keySpan {
			k := fmt.Sprintf("k%02d", i)
			want, ok := model[k]
			got, gotOK := s.Get(k)
			require.Equal(t, ok, gotOK, "step %d key %s", step, k)
			if ok {
				require.Equal(t, ttlstore.Item{Key: k, Value: []byte(want.value), Expires: want.expires, Owner: want.owner, Version: want.version},
					got, "step %d", step)
			}
		}
		if step%10 == 0 {
			var live []string
			for k := range model {
				live = append(live, k)
			}
			slices.Sort(live)
			got := keysOf(s.Range("", "", 100))
			if len(live) == 0 {
				require.Empty(t, got, "step %d", step)
			} else {
				require.Equal(t, live, got, "step %d", step)
			}
		}
		lastVersion = max(lastVersion, s.Version())
	}
	// The random steps must reach every outcome, or the comparison proves
	// little.
	for _, o := range []string{"committed", "check failed", "forbidden", "full", "no change"} {
		require.GreaterOrEqual(t, outcomes[o], 5, "outcome %q: %v", o, outcomes)
	}
	s.Reap(clk.Now(), 1000)
	prune()
	require.Equal(t, len(model), s.Len(), "Len after a full reap")
	var snap []string
	require.NoError(t, s.Snapshot(func(it ttlstore.Item) error {
		snap = append(snap, it.Key)
		return nil
	}))
	require.Len(t, snap, len(model))
}
