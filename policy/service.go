// Package policy holds the rules every front end obeys: key syntax and size,
// ip/ scoping, TTL bounds, value size, owner secrets and per-client costs.
//
// HTTP today, and later the KV Connect, Redis and line protocols, parse
// their own wire format and then call a Service; none of them touches the
// store directly, so no protocol can skip a rule another one enforces.
//
// A Service reaches its backends only through the interfaces Store,
// Limiter and Feed, in the types of package kv: the in-memory store
// (ttlstore), the token-bucket limiter (limiter) and the change feed (feed)
// implement them, and a backend kept elsewhere (Redis) can replace any of
// them without a front end or a rule changing.
package policy

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// Config holds the limits a Service enforces.
type Config struct {
	MaxKeySize   int           // bytes, measured on the key as stored
	MaxValueSize int           // bytes of value plus owner secret
	MaxTTL       time.Duration // default and maximum TTL; 0: none, and no TTL means never
	CostRead     int           // tokens a read spends
	CostWrite    int           // tokens a write spends
	// Commit, when set, is called after a write is applied and before it is
	// acknowledged; it returns once the write is durable (a journal's group
	// commit). An error turns the answer into "storage unavailable".
	Commit func() error
	// Feed is the change feed that watches and long-polls read; nil (or a
	// nil pointer of any implementation, such as a nil *feed.Feed)
	// disables them.
	Feed Feed
	// MaxWait caps how long a long-poll may hold a request.
	MaxWait time.Duration
	// MaxScanLimit caps the keys one listing page returns; 0 means
	// DefaultMaxScanLimit.
	MaxScanLimit int
	// MaxBatchOps caps the operations of one transaction, and separately
	// its checks; 0 means DefaultMaxBatchOps.
	MaxBatchOps int
	// ClientGrouping groups client addresses into clients, each with its
	// own rate-limit bucket and per-client watcher cap; a zero length
	// means kv's default (/32, /64).
	ClientGrouping kv.Grouping
	// NetworkGrouping groups client addresses into the networks whose
	// watches and long-polls share the feed's per-network cap; a zero
	// length means DefaultNetIPv4Prefix or DefaultNetIPv6Prefix. A network
	// holds whole clients, so a length longer than ClientGrouping's is
	// shortened to it.
	NetworkGrouping kv.Grouping
	// MaxInFlight caps the requests Admit lets in at once (see Admit); 0
	// means no cap.
	MaxInFlight int
	// Anonymous, when set, turns access control on: a caller without an
	// Identity gets only these grants (the zero Grants: none), and an
	// identified caller only its own. Nil leaves every key readable and
	// writable by anyone, as a public instance without tokens is.
	Anonymous *Grants
}

// The default networks of the per-network watcher cap: an IPv4 /24 and an
// IPv6 /48, the smallest blocks commonly routed on their own, so what one
// site or customer holds counts as one network.
const (
	DefaultNetIPv4Prefix = 24
	DefaultNetIPv6Prefix = 48
)

// Service applies the rules in Config to operations on a store.
type Service struct {
	store  Store
	limits Limiter // nil: rate limiting is off
	// peeker is limits when it can tell a decision without spending
	// (*limiter.Limiter can); nil otherwise.
	peeker interface {
		Peek(client kv.Client, cost int) kv.Decision
	}
	cfg Config
	// clients and networks are cfg's groupings with their defaults filled
	// in.
	clients, networks kv.Grouping
	now               func() time.Time
	// tooLarge is the one refusal of an oversized value, whichever layer
	// finds it: Write, or a front end that stops reading the body.
	tooLarge *Error
	// inFlight counts the requests Admit let in and Release has not yet
	// ended.
	inFlight atomic.Int64
}

