// Package apt finds the programs that end-to-end tests drive (a browser,
// curl), installing their Debian packages when they are missing, as the
// project's test command promises. It is for tests only.
package apt

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Installed returns the path of the program name, installing the Debian
// package pkg first when it is missing.
func Installed(t testing.TB, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t.Logf("%s is missing; installing Debian's package %s", name, pkg)
	install := exec.CommandContext(ctx, "sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "+pkg)
	out, err := install.CombinedOutput()
	require.NoError(t, err, "installing %s: %s", pkg, out)
	p, err := exec.LookPath(name)
	require.NoError(t, err)
	return p
}
