package policy

import (
	"bytes"
	"strings"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// Deno KV keys (tuples) share the store with string keys. A tuple of one
// string part that is a valid string key, ["mesh42/node-a"], is that
// string key: curl, Redis and Deno name one key. Every other tuple lives
// under TupleSpace, a prefix no string key can start with (string keys
// are valid UTF-8, in which a 0xff byte never occurs), so the two kinds
// never collide and the string front ends can leave the reserved part
// out of their listings and streams.
const (
	// TupleSpace prefixes the store key of a tuple that is not a shared
	// string key; the tuple's encoding follows.
	TupleSpace = "\xff\x01"
	// encodingSpace prefixes the key that records how Deno encoded the
	// value of a shared string key (see sharedEncoding).
	encodingSpace = "\xff\x02"
	// reservedStart is where the reserved part of the key space begins:
	// every string key sorts before it.
	reservedStart = "\xff"
)

// Reserved reports whether key is in the part of the key space that
// string front ends never show: tuple keys and their bookkeeping.
func Reserved(key string) bool { return key != "" && key[0] == 0xff }

// ValueEncoding is how a Deno client encoded a value.
type ValueEncoding uint8

// The encodings of KV Connect (its ValueEncoding enum).
const (
	EncodingV8    ValueEncoding = 1 // V8 serialization of a JS value
	EncodingLE64  ValueEncoding = 2 // Deno.KvU64: 8 bytes, little-endian
	EncodingBytes ValueEncoding = 3 // a Uint8Array: the bytes as they are
)

// The tuple encoding's type byte of a string part.
const tupleString = 0x02

// sharedKey returns the string key a tuple names, when it is a tuple of
// one string part that is a valid string key: 0x02, the string with no
// NUL (which would be escaped), 0x00.
func (s *Service) sharedKey(tuple []byte) (string, bool) {
	n := len(tuple)
	if n < 3 || tuple[0] != tupleString || tuple[n-1] != 0 || bytes.IndexByte(tuple[1:n-1], 0) >= 0 {
		return "", false
	}
	key := string(tuple[1 : n-1])
	if s.checkKey(key) != nil {
		return "", false
	}
	return key, true
}

// storeKey returns the store key of a tuple, and whether it is a shared
// string key.
func (s *Service) storeKey(tuple []byte) (string, bool) {
	if key, ok := s.sharedKey(tuple); ok {
		return key, true
	}
	return TupleSpace + string(tuple), false
}

// tupleOf returns the tuple encoding of a store key.
func tupleOf(key string) []byte {
	if rest, ok := strings.CutPrefix(key, TupleSpace); ok {
		return []byte(rest)
	}
	b := make([]byte, 0, len(key)+2)
	b = append(b, tupleString)
	b = append(b, key...)
	return append(b, 0)
}

// stringBounds turns a range of tuples [start, end) into the range of
// string keys [lo, hi) whose tuples 0x02 key 0x00 fall in it. The mapping
// keeps order (string keys hold no NUL), so the strings in range are one
// run. ok is false when none can be.
func stringBounds(start, end []byte) (lo, hi string, ok bool) {
	// Lower bound: enc(k) >= start.
	switch {
	case bytes.Compare(start, []byte{tupleString}) <= 0:
		lo = ""
	case start[0] > tupleString:
		return "", "", false
	default:
		body := start[1:]
		if i := bytes.IndexByte(body, 0); i >= 0 {
			lo = string(body[:i])
			if len(body) > i+1 {
				lo += "\x00" // k itself is below start: begin after it
			}
		} else {
			lo = string(body)
		}
	}
	// Upper bound: enc(k) < end.
	switch {
	case bytes.Compare(end, []byte{tupleString}) <= 0:
		return "", "", false
	case end[0] > tupleString:
		return lo, reservedStart, true
	default:
		body := end[1:]
		if i := bytes.IndexByte(body, 0); i >= 0 {
			hi = string(body[:i])
			if len(body) > i+1 {
				hi += "\x00" // k itself is below end: include it
			}
		} else {
			hi = string(body)
		}
	}
	// No string key reaches into the reserved part, whatever the bounds.
	hi = min(hi, reservedStart)
	if hi == "" || hi <= lo {
		return "", "", false
	}
	return lo, hi, true
}

// tupleBounds returns the store range of the tuple space for [start, end).
func tupleBounds(start, end []byte) (string, string) {
	lo := TupleSpace + string(start)
	hi := TupleSpace + string(end)
	return lo, hi
}

// storeRange reads the store range [start, end), forward or reverse.
func (s *Service) storeRange(start, end string, limit int, reverse bool) []kv.Item {
	if !reverse {
		return s.store.Range(start, end, limit)
	}
	if rr, ok := s.store.(interface {
		RangeReverse(start, end string, limit int) []kv.Item
	}); ok {
		return rr.RangeReverse(start, end, limit)
	}
	// A store without reverse scans: read the range forward, keeping the
	// last limit items.
	var tail []kv.Item
	for from := start; ; {
		page := s.store.Range(from, end, 1000)
		tail = append(tail, page...)
		if len(tail) > limit {
			tail = append(tail[:0], tail[len(tail)-limit:]...)
		}
		if len(page) < 1000 {
			break
		}
		from = page[len(page)-1].Key + "\x00"
	}
	for i, j := 0, len(tail)-1; i < j; i, j = i+1, j-1 {
		tail[i], tail[j] = tail[j], tail[i]
	}
	return tail
}