// New returns a Service over store. limits may be nil to disable rate
// limiting. now may be nil for time.Now.
func New(store Store, limits Limiter, cfg Config, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	if nilPointer(cfg.Feed) {
		// A nil *feed.Feed meant "no feed" when Config held one; in the
		// interface it would be called.
		cfg.Feed = nil
	}
	clients, networks := groupings(cfg.ClientGrouping, cfg.NetworkGrouping)
	s := &Service{store: store, limits: limits, cfg: cfg, clients: clients, networks: networks, now: now, tooLarge: &Error{Kind: KindTooLarge,
		Message: fmt.Sprintf("value too large: value plus owner secret may be at most %d bytes", cfg.MaxValueSize)}}
	if p, ok := limits.(interface {
		Peek(client kv.Client, cost int) kv.Decision
	}); ok {
		s.peeker = p
	}
	return s
}

// nilPointer reports whether f holds a nil pointer. It runs once, in New,
// so that policy need not name any implementation's type.
func nilPointer(f Feed) bool {
	if f == nil {
		return false
	}
	v := reflect.ValueOf(f)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// groupings fills in the default lengths of a Config's groupings, and
// widens a network that is narrower than a client to the client's group.
func groupings(clients, networks kv.Grouping) (kv.Grouping, kv.Grouping) {
	orDefault := func(bits, def int) int {
		if bits <= 0 {
			return def
		}
		return bits
	}
	clients.V4 = orDefault(clients.V4, kv.DefaultIPv4Prefix)
	clients.V6 = orDefault(clients.V6, kv.DefaultIPv6Prefix)
	networks.V4 = min(orDefault(networks.V4, DefaultNetIPv4Prefix), clients.V4)
	networks.V6 = min(orDefault(networks.V6, DefaultNetIPv6Prefix), clients.V6)
	return clients, networks
}

// Config returns the limits s enforces, for front ends that describe them.
func (s *Service) Config() Config { return s.cfg }

// ValueLimit returns the most bytes of value a write with this owner secret
// may carry, and the refusal Write gives a larger one. A front end that
// reads a value from a stream stops reading past the limit and answers
// that refusal, so a huge body costs no memory and every layer words the
// rule the same way.
func (s *Service) ValueLimit(secret string) (int, error) {
	return max(s.cfg.MaxValueSize-len(secret), 0), s.tooLarge
}

// Caller identifies who makes a request. A front end gets it from
// Service.Caller, which derives the caller's client key once for the
// whole request.
type Caller struct {
	// IP is the caller's address as the front end established it (the TCP
	// peer, or a trusted proxy's forwarded address).
	IP netip.Addr
	// CrossSite is set when the request was made by a web page of another
	// site than the service's own (or the ones its operator trusts). A
	// browser sends any page's requests from its visitor's address, so for
	// such a request IP says where the visitor is, not that the visitor
	// meant the write: ip/ keys refuse its writes and deletes.
	CrossSite bool
	// Identity is who the caller authenticated as (see
	// Service.Authenticated), nil for an anonymous caller. Its grants
	// decide what the caller may read and write. It is a pointer because
	// a Caller is copied into every call a request makes: a string here
	// made a GET about 8% slower.
	Identity *Identity

	// client is the client key Service.Caller or Authenticated derived:
	// the one the rate limit and the per-client watcher cap both count
	// the request under. It is the zero key in a Caller built otherwise.
	client kv.Client
}

// Caller returns the Caller of an anonymous request from ip, crossSite as
// in Caller.CrossSite, with its client key derived here: the group of ip
// under Config.ClientGrouping. Every budget and cap the request meets
// counts it under that one key.
func (s *Service) Caller(ip netip.Addr, crossSite bool) Caller {
	c := Caller{IP: ip, CrossSite: crossSite}
	c.client = s.clientKey(c)
	return c
}

// Authenticated returns the Caller of a request from ip made by id, as a
// verifier established it. Its grants decide what the caller may do, and
// its client key is the identity, not the address: its rate-limit bucket
// (of id.Rate, or the server's default rate) and its watcher places are
// its own from any address. A nil id is the anonymous caller, as Caller
// returns it.
func (s *Service) Authenticated(ip netip.Addr, crossSite bool, id *Identity) Caller {
	c := Caller{IP: ip, CrossSite: crossSite, Identity: id}
	c.client = s.clientKey(c)
	return c
}

// Verifier checks a credential (a token) and returns the identity it
// proves; auth.Verifier is one.
type Verifier interface {
	Verify(token string) (*Identity, error)
}

// refusedName names, with an address group, the budget that refused
// credentials from the group are charged to. An identity's key has no
// group and an anonymous one no name, so the key is neither's.
const refusedName = "refused credentials"

// Authenticate returns the Caller that c, an anonymous caller, becomes by
// presenting token, which v checks. A refused token is charged at a
// write's cost to a budget of c's address group kept for refused
// credentials (the rate limit's size and refill), and v's refusal is
// returned. Once that budget cannot pay for another refusal, a token from
// the group is refused with KindRateLimited without being checked: so
// tokens cannot be guessed faster than the rate limit lets a client
// write, and a right guess looks like a wrong one until the budget
// refills. The budget is not the group's anonymous one, so anonymous
// requests do not lock a token holder at the same address out, and a
// valid token costs it nothing. (Requests checked at the same moment may
// each pass before any is charged: the overshoot is bounded by the
// requests in flight.)
func (s *Service) Authenticate(c Caller, v Verifier, token string) (Caller, error) {
	var key kv.Client
	if s.limits != nil {
		key = kv.Client{Group: s.clients.Group(c.IP), Name: refusedName}
		if d := s.peek(key, s.cfg.CostWrite); !d.Allowed {
			refused := d // a copy, so the allowed path keeps d on the stack
			return c, &Error{Kind: KindRateLimited, Limit: &refused, Message: "too many refused tokens from this address, retry after " +
				strconv.Itoa(int((refused.RetryAfter+time.Second-1)/time.Second)) + "s"}
		}
	}
	id, err := v.Verify(token)
	if err != nil {
		if s.limits != nil {
			s.limits.Allow(key, s.cfg.CostWrite)
		}
		return c, err
	}
	return s.Authenticated(c.IP, c.CrossSite, id), nil
}

// peek is what s.limits would decide for cost from key, without spending:
// the Limiter's own Peek when it has one, else what its bucket holds.
func (s *Service) peek(key kv.Client, cost int) kv.Decision {
	if s.peeker != nil {
		return s.peeker.Peek(key, cost)
	}
	d := s.limits.Allow(key, 0)
	d.Allowed = d.Limit == 0 || d.Remaining >= cost
	if !d.Allowed {
		d.RetryAfter = time.Second
	}
	return d
}

// clientKey returns c's client key, deriving it when c has none: the one
// derivation of a client key. A Caller not made by Service.Caller (a
// test's, or a preflight's that only asks WriteAllowed) gets it here on
// each use.
func (s *Service) clientKey(c Caller) kv.Client {
	if c.client.Group.IsValid() || c.client.Name != "" {
		return c.client
	}
	if c.Identity != nil {
		return kv.Client{Name: c.Identity.Name, Rate: c.Identity.Rate}
	}
	return kv.GroupClient(s.clients.Group(c.IP))
}

// CanonicalIP returns ip unmapped from IPv4-in-IPv6 and without a zone, the
// form used in ip/ keys and rate-limit buckets.
//
// Deprecated: use kv.CanonicalIP, which this calls.
func CanonicalIP(ip netip.Addr) netip.Addr { return kv.CanonicalIP(ip) }

// charge spends cost tokens from the caller's bucket.
func (s *Service) charge(c Caller, cost int) error {
	if s.limits == nil {
		return nil
	}
	d := s.limits.Allow(s.clientKey(c), cost)
	if d.Allowed {
		return nil
	}
	refused := d // a copy, so the allowed path keeps d on the stack
	if refused.Limit > 0 && cost > refused.Limit {
		// Only a transaction costs more than one write; waiting cannot
		// help it, so say so rather than only when to retry.
		return &Error{Kind: KindRateLimited, Limit: &refused, Message: "this request costs " + strconv.Itoa(cost) +
			" tokens, more than a client's bucket holds (" + strconv.Itoa(refused.Limit) + "): send fewer ops at once"}
	}
	return &Error{Kind: KindRateLimited, Message: "rate limit exceeded, retry after " +
		strconv.Itoa(int((refused.RetryAfter+time.Second-1)/time.Second)) + "s", Limit: &refused}
}

// Get returns the live item under key. Keys are read as given: ip/ keys
// are not rewritten on reads, so anyone can read ip/<addr>/<name>.
func (s *Service) Get(c Caller, key string) (kv.Item, error) {
	if err := s.charge(c, s.cfg.CostRead); err != nil {
		return kv.Item{}, err
	}
	if err := s.checkKey(key); err != nil {
		return kv.Item{}, err
	}
	if err := s.allow(c, key, AccessRead); err != nil {
		return kv.Item{}, err
	}
	it, ok := s.store.Get(key)
	if !ok {
		return kv.Item{}, errNotFound
	}
	return it, nil
}

// WriteOp selects what a write does.
type WriteOp uint8

// The write operations.
const (
	OpSet         WriteOp = iota + 1 // create or overwrite
	OpLoadOrStore                    // create only; conflict returns the current item
	OpCAS                            // overwrite when the value equals Expected
	OpCASOrCreate                    // create, or overwrite when the value equals Expected
)

// WriteRequest is a write as a front end parsed it.
type WriteRequest struct {
	Key      string
	Value    []byte
	Secret   string        // owner secret, or empty
	TTL      time.Duration // 0 means the default (Config.MaxTTL)
	Expected []byte        // for OpCAS and OpCASOrCreate
	// IfMatch, when non-zero, writes only if the key is live at exactly this
	// version (the ETag); otherwise the write fails with KindPrecondition.
	IfMatch uint64
	// IfNoneMatch makes the write create-only; an existing key fails with
	// KindPrecondition instead of KindConflict.
	IfNoneMatch bool
}

// WriteResult reports a successful write.
type WriteResult struct {
	// Key is the key as stored: for ip/ keys it includes the caller's IP.
	Key string
	// Scoped is true when the key was rewritten into the caller's ip/ space.
	Scoped bool
	Item   kv.Item
}

// Write performs op. A key starting with "ip/" is stored under
// "ip/<caller-ip>/<rest>", so a caller can only ever write its own
// address's namespace.
func (s *Service) Write(c Caller, op WriteOp, req WriteRequest) (WriteResult, error) {
	if err := s.charge(c, s.cfg.CostWrite); err != nil {
		return WriteResult{}, err
	}
	key, scoped, err := s.scopeKey(c, req.Key)
	if err != nil {
		return WriteResult{}, err
	}
	if err := s.allow(c, key, AccessWrite); err != nil {
		return WriteResult{}, err
	}
	if err := s.checkValue(req.Value, req.Secret); err != nil {
		return WriteResult{}, err
	}
	expires, err := s.expiry(s.now(), req.TTL)
	if err != nil {
		return WriteResult{}, err
	}
	w := kv.Write{
		Value:     req.Value,
		Expires:   expires,
		Owner:     kv.HashSecret(req.Secret),
		IfVersion: req.IfMatch,
	}
	if req.IfNoneMatch {
		if op != OpSet && op != OpLoadOrStore {
			return WriteResult{}, Errorf(KindBadRequest, "If-None-Match applies to set and los only")
		}
		if req.IfMatch != 0 {
			return WriteResult{}, Errorf(KindBadRequest, "If-Match and If-None-Match cannot be combined")
		}
		op = OpLoadOrStore
	}
	var it kv.Item
	switch op {
	case OpSet:
		it, err = s.store.Set(key, w)
	case OpLoadOrStore:
		it, err = s.store.LoadOrStore(key, w)
	case OpCAS:
		it, err = s.store.CompareAndSwap(key, req.Expected, w)
	case OpCASOrCreate:
		it, err = s.store.CompareAndSwapOrCreate(key, req.Expected, w)
	default:
		return WriteResult{}, Errorf(KindBadRequest, "unknown write operation")
	}
	if err != nil {
		if req.IfNoneMatch && errors.Is(err, kv.ErrExists) {
			return WriteResult{}, errPrecondition
		}
		err = fromStore(err, it)
		if pe, ok := err.(*Error); ok && pe.Current != nil && !s.mayRead(c, key) {
			// A caller that may only write learns that it lost, not
			// what won.
			hidden := *pe
			hidden.Current = nil
			err = &hidden
		}
		return WriteResult{}, err
	}
	if err := s.commit(); err != nil {
		return WriteResult{}, err
	}
	return WriteResult{Key: key, Scoped: scoped, Item: it}, nil
}

// checkValue is the value-size rule of every write: the value and the
// owner secret together fit in MaxValueSize.
func (s *Service) checkValue(value []byte, secret string) error {
	if len(value)+len(secret) > s.cfg.MaxValueSize {
		return s.tooLarge
	}
	return nil
}

// expiry returns when a value written at now with ttl expires, in Unix
// nanoseconds: ttl 0 means the default, MaxTTL, and a longer one is
// capped to it. With MaxTTL 0 there is no limit: ttl 0 means never
// (expiry 0).
func (s *Service) expiry(now time.Time, ttl time.Duration) (int64, error) {
	if ttl < 0 {
		return 0, Errorf(KindBadRequest, "ttl must be positive")
	}
	if s.cfg.MaxTTL == 0 {
		// No limit: no TTL means never, and one beyond what a Unix
		// nanosecond count holds (the year 2262) is never too.
		if ttl == 0 || ttl > time.Duration(math.MaxInt64-now.UnixNano()) {
			return 0, nil
		}
		return now.Add(ttl).UnixNano(), nil
	}
	if ttl == 0 || ttl > s.cfg.MaxTTL {
		ttl = s.cfg.MaxTTL
	}
	return now.Add(ttl).UnixNano(), nil
}

// ListPage is one page of a prefix listing.
type ListPage struct {
	Items []kv.Item
	// Next is the cursor for the following page (pass it as After), or
	// empty when this page reaches the end of the prefix.
	Next string
}

// The sizes of listing pages, for every front end.
const (
	// DefaultPageSize is how many keys a page holds when the caller asks
	// for no number.
	DefaultPageSize = 100
	// DefaultMaxScanLimit caps a page when Config.MaxScanLimit is zero.
	DefaultMaxScanLimit = 1000
	// KeysPerRead is how many keys of a page cost as much as one read: a
	// page costs one read per started KeysPerRead keys asked for, since
	// that is the work it may do.
	KeysPerRead = 100
)

// PageSize returns how many keys List puts in a page asked for limit
// keys: limit, DefaultPageSize for limit <= 0, at most
// Config.MaxScanLimit.
func (s *Service) PageSize(limit int) int {
	maxLimit := s.cfg.MaxScanLimit
	if maxLimit <= 0 {
		maxLimit = DefaultMaxScanLimit
	}
	if limit <= 0 {
		limit = DefaultPageSize
	}
	return min(limit, maxLimit)
}

// ParsePageSize parses the number of keys a listing asks for, as a front
// end reads it from a request: a positive decimal integer.
func ParsePageSize(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, Errorf(KindBadRequest, "limit must be a positive integer")
	}
	return n, nil
}

