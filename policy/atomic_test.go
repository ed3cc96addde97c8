package policy_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// Atomic decides again when a key it read changed before the commit, so
// an increment made of a read and a write loses no concurrent update.
func TestAtomicRetriesOnChange(t *testing.T) {
	f := newFixture(t, ttlstore.Options{}, nil)
	_, err := f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "n", Value: []byte("1")})
	require.NoError(t, err)
	runs := 0
	_, err = f.svc.Atomic(v4, policy.AtomicRequest{Writes: 1, Decide: func(read func(string) (kv.Item, bool)) ([]policy.AtomicOp, error) {
		runs++
		it, _ := read("n")
		if runs == 1 { // someone else writes between the read and the commit
			_, err := f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "n", Value: []byte("5")})
			require.NoError(t, err)
		}
		return []policy.AtomicOp{{Key: "n", Value: append([]byte(string(it.Value)), '0'), KeepTTL: true}}, nil
	}})
	require.NoError(t, err)
	assert.Equal(t, 2, runs)
	it, _ := f.store.Get("n")
	assert.Equal(t, "50", string(it.Value))
}

// A watched key that changed refuses the commit with KindCheckFailed,
// naming it; nothing is written.
func TestAtomicWatch(t *testing.T) {
	f := newFixture(t, ttlstore.Options{}, nil)
	res, err := f.svc.Write(v4, policy.OpSet, policy.WriteRequest{Key: "w", Value: []byte("1")})
	require.NoError(t, err)
	set := func(read func(string) (kv.Item, bool)) ([]policy.AtomicOp, error) {
		return []policy.AtomicOp{{Key: "x", Value: []byte("v")}}, nil
	}
	_, err = f.svc.Atomic(v4, policy.AtomicRequest{Writes: 1, Watch: []policy.Watched{{Key: "absent"}, {Key: "w", Version: res.Item.Version + 1}}, Decide: set})
	pe := policyErr(t, err, policy.KindCheckFailed)
	assert.Equal(t, []int{1}, pe.Failed)
	_, ok := f.store.Get("x")
	assert.False(t, ok)
	_, err = f.svc.Atomic(v4, policy.AtomicRequest{Writes: 1, Watch: []policy.Watched{{Key: "absent"}, {Key: "w", Version: res.Item.Version}}, Decide: set})
	require.NoError(t, err)
}

// Writes meet the rules of single writes: an ip/ key only under the
// caller's own address, the owner's secret, the TTL cap.
func TestAtomicRules(t *testing.T) {
	f := newFixture(t, ttlstore.Options{}, nil)
	ops := func(op ...policy.AtomicOp) policy.AtomicRequest {
		return policy.AtomicRequest{Decide: func(func(string) (kv.Item, bool)) ([]policy.AtomicOp, error) { return op, nil }}
	}
	_, err := f.svc.Atomic(v4, ops(policy.AtomicOp{Key: "ip/203.0.113.9/ssh", Value: []byte("x")}))
	policyErr(t, err, policy.KindForbidden)
	key, err := f.svc.StoredKey(v4, "ip/ssh", true)
	require.NoError(t, err)
	assert.Equal(t, "ip/198.51.100.7/ssh", key)
	_, err = f.svc.Atomic(v4, ops(policy.AtomicOp{Key: key, Value: []byte("x"), Secret: "s", TTL: 1000 * testConfig.MaxTTL}))
	require.NoError(t, err)
	it, _ := f.store.Get(key)
	assert.Equal(t, t0.Add(testConfig.MaxTTL).UnixNano(), it.Expires, "capped")
	_, err = f.svc.Atomic(v4, ops(policy.AtomicOp{Key: key, Delete: true}))
	policyErr(t, err, policy.KindOwned)
	_, err = f.svc.Atomic(v4, ops(policy.AtomicOp{Key: "a\x00", Value: []byte("x")}))
	policyErr(t, err, policy.KindBadRequest)
}

// A read the key rules refuse refuses the command, whatever Decide made
// of the empty answer.
func TestAtomicRefusedRead(t *testing.T) {
	f := newFixture(t, ttlstore.Options{}, nil)
	_, err := f.svc.Atomic(v4, policy.AtomicRequest{Decide: func(read func(string) (kv.Item, bool)) ([]policy.AtomicOp, error) {
		read("bad\x01key")
		return []policy.AtomicOp{{Key: "x", Value: []byte("v")}}, nil
	}})
	policyErr(t, err, policy.KindBadRequest)
	_, ok := f.store.Get("x")
	assert.False(t, ok, "nothing written")
}
