package feed

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// Event is kv.Event, the change subscribers read: the ring holds them and
// Next returns them. The alias is the name feed's own code uses, and it
// keeps code written against feed.Event compiling; new code names kv.
//
// Deprecated: use kv.Event.
type Event = kv.Event

// Defaults applied by New for zero Options fields.
const (
	DefaultHistory       = 10000
	DefaultHistoryBytes  = 16 << 20
	DefaultMaxPerClient  = 10
	DefaultMaxPerNetwork = 100
	DefaultMaxTotal      = 1000
)

const (
	// maxBatch bounds the events one Next returns.
	maxBatch = 256
	// scanChunk bounds the events a subscriber examines per hold of the
	// ring's read lock, so Publish never waits behind a long scan.
	scanChunk = 256
	// dispatchBatch is how many events the dispatcher copies out at a time.
	dispatchBatch = 256
	// floorSlots is how many recent "nothing matched up to here" records
	// each subscriber keeps (see Sub.skipQuiet).
	floorSlots = 8
)

// Options configures a Feed. The zero value takes every default.
type Options struct {
	// History is how many events are kept for subscribers to read and for
	// resumes. Default 10000.
	History int
	// HistoryBytes bounds the sum of key and value bytes of the kept
	// events; the oldest are dropped first. The newest event is always
	// kept, even when it alone is larger. Default 16 MiB.
	HistoryBytes int
	// MaxPerClient caps the subscribers of one client group. Default 10.
	MaxPerClient int
	// MaxPerNetwork caps the subscribers of one network, a group of
	// client groups (kv.SubOptions.Network), so that one allocation of many
	// client groups, such as an IPv6 /48 of /64s, cannot take the whole
	// MaxTotal. Default 100.
	MaxPerNetwork int
	// MaxTotal caps all subscribers. Default 1000.
	MaxTotal int
}

func (o Options) withDefaults() Options {
	if o.History <= 0 {
		o.History = DefaultHistory
	}
	if o.HistoryBytes <= 0 {
		o.HistoryBytes = DefaultHistoryBytes
	}
	if o.MaxPerClient <= 0 {
		o.MaxPerClient = DefaultMaxPerClient
	}
	if o.MaxPerNetwork <= 0 {
		o.MaxPerNetwork = DefaultMaxPerNetwork
	}
	if o.MaxTotal <= 0 {
		o.MaxTotal = DefaultMaxTotal
	}
	return o
}

// Errors returned by Subscribe and Next: kv's, under the names feed had
// before the subscription seam moved to kv. New code names kv.
var (
	// ErrBehind is kv.ErrBehind.
	//
	// Deprecated: use kv.ErrBehind.
	ErrBehind = kv.ErrBehind
	// ErrClosed is kv.ErrFeedClosed.
	//
	// Deprecated: use kv.ErrFeedClosed.
	ErrClosed = kv.ErrFeedClosed
	// ErrTooMany is kv.ErrTooManyWatchers.
	//
	// Deprecated: use kv.ErrTooManyWatchers.
	ErrTooMany = kv.ErrTooManyWatchers
	// ErrTooManyForClient is kv.ErrTooManyWatchersForClient.
	//
	// Deprecated: use kv.ErrTooManyWatchersForClient.
	ErrTooManyForClient = kv.ErrTooManyWatchersForClient
	// ErrTooManyForNetwork is kv.ErrTooManyWatchersForNetwork.
	//
	// Deprecated: use kv.ErrTooManyWatchersForNetwork.
	ErrTooManyForNetwork = kv.ErrTooManyWatchersForNetwork
)

