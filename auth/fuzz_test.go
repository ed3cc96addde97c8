package auth_test

import (
	"strings"
	"testing"

	"github.com/rendezvous-kv/rendezvous/auth"
	"github.com/rendezvous-kv/rendezvous/policy"
)

// A token file line either parses into grants that write back the same
// way, or is refused with one line; never a panic.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		"tok alice rw:", "tok alice rw: -:team/ r:team/pub/ rate=100/1m # c", "# only", "",
		"sha256:" + strings.Repeat("ab", 32) + " bob w:x", "tok a r:a r:a", "tok a rate=1/1s",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, ok, err := auth.ParseLine(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("two-line error %q", err)
			}
			return
		}
		if !ok {
			return
		}
		again, err := auth.ParseGrants(l.Identity.Grants.String())
		if err != nil {
			t.Fatalf("grants %q do not parse again: %v", l.Identity.Grants.String(), err)
		}
		if again.String() != l.Identity.Grants.String() {
			t.Fatalf("grants %q came back as %q", l.Identity.Grants.String(), again.String())
		}
	})
}

// Parsed grants decide a key by the longest prefix that matches it.
func FuzzGrants(f *testing.F) {
	f.Add("rw: -:team/ r:team/pub/", "team/pub/x")
	f.Add("r:a/ w:a/b", "a0")
	f.Add("", "k")
	f.Fuzz(func(t *testing.T, grants, key string) {
		g, err := auth.ParseGrants(grants)
		if err != nil {
			return
		}
		want, best := policy.AccessNone, -1
		for _, gr := range g.List() {
			if strings.HasPrefix(key, gr.Prefix) && len(gr.Prefix) > best {
				want, best = gr.Access, len(gr.Prefix)
			}
		}
		if got := g.Access(key); got != want {
			t.Fatalf("grants %q on %q: %v, want %v", grants, key, got, want)
		}
	})
}
