// Package limiter gives each client of a public service its own token bucket,
// so that one noisy client cannot use up the capacity everyone else shares.
//
// Buckets are golang.org/x/time/rate limiters kept per client key, a
// kv.Client the caller passes. The limiter does not group addresses
// itself: policy derives the key once per request (for an anonymous caller
// kv.Grouping's group: by default the IPv4 address and the IPv6 /64, so
// that rotating interface identifiers does not mint budgets; for an
// authenticated one its identity), and the watcher caps use the same key,
// so a client is one client under every rule. Any two equal keys share a
// bucket; the zero key is a key like any other. A key with its own
// kv.Rate gets a bucket of that rate; every other key the Config's.
//
// # Bounded memory
//
// The table of buckets is bounded by Config.MaxClients. A bucket that has
// refilled to its full burst holds no information: a new bucket would give
// the same answers. Such idle buckets are dropped by SweepAt (or Run), and on
// demand when a new client finds the table full; on-demand sweeps run one at
// a time and at most once a second, so a flood of new addresses cannot turn
// them into a CPU sink. If the table is still full after that, the new
// client is charged against one overflow bucket shared by
// every client that could not get a bucket of its own. This is deliberate: a
// flood from a million addresses cannot grow memory without bound, and while
// the table is full the unknown clients share one budget between them, which
// also throttles the flood itself. Clients already in the table are
// unaffected and keep their own budgets.
//
// # Time
//
// Like golang.org/x/time/rate, every time-dependent method has a variant
// that takes the current time explicitly (AllowAt, SweepAt), so callers that
// batch work and tests that need exact token arithmetic do not depend on the
// wall clock or on sleeping.
package limiter

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/puzpuzpuz/xsync/v3"
	"golang.org/x/time/rate"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// DefaultMaxClients is what New uses for a zero Config.MaxClients. It is
// exported so that callers documenting their limits (for example in a
// usage page) quote the value actually in force.
const DefaultMaxClients = 100000

// onDemandSweepGap is the minimum time between two sweeps triggered by new
// clients finding the table full. Without it, a flood of unknown addresses
// against a table full of active clients would run one O(MaxClients) sweep
// per request; with it, such sweeps cost at most one pass per second. Run
// and SweepAt are not throttled.
const onDemandSweepGap = time.Second

// maxRetryAfter caps RetryAfter so that an extreme Config (a huge Burst
// refilled over a long Window) cannot overflow time.Duration.
const maxRetryAfter = time.Duration(math.MaxInt64/int64(time.Second)) * time.Second

// Config describes the budget every client gets. Rates are stated as Tokens
// per Window rather than per second so that slow rates such as "17 a minute"
// are written exactly.
type Config struct {
	// Tokens is how many tokens are added to a bucket per Window; the refill
	// rate is Tokens/Window. It must be positive.
	Tokens int
	// Window is the period over which Tokens are added. It must be positive.
	Window time.Duration
	// Burst is the bucket size: the most a client can spend at once after
	// being idle. Zero means Tokens, so that an idle client may spend one
	// Window's worth at once. It must not be negative.
	Burst int
	// MaxClients bounds how many buckets are kept. Zero means 100000. It
	// must not be negative.
	MaxClients int
}

// Decision is the outcome of one request. It moved to package kv, where
// policy's Limiter interface names it; the alias keeps code written against
// limiter.Decision compiling.
//
// Deprecated: use kv.Decision.
type Decision = kv.Decision

// Limiter holds one token bucket per client key. It is safe for concurrent
// use. A nil *Limiter is valid and means rate limiting is off, so callers
// can keep a single code path whether limiting is configured or not.
type Limiter struct {
	budget     // the Config's, for every key without a rate of its own
	maxClients int64

	buckets *xsync.MapOf[kv.Client, *bucket]
	// count is the number of buckets in the table. Slots are reserved in it
	// before a bucket is inserted, which keeps the bound exact under
	// concurrent inserts; xsync's own Size is cheap but cannot be checked and
	// updated atomically with an insert.
	count atomic.Int64
	// overflow is the budget shared by new clients while the table is full.
	// It is kept outside the table so that it never counts against
	// MaxClients and is never swept.
	overflow *bucket

	sweepMu sync.Mutex
	// nextSweep is the UnixNano time before which a full table does not
	// trigger another on-demand sweep.
	nextSweep atomic.Int64
}

// budget is the size and refill of a kind of bucket.
type budget struct {
	limit      rate.Limit
	burst      int
	tokens     int
	window     time.Duration
	fullRefill time.Duration // rounded-up time for an empty bucket to refill
}

