package resp

import (
	"strconv"
	"strings"
	"testing"
)

// parseIntNumber is what number must agree with: ParseInt's decimal
// integers, as long as 19 bytes at the most.
func parseIntNumber(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return int(n), err == nil
}

// FuzzNumber: number's fast path for plain digits decides every input as
// ParseInt does.
func FuzzNumber(f *testing.F) {
	for _, s := range []string{"", "0", "7", "0012", "-1", "+5", "-", "1a", " 1",
		"999999999999999999", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "12345678901234567890"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, ok := number(b)
		wn, wok := parseIntNumber(b)
		if n != wn || ok != wok {
			t.Fatalf("number(%q) = %d, %v; ParseInt gives %d, %v", b, n, ok, wn, wok)
		}
	})
}

// BenchmarkReadCommand reads pipelined SETs as redis-benchmark sends them
// (a 16-byte key and a 3-byte value); an op is one command.
func BenchmarkReadCommand(b *testing.B) {
	cmd := "*3\r\n$3\r\nSET\r\n$16\r\nkey:000000012345\r\n$3\r\nxxx\r\n"
	batch := []byte(strings.Repeat(cmd, 1024))
	src := &repeatReader{b: batch}
	rd := NewReader(src, Limits{MaxArgs: 1024, MaxBulk: 1 << 20, MaxRequest: 1 << 20})
	b.SetBytes(int64(len(cmd)))
	b.ReportAllocs()
	for b.Loop() {
		args, err := rd.ReadCommand()
		if err != nil || len(args) != 3 {
			b.Fatalf("ReadCommand: %d args, %v", len(args), err)
		}
	}
}

// repeatReader reads b over and over.
type repeatReader struct {
	b   []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.b[r.off:])
	r.off = (r.off + n) % len(r.b)
	return n, nil
}
