// Package apt finds the programs that end-to-end tests drive (a browser,
// curl), installing their Debian packages when they are missing, as the
// project's test command promises. It is for tests only.
package apt

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Installed returns the path of the program name, installing the Debian
// package pkg first when it is missing.
//
// go test runs the packages of ./... in parallel processes, and several of
// them may miss a program at once: dpkg allows one installer at a time, so
// installs are serialised on a lock file, and a test that waited looks for
// the program again before installing it a second time.
func Installed(t testing.TB, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "rendezvous-apt.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	require.NoError(t, err)
	defer lock.Close()
	require.NoError(t, syscall.Flock(int(lock.Fd()), syscall.LOCK_EX))
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t.Logf("%s is missing; installing Debian's package %s", name, pkg)
	// The dpkg lock timeout covers an installer this lock does not know
	// of (another program's apt run).
	install := exec.CommandContext(ctx, "sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 "+pkg)
	out, err := install.CombinedOutput()
	require.NoError(t, err, "installing %s: %s", pkg, out)
	p, err := exec.LookPath(name)
	require.NoError(t, err)
	return p
}