// Feed is a bounded history of changes with cursor-based subscribers. It is
// safe for concurrent use.
type Feed struct {
	// mu guards the ring. Publish holds it for writing for a few
	// instructions; readers hold it for at most scanChunk events.
	mu       sync.RWMutex
	ring     []Event // fixed size; slots outside [start, start+n) are zero
	start    int     // index of the oldest kept event
	n        int     // events kept
	bytes    int     // key+value bytes of the kept events
	maxBytes int
	head     uint64 // latest published version
	closed   bool

	kick      chan struct{} // Publish -> dispatcher, capacity 1
	done      chan struct{} // closed by Close
	closeOnce sync.Once

	nsubs      atomic.Int64  // registered subscribers
	lostUpTo   atomic.Uint64 // the dispatcher never matched events up to here
	dispatched atomic.Uint64 // the dispatcher's position, for tests
	dropped    atomic.Uint64
	floorEvery uint64

	// subMu guards the subscriber registry. Publish never takes it.
	subMu      sync.Mutex
	all        map[*Sub]struct{}
	exact      map[string]map[*Sub]struct{}
	prefix     map[string]map[*Sub]struct{}
	lenCount   map[int]int // prefix subscribers per prefix length
	lens       []int       // the keys of lenCount, sorted
	perClient  map[kv.Client]int
	perNetwork map[netip.Prefix]int
	limits     kv.FeedLimits
}

// New returns an empty Feed and starts its dispatcher goroutine, which
// runs until Close.
func New(opts Options) *Feed {
	opts = opts.withDefaults()
	f := &Feed{
		ring:       make([]Event, opts.History),
		maxBytes:   opts.HistoryBytes,
		kick:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		floorEvery: uint64(max(1, opts.History/8)),
		all:        make(map[*Sub]struct{}),
		exact:      make(map[string]map[*Sub]struct{}),
		prefix:     make(map[string]map[*Sub]struct{}),
		lenCount:   make(map[int]int),
		perClient:  make(map[kv.Client]int),
		perNetwork: make(map[netip.Prefix]int),
		limits:     kv.FeedLimits{PerClient: opts.MaxPerClient, PerNetwork: opts.MaxPerNetwork, Total: opts.MaxTotal},
	}
	go f.dispatch()
	return f
}

// Publish records c. It is meant to be called from ttlstore's OnChange,
// under the store's sequencing lock, with strictly increasing versions; a
// version not above Head is ignored, as is everything after Close. It
// never blocks on subscribers, does no work per subscriber and does not
// allocate.
//
// Call it only once the change is certain to happen: with a journal, after
// the journal accepted the record, since a refused change gives its
// version to the next one.
func (f *Feed) Publish(c kv.Change) {
	it := &c.Item
	f.mu.Lock()
	if f.closed || it.Version <= f.head {
		f.mu.Unlock()
		return
	}
	if f.n == len(f.ring) {
		f.evictGroupLocked()
	}
	f.appendLocked(c)
	f.head = it.Version
	f.trimLocked()
	f.mu.Unlock()
	f.kickDispatcher()
}

// PublishBatch records the changes of one transaction, which share one
// version, as one step, under the same rules as Publish (the version must
// be above Head). They stay together: a Next returns every one of them
// that matches the subscriber, or none; a resume from the version before
// them delivers them all and one from their version none; and history
// drops them together. A batch larger than the whole history cannot be
// kept whole, so none of it is: every subscriber that had not read up to
// it falls behind and relists.
func (f *Feed) PublishBatch(cs []kv.Change) {
	if len(cs) == 0 {
		return
	}
	v := cs[0].Item.Version
	f.mu.Lock()
	if f.closed || v <= f.head {
		f.mu.Unlock()
		return
	}
	if len(cs) > len(f.ring) {
		for f.n > 0 {
			f.evictLocked()
		}
	} else {
		for f.n+len(cs) > len(f.ring) {
			f.evictGroupLocked()
		}
		for _, c := range cs {
			f.appendLocked(c)
		}
	}
	f.head = v
	f.trimLocked()
	f.mu.Unlock()
	f.kickDispatcher()
}

// appendLocked puts c after the newest event; the ring has room.
func (f *Feed) appendLocked(c kv.Change) {
	it := &c.Item
	i := f.start + f.n
	if i >= len(f.ring) {
		i -= len(f.ring)
	}
	f.ring[i] = Event{Op: c.Op, Cause: c.Cause, Key: it.Key, Value: it.Value, Expires: it.Expires, Version: it.Version}
	f.n++
	f.bytes += len(it.Key) + len(it.Value)
}

