package resp

import (
	"strconv"
)

// writer appends replies in the connection's protocol version (2 or 3) to
// a buffer that the connection flushes once per batch of commands.
type writer struct {
	b     []byte
	proto int
}

func (w *writer) simple(s string) {
	w.b = append(w.b, '+')
	w.b = append(w.b, s...)
	w.b = append(w.b, '\r', '\n')
}

// err writes an error reply; line breaks in msg would end the frame early,
// so they become spaces.
func (w *writer) err(msg string) {
	w.b = append(w.b, '-')
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		w.b = append(w.b, c)
	}
	w.b = append(w.b, '\r', '\n')
}

func (w *writer) header(kind byte, n int) {
	w.b = append(w.b, kind)
	w.b = strconv.AppendInt(w.b, int64(n), 10)
	w.b = append(w.b, '\r', '\n')
}

func (w *writer) int(n int64) {
	w.b = append(w.b, ':')
	w.b = strconv.AppendInt(w.b, n, 10)
	w.b = append(w.b, '\r', '\n')
}

func (w *writer) bulk(v []byte) {
	w.header('$', len(v))
	w.b = append(w.b, v...)
	w.b = append(w.b, '\r', '\n')
}

func (w *writer) bulkString(v string) {
	w.header('$', len(v))
	w.b = append(w.b, v...)
	w.b = append(w.b, '\r', '\n')
}

// null is a missing value: a null bulk string in RESP2, RESP3's null.
func (w *writer) null() {
	if w.proto == 3 {
		w.b = append(w.b, '_', '\r', '\n')
		return
	}
	w.b = append(w.b, '$', '-', '1', '\r', '\n')
}

// nullArray is an absent array (an aborted EXEC): *-1 in RESP2.
func (w *writer) nullArray() {
	if w.proto == 3 {
		w.b = append(w.b, '_', '\r', '\n')
		return
	}
	w.b = append(w.b, '*', '-', '1', '\r', '\n')
}

func (w *writer) array(n int) { w.header('*', n) }

// mapHeader starts a map of n pairs: a flat array of 2n in RESP2.
func (w *writer) mapHeader(n int) {
	if w.proto == 3 {
		w.header('%', n)
		return
	}
	w.header('*', 2*n)
}

// push starts an out-of-band message (pub/sub): an array in RESP2.
func (w *writer) push(n int) {
	if w.proto == 3 {
		w.header('>', n)
		return
	}
	w.header('*', n)
}

func (w *writer) bulkStrings(vs ...string) {
	w.array(len(vs))
	for _, v := range vs {
		w.bulkString(v)
	}
}
