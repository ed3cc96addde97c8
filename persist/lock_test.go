package persist

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLockRefusesASecondHolderInTheSameProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rv.db")
	first, err := AcquireLock(path)
	require.NoError(t, err)

	_, err = AcquireLock(path)
	var le *LockedError
	require.ErrorAs(t, err, &le, "an embedded second server must not share the files")
	assert.Equal(t, path+LockSuffix, le.LockFile)
	assert.Equal(t, os.Getpid(), le.PID)
	assert.Contains(t, err.Error(), strconv.Itoa(os.Getpid()))

	require.NoError(t, first.Release())
	require.NoError(t, first.Release(), "Release is idempotent")
	again, err := AcquireLock(path)
	require.NoError(t, err, "a released lock can be taken again")
	raw, err := os.ReadFile(path + LockSuffix)
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(os.Getpid()), strings.TrimSpace(string(raw)))
	require.NoError(t, again.Release())
}

func TestLockIsPerPath(t *testing.T) {
	dir := t.TempDir()
	a, err := AcquireLock(filepath.Join(dir, "a.db"))
	require.NoError(t, err)
	defer a.Release()
	b, err := AcquireLock(filepath.Join(dir, "b.db"))
	require.NoError(t, err, "two data files in one directory are independent")
	defer b.Release()
}

func TestLockFileThatCannotBeCreated(t *testing.T) {
	_, err := AcquireLock(filepath.Join(t.TempDir(), "missing", "rv.db"))
	require.Error(t, err)
	var le *LockedError
	assert.NotErrorAs(t, err, &le)
	assert.Contains(t, err.Error(), "lock file")
}
