package kv_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/rendezvous-kv/rendezvous/kv"
)

func TestPrefixEnd(t *testing.T) {
	for prefix, want := range map[string]string{
		"":             "",
		"a":            "b",
		"mesh42/":      "mesh420",
		"a\xff":        "b",
		"a\xff\xff":    "b",
		"\xff":         "",
		"\xff\xff\xff": "",
		"ab\xfe":       "ab\xff",
	} {
		assert.Equal(t, want, kv.PrefixEnd(prefix), "%q", prefix)
	}
}

func TestHashSecret(t *testing.T) {
	assert.Equal(t, kv.Owner(""), kv.HashSecret(""), "no secret is no owner")
	a := kv.HashSecret("s3cret")
	assert.Len(t, a, 32)
	assert.Equal(t, a, kv.HashSecret("s3cret"))
	assert.NotEqual(t, a, kv.HashSecret("s3cret2"))
}

func TestTxnError(t *testing.T) {
	checks := &kv.TxnError{Err: kv.ErrCheckFailed, Op: -1, Failed: []int{0, 2}}
	assert.Equal(t, "transaction check failed: checks [0 2]", checks.Error())
	assert.ErrorIs(t, checks, kv.ErrCheckFailed)

	owned := &kv.TxnError{Err: kv.ErrForbidden, Op: 3}
	assert.Equal(t, "operation 3: key is owned by another secret", owned.Error())
	assert.True(t, errors.Is(owned, kv.ErrForbidden))

	full := &kv.TxnError{Err: kv.ErrFull, Op: -1}
	assert.Equal(t, "store is full", full.Error())
}
