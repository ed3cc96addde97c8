package policy

import (
	"bytes"
	"strings"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// Grants over Deno keys. A shared string key (["team/x"]) is the string
// key team/x and is decided as it is, on every front end. Every other
// Deno key is decided by its first part: a grant for the prefix p covers
// the keys whose first part is a string s such that s or s+"/" starts
// with p, which is to say that the key is decided as the string key
// s+"/" would be. So rw:team/ covers ["team", "x"], ["team/x", 1] and
// ["team/x"], but not ["teams", 1] nor ["team"] (the string key team).
// A key whose first part is no string (a number, bytes, ...) is covered
// only by a grant of every key, the empty prefix.

// firstString returns the first part of a tuple when it is a string: the
// string, and the length n of its encoding with its terminator. A string
// with no terminator (no key a Deno client makes) runs to the end of the
// tuple, and n is len(tuple).
func firstString(tuple []byte) (s string, n int, ok bool) {
	if len(tuple) == 0 || tuple[0] != tupleString {
		return "", 0, false
	}
	body := tuple[1:]
	i := bytes.IndexByte(body, 0)
	if i < 0 {
		return string(body), len(tuple), true
	}
	if i+1 >= len(body) || body[i+1] != 0xff {
		return string(body[:i]), i + 2, true // the common case: no NUL in it
	}
	var b []byte
	for j := 0; j < len(body); j++ {
		if body[j] != 0 {
			b = append(b, body[j])
			continue
		}
		if j+1 < len(body) && body[j+1] == 0xff {
			b = append(b, 0)
			j++
			continue
		}
		return string(b), j + 2, true
	}
	return string(b), len(tuple), true
}

// escapeString returns the tuple encoding of a string part without its
// terminator: 0x02 and the string with each NUL escaped as 0x00 0xff.
func escapeString(s string) string {
	return "\x02" + strings.ReplaceAll(s, "\x00", "\x00\xff")
}

// tupleGrantKey returns the string key whose grants decide a Deno key of
// the tuple space (see above): s+"/" for a first string part s, else ""
// (which only the empty prefix covers).
func tupleGrantKey(tuple []byte) string {
	s, _, ok := firstString(tuple)
	if !ok {
		return ""
	}
	return s + "/"
}

// allowTuple returns nil when c may do need on the Deno key tuple, whose
// store key is key (as stored: scoped, for a write of an ip/ key), or
// the refusal.
func (s *Service) allowTuple(c Caller, tuple []byte, key string, shared bool, need Access) error {
	g := s.grants(c)
	if g == nil {
		return nil
	}
	if !shared {
		key = tupleGrantKey(tuple)
	}
	if g.Allows(key, need) {
		return nil
	}
	return s.denied(c, need)
}

// allowRange returns the refusal of a read range that no key c may read
// can be in, as /get and /list refuse: Deno's get of one key ([k,
// k+0x00)), or a range within the keys of one first string part (a list
// by prefix) that c may not read. Other ranges return the keys c may
// read.
func (s *Service) allowRange(c Caller, g *Grants, r TupleRange) error {
	if n := len(r.Start); len(r.End) == n+1 && r.End[n] == 0 && bytes.Equal(r.Start, r.End[:n]) {
		key, shared := s.storeKey(r.Start)
		return s.allowTuple(c, r.Start, key, shared, AccessRead)
	}
	str, n, ok := firstString(r.Start)
	if !ok || n > len(r.Start) || r.Start[n-1] != 0 {
		return nil
	}
	fp := r.Start[:n]
	if !bytes.HasPrefix(r.End, fp) || bytes.Compare(r.End, append(fp[:n:n], 0xff)) > 0 {
		return nil // the range reaches past the keys of its first part
	}
	if g.Allows(str+"/", AccessRead) {
		return nil
	}
	if bytes.Equal(r.Start, fp) {
		// The range starts at the shared string key [str] itself.
		if key, shared := s.sharedKey(fp); shared && g.Allows(key, AccessRead) {
			return nil
		}
	}
	return s.denied(c, AccessRead)
}

// isolated reports whether the grant that decides the first string part
// s is one for exactly s+"/", which covers no other first part.
func (g *Grants) isolated(s string) bool {
	i := g.decide(s + "/")
	return i >= 0 && len(g.list[i].Prefix) == len(s)+1
}

// tupleSkip returns the first tuple after tuple (an unreadable key of the
// tuple space, without TupleSpace) whose key a grant other than the one
// deciding tuple may decide; ok is false when none can be.
func (g *Grants) tupleSkip(tuple []byte) (string, bool) {
	str, n, isString := firstString(tuple)
	switch {
	case len(tuple) == 0:
		return "\x00", true
	case !isString && tuple[0] < tupleString:
		return "\x02", true
	case !isString:
		return "", false // every later first part is no string either
	case g.isolated(str):
		if n == len(tuple) && tuple[n-1] != 0 {
			return string(tuple) + "\x00", true
		}
		return string(tuple[:n]) + "\xff", true // past the keys of this first part
	}
	next := "\x03" // past every string first part
	if t := g.skip(str); t != "" {
		next = min(next, escapeString(t))
	}
	for _, gr := range g.list {
		if q, ok := strings.CutSuffix(gr.Prefix, "/"); ok && q > str {
			next = min(next, escapeString(q)+"\x00")
		}
	}
	return next, true
}

// tupleSkipBack returns, for a reverse read, the end (exclusive) of the
// tuples before tuple (an unreadable key of the tuple space) that a grant
// other than the one deciding tuple may decide; ok is false when none
// can be.
func (g *Grants) tupleSkipBack(tuple []byte) (string, bool) {
	str, n, isString := firstString(tuple)
	switch {
	case len(tuple) == 0 || !isString && tuple[0] < tupleString:
		return "", false
	case !isString:
		return "\x03", true
	case g.isolated(str):
		return string(tuple[:n]), true
	}
	end := "\x02" // below every string first part
	if b, ok := g.skipBack(str); ok {
		end = max(end, escapeString(b))
	}
	for _, gr := range g.list {
		if q, ok := strings.CutSuffix(gr.Prefix, "/"); ok && q < str {
			end = max(end, escapeString(q)+"\x00\xff")
		}
	}
	return end, true
}

// skipBack is skip for reverse reads: the end (exclusive) of the keys
// before key that a grant other than the one deciding key may decide, so
// that every key from it to key is decided as key is; ok is false when
// there is none.
func (g *Grants) skipBack(key string) (string, bool) {
	i := g.decide(key)
	end, ok := "", false
	if i >= 0 {
		p := g.list[i].Prefix
		end, ok = p, p != ""
		for _, gr := range g.list[:i] {
			if e := kv.PrefixEnd(gr.Prefix); strings.HasPrefix(gr.Prefix, p) && e != "" && e <= key && e > end {
				end, ok = e, true
			}
		}
		return end, ok
	}
	for _, gr := range g.list {
		if e := kv.PrefixEnd(gr.Prefix); gr.Prefix < key && e != "" && e <= key && e > end {
			end, ok = e, true
		}
	}
	return end, ok
}

// maxHiddenRuns bounds the runs of unreadable keys one range skips. Each
// skip passes a boundary of the caller's grants, so a real read stays far
// below it; it only guards the store against a pathological grant list.
const maxHiddenRuns = 1024

var errHiddenRuns = &Error{Kind: KindNoPermission, Message: "this read crosses too many runs of keys the caller may not read; read under a prefix it may read"}

// readableRange reads up to limit live items of the store range [lo, hi)
// that allowed lets the caller read, forward or reverse. At an unreadable
// key, skip (forward) or back (reverse) gives where the next run that may
// be readable starts (or ends, exclusive), or ok=false when none can.
func (s *Service) readableRange(lo, hi string, limit int, reverse bool, allowed func(string) bool, skip, back func(string) (string, bool)) ([]kv.Item, error) {
	var out []kv.Item
	for range maxHiddenRuns {
		if lo >= hi {
			return out, nil
		}
		want := limit - len(out)
		items := s.storeRange(lo, hi, want, reverse)
		jumped := false
		for _, it := range items {
			if allowed(it.Key) {
				out = append(out, it)
				continue
			}
			var to string
			var ok bool
			if reverse {
				to, ok = back(it.Key)
			} else {
				to, ok = skip(it.Key)
			}
			if !ok {
				return out, nil
			}
			if reverse {
				hi = min(to, it.Key) // never at or past the key met
			} else {
				lo = max(to, it.Key+"\x00")
			}
			jumped = true
			break
		}
		if !jumped {
			return out, nil // the range ended, or the page is full
		}
	}
	return out, errHiddenRuns
}

// readableStrings is readableRange over shared string keys.
func (s *Service) readableStrings(g *Grants, lo, hi string, limit int, reverse bool) ([]kv.Item, error) {
	return s.readableRange(lo, hi, limit, reverse,
		func(k string) bool { return g.Allows(k, AccessRead) },
		func(k string) (string, bool) { n := g.skip(k); return n, n != "" },
		g.skipBack)
}

// readableTuples is readableRange over the tuple space.
func (s *Service) readableTuples(g *Grants, lo, hi string, limit int, reverse bool) ([]kv.Item, error) {
	in := func(f func([]byte) (string, bool)) func(string) (string, bool) {
		return func(k string) (string, bool) {
			to, ok := f([]byte(k[len(TupleSpace):]))
			return TupleSpace + to, ok
		}
	}
	return s.readableRange(lo, hi, limit, reverse,
		func(k string) bool { return g.Allows(tupleGrantKey([]byte(k[len(TupleSpace):])), AccessRead) },
		in(g.tupleSkip), in(g.tupleSkipBack))
}