// List returns up to limit live items whose keys start with prefix and
// come after the cursor after, in byte order: PageSize(limit) of them,
// costing a read per started KeysPerRead. ip/ prefixes are read as given,
// like keys.
func (s *Service) List(c Caller, prefix, after string, limit int) (ListPage, error) {
	limit = s.PageSize(limit)
	if err := s.charge(c, s.cfg.CostRead*((limit+KeysPerRead-1)/KeysPerRead)); err != nil {
		return ListPage{}, err
	}
	if prefix != "" {
		if err := s.checkKey(prefix); err != nil {
			return ListPage{}, err
		}
	}
	if err := s.allowUnder(c, prefix); err != nil {
		return ListPage{}, err
	}
	// The page starts just after the cursor; a cursor before the prefix
	// (or none) starts at the prefix.
	start := prefix
	if after != "" && after >= prefix {
		start = after + "\x00"
	}
	end := kv.PrefixEnd(prefix)
	if end == "" || end > reservedStart {
		// Deno's tuple keys are not string keys: a listing never shows
		// them.
		end = reservedStart
	}
	if start >= end {
		return ListPage{}, nil
	}
	var items []kv.Item
	if g := s.grants(c); g != nil {
		items = s.readable(g, start, end, limit+1)
	} else {
		items = s.store.Range(start, end, limit+1)
	}
	page := ListPage{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		page.Next = items[limit-1].Key
	}
	return page, nil
}

