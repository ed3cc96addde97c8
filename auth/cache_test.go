package auth

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/policy"
)

// A verified token is kept until its exp, so the next request skips the
// signature; an expired one is verified (and refused) again.
func TestJWTCacheKeepsVerifiedTokens(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	j, err := NewJWT(JWTConfig{Secret: secret, Leeway: time.Second})
	require.NoError(t, err)
	mk := func(sub string, exp time.Time) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": exp.Unix(), "grants": []string{"r:"}}).SignedString(secret)
		require.NoError(t, err)
		return s
	}
	tok := mk("alice", time.Now().Add(time.Hour))
	id, err := j.Verify(tok)
	require.NoError(t, err)
	assert.Equal(t, 1, j.cache.len())
	again, err := j.Verify(tok)
	require.NoError(t, err)
	assert.Same(t, id, again, "the second request is answered from the cache")

	_, err = j.Verify(mk("bob", time.Now().Add(-time.Hour)))
	assert.Same(t, ErrTokenExpired, err)
	assert.Equal(t, 1, j.cache.len(), "a refused token is not kept")

	_, ok := j.cache.get(tok, time.Now().Add(2*time.Hour))
	assert.False(t, ok, "not past its exp")
	_, ok = j.cache.get(tok+"x", time.Now())
	assert.False(t, ok, "another token")
}

// The cache never holds more than its bound.
func TestTokenCacheIsBounded(t *testing.T) {
	c := newTokenCache(64)
	now := time.Now()
	id := &policy.Identity{Name: "x"}
	for i := 0; i < 1000; i++ {
		exp := now.Add(time.Hour)
		if i%3 == 0 {
			exp = now.Add(time.Second) // expires first
		}
		c.put(fmt.Sprint(i), id, exp, now)
		require.LessOrEqual(t, c.len(), 65, "after %d", i)
		require.Equal(t, c.m.Size(), c.len())
	}
	c.put("late", id, now.Add(time.Hour), now.Add(2*time.Second))
	_, ok := c.get("late", now.Add(2*time.Second))
	assert.True(t, ok, "the newest token is kept")
	c.put("old", id, now, now)
	_, ok = c.get("old", now)
	assert.False(t, ok, "a token at its exp is not kept")
	c.put(strings.Repeat("x", maxCachedToken+1), id, now.Add(time.Hour), now)
	_, ok = c.get(strings.Repeat("x", maxCachedToken+1), now)
	assert.False(t, ok, "a huge token is not kept")
}
