//go:build linux && !journal_write

package persist

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// jnlDisk stands in for the disk when journal files preallocate their
// window: while full, every allocation fails with err.
type jnlDisk struct {
	full  atomic.Bool
	err   error
	calls atomic.Int64
}

// jnlFullDisk makes journal files opened from now on fail to preallocate
// with err until disk.full is cleared, and puts the real allocator back
// when the test ends.
func jnlFullDisk(t *testing.T, err error) *jnlDisk {
	t.Helper()
	d := &jnlDisk{err: err}
	d.full.Store(true)
	allocateJournal = func(f *os.File, off, n int64) error {
		d.calls.Add(1)
		if d.full.Load() {
			return fmt.Errorf("fallocate: %w", d.err)
		}
		return allocateFile(f, off, n)
	}
	t.Cleanup(func() { allocateJournal = allocateFile })
	return d
}

// jnlWithRecords leaves generation 1 beside path holding changes, as a
// previous run of the server would.
func jnlWithRecords(t *testing.T, path string, changes ...ttlstore.Change) {
	t.Helper()
	j, err := OpenJournal(path, SyncAlways)
	require.NoError(t, err)
	for _, c := range changes {
		require.NoError(t, j.Append(c))
	}
	require.NoError(t, j.Commit())
	require.NoError(t, j.Close())
}

// jnlRecoverInto recovers path into a store whose mutations go to j.
func jnlRecoverInto(t *testing.T, path string, j *Journal) *ttlstore.Store {
	t.Helper()
	s := jnlStoreWithJournal(j)
	_, err := Recover(path, s, false, nil)
	require.NoError(t, err)
	return s
}

// TestJournalOpensWithoutSpace: on a disk too full to preallocate a new
// generation, the journal opens stalled instead of failing, refuses every
// record without leaving a file behind, and once space returns Run starts
// the generation on its own, after which records are taken and recovered
// along with the old ones.
func TestJournalOpensWithoutSpace(t *testing.T) {
	for _, mode := range jnlModes {
		t.Run(mode.String(), func(t *testing.T) {
			path := jnlPath(t)
			jnlWithRecords(t, path, jnlSet("old", "1", 1))
			disk := jnlFullDisk(t, syscall.ENOSPC)

			j, err := OpenJournal(path, mode)
			require.NoError(t, err, "a full disk must not stop the start")
			t.Cleanup(func() { _ = j.Close() })
			require.ErrorIs(t, j.Err(), syscall.ENOSPC)
			assert.NotContains(t, j.Err().Error(), path, "clients see this message; it names no file")
			assert.Equal(t, []uint64{1}, jnlGenerations(t, path), "the generation that could not start is removed")

			s := jnlRecoverInto(t, path, j)
			_, err = s.Set("new", ttlstore.Write{Value: []byte("2")})
			require.ErrorIs(t, err, syscall.ENOSPC)
			_, ok := s.Get("new")
			assert.False(t, ok, "a refused write is not applied")
			_, err = s.Delete("old", "")
			require.ErrorIs(t, err, syscall.ENOSPC)
			_, ok = s.Get("old")
			assert.True(t, ok, "reads go on")
			assert.ErrorIs(t, j.Commit(), syscall.ENOSPC)

			// A snapshot needs a rotation, which cannot start a file either.
			sv := &Saver{Path: path, Source: s.Snapshot, Version: s.Version, Journal: j}
			require.ErrorIs(t, sv.Save(), syscall.ENOSPC)
			require.ErrorIs(t, sv.Save(), syscall.ENOSPC)
			assert.Equal(t, []uint64{1}, jnlGenerations(t, path))

			j.runEvery = 5 * time.Millisecond
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{})
			go func() { j.Run(ctx); close(done) }()
			tried := disk.calls.Load()
			require.Eventually(t, func() bool { return disk.calls.Load() >= tried+3 }, 5*time.Second, time.Millisecond,
				"Run retries while the journal is stalled")
			assert.ErrorIs(t, j.Err(), syscall.ENOSPC)
			// Listed under the journal's lock, which a retry holds from
			// creating its file to removing it.
			j.mu.Lock()
			gens := jnlGenerations(t, path)
			j.mu.Unlock()
			assert.Equal(t, []uint64{1}, gens, "failed retries leave no file behind")

			disk.full.Store(false)
			require.Eventually(t, func() bool { return j.Err() == nil }, 5*time.Second, time.Millisecond,
				"writes resume once space is freed")
			if mode != SyncEverySec {
				jnlWait(t, done, "Run to return once the journal started")
			}
			_, err = s.Set("new", ttlstore.Write{Value: []byte("2")})
			require.NoError(t, err)
			_, err = s.Delete("old", "")
			require.NoError(t, err)
			require.NoError(t, j.Commit())
			assert.Equal(t, []uint64{1, 2}, jnlGenerations(t, path))
			cancel()
			jnlWait(t, done, "Run to stop")
			want, version := jnlState(t, s), s.Version()
			require.NoError(t, j.Close())

			got, st := jnlRecover(t, path)
			assert.Equal(t, want, jnlState(t, got))
			assert.Equal(t, version, got.Version())
			assert.Equal(t, 3, st.JournalRecords)
		})
	}
}

