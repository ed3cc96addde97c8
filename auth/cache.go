package auth

import (
	"sync/atomic"
	"time"

	"github.com/puzpuzpuz/xsync/v3"

	"github.com/rendezvous-kv/rendezvous/policy"
)

// tokenCache keeps verified tokens by the SHA-256 of their text, each
// until its exp, and at most max of them, so a client's requests after the
// first cost a hash and a lookup rather than a signature check.
type tokenCache struct {
	m     *xsync.MapOf[tokenKey, cached]
	n     atomic.Int64
	max   int64
	sweep atomic.Bool // one eviction at a time
}

type cached struct {
	id  *policy.Identity
	exp int64 // Unix nanoseconds
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{m: xsync.NewMapOf[tokenKey, cached](), max: int64(max)}
}

// get returns the identity of a token kept and not yet expired at now.
func (c *tokenCache) get(key tokenKey, now time.Time) (*policy.Identity, bool) {
	e, ok := c.m.Load(key)
	if !ok || now.UnixNano() >= e.exp {
		return nil, false
	}
	return e.id, true
}

// put keeps a verified token until exp. When the cache is full it first
// drops the expired tokens and, if that is not enough, an eighth of the
// others: a flood of distinct valid tokens then costs signature checks,
// never memory.
func (c *tokenCache) put(key tokenKey, id *policy.Identity, exp, now time.Time) {
	if !exp.After(now) {
		return
	}
	if c.n.Load() >= c.max {
		c.evict(now)
	}
	if _, loaded := c.m.LoadAndStore(key, cached{id: id, exp: exp.UnixNano()}); !loaded {
		c.n.Add(1)
	}
}

func (c *tokenCache) evict(now time.Time) {
	if !c.sweep.CompareAndSwap(false, true) {
		return
	}
	defer c.sweep.Store(false)
	drop := func(k tokenKey) {
		if _, ok := c.m.LoadAndDelete(k); ok {
			c.n.Add(-1)
		}
	}
	t := now.UnixNano()
	c.m.Range(func(k tokenKey, e cached) bool {
		if t >= e.exp {
			drop(k)
		}
		return true
	})
	extra := c.n.Load() - c.max*7/8
	c.m.Range(func(k tokenKey, _ cached) bool {
		drop(k)
		extra--
		return extra > 0
	})
}

// len returns the tokens kept, for tests.
func (c *tokenCache) len() int { return int(c.n.Load()) }