// trimLocked drops the oldest events while they hold more than maxBytes,
// keeping at least the newest version's.
func (f *Feed) trimLocked() {
	for f.bytes > f.maxBytes && f.n > 0 && f.ring[f.start].Version != f.head {
		f.evictGroupLocked()
	}
}

func (f *Feed) kickDispatcher() {
	if f.nsubs.Load() > 0 {
		select {
		case f.kick <- struct{}{}:
		default: // the dispatcher is already due to run
		}
	}
}

// evictGroupLocked drops the oldest event and the others of its version, so
// that the history never starts inside a transaction: a subscriber resuming
// from just before the oldest kept event would otherwise miss part of it.
func (f *Feed) evictGroupLocked() {
	v := f.ring[f.start].Version
	for f.n > 0 && f.ring[f.start].Version == v {
		f.evictLocked()
	}
}

// evictLocked drops the oldest event, clearing its slot so that the value
// it referenced can be freed.
func (f *Feed) evictLocked() {
	e := &f.ring[f.start]
	f.bytes -= len(e.Key) + len(e.Value)
	*e = Event{}
	f.start++
	if f.start == len(f.ring) {
		f.start = 0
	}
	f.n--
}

// at returns the i-th oldest kept event.
func (f *Feed) at(i int) *Event {
	j := f.start + i
	if j >= len(f.ring) {
		j -= len(f.ring)
	}
	return &f.ring[j]
}

func (f *Feed) oldestLocked() uint64 {
	if f.n == 0 {
		return f.head + 1
	}
	return f.ring[f.start].Version
}

// afterLocked returns the index of the first kept event with a version
// above v (f.n when there is none).
func (f *Feed) afterLocked(v uint64) int {
	if f.n == 0 {
		return 0
	}
	oldest := f.ring[f.start].Version
	if v < oldest {
		return 0
	}
	// Versions are normally contiguous, one event each, which makes this
	// exact; a transaction's events share one, so the one before must be
	// checked too.
	if d := v - oldest + 1; d < uint64(f.n) && f.at(int(d)).Version == v+1 && f.at(int(d)-1).Version <= v {
		return int(d)
	}
	lo, hi := 0, f.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if f.at(mid).Version <= v {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// Head returns the latest published version, 0 before the first.
func (f *Feed) Head() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.head
}

// Oldest returns the version of the oldest event kept, or Head()+1 when
// none is. A resume point V is covered when Oldest()-1 <= V <= Head().
func (f *Feed) Oldest() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.oldestLocked()
}

// Active returns the number of open subscribers.
func (f *Feed) Active() int { return int(f.nsubs.Load()) }

// Dropped returns how many live subscribers were told kv.ErrBehind: they did
// not read fast enough and events they had not read left the history.
// Resumes from a point already out of history are not counted.
func (f *Feed) Dropped() uint64 { return f.dropped.Load() }

// Limits is kv.FeedLimits, the subscriber caps a Feed enforces.
//
// Deprecated: use kv.FeedLimits.
type Limits = kv.FeedLimits

// Limits returns the subscriber caps in force.
func (f *Feed) Limits() kv.FeedLimits { return f.limits }

// Close ends every Next with kv.ErrFeedClosed and refuses new
// subscribers, so that streams end cleanly at shutdown. Later Publish
// calls are ignored. Close is idempotent.
func (f *Feed) Close() {
	f.closeOnce.Do(func() {
		f.mu.Lock()
		f.closed = true
		f.mu.Unlock()
		close(f.done)
	})
}

// SubOptions is kv.SubOptions: what a subscriber receives and whose caps
// it counts against. A resume point outside history (Since below
// Oldest()-1, or above Head()) makes the first Next return kv.ErrBehind.
//
// Deprecated: use kv.SubOptions.
type SubOptions = kv.SubOptions

