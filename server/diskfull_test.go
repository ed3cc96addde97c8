//go:build linux

package server_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mountSmallFS mounts a tmpfs of size bytes on a fresh directory and
// unmounts it when the test ends (after the servers started later are
// killed, since cleanups run last-registered first).
func mountSmallFS(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small filesystem needs root; persist's fake-allocator tests (TestJournalOpensWithoutSpace and others) cover a full disk without it")
	}
	dir := t.TempDir()
	err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.FormatInt(size, 10))
	require.NoError(t, err, "running as root, but cannot mount a tmpfs on %s", dir)
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// freeBytes returns the bytes an unprivileged writer could still use on the
// filesystem holding dir.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	require.NoError(t, syscall.Statfs(dir, &st))
	return int64(st.Bavail) * st.Bsize
}

// fill writes name until the filesystem is full and returns its size.
func fill(t *testing.T, name string) int64 {
	t.Helper()
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	require.NoError(t, err)
	defer f.Close()
	var size int64
	for _, chunk := range []int{1 << 20, 4 << 10, 1} {
		buf := make([]byte, chunk)
		for {
			n, err := f.Write(buf)
			size += int64(n)
			if err != nil {
				require.ErrorIs(t, err, syscall.ENOSPC)
				break
			}
		}
	}
	return size
}

// journalFiles returns the journal generations beside data.
func journalFiles(t *testing.T, data string) []string {
	t.Helper()
	names, err := filepath.Glob(data + ".journal.*")
	require.NoError(t, err)
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	return names
}

// waitLog waits until the server's log holds want at least n times.
func waitLog(t *testing.T, s *running, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(s.log.String(), want) < n {
		if time.Now().After(deadline) {
			t.Fatalf("no %d× %q in the log:\n%s", n, want, s.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFullDiskAtStart restarts the server on a full filesystem:
// it serves reads and refuses writes with a 503 instead of refusing to
// start, takes writes again on its own once space is freed, and leaves no
// empty journal generations behind from the snapshots that failed meanwhile.
func TestFullDiskAtStart(t *testing.T) {
	dir := mountSmallFS(t, 16<<20)
	cfg := testConfig()
	cfg.Data = filepath.Join(dir, "rendezvous.db")
	cfg.SaveInterval = time.Second
	data := cfg.Data

	s := start(t, cfg)
	for i := range 10 {
		resp, body := do(t, "POST", s.base+"/set/k"+strconv.Itoa(i), "value"+strconv.Itoa(i))
		require.Equal(t, 200, resp.StatusCode, body)
	}
	require.NoError(t, s.stop(t), s.log.String())
	before := journalFiles(t, data)
	require.Len(t, before, 1, "a clean stop leaves the current generation")

	// So full that not even a journal file's magic fits.
	filler := filepath.Join(dir, "filler")
	size := fill(t, filler)
	require.Zero(t, freeBytes(t, dir))

	s = start(t, cfg)
	assert.Contains(t, s.log.String(), "refusing writes until there is room")
	for i := range 10 {
		resp, body := do(t, "GET", s.base+"/get/k"+strconv.Itoa(i), "")
		require.Equal(t, 200, resp.StatusCode, body)
		assert.Equal(t, "value"+strconv.Itoa(i), body)
	}
	resp, body := do(t, "GET", s.base+"/readyz", "")
	assert.Equal(t, 503, resp.StatusCode, body)
	assert.Contains(t, body, "no space left on device")
	resp, body = do(t, "POST", s.base+"/set/new", "fresh")
	assert.Equal(t, 503, resp.StatusCode, body)
	assert.Contains(t, body, "storage unavailable")
	assert.Equal(t, 1, strings.Count(body, "\n"), "one line: %q", body)
	assert.True(t, strings.HasSuffix(body, "\n"))
	resp, body = do(t, "GET", s.base+"/get/new", "")
	assert.Equal(t, 404, resp.StatusCode, "the refused write is not applied: %s", body)
	resp, body = do(t, "POST", s.base+"/txn", `{"ops": [{"op": "set", "key": "new", "value": "fresh"}, {"op": "delete", "key": "k1"}]}`)
	assert.Equal(t, 503, resp.StatusCode, body)
	assert.Equal(t, "storage_unavailable", resp.Header.Get("X-Error-Code"))
	resp, body = do(t, "GET", s.base+"/get/k1", "")
	assert.Equal(t, 200, resp.StatusCode, "the refused transaction is not applied: %s", body)

	// Room for a journal file's magic, not for its preallocated window:
	// still refused, and the snapshots that fail meanwhile add no files.
	require.NoError(t, os.Truncate(filler, size-1<<20))
	skipped := strings.Count(s.log.String(), "snapshot skipped")
	waitLog(t, s, "snapshot skipped", skipped+2)
	resp, body = do(t, "GET", s.base+"/readyz", "")
	assert.Equal(t, 503, resp.StatusCode, body)
	resp, body = do(t, "POST", s.base+"/set/new", "fresh")
	assert.Equal(t, 503, resp.StatusCode, body)
	assert.Equal(t, before, journalFiles(t, data), "failed starts and snapshots leave no generation behind")

	// Space returns: writes are taken again without a restart.
	require.NoError(t, os.Remove(filler))
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body = do(t, "GET", s.base+"/readyz", "")
		if resp.StatusCode == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.Equal(t, 200, resp.StatusCode, "still not ready 10 s after space was freed: %s\n%s", body, s.log)
	resp, body = do(t, "POST", s.base+"/set/new", "fresh")
	require.Equal(t, 200, resp.StatusCode, body)
	require.NoError(t, s.stop(t), s.log.String())
	assert.Len(t, journalFiles(t, data), 1, "one generation after a clean stop")

	s = start(t, cfg)
	resp, body = do(t, "GET", s.base+"/get/new", "")
	assert.Equal(t, 200, resp.StatusCode, body)
	assert.Equal(t, "fresh", body)
	resp, body = do(t, "GET", s.base+"/get/k3", "")
	assert.Equal(t, "value3", body)
	require.NoError(t, s.stop(t), s.log.String())
}