// newBudget returns the budget of tokens per window with room for burst,
// or ok=false when that is no usable rate.
func newBudget(tokens int, window time.Duration, burst int) (b budget, ok bool) {
	b = budget{limit: rate.Limit(float64(tokens) / window.Seconds()), burst: burst, tokens: tokens, window: window}
	if b.limit <= 0 || math.IsInf(float64(b.limit), 0) {
		return budget{}, false
	}
	b.fullRefill = b.refillTime(float64(burst))
	return b, true
}

// bucket is one client's token bucket. Its mutex makes the spend and the
// following token count one atomic step, so Remaining describes this
// decision and not a concurrent one, and lets SweepAt retire the bucket
// without racing a spend.
type bucket struct {
	mu     sync.Mutex
	lim    *rate.Limiter
	budget *budget
	// last is the latest time a spend was made at. rate.Limiter moves its
	// clock back to the time of any call made with an earlier time and then
	// credits the same interval again on the next call; concurrent callers
	// of Allow read time.Now in one order and take the lock in another, so
	// clamping to last keeps that from handing out extra tokens.
	last time.Time
	// dead is set, under mu, when SweepAt removes the bucket from the table.
	// A caller that loaded the bucket just before must not spend from it:
	// the spend would be lost when the client gets a fresh bucket.
	dead bool
}

// New validates cfg, fills in its defaults and returns a Limiter. It reports
// an error rather than correcting a bad Config, because a silently altered
// limit on a public service is worse than a failed start.
func New(cfg Config) (*Limiter, error) {
	switch {
	case cfg.Tokens <= 0:
		return nil, fmt.Errorf("limiter: Tokens must be positive, got %d", cfg.Tokens)
	case cfg.Window <= 0:
		return nil, fmt.Errorf("limiter: Window must be positive, got %v", cfg.Window)
	case cfg.Burst < 0:
		return nil, fmt.Errorf("limiter: Burst must not be negative, got %d", cfg.Burst)
	case cfg.MaxClients < 0:
		return nil, fmt.Errorf("limiter: MaxClients must not be negative, got %d", cfg.MaxClients)
	}
	if cfg.Burst == 0 {
		cfg.Burst = cfg.Tokens
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = DefaultMaxClients
	}
	def, ok := newBudget(cfg.Tokens, cfg.Window, cfg.Burst)
	if !ok {
		return nil, errors.New("limiter: Tokens/Window is not a usable rate")
	}
	l := &Limiter{
		budget:     def,
		maxClients: int64(cfg.MaxClients),
		buckets:    xsync.NewMapOfWithHasher[kv.Client, *bucket](clientHasher(maphash.MakeSeed())),
	}
	l.overflow = l.newBucket(kv.Rate{})
	return l, nil
}

// clientHasher returns the table's hash function. xsync's default hashes a
// key field by field through its runtime type descriptor, which was the
// largest single cost of a lookup; hashing an address group's 18
// significant bytes with hash/maphash is several times cheaper and keeps
// the randomly seeded hash that makes it impractical for clients to pick
// addresses that collide. An identity's key adds its name and rate.
// xsync's per-table seed is ignored in favour of maphash's own, which is
// just as random and fixed for the table's lifetime.
func clientHasher(seed maphash.Seed) func(kv.Client, uint64) uint64 {
	return func(c kv.Client, _ uint64) uint64 {
		var buf [34]byte
		ip := c.Group.Addr()
		a := ip.As16()
		copy(buf[:16], a[:])
		buf[16] = byte(c.Group.Bits()) // -1 for the zero Prefix becomes 255
		if ip.Is4() {
			buf[17] = 4
		}
		if c.Name == "" && c.Rate.IsZero() {
			return maphash.Bytes(seed, buf[:18]) // an anonymous client: the hot case
		}
		binary.LittleEndian.PutUint64(buf[18:], uint64(c.Rate.Tokens))
		binary.LittleEndian.PutUint64(buf[26:], uint64(c.Rate.Window))
		var h maphash.Hash
		h.SetSeed(seed)
		h.Write(buf[:])
		h.WriteString(c.Name)
		return h.Sum64()
	}
}

// Allow is AllowAt at time.Now(). It is the call request handlers make; a
// nil Limiter allows everything.
func (l *Limiter) Allow(client kv.Client, cost int) Decision {
	if l == nil {
		return Decision{Allowed: true}
	}
	return l.AllowAt(client, cost, time.Now())
}

