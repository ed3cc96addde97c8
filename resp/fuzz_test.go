package resp

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader: whatever bytes arrive, the reader returns commands within
// its limits or an error, never panics, and holds no more than a
// request's worth of memory.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"*1\r\n$4\r\nPING\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
		"PING\r\nSET k \"a b\\n\" 'c'\r\n",
		"*0\r\n*-1\r\n\r\n",
		"*2\r\n$3\r\nGET\r\n$-1\r\n",
		"*99999999999999999999\r\n",
		"*1\r\n$5\r\nPING\r\n",
		"\"unclosed\r\n",
	} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxArgs: 8, MaxBulk: 64, MaxRequest: 256}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), lim)
		for range 1000 {
			args, err := r.ReadCommand()
			if err != nil {
				var pe *ProtocolError
				if !errors.As(err, &pe) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(args) == 0 || len(args) > lim.MaxArgs {
				t.Fatalf("%d args", len(args))
			}
			total := 0
			for _, a := range args {
				total += len(a)
			}
			if total > max(lim.MaxRequest, inlineMax) {
				t.Fatalf("%d bytes in one command", total)
			}
			if cap(r.buf) > 2*max(lim.MaxRequest, inlineMax)+2 {
				t.Fatalf("buffer grew to %d", cap(r.buf))
			}
		}
	})
}

// FuzzGlob: any pattern against any key ends, without a panic, and a
// pattern of only literal bytes matches exactly itself.
func FuzzGlob(f *testing.F) {
	f.Add([]byte("mesh42/*"), []byte("mesh42/node-a"))
	f.Add([]byte("[a-"), []byte("["))
	f.Add([]byte(`a\`), []byte("a"))
	f.Add([]byte("*?[^x]*"), []byte("abc"))
	f.Fuzz(func(t *testing.T, p, s []byte) {
		if len(p) > 200 || len(s) > 200 {
			return
		}
		globMatch(p, s)
		if !bytes.ContainsAny(p, `*?[\`) && globMatch(p, s) != bytes.Equal(p, s) {
			t.Fatalf("literal %q against %q", p, s)
		}
		prefix, _ := literalPrefix(p)
		if globMatch(p, s) && !bytes.HasPrefix(s, prefix) {
			t.Fatalf("%q matches %q outside its literal prefix %q", p, s, prefix)
		}
	})
}