// Sub is one subscriber, a kv.Subscription. Next, Reset and Cursor must be called from one
// goroutine at a time; Close may be called from any goroutine.
type Sub struct {
	f         *Feed
	prefix    string
	exact     bool
	client    kv.Client
	network   netip.Prefix
	wake      chan struct{} // capacity 1; the dispatcher signals matches
	done      chan struct{} // closed by Close
	closeOnce sync.Once

	// Owned by the goroutine calling Next.
	cursor   uint64 // last version considered
	regAt    uint64 // head when s became visible to the dispatcher
	resuming bool   // created with Since and nothing delivered yet
	behind   bool   // kv.ErrBehind reported; sticky until Reset

	// lastMatch is the latest version the dispatcher matched to s. Only
	// the dispatcher touches it.
	lastMatch uint64

	// floors, written by the dispatcher, record "every event after regAt
	// and up to at that matched s was at most match"; see skipQuiet.
	fmu       sync.Mutex
	floors    [floorSlots]floor
	nextFloor int
}

type floor struct{ at, match uint64 }

// Subscribe adds a subscriber, a *Sub, or refuses with
// kv.ErrTooManyWatchersForClient, kv.ErrTooManyWatchersForNetwork,
// kv.ErrTooManyWatchers or kv.ErrFeedClosed. The subscriber must be
// closed. It returns the kv.Subscription that policy.Feed asks for, so
// that policy needs no type of this package.
func (f *Feed) Subscribe(o kv.SubOptions) (kv.Subscription, error) {
	s := &Sub{
		f: f, prefix: o.Prefix, exact: o.Exact, client: o.Client, network: o.Network,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	f.subMu.Lock()
	select {
	case <-f.done:
		f.subMu.Unlock()
		return nil, kv.ErrFeedClosed
	default:
	}
	if f.perClient[o.Client] >= f.limits.PerClient {
		f.subMu.Unlock()
		return nil, kv.ErrTooManyWatchersForClient
	}
	if o.Network.IsValid() && f.perNetwork[o.Network] >= f.limits.PerNetwork {
		f.subMu.Unlock()
		return nil, kv.ErrTooManyWatchersForNetwork
	}
	if len(f.all) >= f.limits.Total {
		f.subMu.Unlock()
		return nil, kv.ErrTooManyWatchers
	}
	f.perClient[o.Client]++
	if o.Network.IsValid() {
		f.perNetwork[o.Network]++
	}
	f.all[s] = struct{}{}
	if o.Exact {
		addSub(f.exact, o.Prefix, s)
	} else {
		addSub(f.prefix, o.Prefix, s)
		if f.lenCount[len(o.Prefix)]++; f.lenCount[len(o.Prefix)] == 1 {
			f.lens = append(f.lens, len(o.Prefix))
			slices.Sort(f.lens)
		}
	}
	f.nsubs.Add(1)
	f.subMu.Unlock()

	// The head is read only now that the dispatcher sees s: every event
	// above it will be matched against s and wake it.
	f.mu.RLock()
	head, oldest := f.head, f.oldestLocked()
	f.mu.RUnlock()
	s.regAt, s.cursor = head, head
	if o.Since != 0 {
		s.resuming = true
		if o.Since > head || o.Since+1 < oldest {
			s.behind = true
		} else {
			s.cursor = o.Since
		}
	}
	return s, nil
}

func addSub(m map[string]map[*Sub]struct{}, key string, s *Sub) {
	set := m[key]
	if set == nil {
		set = make(map[*Sub]struct{})
		m[key] = set
	}
	set[s] = struct{}{}
}

func removeSub(m map[string]map[*Sub]struct{}, key string, s *Sub) {
	set := m[key]
	delete(set, s)
	if len(set) == 0 {
		delete(m, key)
	}
}

// Close removes the subscriber, releasing its place in the caps, and ends
// a Next in progress with kv.ErrFeedClosed. It is idempotent.
func (s *Sub) Close() {
	s.closeOnce.Do(func() {
		f := s.f
		f.subMu.Lock()
		delete(f.all, s)
		if s.exact {
			removeSub(f.exact, s.prefix, s)
		} else {
			removeSub(f.prefix, s.prefix, s)
			l := len(s.prefix)
			if f.lenCount[l]--; f.lenCount[l] == 0 {
				delete(f.lenCount, l)
				f.lens = slices.DeleteFunc(f.lens, func(x int) bool { return x == l })
			}
		}
		if f.perClient[s.client]--; f.perClient[s.client] == 0 {
			delete(f.perClient, s.client)
		}
		if s.network.IsValid() {
			if f.perNetwork[s.network]--; f.perNetwork[s.network] == 0 {
				delete(f.perNetwork, s.network)
			}
		}
		f.nsubs.Add(-1)
		f.subMu.Unlock()
		close(s.done)
	})
}

// Cursor returns the last version the subscriber has considered: every
// matching event up to it has been delivered.
func (s *Sub) Cursor() uint64 { return s.cursor }

// Reset clears kv.ErrBehind and moves the cursor to the head, so that only
// events published from now on are delivered. It returns the new cursor.
// A caller resuming from a point out of history tells its client to list
// again, then continues from here.
func (s *Sub) Reset() uint64 {
	s.f.mu.RLock()
	head := s.f.head
	s.f.mu.RUnlock()
	s.cursor = max(s.cursor, head)
	s.behind, s.resuming = false, false
	return s.cursor
}

// Next blocks until there are events after the cursor that match the
// subscriber, ctx is done, or the feed or subscriber is closed. It returns
// up to a few hundred events in version order and advances the cursor past
// them. It returns kv.ErrBehind if events the subscriber had not read
// have left the history, ctx.Err() when ctx is done, and kv.ErrFeedClosed
// after Close.
func (s *Sub) Next(ctx context.Context) ([]Event, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		evs, err := s.poll()
		if err != nil || len(evs) > 0 {
			return evs, err
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.f.done:
			// Poll once more: events published before Close still go out.
		case <-s.done:
			return nil, kv.ErrFeedClosed
		}
	}
}