// AllowAt reports whether a request costing cost tokens from the client
// with key client may proceed at time now, and spends the tokens only if it
// may: a denied
// request spends nothing, so a client that keeps retrying too early is not
// pushed further back. A cost of zero or less spends nothing and is always
// allowed (negative costs never add tokens), so a front end can make some
// operations free and still report Remaining.
//
// For a client that already has a bucket, AllowAt does not allocate.
func (l *Limiter) AllowAt(client kv.Client, cost int, now time.Time) Decision {
	if l == nil {
		return Decision{Allowed: true}
	}
	cost = max(cost, 0)
	for {
		b, ok := l.buckets.Load(client)
		if !ok {
			b = l.lookupSlow(client, now)
		}
		if d, ok := l.take(b, cost, now); ok {
			return d
		}
		// b was swept between Load and take; it is being removed from the
		// table, so give the sweep a moment and look the client up again.
		runtime.Gosched()
	}
}

// Peek is PeekAt at time.Now(), which it reads only for a client with a
// bucket: a valid token meets Peek on every request.
func (l *Limiter) Peek(client kv.Client, cost int) Decision {
	return l.peek(client, cost, time.Now)
}

// PeekAt reports what AllowAt would decide for a request costing cost
// tokens from client at now, but spends nothing and makes client no
// bucket: a client without one is allowed, as its new bucket would be
// full, while the table has room for one; while it is full, the shared
// overflow budget AllowAt would charge decides. It lets a caller refuse
// work for a client whose bucket cannot pay for it before doing the work,
// and charge (with AllowAt) only when the work turns out to deserve it, as
// a refused token does.
func (l *Limiter) PeekAt(client kv.Client, cost int, now time.Time) Decision {
	return l.peek(client, cost, func() time.Time { return now })
}

// peek is PeekAt at the time clock tells.
func (l *Limiter) peek(client kv.Client, cost int, clock func() time.Time) Decision {
	if l == nil {
		return Decision{Allowed: true}
	}
	cost = max(cost, 0)
	b, ok := l.buckets.Load(client)
	if !ok {
		if l.count.Load() < l.maxClients {
			burst := l.budgetOf(client.Rate).burst
			return Decision{Allowed: cost <= burst, Limit: burst, Remaining: burst}
		}
		// The table is full, so AllowAt would charge this client to the
		// shared overflow (unless a sweep freed room first): peek that,
		// or a flood of new addresses would never be refused by Peek.
		b = l.overflow
	}
	d, _ := l.decide(b, cost, clock(), false) // a swept bucket's decision is as good as a full one's
	return d
}

// take spends cost tokens from b at now, reporting ok=false if b has been
// retired by a sweep.
func (l *Limiter) take(b *bucket, cost int, now time.Time) (d Decision, ok bool) {
	return l.decide(b, cost, now, true)
}

// decide decides a request costing cost tokens from b at now, spending
// them if spend and the request is allowed; ok=false when b has been
// retired by a sweep.
func (l *Limiter) decide(b *bucket, cost int, now time.Time, spend bool) (d Decision, ok bool) {
	var tokens float64
	bud := b.budget
	b.mu.Lock()
	if b.dead && spend {
		b.mu.Unlock()
		return Decision{}, false
	}
	if now.Before(b.last) {
		now = b.last
	}
	// Costs above the burst are denied without asking rate.Limiter, which
	// would deny them too; this keeps the RetryAfter rule in one place.
	switch {
	case cost > bud.burst:
	case !spend:
		d.Allowed = b.lim.TokensAt(now) >= float64(cost)
	case b.lim.AllowN(now, cost):
		d.Allowed = true
		b.last = now
	}
	tokens = b.lim.TokensAt(now)
	b.mu.Unlock()

	d.Limit = bud.burst
	d.Remaining = max(int(math.Floor(tokens)), 0)
	if !d.Allowed {
		if cost > bud.burst {
			d.RetryAfter = bud.fullRefill
		} else {
			d.RetryAfter = bud.refillTime(float64(cost) - tokens)
		}
	}
	return d, true
}

// refillTime returns how long the bucket takes to gain missing tokens,
// rounded up to whole seconds and at least one second. It divides by Tokens
// rather than multiplying by the rounded per-second rate so that whole
// multiples of the Window come out exact (17 tokens at 17 a minute is 60s,
// not 61s).
func (b *budget) refillTime(missing float64) time.Duration {
	secs := math.Ceil(missing * b.window.Seconds() / float64(b.tokens))
	if secs < 1 {
		return time.Second
	}
	if secs >= float64(maxRetryAfter/time.Second) {
		return maxRetryAfter
	}
	return time.Duration(secs) * time.Second
}

