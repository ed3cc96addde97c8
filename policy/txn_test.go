package policy_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/internal/fakeclock"
	"github.com/rendezvous-kv/rendezvous/policy"
	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// Txn waits for Config.Commit (the journal's group commit) before it
// answers, as Write does, and a commit that cannot be made durable is
// answered as storage unavailable.
func TestTxnWaitsForDurability(t *testing.T) {
	clk := fakeclock.New(t0)
	store := ttlstore.New(ttlstore.Options{Now: clk.Now})
	var commits int
	var fail error
	cfg := testConfig
	cfg.Commit = func() error {
		commits++
		return fail
	}
	svc := policy.New(store, nil, cfg, clk.Now)
	req := policy.TxnRequest{Ops: []policy.TxnOp{{Op: policy.TxnSet, Key: "a", Value: []byte("1")}, {Op: policy.TxnSet, Key: "b", Value: []byte("2")}}}
	res, err := svc.Txn(v4, req)
	require.NoError(t, err)
	assert.Equal(t, 1, commits, "one durable commit for the whole transaction")
	it, ok := store.Get("b")
	require.True(t, ok)
	assert.Equal(t, res.Version, it.Version)

	fail = errors.New("disk gone")
	_, err = svc.Txn(v4, req)
	pe := policyErr(t, err, policy.KindUnavailable)
	assert.Equal(t, "storage unavailable: disk gone", pe.Message)
	assert.Equal(t, 2, commits)

	// A refused transaction is not waited for: it wrote nothing.
	_, err = svc.Txn(v4, policy.TxnRequest{Checks: []policy.TxnCheck{{Kind: policy.CheckAbsent, Key: "a"}}, Ops: req.Ops})
	pe = policyErr(t, err, policy.KindCheckFailed)
	assert.Equal(t, []int{0}, pe.Failed)
	assert.Equal(t, 2, commits)
}

// Kinds a front end did not set are refused, not passed to the store.
func TestTxnUnknownKinds(t *testing.T) {
	f := newFixture(t, ttlstore.Options{}, nil)
	_, err := f.svc.Txn(v4, policy.TxnRequest{Ops: []policy.TxnOp{{Key: "a"}}})
	pe := policyErr(t, err, policy.KindBadRequest)
	assert.Equal(t, "ops[0]: unknown op", pe.Message)
	_, err = f.svc.Txn(v4, policy.TxnRequest{Checks: []policy.TxnCheck{{Key: "a"}}, Ops: []policy.TxnOp{{Op: policy.TxnDelete, Key: "a"}}})
	pe = policyErr(t, err, policy.KindBadRequest)
	assert.Equal(t, "checks[0]: unknown kind of check", pe.Message)
	assert.Zero(t, f.store.Version(), "nothing committed")
}