// TestJournalStalledRotateStarts: a snapshot taken while the journal is
// stalled starts the generation itself once there is room, and the
// snapshot covers every older generation.
func TestJournalStalledRotateStarts(t *testing.T) {
	path := jnlPath(t)
	jnlWithRecords(t, path, jnlSet("a", "1", 1), jnlSet("b", "2", 2))
	disk := jnlFullDisk(t, syscall.ENOSPC)
	j, err := OpenJournal(path, SyncEverySec)
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	require.Error(t, j.Err())
	s := jnlRecoverInto(t, path, j)

	disk.full.Store(false)
	sv := &Saver{Path: path, Source: s.Snapshot, Version: s.Version, Journal: j}
	require.NoError(t, sv.Save())
	require.NoError(t, j.Err())
	assert.Equal(t, []uint64{2}, jnlGenerations(t, path), "the snapshot covers generation 1")
	_, err = s.Set("c", ttlstore.Write{Value: []byte("3")})
	require.NoError(t, err)
	require.NoError(t, j.Commit())
	want := jnlState(t, s)
	require.NoError(t, j.Close())

	got, st := jnlRecover(t, path)
	assert.Equal(t, want, jnlState(t, got))
	assert.Equal(t, 2, st.SnapshotKeys)
	assert.Equal(t, 1, st.JournalRecords)
}

// TestJournalClosedWhileStalled: Close of a stalled journal succeeds, and
// nothing starts a generation after it.
func TestJournalClosedWhileStalled(t *testing.T) {
	path := jnlPath(t)
	disk := jnlFullDisk(t, syscall.ENOSPC)
	j, err := OpenJournal(path, SyncAlways)
	require.NoError(t, err)
	require.NoError(t, j.Close())
	disk.full.Store(false)
	_, err = j.Rotate()
	require.Error(t, err)
	assert.Error(t, j.Append(jnlSet("a", "1", 1)))
	j.runEvery = time.Millisecond
	done := make(chan struct{})
	go func() { j.Run(context.Background()); close(done) }()
	jnlWait(t, done, "Run to return")
	assert.Empty(t, jnlGenerations(t, path))
}

// TestOpenJournalFailsOnOtherErrors: only a full disk is waited out; any
// other failure to start the journal still fails the start, and leaves no
// file behind.
func TestOpenJournalFailsOnOtherErrors(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EIO, syscall.EACCES} {
		t.Run(errno.Error(), func(t *testing.T) {
			path := jnlPath(t)
			jnlFullDisk(t, errno)
			j, err := OpenJournal(path, SyncEverySec)
			require.ErrorIs(t, err, errno)
			assert.Nil(t, j)
			assert.Empty(t, jnlGenerations(t, path))
		})
	}
}
