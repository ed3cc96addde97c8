package resp

import (
	"crypto/rand"
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The bounds of the server's SCAN cursors: how many it keeps, and for
// how long after it handed one out. A client that takes longer than
// cursorTTL between two pages, or a server handing out more than
// maxCursors pages meanwhile, makes its cursor unknown.
const (
	maxCursors = 1 << 14
	cursorTTL  = 10 * time.Minute
)

// cursors maps the numbers SCAN hands out (clients parse cursors as
// integers, so a key cannot be one) to the last key of the page they
// continue after. The table is the server's, not a connection's: client
// libraries with a pool of connections (go-redis's ScanIterator, redis-py's
// scan_iter) send the next SCAN on whichever connection is free. Cursors
// are random 63-bit numbers, so one client cannot guess another's; one
// only says where a listing resumes, and the page read from it is still
// filtered by the grants of the caller that sends it. Memory is bounded by
// maxCursors entries of at most a key each: the oldest is dropped first.
type cursors struct {
	mu    sync.Mutex
	now   func() time.Time
	byID  map[uint64]cursor
	order [maxCursors]uint64 // ids in the order handed out, a ring
	next  int
}

type cursor struct {
	after   string
	expires time.Time
}

func newCursors(now func() time.Time) *cursors {
	return &cursors{now: now, byID: make(map[uint64]cursor)}
}

// put returns a new cursor that continues after the key after.
func (cs *cursors) put(after string) uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		id := binary.LittleEndian.Uint64(b[:]) >> 1 // positive as a signed integer too
		if id == 0 {
			continue // SCAN's "start" and "done"
		}
		cs.mu.Lock()
		if _, taken := cs.byID[id]; taken {
			cs.mu.Unlock()
			continue
		}
		if old := cs.order[cs.next]; old != 0 {
			delete(cs.byID, old)
		}
		cs.order[cs.next] = id
		cs.next = (cs.next + 1) % maxCursors
		cs.byID[id] = cursor{after: after, expires: cs.now().Add(cursorTTL)}
		cs.mu.Unlock()
		return id
	}
}

// get returns the key the cursor id continues after, if it is known and
// has not expired. It stays valid until then, so that a client may send
// the same SCAN again after a lost reply.
func (cs *cursors) get(id uint64) (string, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cur, ok := cs.byID[id]
	if !ok || cs.now().After(cur.expires) {
		return "", false
	}
	return cur.after, true
}

// cmdScan answers SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]: a page
// of the ordered index under the pattern's literal prefix, filtered by
// the rest of the pattern.
func cmdScan(c *conn, a [][]byte) {
	cur, err := strconv.ParseUint(string(a[1]), 10, 64)
	if err != nil {
		c.w.err("ERR invalid cursor")
		return
	}
	pattern := []byte("*")
	count := 10
	typ := ""
	for i := 2; i < len(a); i += 2 {
		if i+1 >= len(a) {
			c.w.err(errSyntax)
			return
		}
		switch strings.ToUpper(string(clip(a[i], 8))) {
		case "MATCH":
			pattern = a[i+1]
		case "COUNT":
			n, ok := parseInt(a[i+1])
			if !ok || n < 1 {
				c.w.err(errSyntax)
				return
			}
			count = int(min(n, 1<<20))
		case "TYPE":
			typ = strings.ToLower(string(a[i+1]))
		default:
			c.w.err(errSyntax)
			return
		}
	}
	after := ""
	if cur != 0 {
		var ok bool
		if after, ok = c.s.cursors.get(cur); !ok {
			c.w.err("ERR invalid cursor: unknown or expired (a cursor is valid for " + cursorTTL.String() + " after the reply that gave it); start again with SCAN 0")
			return
		}
	}
	prefix, exact := literalPrefix(pattern)
	page, err := c.s.svc.List(c.caller, string(prefix), after, count)
	if err != nil {
		c.w.err(errorLine(err))
		return
	}
	next := uint64(0)
	if page.Next != "" {
		next = c.s.cursors.put(page.Next)
	}
	var keys []string
	if typ == "" || typ == "string" {
		for _, it := range page.Items {
			if exact || globMatch(pattern, []byte(it.Key)) {
				keys = append(keys, it.Key)
			}
		}
	}
	c.w.array(2)
	c.w.bulkString(strconv.FormatUint(next, 10))
	c.w.array(len(keys))
	for _, k := range keys {
		c.w.bulkString(k)
	}
}

// keysPages is how many pages of --max-scan-limit keys KEYS reads at
// most, when a pattern filters most keys under its literal prefix out.
const keysPages = 10

// cmdKeys answers KEYS pattern with at most --max-scan-limit matching
// keys, read from at most keysPages pages under the pattern's literal
// prefix: a bounded answer, where SCAN pages through any number.
func cmdKeys(c *conn, a [][]byte) {
	prefix, exact := literalPrefix(a[1])
	limit := c.s.svc.PageSize(1 << 30)
	var keys []string
	after := ""
	for range keysPages {
		page, err := c.s.svc.List(c.caller, string(prefix), after, limit)
		if err != nil {
			c.w.err(errorLine(err))
			return
		}
		for _, it := range page.Items {
			if len(keys) < limit && (exact || globMatch(a[1], []byte(it.Key))) {
				keys = append(keys, it.Key)
			}
		}
		if page.Next == "" || len(keys) >= limit {
			break
		}
		after = page.Next
	}
	c.w.array(len(keys))
	for _, k := range keys {
		c.w.bulkString(k)
	}
}
