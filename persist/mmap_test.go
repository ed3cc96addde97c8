//go:build linux && !journal_write

package persist

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// jnlOpenMapped opens a journal that writes through a mapping, with a
// window of the given size (0: the default), and closes it at the end.
func jnlOpenMapped(t *testing.T, path string, mode SyncMode, window int64) *Journal {
	t.Helper()
	j, err := OpenJournal(path, mode)
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	require.NotNil(t, j.mm, "this filesystem cannot preallocate; the mapped journal is not in use")
	if window > 0 {
		j.mu.Lock()
		j.mm.window = window
		err := j.mm.remap(0) // take the small window now
		j.mu.Unlock()
		require.NoError(t, err)
	}
	return j
}

// jnlCrashImage copies the journal files beside path, as the page cache
// holds them right now, into a fresh directory: what the next start finds
// after the process is killed. The journal is left running.
func jnlCrashImage(t *testing.T, path string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(path))
	gens, err := journalGenerations(path)
	require.NoError(t, err)
	for _, g := range gens {
		data, err := os.ReadFile(g.name)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(dst+strings.TrimPrefix(g.name, path), data, 0o600))
	}
	return dst
}

// TestMappedJournalSurvivesCrash: once Commit returns, a record is in the
// file as other processes see it, with no write(2) and no Close, in every
// mode; the preallocated zeros after the last record are cut quietly.
func TestMappedJournalSurvivesCrash(t *testing.T) {
	for _, mode := range jnlModes {
		t.Run(mode.String(), func(t *testing.T) {
			path := jnlPath(t)
			j := jnlOpenMapped(t, path, mode, 0)
			changes := jnlChanges(50)
			for _, c := range changes {
				require.NoError(t, j.Append(c))
				require.NoError(t, j.Commit())
			}
			img := jnlCrashImage(t, path)
			name := journalName(img, 1)
			before := jnlSize(t, name)
			require.Greater(t, before, j.Size(), "the file holds preallocated space")

			var logged bytes.Buffer
			var rec jnlRecorder
			st, err := Recover(img, &rec, false, slog.New(slog.NewTextHandler(&logged, nil)))
			require.NoError(t, err)
			assert.Equal(t, jnlExpected(changes), rec.records)
			assert.Zero(t, st.TornTails)
			assert.Empty(t, logged.String(), "preallocated space is not damage")
			assert.Equal(t, j.Size(), jnlSize(t, name), "cut after the last record")
		})
	}
}

// TestMappedJournalTornCopy: a crash while a record is being copied leaves
// its first bytes, then zeros. Every such cut is recovered as a torn tail;
// a flipped byte in a middle record still stops recovery.
func TestMappedJournalTornCopy(t *testing.T) {
	path := jnlPath(t)
	j := jnlOpenMapped(t, path, SyncEverySec, 0)
	changes := jnlChanges(5)
	for _, c := range changes {
		require.NoError(t, j.Append(c))
	}
	require.NoError(t, j.Commit())
	img := jnlCrashImage(t, path)
	name := journalName(img, 1)
	image, err := os.ReadFile(name)
	require.NoError(t, err)
	end := j.Size()
	extra := jnlBody(t, jnlSet("torn", strings.Repeat("x", 40), 99))
	require.Less(t, end+int64(len(extra)), int64(len(image)), "the record fits in the preallocated space")

	for cut := 1; cut < len(extra); cut++ {
		data := bytes.Clone(image)
		copy(data[end:], extra[:cut])
		require.NoError(t, os.WriteFile(name, data, 0o600))
		var logged bytes.Buffer
		var rec jnlRecorder
		st, err := Recover(img, &rec, false, slog.New(slog.NewTextHandler(&logged, nil)))
		require.NoError(t, err, "cut at %d", cut)
		assert.Equal(t, jnlExpected(changes), rec.records, "cut at %d", cut)
		if bytes.Count(extra[:cut], []byte{0}) == cut {
			assert.Zero(t, st.TornTails, "cut at %d: only zeros were copied", cut)
		} else {
			assert.Equal(t, 1, st.TornTails, "cut at %d", cut)
			assert.Contains(t, logged.String(), "torn write", "cut at %d", cut)
		}
		assert.Equal(t, end, jnlSize(t, name), "cut at %d", cut)
	}

	// Damage before the zeros is not a torn copy.
	starts := jnlFrames(t, image[:end], len(JournalMagic))
	data := bytes.Clone(image)
	data[starts[2]+FrameHeaderSize+1] ^= 0x40
	require.NoError(t, os.WriteFile(name, data, 0o600))
	_, err = Recover(img, &jnlRecorder{}, false, nil)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), fmt.Sprintf("byte %d", starts[2]))
	assert.Equal(t, int64(len(image)), jnlSize(t, name), "damage is never cut off")
}

