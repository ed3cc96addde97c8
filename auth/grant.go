package auth

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/rendezvous-kv/rendezvous/policy"
)

// ParseGrant parses one grant as a token file, a JWT claim or --anonymous
// writes it: r:PREFIX (read), w:PREFIX (write), rw:PREFIX (both) or
// -:PREFIX (neither). An empty PREFIX covers every key.
func ParseGrant(s string) (policy.Grant, error) {
	tag, prefix, ok := strings.Cut(s, ":")
	if !ok {
		return policy.Grant{}, fmt.Errorf("grant %q: want r:, w:, rw: or -: and a key prefix", clip(s))
	}
	var a policy.Access
	switch tag {
	case "r":
		a = policy.AccessRead
	case "w":
		a = policy.AccessWrite
	case "rw", "wr":
		a = policy.AccessReadWrite
	case "-":
		a = policy.AccessNone
	default:
		return policy.Grant{}, fmt.Errorf("grant %q: unknown access %q; want r, w, rw or -", clip(s), clip(tag))
	}
	if err := checkPrefix(prefix); err != nil {
		return policy.Grant{}, fmt.Errorf("grant %q: %v", clip(s), err)
	}
	return policy.Grant{Prefix: prefix, Access: a}, nil
}

// ParseGrants parses grants separated by white space, as --anonymous and
// a JWT's scope claim give them; the empty string grants nothing. A
// prefix given twice is refused: which of the two was meant is a guess.
func ParseGrants(s string) (policy.Grants, error) {
	return grantList(strings.Fields(s))
}

// grantList parses each of fields as a grant.
func grantList(fields []string) (policy.Grants, error) {
	gs := make([]policy.Grant, 0, len(fields))
	seen := make(map[string]bool, len(fields))
	for _, f := range fields {
		g, err := ParseGrant(f)
		if err != nil {
			return policy.Grants{}, err
		}
		if seen[g.Prefix] {
			return policy.Grants{}, fmt.Errorf("prefix %q is granted twice", clip(g.Prefix))
		}
		seen[g.Prefix] = true
		gs = append(gs, g)
	}
	return policy.NewGrants(gs...), nil
}

// checkPrefix refuses a prefix no key can start with: one with a control
// character or that is not UTF-8, which policy refuses in keys.
func checkPrefix(p string) error {
	for i := 0; i < len(p); i++ {
		if b := p[i]; b < 0x20 || b == 0x7f {
			return fmt.Errorf("prefix contains a control character")
		}
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("prefix is not valid UTF-8")
	}
	return nil
}

// clip shortens s for an error message, so a huge input makes no huge
// line.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