// lookupSlow finds or creates the bucket for a client that Load did not
// find. It is kept out of AllowAt so that the closures it builds do not make
// the path for known clients allocate.
func (l *Limiter) lookupSlow(key kv.Client, now time.Time) *bucket {
	if b := l.loadOrCreate(key); b != nil {
		return b
	}
	if l.sweepOnDemand(now) {
		if b := l.loadOrCreate(key); b != nil {
			return b
		}
	}
	return l.overflow
}

// loadOrCreate returns the bucket for key, creating it if there is room, or
// nil if the table is full. Creating under LoadOrTryCompute means that two
// concurrent first requests from one client end up sharing one bucket.
func (l *Limiter) loadOrCreate(key kv.Client) *bucket {
	b, _ := l.buckets.LoadOrTryCompute(key, func() (*bucket, bool) {
		if !l.reserveSlot() {
			return nil, true
		}
		return l.newBucket(key.Rate), false
	})
	return b
}

// reserveSlot claims room for one more bucket, failing if the table is at
// MaxClients.
func (l *Limiter) reserveSlot() bool {
	for {
		n := l.count.Load()
		if n >= l.maxClients {
			return false
		}
		if l.count.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// newBucket returns a full bucket of r, or of the Config's budget for
// the zero Rate (or one that is no usable rate).
func (l *Limiter) newBucket(r kv.Rate) *bucket {
	bud := l.budgetOf(r)
	return &bucket{lim: rate.NewLimiter(bud.limit, bud.burst), budget: bud}
}

// budgetOf returns the budget of the buckets of rate r: the Config's for
// the zero Rate (or one that is no usable rate), else r's own.
func (l *Limiter) budgetOf(r kv.Rate) *budget {
	if !r.IsZero() && r.Tokens > 0 && r.Window > 0 {
		if own, ok := newBudget(r.Tokens, r.Window, r.Tokens); ok {
			return &own
		}
	}
	return &l.budget
}

// sweepOnDemand sweeps for a new client that found the table full, unless a
// sweep is already running or one ran less than onDemandSweepGap ago. It
// reports whether it swept.
func (l *Limiter) sweepOnDemand(now time.Time) bool {
	if now.UnixNano() < l.nextSweep.Load() || !l.sweepMu.TryLock() {
		return false
	}
	defer l.sweepMu.Unlock()
	l.nextSweep.Store(now.Add(onDemandSweepGap).UnixNano())
	l.sweepLocked(now)
	return true
}

// SweepAt drops every bucket that has refilled to its full burst at time
// now and returns how many it dropped. A full bucket answers exactly as a
// new one would, so dropping it changes no decision; it only frees room for
// other clients. Buckets still refilling are kept, so a client cannot reset
// its budget by waiting for a sweep.
func (l *Limiter) SweepAt(now time.Time) int {
	if l == nil {
		return 0
	}
	l.sweepMu.Lock()
	defer l.sweepMu.Unlock()
	return l.sweepLocked(now)
}

func (l *Limiter) sweepLocked(now time.Time) int {
	dropped := 0
	l.buckets.Range(func(key kv.Client, b *bucket) bool {
		if !b.fullAt(now) {
			return true
		}
		// Check again under the table's lock for key, so that the bucket
		// retired is the one in the table and no spend slips in between.
		l.buckets.Compute(key, func(cur *bucket, loaded bool) (*bucket, bool) {
			if !loaded {
				return nil, true // already gone; delete is a no-op
			}
			cur.mu.Lock()
			retire := cur.fullAt(now)
			cur.dead = retire
			cur.mu.Unlock()
			if retire {
				dropped++
				l.count.Add(-1)
			}
			return cur, retire
		})
		return true
	})
	return dropped
}

// fullAt reports whether b holds its whole burst at now.
func (b *bucket) fullAt(now time.Time) bool {
	return b.lim.TokensAt(now) >= float64(b.budget.burst)
}

// Run sweeps idle buckets every interval until ctx is done, so that the
// table keeps room for new clients without waiting for it to fill. An
// interval of zero or less means the time an empty bucket takes to refill,
// after which any client idle for that long has a full bucket. Run returns
// at once on a nil Limiter.
func (l *Limiter) Run(ctx context.Context, every time.Duration) {
	if l == nil {
		return
	}
	if every <= 0 {
		every = l.fullRefill
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.SweepAt(time.Now())
		}
	}
}

// Len returns the number of buckets in the table, not counting the shared
// overflow bucket, so it never exceeds MaxClients. It is meant for metrics
// and tests.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	return int(l.count.Load())
}
