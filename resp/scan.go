package resp

import (
	"strconv"
	"strings"
)

// maxCursors is how many SCAN cursors a connection keeps: enough for a
// few interleaved scans, and bounded whatever a client does.
const maxCursors = 16

// cursors maps the numbers SCAN hands out (clients parse cursors as
// integers) to the last key of the page they continue after. They are
// the connection's own: a cursor is valid on the connection that got it.
type cursors struct {
	next  uint64
	after map[uint64]string
	order []uint64
}

func (cs *cursors) put(after string) uint64 {
	if cs.after == nil {
		cs.after = map[uint64]string{}
	}
	cs.next++
	cs.after[cs.next] = after
	cs.order = append(cs.order, cs.next)
	if len(cs.order) > maxCursors {
		delete(cs.after, cs.order[0])
		cs.order = cs.order[1:]
	}
	return cs.next
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
		if after, ok = c.cursors.after[cur]; !ok {
			c.w.err("ERR invalid cursor: a cursor is valid on the connection that got it, for its last " + itoa(maxCursors) + " pages")
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
		next = c.cursors.put(page.Next)
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