func (s *Sub) matches(key string) bool {
	if s.exact {
		return key == s.prefix
	}
	return strings.HasPrefix(key, s.prefix)
}

// poll returns the matching events after the cursor without waiting.
func (s *Sub) poll() ([]Event, error) {
	select {
	case <-s.done:
		return nil, kv.ErrFeedClosed
	default:
	}
	if s.behind {
		return nil, kv.ErrBehind
	}
	f := s.f
	var out []Event
	closed := false
	for {
		f.mu.RLock()
		// A closed feed publishes nothing more, but what it published
		// before is still delivered, so a shutdown ends streams after
		// their last event rather than in the middle.
		closed = f.closed
		if oldest := f.oldestLocked(); s.cursor+1 < oldest && !s.skipQuiet(oldest) {
			f.mu.RUnlock()
			if len(out) > 0 {
				break // deliver what was read; the next call reports it
			}
			s.behind = true
			if !s.resuming {
				f.dropped.Add(1)
			}
			return nil, kv.ErrBehind
		}
		i := f.afterLocked(s.cursor)
		end := min(f.n, i+scanChunk)
		for i < end && len(out) < maxBatch {
			e := f.at(i)
			i++
			s.cursor = e.Version
			if s.matches(e.Key) {
				out = append(out, *e)
			}
		}
		// The events of a transaction share a version: finish the one
		// begun, so that neither this batch nor the cursor ends inside it.
		for i < f.n && f.at(i).Version == s.cursor {
			e := f.at(i)
			i++
			if s.matches(e.Key) {
				out = append(out, *e)
			}
		}
		caughtUp := i >= f.n
		f.mu.RUnlock()
		if caughtUp || len(out) >= maxBatch {
			break
		}
		// More to scan: let Publish in between chunks.
	}
	if len(out) > 0 {
		s.resuming = false
	}
	if len(out) == 0 && closed {
		return nil, kv.ErrFeedClosed
	}
	return out, nil
}

// skipQuiet is called, under the ring's read lock, when events after the
// cursor have left the history. A subscriber that waited in Next because
// nothing matched it did not advance its cursor, yet lost nothing: the
// dispatcher saw every one of those events and recorded, in floors, that
// none matched. skipQuiet moves the cursor over such a stretch and reports
// whether it is back inside the history. It never moves over an event it
// cannot vouch for: one before the subscriber was registered, one the
// dispatcher itself missed, or a stretch containing a match.
func (s *Sub) skipQuiet(oldest uint64) bool {
	if s.cursor < s.regAt {
		return false
	}
	best := s.cursor
	s.fmu.Lock()
	for _, fl := range s.floors {
		if fl.match <= s.cursor && fl.at > best {
			best = fl.at
		}
	}
	s.fmu.Unlock()
	// Read after the floors: a floor is written after any lostUpTo that
	// precedes it.
	if s.cursor < s.f.lostUpTo.Load() {
		return false
	}
	s.cursor = best
	return s.cursor+1 >= oldest
}