// readable returns up to limit live items with start <= key < end that
// g lets its holder read, in byte order. At an unreadable key it goes on
// from the next key another grant may decide, so a listing spends no
// reads on a run of keys the caller may not see, and each run is skipped
// once.
func (s *Service) readable(g *Grants, start, end string, limit int) []kv.Item {
	var out []kv.Item
	for {
		want := limit - len(out)
		items := s.store.Range(start, end, want)
		next := ""
		for _, it := range items {
			if g.Allows(it.Key, AccessRead) {
				out = append(out, it)
				continue
			}
			if next = g.skip(it.Key); next == "" {
				return out // nothing after it can be read
			}
			break
		}
		if next == "" {
			return out // the range ended, or the page is full
		}
		if end != "" && next >= end {
			return out
		}
		start = next
	}
}

// DeleteResult reports a successful delete.
type DeleteResult struct {
	Key    string // as stored, with the caller's address for ip/ keys
	Scoped bool
	Item   kv.Item // the removed item, with the removal's version
}

// Delete removes key. Like a write it costs CostWrite, is scoped for ip/
// keys and needs the owner's secret for an owned key.
func (s *Service) Delete(c Caller, key, secret string) (DeleteResult, error) {
	if err := s.charge(c, s.cfg.CostWrite); err != nil {
		return DeleteResult{}, err
	}
	key, scoped, err := s.scopeKey(c, key)
	if err != nil {
		return DeleteResult{}, err
	}
	if err := s.allow(c, key, AccessWrite); err != nil {
		return DeleteResult{}, err
	}
	it, err := s.store.Delete(key, kv.HashSecret(secret))
	if err != nil {
		return DeleteResult{}, fromStore(err, it)
	}
	if err := s.commit(); err != nil {
		return DeleteResult{}, err
	}
	return DeleteResult{Key: key, Scoped: scoped, Item: it}, nil
}