// TestMappedJournalWindows moves the window often, with records larger
// than a window among them, and checks that a crash image and a closed
// file both replay every record, and that Close leaves no zeros.
func TestMappedJournalWindows(t *testing.T) {
	path := jnlPath(t)
	page := int64(os.Getpagesize())
	j := jnlOpenMapped(t, path, SyncNo, page)
	var changes []ttlstore.Change
	for i := range 200 {
		size := 1 + i*37%900
		if i%50 == 7 {
			size = int(3 * page) // larger than the window
		}
		changes = append(changes, jnlSet(fmt.Sprintf("k%03d", i), strings.Repeat(string(rune('a'+i%26)), size), uint64(i+1)))
	}
	for _, c := range changes {
		require.NoError(t, j.Append(c))
	}
	require.NoError(t, j.Commit())
	var rec jnlRecorder
	_, err := Recover(jnlCrashImage(t, path), &rec, false, nil)
	require.NoError(t, err)
	assert.Equal(t, jnlExpected(changes), rec.records)

	size := j.Size()
	require.NoError(t, j.Close())
	assert.Equal(t, size, jnlSize(t, journalName(path, 1)), "Close cuts the preallocated rest")
	rec = jnlRecorder{}
	st, err := Recover(path, &rec, false, nil)
	require.NoError(t, err)
	assert.Zero(t, st.TornTails)
	assert.Equal(t, jnlExpected(changes), rec.records)
}

// TestMappedJournalDiskFull: when the next window cannot be preallocated,
// the mutation is refused before any byte of it is copied, later ones are
// refused too, reads go on, and a rotation to a new file clears it.
func TestMappedJournalDiskFull(t *testing.T) {
	path := jnlPath(t)
	page := int64(os.Getpagesize())
	j := jnlOpenMapped(t, path, SyncEverySec, page)
	s := jnlStoreWithJournal(j)
	value := []byte(strings.Repeat("v", 300))
	n := 0
	// Fill most of the first window.
	for j.Size()+2*int64(len(value)) < page {
		_, err := s.Set(fmt.Sprintf("k%d", n), ttlstore.Write{Value: value})
		require.NoError(t, err)
		n++
	}
	require.NoError(t, j.Commit())
	j.mu.Lock()
	j.mm.allocate = func(*os.File, int64, int64) error { return syscall.ENOSPC }
	j.mu.Unlock()

	var refused error
	for i := 0; i < 10 && refused == nil; i++ {
		if _, err := s.Set(fmt.Sprintf("k%d", n), ttlstore.Write{Value: value}); err != nil {
			refused = err
			break
		}
		n++
	}
	require.ErrorIs(t, refused, syscall.ENOSPC)
	_, ok := s.Get(fmt.Sprintf("k%d", n))
	assert.False(t, ok, "the refused write is not applied")
	assert.ErrorIs(t, j.Commit(), syscall.ENOSPC)
	_, err := s.Set("k0", ttlstore.Write{Value: []byte("changed")})
	assert.ErrorIs(t, err, syscall.ENOSPC, "refused until a rotation")
	it, ok := s.Get("k0")
	require.True(t, ok)
	assert.Equal(t, value, it.Value)

	// The file holds exactly the accepted records.
	got, st := jnlRecover(t, jnlCrashImage(t, path))
	assert.Zero(t, st.TornTails)
	assert.Equal(t, n, st.JournalRecords)
	assert.Equal(t, n, got.Len())

	// A rotation starts a new file (with a working allocator) and clears
	// the error.
	_, err = j.Rotate()
	require.NoError(t, err)
	_, err = s.Set("k0", ttlstore.Write{Value: []byte("changed")})
	require.NoError(t, err)
	require.NoError(t, j.Commit())
}

