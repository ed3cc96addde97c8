package auth

import (
	"hash/maphash"
	"sync/atomic"
	"time"

	"github.com/puzpuzpuz/xsync/v3"

	"github.com/rendezvous-kv/rendezvous/policy"
)

// maxCachedToken is the longest token kept; a longer one is verified on
// every request rather than let a few huge tokens fill the memory.
const maxCachedToken = 4 << 10

// tokenCache keeps verified tokens, each until its exp and at most max of
// them, so a client's requests after the first cost a hash and a lookup
// rather than a signature check. It is keyed by a seeded hash of the
// token (hash/maphash: a few nanoseconds, where SHA-256 of a JWT took half
// a microsecond) and holds the token itself, compared on every hit, so a
// hash collision can only ever cost a verification, never lend one
// token's identity to another.
type tokenCache struct {
	seed  maphash.Seed
	m     *xsync.MapOf[uint64, cached]
	n     atomic.Int64
	max   int64
	sweep atomic.Bool // one eviction at a time
}

type cached struct {
	token string
	id    *policy.Identity
	exp   int64 // Unix nanoseconds
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{seed: maphash.MakeSeed(), m: xsync.NewMapOf[uint64, cached](), max: int64(max)}
}

// get returns the identity of token if it is kept and not expired at now.
func (c *tokenCache) get(token string, now time.Time) (*policy.Identity, bool) {
	e, ok := c.entry(token, now)
	return e.id, ok
}

// entry returns what is kept of token, with its exp, if it is kept and not
// expired at now.
func (c *tokenCache) entry(token string, now time.Time) (cached, bool) {
	e, ok := c.m.Load(maphash.String(c.seed, token))
	if !ok || e.token != token || now.UnixNano() >= e.exp {
		return cached{}, false
	}
	return e, true
}

// put keeps a verified token until exp. When the cache is full it first
// drops the expired tokens and, if that is not enough, an eighth of the
// others: a flood of distinct valid tokens then costs signature checks,
// never memory.
func (c *tokenCache) put(token string, id *policy.Identity, exp, now time.Time) {
	if !exp.After(now) || len(token) > maxCachedToken {
		return
	}
	if c.n.Load() >= c.max {
		c.evict(now)
	}
	if _, loaded := c.m.LoadAndStore(maphash.String(c.seed, token), cached{token: token, id: id, exp: exp.UnixNano()}); !loaded {
		c.n.Add(1)
	}
}

func (c *tokenCache) evict(now time.Time) {
	if !c.sweep.CompareAndSwap(false, true) {
		return
	}
	defer c.sweep.Store(false)
	drop := func(k uint64) {
		if _, ok := c.m.LoadAndDelete(k); ok {
			c.n.Add(-1)
		}
	}
	t := now.UnixNano()
	c.m.Range(func(k uint64, e cached) bool {
		if t >= e.exp {
			drop(k)
		}
		return true
	})
	extra := c.n.Load() - c.max*7/8
	c.m.Range(func(k uint64, _ cached) bool {
		drop(k)
		extra--
		return extra > 0
	})
}

// len returns the tokens kept, for tests.
func (c *tokenCache) len() int { return int(c.n.Load()) }
