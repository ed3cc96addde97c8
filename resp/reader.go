package resp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

// Limits bound what one request can make the server allocate: a frame
// beyond them is refused before its payload is read.
type Limits struct {
	// MaxArgs is the most elements of one command's array.
	MaxArgs int
	// MaxBulk is the longest bulk string, in bytes.
	MaxBulk int
	// MaxRequest is the most bytes of bulk strings in one command.
	MaxRequest int
}

// inlineMax is the longest inline command line, and the size of a
// connection's read buffer, so that a line is always read in one piece.
const inlineMax = 16 << 10

// ProtocolError is a frame the reader cannot accept; the connection is
// answered "-ERR Protocol error: ..." and closed, as Redis does.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "Protocol error: " + e.Msg }

func protoErr(msg string) error { return &ProtocolError{msg} }

// Reader reads commands, in RESP arrays of bulk strings or as inline lines
// typed by hand, from a buffered stream.
type Reader struct {
	r    *bufio.Reader
	lim  Limits
	args [][]byte
	ends []int // end offsets in buf of each argument
	buf  []byte
}

// NewReader returns a Reader of r with the limits lim.
func NewReader(r io.Reader, lim Limits) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, inlineMax), lim: lim}
}

// Buffered reports how many bytes have been received and not yet read:
// zero means the client's batch has been read, and replies can be flushed.
func (r *Reader) Buffered() int { return r.r.Buffered() }

// ReadCommand returns the next command's arguments, at least one; they are
// valid until the next call. Errors are the stream's or a *ProtocolError.
func (r *Reader) ReadCommand() ([][]byte, error) {
	for {
		b, err := r.r.Peek(1)
		if err != nil {
			return nil, err
		}
		var args [][]byte
		if b[0] == '*' {
			args, err = r.readArray()
		} else {
			args, err = r.readInline()
		}
		if err != nil || len(args) > 0 {
			return args, err
		}
		// An empty array or blank line is no command: Redis skips them.
	}
}

// line returns the next line without its CRLF (or LF), within the buffer.
func (r *Reader) line() ([]byte, error) {
	l, err := r.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, protoErr("too big inline request")
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(l) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	l = l[:len(l)-1]
	if n := len(l); n > 0 && l[n-1] == '\r' {
		l = l[:n-1]
	}
	return l, nil
}

// number parses a frame header's length: decimal digits with an optional
// minus sign, as Redis writes them.
func number(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	if n, ok := digits(b); ok {
		return n, true
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return int(n), err == nil
}

// digits decodes b when it is at most 18 decimal digits, which cannot
// overflow; anything else (a sign, 19 digits) is for ParseInt. Lengths,
// two per command and argument, are nearly always such runs, and
// ParseInt's string and checks showed as 4% of a pipelined SET.
func digits(b []byte) (int, bool) {
	if len(b) > 18 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func (r *Reader) readArray() ([][]byte, error) {
	l, err := r.line()
	if err != nil {
		return nil, err
	}
	n, ok := number(l[1:])
	if !ok {
		return nil, protoErr("invalid multibulk length")
	}
	if n <= 0 {
		return nil, nil
	}
	if n > r.lim.MaxArgs {
		return nil, protoErr("invalid multibulk length: at most " + strconv.Itoa(r.lim.MaxArgs) + " arguments")
	}
	r.buf, r.ends = r.buf[:0], r.ends[:0]
	for range n {
		h, err := r.line()
		if err != nil {
			return nil, err
		}
		if len(h) == 0 || h[0] != '$' {
			c := "?"
			if len(h) > 0 {
				c = strconv.QuoteRune(rune(h[0]))
			}
			return nil, protoErr("expected '$', got " + c)
		}
		size, ok := number(h[1:])
		if !ok || size < 0 {
			return nil, protoErr("invalid bulk length")
		}
		if size > r.lim.MaxBulk {
			return nil, protoErr("invalid bulk length: at most " + strconv.Itoa(r.lim.MaxBulk) + " bytes")
		}
		if len(r.buf)+size > r.lim.MaxRequest {
			return nil, protoErr("request too large: at most " + strconv.Itoa(r.lim.MaxRequest) + " bytes")
		}
		start := len(r.buf)
		r.buf = grow(r.buf, size+2)
		if _, err := io.ReadFull(r.r, r.buf[start:start+size+2]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if r.buf[start+size] != '\r' || r.buf[start+size+1] != '\n' {
			return nil, protoErr("bulk string not terminated by CRLF")
		}
		r.buf = r.buf[:start+size]
		r.ends = append(r.ends, start+size)
	}
	return r.slices(), nil
}

// grow extends b by n bytes, reallocating at most to what is needed.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), max(2*cap(b), len(b)+n))
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// slices cuts buf into the arguments, once it no longer moves.
func (r *Reader) slices() [][]byte {
	r.args = r.args[:0]
	start := 0
	for _, end := range r.ends {
		r.args = append(r.args, r.buf[start:end:end])
		start = end
	}
	return r.args
}

// readInline splits a line typed by hand into arguments at spaces, with
// "double" and 'single' quoting (backslash escapes inside double quotes),
// as redis-cli's own prompt does.
func (r *Reader) readInline() ([][]byte, error) {
	l, err := r.line()
	if err != nil {
		return nil, err
	}
	r.buf, r.ends = r.buf[:0], r.ends[:0]
	i := 0
	for {
		for i < len(l) && isSpace(l[i]) {
			i++
		}
		if i == len(l) {
			break
		}
		if len(r.ends) >= r.lim.MaxArgs {
			return nil, protoErr("invalid multibulk length: at most " + strconv.Itoa(r.lim.MaxArgs) + " arguments")
		}
		switch l[i] {
		case '"', '\'':
			q := l[i]
			i++
			closed := false
			for i < len(l) {
				ch := l[i]
				if ch == q {
					closed = true
					i++
					break
				}
				if ch == '\\' && q == '"' && i+1 < len(l) {
					i++
					ch = unescape(l[i])
				}
				r.buf = append(r.buf, ch)
				i++
			}
			if !closed || (i < len(l) && !isSpace(l[i])) {
				return nil, protoErr("unbalanced quotes in request")
			}
		default:
			j := bytes.IndexAny(l[i:], " \t")
			if j < 0 {
				j = len(l) - i
			}
			r.buf = append(r.buf, l[i:i+j]...)
			i += j
		}
		r.ends = append(r.ends, len(r.buf))
	}
	return r.slices(), nil
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' }

func unescape(b byte) byte {
	switch b {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return b
}