// commit waits until applied writes are durable.
func (s *Service) commit() error {
	if s.cfg.Commit == nil {
		return nil
	}
	if err := s.cfg.Commit(); err != nil {
		return &Error{Kind: KindUnavailable, Message: "storage unavailable: " + err.Error()}
	}
	return nil
}

// WriteAllowed returns nil when c may write or delete key as far as who c
// is goes, or the refusal Write and Delete give it otherwise (secrets,
// limits and the key's syntax are checked there). A front end asks before
// it has a whole request, to refuse a CORS preflight for it.
func WriteAllowed(c Caller, key string) error {
	if c.CrossSite && strings.HasPrefix(key, "ip/") {
		return errCrossSite
	}
	return nil
}

// scopeKey validates key and applies ip/ scoping for a write.
func (s *Service) scopeKey(c Caller, key string) (string, bool, error) {
	name, scoped := strings.CutPrefix(key, "ip/")
	if !scoped {
		return key, false, s.checkKey(key)
	}
	if err := WriteAllowed(c, key); err != nil {
		return "", false, err
	}
	if name == "" {
		return "", false, Errorf(KindBadRequest, "ip/ key needs a name after ip/")
	}
	ip := kv.CanonicalIP(c.IP)
	if !ip.IsValid() {
		return "", false, Errorf(KindBadRequest, "ip/ keys need a caller address")
	}
	key = "ip/" + ip.String() + "/" + name
	return key, true, s.checkKey(key)
}

