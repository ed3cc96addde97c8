package resp

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"a*", "abc", true}, {"a*", "bac", false},
		{"a?c", "abc", true}, {"a?c", "ac", false}, {"*b*", "abc", true}, {"*x*", "abc", false},
		{"[abc]x", "bx", true}, {"[^abc]x", "bx", false}, {"[^abc]x", "dx", true}, {"[a-c]", "b", true},
		{"[a-c]", "d", false}, {`a\*b`, "a*b", true}, {`a\*b`, "axb", false}, {"[", "[", true},
		{"h*llo*", "heeello world", true}, {"mesh42/*", "mesh42/node-a", true},
	} {
		assert.Equal(t, tc.want, globMatch([]byte(tc.p), []byte(tc.s)), "%q %q", tc.p, tc.s)
	}
	// Many stars cost no more than the product of the lengths.
	assert.False(t, globMatch([]byte(strings.Repeat("*a", 50)+"b"), []byte(strings.Repeat("a", 5000))))
}

func TestLiteralPrefix(t *testing.T) {
	for _, tc := range []struct {
		p, prefix string
		exact     bool
	}{
		{"*", "", true}, {"mesh42/*", "mesh42/", true}, {"a?*", "a", false}, {"abc", "abc", false},
		{`a\*b*`, "a*b", true}, {"a*b", "a", false},
	} {
		prefix, exact := literalPrefix([]byte(tc.p))
		assert.Equal(t, tc.prefix, string(prefix), tc.p)
		assert.Equal(t, tc.exact, exact, tc.p)
	}
}