// TestMappedJournalConcurrentCommits: many writers appending and
// committing at once through a small, often moving window; a crash image
// taken after they finish replays every record, each writer's in order.
func TestMappedJournalConcurrentCommits(t *testing.T) {
	const writers, each = 16, 100
	for _, mode := range jnlModes {
		t.Run(mode.String(), func(t *testing.T) {
			path := jnlPath(t)
			j := jnlOpenMapped(t, path, mode, int64(os.Getpagesize()))
			s := jnlStoreWithJournal(j)
			errs := make(chan error, writers)
			for w := range writers {
				go func() {
					for i := range each {
						if _, err := s.Set(fmt.Sprintf("w%02d", w), ttlstore.Write{Value: []byte(fmt.Sprint(i))}); err != nil {
							errs <- err
							return
						}
						if err := j.Commit(); err != nil {
							errs <- err
							return
						}
					}
					errs <- nil
				}()
			}
			for range writers {
				require.NoError(t, <-errs)
			}
			var rec jnlRecorder
			st, err := Recover(jnlCrashImage(t, path), &rec, false, nil)
			require.NoError(t, err)
			assert.Zero(t, st.TornTails)
			require.Len(t, rec.records, writers*each)
			next := make(map[string]int)
			for _, r := range rec.records {
				assert.Equal(t, fmt.Sprint(next[r.Item.Key]), string(r.Item.Value), "writer %s out of order", r.Item.Key)
				next[r.Item.Key]++
			}
		})
	}
}

// BenchmarkMappedAppend measures Append and Commit through the mapped
// journal (SyncEverySec), 16 goroutines per P: the path of every durable
// write. ns/op includes the page faults of the mapping; compare with
// prefaulting off (-run NONE -bench MappedAppend).
func BenchmarkMappedAppend(b *testing.B) {
	value := bytes.Repeat([]byte("v"), 200)
	for _, prefault := range []bool{false, true} {
		b.Run(fmt.Sprintf("prefault=%v", prefault), func(b *testing.B) {
			j, err := OpenJournal(filepath.Join(b.TempDir(), "data.db"), SyncEverySec)
			require.NoError(b, err)
			defer j.Close()
			if j.mm == nil {
				b.Fatal("this filesystem cannot preallocate; the mapped journal is not in use")
			}
			if !prefault && j.mm.pf != nil {
				j.mm.pf.stop()
				j.mm.pf = nil
			}
			var n atomic.Uint64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					key := fmt.Sprintf("key-%028d", i)
					if err := j.Append(ttlstore.Change{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: key, Value: value, Version: i}}); err != nil {
						b.Error(err)
						return
					}
					if err := j.Commit(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// mapped reports, for each page of data, whether it is mapped in this
// process's page tables, from /proc/self/pagemap (bit 63: present).
func mapped(t *testing.T, data []byte) []bool {
	t.Helper()
	page := os.Getpagesize()
	f, err := os.Open("/proc/self/pagemap")
	require.NoError(t, err)
	defer f.Close()
	n := (len(data) + page - 1) / page
	buf := make([]byte, 8*n)
	_, err = f.ReadAt(buf, int64(uintptr(unsafe.Pointer(&data[0]))/uintptr(page))*8)
	require.NoError(t, err)
	out := make([]bool, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(buf[8*i:])&(1<<63) != 0
	}
	return out
}

// TestMappedJournalPrefaults: the pages just after the last record are
// faulted in by the prefaulter, off the writers' path, and the rest of the
// window is left alone. Without it the same pages stay unmapped until a
// record lands in them.
func TestMappedJournalPrefaults(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("prefault=%v", on), func(t *testing.T) {
			j := jnlOpenMapped(t, filepath.Join(t.TempDir(), "data.db"), SyncNo, 0)
			j.mu.Lock()
			if j.mm.pf == nil {
				j.mu.Unlock()
				t.Fatal("no prefaulter on Linux")
			}
			if !on {
				j.mm.pf.stop()
				j.mm.pf = nil
			}
			j.mu.Unlock()
			require.NoError(t, j.Append(jnlSet("k", "v", 1)))
			require.NoError(t, j.Commit())

			j.mu.Lock()
			defer j.mu.Unlock()
			m := j.mm
			page := int(m.page)
			first := int(m.pos-m.start+m.page-1) / page // the first page after the record's
			ahead := first + prefaultAhead/page
			require.Less(t, ahead, len(m.data)/page, "the window is larger than the lead")
			var pages []bool
			deadline := time.Now().Add(5 * time.Second)
			for {
				pages = mapped(t, m.data)
				if !on || pages[ahead-1] || time.Now().After(deadline) {
					break
				}
				j.mu.Unlock()
				time.Sleep(time.Millisecond)
				j.mu.Lock()
			}
			for i := first; i < ahead; i++ {
				require.Equal(t, on, pages[i], "page %d of the lead", i)
			}
			for i := ahead; i < len(pages); i++ {
				require.False(t, pages[i], "page %d, beyond the lead", i)
			}
		})
	}
}