// checkKey enforces the key syntax: non-empty UTF-8 without control
// characters, at most MaxKeySize bytes.
func (s *Service) checkKey(key string) error {
	if key == "" {
		return Errorf(KindBadRequest, "key is empty")
	}
	if len(key) > s.cfg.MaxKeySize {
		return Errorf(KindBadRequest, "key too long: at most %d bytes (ip/ keys count with the address)", s.cfg.MaxKeySize)
	}
	for i := 0; i < len(key); i++ {
		if b := key[i]; b < 0x20 || b == 0x7f {
			return Errorf(KindBadRequest, "key contains a control character")
		}
	}
	if !utf8.ValidString(key) {
		return Errorf(KindBadRequest, "key is not valid UTF-8")
	}
	return nil
}

// ParseTTL parses a TTL given as a Go duration ("90s", "1h30m") or as plain
// seconds ("600"). Zero, negative and unparsable TTLs are errors; a TTL too
// long for a time.Duration saturates, and Write caps it to MaxTTL.
func ParseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, Errorf(KindBadRequest, "ttl is empty")
	}
	d, ok := parseLength(s)
	if !ok {
		return 0, Errorf(KindBadRequest, "ttl %q is not a duration (like 90s, 30m, 1h30m) or a number of seconds", s)
	}
	if d <= 0 {
		return 0, Errorf(KindBadRequest, "ttl must be positive")
	}
	return d, nil
}

