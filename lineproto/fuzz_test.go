package lineproto

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzLines: whatever bytes arrive, lines come out within the limit (a
// longer one is an errTooLong, after which reading goes on), never a
// panic, and every line parses.
func FuzzLines(f *testing.F) {
	for _, s := range []string{
		"key\nkey=value\r\n~password=t\n~ttl=30s\n~del=k\n~other\n",
		"a=b=c\n\n\r\n=\n~\n",
		"toolongtoolongtoolongtoolongtoolongtoolongtoolong\nk\n",
		"last",
	} {
		f.Add([]byte(s))
	}
	const limit = 32
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), 16)
		for range 1000 {
			line, err := readLine(r, limit)
			if errors.Is(err, errTooLong) {
				continue
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(line) > limit {
				t.Fatalf("line of %d bytes", len(line))
			}
			req := parse(line)
			if req.kind == 0 {
				t.Fatalf("no kind for %q", line)
			}
			if req.kind == kindWrite && bytes.IndexByte(req.key, '=') >= 0 {
				t.Fatalf("key %q holds '='", req.key)
			}
		}
	})
}
