package auth_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/auth"
	"github.com/rendezvous-kv/rendezvous/kv"
	"github.com/rendezvous-kv/rendezvous/policy"
)

func TestParseLine(t *testing.T) {
	l, ok, err := auth.ParseLine("  tok   alice  rw:  -:team/ r:team/pub/  rate=100/1m # the admin")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "tok", l.Credential)
	assert.Equal(t, "alice", l.Identity.Name)
	assert.Equal(t, kv.Rate{Tokens: 100, Window: time.Minute}, l.Identity.Rate)
	assert.Equal(t, "r:team/pub/ -:team/ rw:", l.Identity.Grants.String(), "longest prefix first")

	for _, blank := range []string{"", "   ", "# comment", "\t# tok alice rw:"} {
		_, ok, err := auth.ParseLine(blank)
		assert.NoError(t, err, blank)
		assert.False(t, ok, blank)
	}
	for line, want := range map[string]string{
		"tok":                               "no identity",
		"tok alice":                         "no grants",
		"tok alice # rw:":                   "no grants",
		"tok alice rate=1/1s":               "no grants",
		"tok alice x:a":                     "unknown access",
		"tok alice a/":                      "want r:, w:, rw: or -:",
		"tok alice rw:a rw:a":               "granted twice",
		"tok alice rate=1/1s rw:":           "rate= must come last",
		"tok alice rw: rate=0/1s":           "positive integer",
		"tok alice rw: rate=5/0s":           "positive duration",
		"tok alice rw: rate=5":              "N/DURATION",
		"tok alice rw: rate=5/1h/2":         "positive duration",
		"tok al\x01ice rw:":                 "control character",
		"tok alice rw:a\x7f":                "control character",
		"tok alice rw:\xff":                 "not valid UTF-8",
		"tok alice rw: rate=9999999999/1ns": "beyond any limit",
	} {
		_, _, err := auth.ParseLine(line)
		require.Error(t, err, line)
		assert.Contains(t, err.Error(), want, line)
		assert.NotContains(t, err.Error(), "\n")
	}
}

func TestParseGrants(t *testing.T) {
	g, err := auth.ParseGrants("rw: -:team/")
	require.NoError(t, err)
	assert.Equal(t, policy.AccessReadWrite, g.Access("a"))
	assert.Equal(t, policy.AccessNone, g.Access("team/x"))
	assert.Equal(t, policy.AccessReadWrite, g.Access("team"))
	none, err := auth.ParseGrants("  ")
	require.NoError(t, err)
	assert.Equal(t, policy.AccessNone, none.Access("a"), "no grants: nothing")
	g, err = auth.ParseGrants("r:a/ w:a/b")
	require.NoError(t, err)
	assert.Equal(t, policy.AccessNone, g.Access("a0"), "a/ does not cover a0")
	assert.Equal(t, policy.AccessRead, g.Access("a/"))
	assert.Equal(t, policy.AccessWrite, g.Access("a/bc"))
}

func TestTokenFileReloadKeepsTableOnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	require.NoError(t, os.WriteFile(path, []byte("a alice rw:\nb bob r:\n"), 0o600))
	tf, err := auth.OpenTokenFile(path, nil)
	require.NoError(t, err)
	assert.Equal(t, 2, tf.Len())
	id, err := tf.Verify("b")
	require.NoError(t, err)
	assert.Equal(t, "bob", id.Name)
	_, err = tf.Verify("c")
	assert.Same(t, auth.ErrInvalidToken, err)
	_, err = tf.Verify("")
	assert.Same(t, auth.ErrInvalidToken, err)

	require.NoError(t, os.WriteFile(path, []byte("a alice rw:\n\n# x\nb bob r:\nb carol r:\n"), 0o600))
	err = tf.Reload()
	var le *auth.LineError
	require.True(t, errors.As(err, &le), "%v", err)
	assert.Equal(t, 5, le.Line)
	assert.Equal(t, path, le.File)
	assert.Contains(t, err.Error(), "same token as line 4")
	id, err = tf.Verify("b")
	require.NoError(t, err)
	assert.Equal(t, "bob", id.Name, "the previous table stays")

	require.NoError(t, os.WriteFile(path, []byte("sha256:abc x rw:\n"), 0o600))
	assert.ErrorContains(t, tf.Reload(), "64 hex digits")
	require.NoError(t, os.WriteFile(path, []byte("sha256:"+strings.Repeat("g", 64)+" x rw:\n"), 0o600))
	assert.ErrorContains(t, tf.Reload(), "hex digits only")
	require.NoError(t, os.WriteFile(path, []byte(strings.Repeat("x", 70<<10)+"\n"), 0o600))
	assert.ErrorContains(t, tf.Reload(), ":1: line longer than")
	require.NoError(t, os.Remove(path))
	assert.Error(t, tf.Reload())
	_, err = tf.Verify("a")
	assert.NoError(t, err)
}

// The token file README shows parses, with the grants it says.
func TestReadmeTokenFile(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(raw), "## Access control")
	require.True(t, ok)
	_, block, ok := strings.Cut(section, "```text\n")
	require.True(t, ok)
	block, _, _ = strings.Cut(block, "```")
	lines, err := auth.Parse("README.md", strings.NewReader(block))
	require.NoError(t, err)
	require.Len(t, lines, 2)
	assert.Equal(t, "ci", lines[0].Identity.Name)
	assert.Equal(t, kv.Rate{Tokens: 600, Window: time.Minute}, lines[0].Identity.Rate)
	assert.Equal(t, policy.AccessWrite, lines[0].Identity.Grants.Access("builds/1"))
	assert.Equal(t, policy.AccessRead, lines[0].Identity.Grants.Access("x"))
	assert.Equal(t, policy.AccessNone, lines[1].Identity.Grants.Access("ops/x"))

	anon, err := auth.ParseGrants("rw: -:team/")
	require.NoError(t, err)
	assert.Equal(t, policy.AccessNone, anon.Access("team/notes"))
}
