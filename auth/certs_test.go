package auth_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/auth"
)

// An identity file keys identities by certificate name; the first of a
// certificate's names that it lists decides.
func TestCertIdentities(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identities")
	require.NoError(t, os.WriteFile(path, []byte("# certificates\nalice alice rw:\nbuild.example.org ci w:builds/ rate=5/1m\nspiffe://example.org/bob bob r:\n"), 0o600))
	c, err := auth.OpenCertIdentities(path, nil)
	require.NoError(t, err)
	assert.Equal(t, 3, c.Len())
	assert.Nil(t, c.Identify(nil))
	assert.Nil(t, c.Identify([]string{"mallory", "Alice", "ALICE"}), "names are compared exactly")
	id := c.Identify([]string{"mallory", "build.example.org", "alice"})
	require.NotNil(t, id)
	assert.Equal(t, "ci", id.Name, "the first listed name wins")
	assert.Equal(t, 5, id.Rate.Tokens)
	assert.Equal(t, "bob", c.Identify([]string{"spiffe://example.org/bob"}).Name)
}

func TestParseCertIdentitiesRefusals(t *testing.T) {
	for content, want := range map[string]string{
		"alice alice rw:\nbob bob r:\nalice carol r:\n":          `identities:3: certificate name "alice" is listed on line 1 too`,
		"sha256:" + strings.Repeat("ab", 32) + " alice rw:\n":    "identities:1: a certificate name is not a secret",
		"alice alice rw:\n\nbob bob x:\n":                        "identities:3: grant",
		"alice\n":                                                "identities:1: want CREDENTIAL IDENTITY",
		"alice alice rw:\n" + strings.Repeat("x", 70<<10) + "\n": "identities:2: line longer than",
	} {
		_, err := auth.ParseCertIdentities("identities", []byte(content))
		require.Error(t, err, content)
		assert.Contains(t, err.Error(), want)
		assert.NotContains(t, err.Error(), "\n")
	}
}

// Reload keeps the previous table when the new file is malformed or gone.
func TestCertIdentitiesReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identities")
	require.NoError(t, os.WriteFile(path, []byte("alice alice rw:\nbob bob rw:\n"), 0o600))
	c, err := auth.OpenCertIdentities(path, nil)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, []byte("alice alice rw:\n"), 0o600))
	require.NoError(t, c.Reload())
	assert.Nil(t, c.Identify([]string{"bob"}))
	require.NoError(t, os.WriteFile(path, []byte("carol carol rw:\nsha256:00 x r:\n"), 0o600))
	err = c.Reload()
	require.Error(t, err)
	assert.Contains(t, err.Error(), path+":2:")
	assert.NotNil(t, c.Identify([]string{"alice"}))
	assert.Nil(t, c.Identify([]string{"carol"}))
	require.NoError(t, os.Remove(path))
	require.Error(t, c.Reload())
	assert.NotNil(t, c.Identify([]string{"alice"}))
}

// An identity file parses, or is refused with one line naming the line;
// every name it lists then identifies its line's identity. Never a panic.
func FuzzParseCertIdentities(f *testing.F) {
	for _, s := range []string{
		"alice alice rw:\n", "a x r:\nb y w:a/ rate=3/1s\n", "a x r:\na y r:\n", "sha256:ab x r:\n", "# c\n\n", "a\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		table, err := auth.ParseCertIdentities("f", []byte(s))
		if err != nil {
			if strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "f:") {
				t.Fatalf("error %q: want one line starting with the file name", err)
			}
			return
		}
		for name, id := range table {
			if strings.HasPrefix(name, "sha256:") || name == "" || id == nil {
				t.Fatalf("name %q in the table as %v", name, id)
			}
		}
	})
}
