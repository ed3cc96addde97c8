package lineproto

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// errTooLong is what readLine reports for a line past its bound; the
// line's bytes were discarded, up to and including its newline.
var errTooLong = errors.New("line too long")

// readLine returns the next line without its LF (and a CR before it), at
// most limit bytes. A longer line is consumed to its end without being
// buffered and reported as errTooLong; the stream stays usable.
func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > limit+2 { // room for CRLF
			// Skip to the end of the line, a buffer at a time.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			if errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			return nil, errTooLong
		}
		switch {
		case err == nil:
			line = append(line, chunk...)
			line = line[:len(line)-1]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			if len(line) > limit {
				return nil, errTooLong
			}
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			line = append(line, chunk...)
		case errors.Is(err, io.EOF) && len(line)+len(chunk) > 0:
			// A last line without its newline still counts, as nc sends
			// it when stdin ends without one.
			if line = append(line, chunk...); len(line) > limit {
				return nil, errTooLong
			}
			return line, nil
		default:
			return nil, err
		}
	}
}

// request is one line, parsed.
type request struct {
	kind  kind
	key   []byte
	value []byte
}

type kind uint8

const (
	kindRead   kind = iota + 1 // key
	kindWrite                  // key=value
	kindAuth                   // ~password=TOKEN
	kindTTL                    // ~ttl=DURATION (extension)
	kindDelete                 // ~del=KEY (extension)
	kindLocked                 // any other ~ line
)

// parse reads a line as netkv does: "key" reads, "key=value" writes (the
// key ends at the first '='), and '~' opens the server's own commands.
func parse(line []byte) request {
	if len(line) > 0 && line[0] == '~' {
		name, arg, _ := bytes.Cut(line[1:], []byte("="))
		switch string(name) {
		case "password":
			return request{kind: kindAuth, value: arg}
		case "ttl":
			return request{kind: kindTTL, value: arg}
		case "del":
			return request{kind: kindDelete, key: arg}
		}
		return request{kind: kindLocked, key: line}
	}
	key, value, write := bytes.Cut(line, []byte("="))
	if write {
		return request{kind: kindWrite, key: key, value: value}
	}
	return request{kind: kindRead, key: line}
}