// dispatch runs until Close. It reads new events after Publish kicks it,
// wakes the subscribers each one matches, and every floorEvery events
// records for every subscriber that nothing else matched it.
func (f *Feed) dispatch() {
	var pos, lastFloor uint64 // last version dispatched; last floor written
	batch := make([]Event, 0, dispatchBatch)
	for {
		select {
		case <-f.kick:
		case <-f.done:
			return
		}
		for {
			batch = batch[:0]
			f.mu.RLock()
			if f.closed {
				f.mu.RUnlock()
				return
			}
			lost := false
			if oldest := f.oldestLocked(); pos+1 < oldest {
				pos, lost = oldest-1, true
			}
			i := f.afterLocked(pos)
			for ; i < f.n && len(batch) < dispatchBatch; i++ {
				batch = append(batch, *f.at(i))
			}
			// Never stop inside a transaction: pos moves past whole
			// versions only.
			for ; len(batch) > 0 && i < f.n && f.at(i).Version == batch[len(batch)-1].Version; i++ {
				batch = append(batch, *f.at(i))
			}
			f.mu.RUnlock()
			full := len(batch) >= dispatchBatch
			if len(batch) > 0 {
				// Nobody registered after the copy above can need these:
				// a subscriber reads the head only after registering.
				if f.nsubs.Load() == 0 {
					pos = batch[len(batch)-1].Version
					lastFloor = pos
					f.dispatched.Store(pos)
					clear(batch)
					if full {
						continue
					}
					break
				}
			}
			if lost && f.nsubs.Load() > 0 {
				// Events were published and dropped before they were
				// matched; wake everyone to check their own cursor.
				f.lostUpTo.Store(pos)
				f.wakeAll()
			}
			if len(batch) == 0 {
				break
			}
			f.match(batch)
			pos = batch[len(batch)-1].Version
			clear(batch) // drop the value references
			if pos-lastFloor >= f.floorEvery {
				f.setFloors(pos)
				lastFloor = pos
			}
			f.dispatched.Store(pos)
			if !full {
				break
			}
		}
	}
}

// match wakes the subscribers of each event in batch.
func (f *Feed) match(batch []Event) {
	f.subMu.Lock()
	defer f.subMu.Unlock()
	for i := range batch {
		e := &batch[i]
		if len(f.exact) > 0 {
			for s := range f.exact[e.Key] {
				s.notify(e.Version)
			}
		}
		for _, l := range f.lens {
			if l > len(e.Key) {
				break
			}
			for s := range f.prefix[e.Key[:l]] {
				s.notify(e.Version)
			}
		}
	}
}

// notify records that the event at version v matches s and wakes s. The
// floor it writes first says that nothing between the previous match and v
// matched, which lets a subscriber that was idle for longer than the
// history skip straight to v (see skipQuiet).
func (s *Sub) notify(v uint64) {
	if v-1 > s.lastMatch {
		s.addFloor(floor{at: v - 1, match: s.lastMatch})
	}
	s.lastMatch = v
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (f *Feed) wakeAll() {
	f.subMu.Lock()
	defer f.subMu.Unlock()
	for s := range f.all {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// setFloors records, for every subscriber, that the dispatcher has matched
// everything up to pos and the latest match was lastMatch.
func (f *Feed) setFloors(pos uint64) {
	f.subMu.Lock()
	defer f.subMu.Unlock()
	for s := range f.all {
		s.addFloor(floor{at: pos, match: s.lastMatch})
	}
}

func (s *Sub) addFloor(fl floor) {
	s.fmu.Lock()
	s.floors[s.nextFloor] = fl
	s.nextFloor = (s.nextFloor + 1) % floorSlots
	s.fmu.Unlock()
}