// parseLength reads a Go duration or a plain number of seconds, as TTLs
// and waits are given. One too long for a time.Duration saturates (to the
// most negative one when negative): it is well formed, only beyond any
// cap. ok is false when s is neither form.
func parseLength(s string) (d time.Duration, ok bool) {
	const maxDuration = 1<<63 - 1
	if s != "" && digits(s) == len(s) {
		// Only digits, so ParseUint can fail only by overflow. (Its range
		// error comes before it sees a stray letter, so its error alone
		// cannot tell "99999999999999999999x" from a number.)
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n > maxDuration/uint64(time.Second) {
			return maxDuration, true
		}
		return time.Duration(n) * time.Second, true
	}
	d, err := time.ParseDuration(s)
	if err == nil {
		return d, true
	}
	// ParseDuration refuses a duration beyond about 292 years with the
	// same error as garbage.
	if !durationSyntax(s) {
		return 0, false
	}
	if s[0] == '-' {
		return -maxDuration - 1, true
	}
	return maxDuration, true
}

// durationSyntax reports whether s is written the way time.ParseDuration
// reads a duration, whatever its size: an optional sign, then one or more
// numbers (with an optional fraction), each followed by a unit.
func durationSyntax(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for s != "" {
		i := digits(s)
		whole := i > 0
		if i < len(s) && s[i] == '.' {
			n := digits(s[i+1:])
			whole = whole || n > 0
			i += 1 + n
		}
		if !whole {
			return false
		}
		j := i
		for j < len(s) && s[j] != '.' && (s[j] < '0' || s[j] > '9') {
			j++
		}
		switch s[i:j] {
		case "ns", "us", "\u00b5s", "\u03bcs", "ms", "s", "m", "h":
		default:
			return false
		}
		s = s[j:]
	}
	return true
}

// digits returns the length of the run of ASCII digits that starts s.
func digits(s string) int {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}
