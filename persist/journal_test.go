package persist

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// Helpers shared by journal_test.go, recover_test.go and
// journal_fuzz_test.go carry a jnl prefix so they cannot collide with the
// snapshot tests' helpers.

var jnlModes = []SyncMode{SyncAlways, SyncEverySec, SyncNo}

func jnlOwner(secret string) ttlstore.Owner {
	sum := sha256.Sum256([]byte(secret))
	return ttlstore.Owner(sum[:])
}

// jnlPath returns a snapshot path in a fresh directory; journal
// generations go beside it.
func jnlPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "data.db")
}

func jnlSet(key, value string, version uint64) ttlstore.Change {
	return ttlstore.Change{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: key, Value: []byte(value), Version: version}}
}

func jnlDel(key string, version uint64) ttlstore.Change {
	return ttlstore.Change{Op: ttlstore.OpDelete, Item: ttlstore.Item{Key: key, Value: []byte("gone"), Version: version}}
}

// jnlRecord is one record as replay hands it over: a set carries the whole
// item, a delete only the key and version.
type jnlRecord struct {
	Op   ttlstore.Op
	Item ttlstore.Item
}

// jnlRecorder is a Restorer that remembers every call in order.
type jnlRecorder struct {
	records []jnlRecord
	version uint64
}

func (r *jnlRecorder) Restore(it ttlstore.Item) {
	r.records = append(r.records, jnlRecord{Op: ttlstore.OpSet, Item: it})
}

func (r *jnlRecorder) RestoreDelete(key string, version uint64) {
	r.records = append(r.records, jnlRecord{Op: ttlstore.OpDelete, Item: ttlstore.Item{Key: key, Version: version}})
}

func (r *jnlRecorder) AdvanceVersion(v uint64) { r.version = max(r.version, v) }

// jnlExpected is what replay must produce for changes: expiry removals and
// unknown ops dropped, deletes reduced to key and version, nil values read
// back as empty ones.
func jnlExpected(changes []ttlstore.Change) []jnlRecord {
	var out []jnlRecord
	for _, c := range changes {
		switch c.Op {
		case ttlstore.OpSet:
			it := c.Item
			if it.Value == nil {
				it.Value = []byte{}
			}
			out = append(out, jnlRecord{Op: ttlstore.OpSet, Item: it})
		case ttlstore.OpDelete:
			out = append(out, jnlRecord{Op: ttlstore.OpDelete, Item: ttlstore.Item{Key: c.Item.Key, Version: c.Item.Version}})
		}
	}
	return out
}

// jnlRecover recovers path into a fresh store and requires success.
func jnlRecover(t *testing.T, path string) (*ttlstore.Store, RecoverStats) {
	t.Helper()
	s := ttlstore.New(ttlstore.Options{})
	st, err := Recover(path, s, false, nil)
	require.NoError(t, err)
	return s, st
}

// jnlState returns the live items of s by key, values normalised so a nil
// and an empty value compare equal.
func jnlState(t *testing.T, s *ttlstore.Store) map[string]ttlstore.Item {
	t.Helper()
	m := make(map[string]ttlstore.Item)
	require.NoError(t, s.Snapshot(func(it ttlstore.Item) error {
		if it.Value == nil {
			it.Value = []byte{}
		}
		m[it.Key] = it
		return nil
	}))
	return m
}

// jnlGenerations returns the journal generation numbers beside path.
func jnlGenerations(t *testing.T, path string) []uint64 {
	t.Helper()
	gens, err := journalGenerations(path)
	require.NoError(t, err)
	var out []uint64
	for _, g := range gens {
		out = append(out, g.gen)
	}
	return out
}

// jnlFrames returns the start offset of every frame in a journal or
// snapshot file (whose magic is magicLen bytes), and requires the file to
// end on a frame boundary.
func jnlFrames(t *testing.T, data []byte, magicLen int) []int64 {
	t.Helper()
	fr := NewFrameReader(bytes.NewReader(data[magicLen:]), int64(magicLen), 0)
	var starts []int64
	for {
		_, off, err := fr.ReadFrame()
		if err == io.EOF {
			return starts
		}
		require.NoError(t, err)
		starts = append(starts, off)
	}
}

// jnlStoreWithJournal returns a store whose mutations go to j, as main
// wires them.
func jnlStoreWithJournal(j *Journal) *ttlstore.Store {
	return ttlstore.New(ttlstore.Options{OnChange: j.Append, Prepare: j.Prepare, OnCommit: j.AppendTxn, PrepareCommit: j.PrepareTxn})
}

// jnlFile wraps the real journal file, counting calls and failing or
// blocking on demand.
type jnlFile struct {
	f    *os.File
	name string

	syncs  atomic.Int64
	writes atomic.Int64

	mu         sync.Mutex
	failWrite  error         // Write writes half the buffer, then returns this
	failSync   error         // Sync returns this without syncing
	block      chan struct{} // one-shot: the next Sync waits for it to close
	entered    chan struct{} // closed when the blocked Sync has started
	size       int64         // bytes in the file
	syncedSize int64         // bytes in the file at the last successful Sync
	truncates  []int64
}

func (w *jnlFile) Write(p []byte) (int, error) {
	w.mu.Lock()
	fail := w.failWrite
	w.mu.Unlock()
	w.writes.Add(1)
	if fail != nil {
		n, _ := w.f.Write(p[:len(p)/2])
		w.grow(n)
		return n, fail
	}
	n, err := w.f.Write(p)
	w.grow(n)
	return n, err
}

func (w *jnlFile) grow(n int) {
	w.mu.Lock()
	w.size += int64(n)
	w.mu.Unlock()
}

func (w *jnlFile) Sync() error {
	w.syncs.Add(1)
	w.mu.Lock()
	fail, size, block, entered := w.failSync, w.size, w.block, w.entered
	w.block, w.entered = nil, nil
	w.mu.Unlock()
	if block != nil {
		close(entered)
		<-block
	}
	if fail != nil {
		return fail
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	w.mu.Lock()
	w.syncedSize = max(w.syncedSize, size)
	w.mu.Unlock()
	return nil
}

func (w *jnlFile) Truncate(n int64) error {
	w.mu.Lock()
	w.truncates = append(w.truncates, n)
	w.size = n
	w.syncedSize = min(w.syncedSize, n)
	w.mu.Unlock()
	return w.f.Truncate(n)
}

func (w *jnlFile) Close() error { return w.f.Close() }

// blockNextSync makes the next Sync wait until the returned release is
// called; entered is closed once that Sync has started. The size it
// covers is read before it waits.
func (w *jnlFile) blockNextSync() (entered <-chan struct{}, release func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	block, e := make(chan struct{}), make(chan struct{})
	w.block, w.entered = block, e
	return e, func() { close(block) }
}

func (w *jnlFile) state() (size, synced int64, truncates []int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.size, w.syncedSize, append([]int64(nil), w.truncates...)
}

// jnlOpener is a Journal.open that wraps every file it opens.
type jnlOpener struct {
	mu       sync.Mutex
	files    []*jnlFile
	failOpen error
}

func (o *jnlOpener) open(name string) (journalFile, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failOpen != nil {
		return nil, o.failOpen
	}
	f, err := openJournalFile(name)
	if err != nil {
		return nil, err
	}
	w := &jnlFile{f: f.(*os.File), name: name}
	o.files = append(o.files, w)
	return w, nil
}

func (o *jnlOpener) last() *jnlFile {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.files[len(o.files)-1]
}

func (o *jnlOpener) setFailOpen(err error) {
	o.mu.Lock()
	o.failOpen = err
	o.mu.Unlock()
}

// jnlOpenWrapped opens a journal whose current file is a jnlFile: OpenJournal
// opens the first generation with the real opener, so the test opener is
// installed and generation 2 started in its place. (Rotate would keep the
// first, which holds no record.) Generation 1 stays behind, empty.
func jnlOpenWrapped(t testing.TB, path string, mode SyncMode) (*Journal, *jnlOpener) {
	t.Helper()
	j, err := OpenJournal(path, mode)
	require.NoError(t, err)
	o := &jnlOpener{}
	j.mu.Lock()
	j.open = o.open
	first, mm := j.f, j.mm
	err = j.startGeneration(2)
	j.mu.Unlock()
	require.NoError(t, err)
	if mm != nil {
		require.NoError(t, mm.finish())
	}
	require.NoError(t, first.Close())
	t.Cleanup(func() { _ = j.Close() })
	return j, o
}

// jnlWait fails the test instead of hanging when ch is not closed in time.
func jnlWait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestParseSyncMode(t *testing.T) {
	for _, m := range jnlModes {
		got, err := ParseSyncMode(m.String())
		require.NoError(t, err)
		assert.Equal(t, m, got)
	}
	_, err := ParseSyncMode("sometimes")
	assert.Error(t, err)
	assert.Equal(t, "everysec", SyncMode(0).String(), "the zero mode is everysec")
}

func TestJournalRoundTrip(t *testing.T) {
	future := time.Now().Add(time.Hour).UnixNano()
	big := bytes.Repeat([]byte{0xab}, 100_000)
	changes := []ttlstore.Change{
		jnlSet("plain", "hello", 1),
		{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "owned", Value: []byte{0, 0xff, '\n', 0xc1}, Owner: jnlOwner("s3cret"), Expires: future, Version: 2}},
		{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "empty", Value: []byte{}, Version: 3}},
		{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "nil value", Version: 4}},
		jnlSet("", "empty key", 5),
		jnlSet("overwritten", "old", 6),
		{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "deleted", Value: []byte("x"), Owner: jnlOwner("d"), Expires: future, Version: 7}},
		{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "overwritten", Value: []byte("new"), Expires: future + 1, Owner: jnlOwner("o"), Version: 8}},
		{Op: ttlstore.OpDelete, Item: ttlstore.Item{Key: "deleted", Value: []byte("x"), Owner: jnlOwner("d"), Expires: future, Version: 9}},
		{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "expired", Value: []byte("e"), Expires: 1, Version: 10}},
		// Expiry removals are not journaled: were this one replayed,
		// "plain" would be gone.
		{Op: ttlstore.OpExpire, Item: ttlstore.Item{Key: "plain", Value: []byte("hello"), Version: 11}},
		{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "ünïcødé/🔑", Value: big, Version: 12}},
		{Op: ttlstore.OpExpire, Item: ttlstore.Item{Key: "ünïcødé/🔑", Version: 500}},
		{Op: ttlstore.Op(0), Item: ttlstore.Item{Key: "plain", Version: 600}},
	}
	for _, mode := range jnlModes {
		t.Run(mode.String(), func(t *testing.T) {
			path := jnlPath(t)
			j, err := OpenJournal(path, mode)
			require.NoError(t, err)
			for _, c := range changes {
				require.NoError(t, j.Append(c))
			}
			require.NoError(t, j.Commit())
			require.NoError(t, j.Close())

			// The exact records, in order.
			var rec jnlRecorder
			n, err := replayJournal(journalName(path, 1), &rec)
			require.NoError(t, err)
			want := jnlExpected(changes)
			require.Len(t, want, 11)
			assert.Equal(t, len(want), n)
			assert.Equal(t, want, rec.records)

			// The state of a store recovered from them.
			s, st := jnlRecover(t, path)
			assert.Equal(t, RecoverStats{JournalFiles: 1, JournalRecords: 11, LastGeneration: 1, Duration: st.Duration}, st)
			get := func(key string) ttlstore.Item {
				t.Helper()
				it, ok := s.Get(key)
				require.True(t, ok, "key %q missing", key)
				return it
			}
			assert.Equal(t, ttlstore.Item{Key: "plain", Value: []byte("hello"), Version: 1}, get("plain"))
			assert.Equal(t, ttlstore.Item{Key: "owned", Value: []byte{0, 0xff, '\n', 0xc1}, Owner: jnlOwner("s3cret"), Expires: future, Version: 2}, get("owned"))
			assert.Equal(t, ttlstore.Item{Key: "empty", Value: []byte{}, Version: 3}, get("empty"))
			assert.Equal(t, ttlstore.Item{Key: "nil value", Value: []byte{}, Version: 4}, get("nil value"))
			assert.Equal(t, ttlstore.Item{Key: "", Value: []byte("empty key"), Version: 5}, get(""))
			assert.Equal(t, ttlstore.Item{Key: "overwritten", Value: []byte("new"), Expires: future + 1, Owner: jnlOwner("o"), Version: 8}, get("overwritten"))
			assert.Equal(t, ttlstore.Item{Key: "ünïcødé/🔑", Value: big, Version: 12}, get("ünïcødé/🔑"))
			_, ok := s.Get("deleted")
			assert.False(t, ok, "a journaled delete must be applied")
			_, ok = s.Get("expired")
			assert.False(t, ok, "an item past its expiry must not be live")
			// Held but not live: the expired item, until reaped.
			assert.Equal(t, 8, s.Len())
			assert.Len(t, jnlState(t, s), 7)
			assert.GreaterOrEqual(t, s.Version(), uint64(12))
		})
	}
}

// TestJournalRoundTripThroughStore drives a real store, as main does, and
// compares the recovered state with the original item by item.
func TestJournalRoundTripThroughStore(t *testing.T) {
	for _, mode := range jnlModes {
		t.Run(mode.String(), func(t *testing.T) {
			path := jnlPath(t)
			j, err := OpenJournal(path, mode)
			require.NoError(t, err)
			s := jnlStoreWithJournal(j)
			future := time.Now().Add(time.Hour).UnixNano()
			for i := range 50 {
				w := ttlstore.Write{Value: []byte(fmt.Sprintf("value %d", i))}
				if i%3 == 0 {
					w.Expires = future + int64(i)
				}
				if i%5 == 0 {
					w.Owner = jnlOwner(fmt.Sprint(i))
				}
				_, err := s.Set(fmt.Sprintf("k%02d", i), w)
				require.NoError(t, err)
			}
			for i := 0; i < 50; i += 7 {
				_, err := s.Delete(fmt.Sprintf("k%02d", i), jnlOwner(fmt.Sprint(i)))
				require.NoError(t, err)
			}
			_, err = s.CompareAndSwap("k01", []byte("value 1"), ttlstore.Write{Value: []byte("swapped")})
			require.NoError(t, err)
			_, err = s.Delete("k48", "")
			require.NoError(t, err, "the last mutation is a delete, so only the journal knows the top version")
			require.NoError(t, j.Commit())
			require.NoError(t, j.Close())

			got, _ := jnlRecover(t, path)
			assert.Equal(t, jnlState(t, s), jnlState(t, got))
			assert.Equal(t, s.Version(), got.Version())
		})
	}
}

func TestJournalAppendRefusesUnwritableItem(t *testing.T) {
	path := jnlPath(t)
	j, err := OpenJournal(path, SyncNo)
	require.NoError(t, err)
	bad := ttlstore.Change{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "bad", Value: []byte("v"), Owner: "short", Version: 1}}
	require.Error(t, j.Append(bad))
	require.NoError(t, j.Append(jnlSet("good", "v", 2)), "a refused item must not poison the journal")
	require.NoError(t, j.Close())
	var rec jnlRecorder
	_, err = replayJournal(journalName(path, 1), &rec)
	require.NoError(t, err)
	assert.Equal(t, jnlExpected([]ttlstore.Change{jnlSet("good", "v", 2)}), rec.records)
}

// TestJournalPrepareEncodesTheSameRecord: a record prepared before its
// version is known (as the store does) is byte for byte the record Append
// encodes alone, and a prepared item that cannot be written is refused by
// Append, which is where the store learns of it.
func TestJournalPrepareEncodesTheSameRecord(t *testing.T) {
	owner := jnlOwner("alice")
	changes := []ttlstore.Change{
		jnlSet("k", "v", 1),
		{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "owned", Value: bytes.Repeat([]byte("x"), 300), Owner: owner, Expires: 1 << 40, Version: 1 << 20}},
		{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "empty", Value: nil, Version: 1<<32 + 5}},
		{Op: ttlstore.OpDelete, Item: ttlstore.Item{Key: "owned", Value: []byte("gone"), Owner: owner, Expires: 7, Version: 1<<20 + 1}},
	}
	// Encoded here the way a snapshot encodes items, in one go.
	var plain []byte
	for _, c := range changes {
		it := c.Item
		op := uint64(1)
		if c.Op == ttlstore.OpDelete {
			op, it.Value, it.Owner, it.Expires = 2, nil, "", 0
		}
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		require.NoError(t, enc.EncodeArrayLen(journalFields))
		require.NoError(t, enc.EncodeUint(op))
		require.NoError(t, encodeItemFields(enc, &buf, it))
		var hdr [FrameHeaderSize]byte
		putFrameHeader(&hdr, buf.Bytes())
		plain = append(append(plain, hdr[:]...), buf.Bytes()...)
	}
	require.Equal(t, plain, jnlBody(t, changes...), "Append alone")

	j := jnlMemJournal()
	for _, c := range changes {
		unversioned := c
		unversioned.Item.Version = 0
		c.Prepared = j.Prepare(unversioned)
		require.NotNil(t, c.Prepared)
		require.NoError(t, j.Append(c))
	}
	assert.Equal(t, plain, jnlMem(j), "Prepare, then Append")

	expire := ttlstore.Change{Op: ttlstore.OpExpire, Item: ttlstore.Item{Key: "k", Version: 9}}
	assert.Nil(t, j.Prepare(expire), "expiries are not recorded")

	bad := ttlstore.Change{Op: ttlstore.OpSet, Item: ttlstore.Item{Key: "bad", Value: []byte("v"), Owner: "short"}}
	bad.Prepared = j.Prepare(bad)
	bad.Item.Version = 10
	require.Error(t, j.Append(bad))
	assert.Equal(t, plain, jnlMem(j), "nothing appended for the refused item")
}

func TestOpenJournalStartsAfterExistingGenerations(t *testing.T) {
	path := jnlPath(t)
	require.NoError(t, os.WriteFile(journalName(path, 5), []byte(JournalMagic), 0o600))
	require.NoError(t, os.WriteFile(path+".journal.0000000000000009.damaged-1", nil, 0o600))
	require.NoError(t, os.WriteFile(path+".journal.notanumber", nil, 0o600))
	j, err := OpenJournal(path, SyncNo)
	require.NoError(t, err)
	defer j.Close()
	assert.Equal(t, []uint64{5, 6}, jnlGenerations(t, path))
	data, err := os.ReadFile(journalName(path, 6))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(data), len(JournalMagic))
	assert.Equal(t, JournalMagic, string(data[:len(JournalMagic)]), "a new generation starts with its magic")
	// A mapped journal preallocates ahead of its records: only zeros.
	assert.Zero(t, bytes.Count(data[len(JournalMagic):], []byte{0})-len(data[len(JournalMagic):]), "after the magic, only preallocated zeros")
	info, err := os.Stat(journalName(path, 6))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), info.Mode().Perm())
}

// TestJournalCommitReachesFile checks that once Commit returns the record
// is in the file, before any Close: written to the OS in every mode and, in
// SyncAlways, fsynced too.
func TestJournalCommitReachesFile(t *testing.T) {
	for _, mode := range jnlModes {
		t.Run(mode.String(), func(t *testing.T) {
			path := jnlPath(t)
			j, o := jnlOpenWrapped(t, path, mode)
			f := o.last()
			var changes []ttlstore.Change
			for i := range 3 {
				c := jnlSet(fmt.Sprintf("k%d", i), "v", uint64(i+1))
				changes = append(changes, c)
				require.NoError(t, j.Append(c))
				syncsBefore := f.syncs.Load()
				require.NoError(t, j.Commit())

				data, err := os.ReadFile(f.name)
				require.NoError(t, err)
				var rec jnlRecorder
				n, err := decodeJournal(bytes.NewReader(data[len(JournalMagic):]), int64(len(JournalMagic)), &rec)
				require.NoError(t, err)
				assert.Equal(t, i+1, n)
				assert.Equal(t, jnlExpected(changes), rec.records)

				size, synced, _ := f.state()
				assert.Equal(t, int64(len(data)), size)
				if mode == SyncAlways {
					assert.Equal(t, size, synced, "SyncAlways: Commit returned before an fsync covered the record")
					assert.Equal(t, syncsBefore+1, f.syncs.Load())
				} else {
					assert.Equal(t, syncsBefore, f.syncs.Load(), "%s: Commit must not fsync", mode)
				}
			}
			// Nothing pending: Commit does no I/O.
			writes, syncs := f.writes.Load(), f.syncs.Load()
			require.NoError(t, j.Commit())
			assert.Equal(t, writes, f.writes.Load())
			assert.Equal(t, syncs, f.syncs.Load())
		})
	}
}

// TestJournalGroupCommit runs many concurrent writers: every record must
// replay, and in SyncAlways they must share fsyncs.
func TestJournalGroupCommit(t *testing.T) {
	const writers, each = 64, 200
	for _, mode := range jnlModes {
		t.Run(mode.String(), func(t *testing.T) {
			path := jnlPath(t)
			j, o := jnlOpenWrapped(t, path, mode)
			f := o.last()
			syncs0, writes0 := f.syncs.Load(), f.writes.Load()

			var version atomic.Uint64
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			start := time.Now()
			for g := range writers {
				wg.Go(func() {
					for i := range each {
						c := jnlSet(fmt.Sprintf("w%02d-%03d", g, i), fmt.Sprintf("value of %d/%d", g, i), version.Add(1))
						if err := j.Append(c); err != nil {
							errs <- err
							return
						}
						if err := j.Commit(); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			commits := int64(writers * each)
			syncs, writes := f.syncs.Load()-syncs0, f.writes.Load()-writes0
			t.Logf("%s: %d commits, %d writes, %d fsyncs (%.4f fsyncs per commit, %.1f commits per fsync) in %v",
				mode, commits, writes, syncs, float64(syncs)/float64(commits), float64(commits)/float64(max(syncs, 1)), elapsed)
			assert.Equal(t, commits, writes, "one write(2) per record, made by Append")
			if mode == SyncAlways {
				assert.Less(t, syncs, commits/4, "concurrent commits must share fsyncs")
			} else {
				assert.Zero(t, syncs, "%s: commits must not fsync", mode)
			}

			// Everything is in the file already; recover without closing.
			s, st := jnlRecover(t, path)
			assert.Equal(t, int(commits), st.JournalRecords)
			assert.Equal(t, int(commits), s.Len())
			assert.Equal(t, uint64(commits), s.Version())
			for g := range writers {
				for i := range each {
					it, ok := s.Get(fmt.Sprintf("w%02d-%03d", g, i))
					require.True(t, ok)
					require.Equal(t, fmt.Sprintf("value of %d/%d", g, i), string(it.Value))
				}
			}
		})
	}
}

func TestJournalCloseWritesPendingAndRefusesMore(t *testing.T) {
	for _, mode := range jnlModes {
		t.Run(mode.String(), func(t *testing.T) {
			path := jnlPath(t)
			j, o := jnlOpenWrapped(t, path, mode)
			f := o.last()
			require.NoError(t, j.Append(jnlSet("a", "1", 1)))
			require.NoError(t, j.Close(), "no Commit: Close writes the pending record")
			size, synced, _ := f.state()
			assert.Equal(t, size, synced, "Close fsyncs")

			s, st := jnlRecover(t, path)
			assert.Equal(t, 1, st.JournalRecords)
			it, ok := s.Get("a")
			require.True(t, ok)
			assert.Equal(t, "1", string(it.Value))

			store := jnlStoreWithJournal(j)
			_, err := store.Set("b", ttlstore.Write{Value: []byte("2")})
			require.Error(t, err, "a closed journal must refuse mutations")
			_, ok = store.Get("b")
			assert.False(t, ok)
			assert.Error(t, j.Commit())
		})
	}
}

func TestJournalSyncAndRun(t *testing.T) {
	t.Run("Sync fsyncs only what is unsynced", func(t *testing.T) {
		j, o := jnlOpenWrapped(t, jnlPath(t), SyncEverySec)
		f := o.last()
		require.NoError(t, j.Append(jnlSet("a", "1", 1)))
		require.NoError(t, j.Commit())
		syncs := f.syncs.Load()
		require.NoError(t, j.Sync())
		assert.Equal(t, syncs+1, f.syncs.Load())
		size, synced, _ := f.state()
		assert.Equal(t, size, synced)
		require.NoError(t, j.Sync())
		assert.Equal(t, syncs+1, f.syncs.Load(), "nothing new to sync")
	})
	t.Run("Sync reports an fsync failure", func(t *testing.T) {
		j, o := jnlOpenWrapped(t, jnlPath(t), SyncEverySec)
		f := o.last()
		require.NoError(t, j.Append(jnlSet("a", "1", 1)))
		require.NoError(t, j.Commit())
		f.mu.Lock()
		f.failSync = syscall.EIO
		f.mu.Unlock()
		err := j.Sync()
		assert.ErrorIs(t, err, syscall.EIO)
		// The failure is remembered: writes are refused and readiness
		// fails until a rotation.
		assert.ErrorIs(t, j.Err(), syscall.EIO)
		assert.ErrorIs(t, j.Append(jnlSet("b", "2", 2)), syscall.EIO)
		f.mu.Lock()
		f.failSync = nil
		f.mu.Unlock()
		_, err = j.Rotate()
		require.NoError(t, err)
		assert.NoError(t, j.Err())
		assert.NoError(t, j.Append(jnlSet("b", "2", 2)))
	})
	t.Run("Run returns at once unless everysec", func(t *testing.T) {
		for _, mode := range []SyncMode{SyncAlways, SyncNo} {
			j, err := OpenJournal(jnlPath(t), mode)
			require.NoError(t, err)
			done := make(chan struct{})
			go func() { j.Run(context.Background()); close(done) }()
			jnlWait(t, done, "Run to return")
			require.NoError(t, j.Close())
		}
	})
	t.Run("Run fsyncs every second until cancelled", func(t *testing.T) {
		j, o := jnlOpenWrapped(t, jnlPath(t), SyncEverySec)
		f := o.last()
		require.NoError(t, j.Append(jnlSet("a", "1", 1)))
		require.NoError(t, j.Commit())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { j.Run(ctx); close(done) }()
		// The one unavoidable wait: Run's ticker fires after a second.
		require.Eventually(t, func() bool {
			size, synced, _ := f.state()
			return synced == size
		}, 5*time.Second, 10*time.Millisecond)
		cancel()
		jnlWait(t, done, "Run to stop")
	})
}

func TestJournalSize(t *testing.T) {
	j, err := OpenJournal(jnlPath(t), SyncNo)
	require.NoError(t, err)
	defer j.Close()
	assert.Equal(t, int64(len(JournalMagic)), j.Size())
	require.NoError(t, j.Append(jnlSet("k", "v", 1)))
	pending := j.Size()
	assert.Greater(t, pending, int64(len(JournalMagic)+FrameHeaderSize), "pending records count")
	require.NoError(t, j.Commit())
	assert.Equal(t, pending, j.Size())
	_, err = j.Rotate()
	require.NoError(t, err)
	assert.Equal(t, int64(len(JournalMagic)), j.Size(), "a new generation starts empty")
}

// TestJournalRotateRemoveThroughRecover follows a snapshot cycle by hand:
// rotate, snapshot the store, keep writing, remove the covered generation.
func TestJournalRotateRemoveThroughRecover(t *testing.T) {
	for _, mode := range jnlModes {
		t.Run(mode.String(), func(t *testing.T) {
			path := jnlPath(t)
			j, err := OpenJournal(path, mode)
			require.NoError(t, err)
			s := jnlStoreWithJournal(j)
			set := func(key, value string) {
				t.Helper()
				_, err := s.Set(key, ttlstore.Write{Value: []byte(value), Owner: jnlOwner(key)})
				require.NoError(t, err)
				require.NoError(t, j.Commit())
			}
			del := func(key string) {
				t.Helper()
				_, err := s.Delete(key, jnlOwner(key))
				require.NoError(t, err)
				require.NoError(t, j.Commit())
			}
			for i := range 20 {
				set(fmt.Sprintf("k%02d", i), "before")
			}
			del("k00")

			gen, err := j.Rotate()
			require.NoError(t, err)
			assert.Equal(t, uint64(1), gen)
			_, err = WriteFileCovering(path, s.Version(), gen, s.Snapshot)
			require.NoError(t, err)

			for i := 10; i < 30; i++ {
				set(fmt.Sprintf("k%02d", i), "after")
			}
			del("k01")
			del("k15")
			del("k25")
			want, wantVersion := jnlState(t, s), s.Version()

			// A crash before the covered generation is removed: both
			// generations replay over the snapshot.
			assert.Equal(t, []uint64{1, 2}, jnlGenerations(t, path))
			got, st := jnlRecover(t, path)
			assert.Equal(t, want, jnlState(t, got))
			assert.GreaterOrEqual(t, got.Version(), wantVersion)
			assert.Equal(t, 2, st.JournalFiles)

			require.NoError(t, j.RemoveThrough(gen))
			assert.Equal(t, []uint64{2}, jnlGenerations(t, path), "only the newest generation remains")
			_, err = os.Stat(journalName(path, 1))
			assert.ErrorIs(t, err, fs.ErrNotExist)

			require.NoError(t, j.Close())
			got, st = jnlRecover(t, path)
			assert.Equal(t, want, jnlState(t, got))
			assert.GreaterOrEqual(t, got.Version(), wantVersion)
			assert.Equal(t, 19, st.SnapshotKeys)
			assert.Equal(t, 1, st.JournalFiles)
			assert.Equal(t, 23, st.JournalRecords)
		})
	}
}

func TestJournalRotateFailureKeepsCurrentFile(t *testing.T) {
	path := jnlPath(t)
	j, o := jnlOpenWrapped(t, path, SyncAlways)
	require.NoError(t, j.Append(jnlSet("a", "1", 1)))
	require.NoError(t, j.Commit())

	o.setFailOpen(syscall.EMFILE)
	_, err := j.Rotate()
	require.ErrorIs(t, err, syscall.EMFILE)
	assert.Equal(t, []uint64{1, 2}, jnlGenerations(t, path))

	require.NoError(t, j.Append(jnlSet("b", "2", 2)), "a failed rotation is not a write error")
	require.NoError(t, j.Commit())

	o.setFailOpen(nil)
	gen, err := j.Rotate()
	require.NoError(t, err)
	assert.Equal(t, uint64(2), gen)
	require.NoError(t, j.Append(jnlSet("c", "3", 3)))
	require.NoError(t, j.Close())

	assert.Equal(t, []uint64{1, 2, 3}, jnlGenerations(t, path))
	var rec jnlRecorder
	_, err = replayJournal(journalName(path, 2), &rec)
	require.NoError(t, err)
	assert.Equal(t, jnlExpected([]ttlstore.Change{jnlSet("a", "1", 1), jnlSet("b", "2", 2)}), rec.records)
	s, _ := jnlRecover(t, path)
	assert.Len(t, jnlState(t, s), 3)
}

// TestJournalRotateDuringFsync rotates while a SyncAlways Commit is
// fsyncing with the lock released: a writer that slips in meanwhile
// still has its record in a file, and its own Commit an fsync over it.
func TestJournalRotateDuringFsync(t *testing.T) {
	path := jnlPath(t)
	j, o := jnlOpenWrapped(t, path, SyncAlways)
	old := o.last()
	require.NoError(t, j.Append(jnlSet("first", "1", 1)))

	entered, release := old.blockNextSync()
	committed := make(chan error, 1)
	go func() { committed <- j.Commit() }()
	jnlWait(t, entered, "Commit to fsync")
	// Commit has released the lock for its fsync: a writer slips in, and
	// a rotation starts, which waits for the fsync.
	require.NoError(t, j.Append(jnlSet("second", "2", 2)))
	rotated := make(chan struct{})
	var gen uint64
	var rotErr error
	go func() {
		defer close(rotated)
		gen, rotErr = j.Rotate()
	}()
	release()
	jnlWait(t, rotated, "Rotate")
	require.NoError(t, <-committed)
	require.NoError(t, rotErr)
	assert.Equal(t, uint64(2), gen)

	require.NoError(t, j.Commit())
	s, st := jnlRecover(t, path)
	assert.Equal(t, 2, st.JournalRecords)
	_, ok := s.Get("first")
	assert.True(t, ok)
	_, ok = s.Get("second")
	assert.True(t, ok, "Commit acknowledged a record that was written nowhere")
	size, synced, _ := old.state()
	assert.Equal(t, size, synced, "the rotated file was fsynced over both records")
}

// TestJournalConcurrentRotate rotates while writers append and commit:
// every record lands in exactly one generation, whole.
func TestJournalConcurrentRotate(t *testing.T) {
	const writers, each, rotations = 8, 250, 20
	for _, mode := range jnlModes {
		t.Run(mode.String(), func(t *testing.T) {
			path := jnlPath(t)
			j, err := OpenJournal(path, mode)
			require.NoError(t, err)
			var version atomic.Uint64
			var wg sync.WaitGroup
			errs := make(chan error, writers+1)
			stop := make(chan struct{})
			for g := range writers {
				wg.Go(func() {
					for i := range each {
						c := jnlSet(fmt.Sprintf("w%d-%03d", g, i), "v", version.Add(1))
						if err := j.Append(c); err != nil {
							errs <- err
							return
						}
						if err := j.Commit(); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			rotated := make(chan struct{})
			go func() {
				defer close(rotated)
				for range rotations {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := j.Rotate(); err != nil {
						errs <- err
						return
					}
				}
			}()
			wg.Wait()
			close(stop)
			<-rotated
			require.NoError(t, j.Close())
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}

			gens := jnlGenerations(t, path)
			total := 0
			for _, g := range gens {
				var rec jnlRecorder
				n, err := replayJournal(journalName(path, g), &rec)
				require.NoError(t, err, "generation %d", g)
				total += n
			}
			assert.Equal(t, writers*each, total, "each record exactly once")
			s, st := jnlRecover(t, path)
			assert.Zero(t, st.TornTails)
			assert.Equal(t, writers*each, s.Len())
			assert.Equal(t, uint64(writers*each), s.Version())
		})
	}
}

// TestJournalWriteError injects a disk-full write or a failed fsync. A
// failed write refuses its change before the store applies it, and what
// part of it reached the file is cut off; a failed fsync fails the commit,
// so the change (in memory and in the file) is never acknowledged. Either
// way the journal then refuses further records until a rotation to a
// healthy file.
func TestJournalWriteError(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode SyncMode
		sync bool // fail the fsync instead of the write
	}{
		{"always/write", SyncAlways, false},
		{"always/fsync", SyncAlways, true},
		{"everysec/write", SyncEverySec, false},
		{"no/write", SyncNo, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := jnlPath(t)
			j, o := jnlOpenWrapped(t, path, tc.mode)
			f := o.last()
			s := jnlStoreWithJournal(j)
			_, err := s.Set("a", ttlstore.Write{Value: []byte("1")})
			require.NoError(t, err)
			require.NoError(t, j.Commit())
			good, _, _ := f.state()

			f.mu.Lock()
			if tc.sync {
				f.failSync = syscall.EIO
			} else {
				f.failWrite = syscall.ENOSPC
			}
			f.mu.Unlock()
			want := error(syscall.ENOSPC)
			if tc.sync {
				want = syscall.EIO
			}

			_, err = s.Set("b", ttlstore.Write{Value: []byte("2")})
			size, _, truncates := f.state()
			info, statErr := os.Stat(f.name)
			require.NoError(t, statErr)
			if tc.sync {
				// Written, so visible, but its commit fails: never
				// acknowledged, as on the mapped path.
				require.NoError(t, err)
				require.ErrorIs(t, j.Commit(), want)
				assert.Empty(t, truncates)
				assert.Greater(t, size, good)
			} else {
				require.ErrorIs(t, err, want, "a record that cannot be written refuses its change")
				_, ok := s.Get("b")
				assert.False(t, ok, "the refused change is not in memory")
				assert.Equal(t, []int64{good}, truncates, "the torn record is cut off")
				assert.Equal(t, good, size)
			}
			assert.Equal(t, size, info.Size())

			// The error is sticky: the next mutation is refused and the
			// store keeps its state.
			_, err = s.Set("a", ttlstore.Write{Value: []byte("changed")})
			require.ErrorIs(t, err, want)
			_, err = s.Delete("a", "")
			require.ErrorIs(t, err, want)
			it, ok := s.Get("a")
			require.True(t, ok)
			assert.Equal(t, "1", string(it.Value))
			assert.ErrorIs(t, j.Append(jnlSet("c", "3", 99)), want)
			assert.ErrorIs(t, j.Commit(), want)

			// The file on disk holds only whole records.
			got, st := jnlRecover(t, path)
			assert.Zero(t, st.TornTails)
			if tc.sync {
				assert.Equal(t, 2, st.JournalRecords)
			} else {
				assert.Equal(t, 1, st.JournalRecords)
				_, ok = got.Get("b")
				assert.False(t, ok)
			}

			// A rotation to a healthy file clears the error.
			_, err = j.Rotate()
			require.NoError(t, err)
			require.NotSame(t, f, o.last())
			_, err = s.Set("a", ttlstore.Write{Value: []byte("3")})
			require.NoError(t, err)
			_, err = s.Set("c", ttlstore.Write{Value: []byte("4")})
			require.NoError(t, err)
			require.NoError(t, j.Commit())
			require.NoError(t, j.Close())

			got, st = jnlRecover(t, path)
			assert.Zero(t, st.TornTails)
			state := jnlState(t, got)
			assert.Equal(t, "3", string(state["a"].Value))
			assert.Equal(t, "4", string(state["c"].Value))
			assert.Equal(t, s.Version(), got.Version())
		})
	}
}

func TestSaverWithJournal(t *testing.T) {
	path := jnlPath(t)
	j, err := OpenJournal(path, SyncAlways)
	require.NoError(t, err)
	s := jnlStoreWithJournal(j)
	sv := &Saver{Path: path, Source: s.Snapshot, Version: s.Version, Journal: j}
	assert.Equal(t, int64(DefaultJournalFloor), sv.JournalLimit(), "before any snapshot")
	sv.JournalFloor = 8 << 20

	set := func(key string, value []byte) {
		t.Helper()
		_, err := s.Set(key, ttlstore.Write{Value: value})
		require.NoError(t, err)
		require.NoError(t, j.Commit())
	}
	for i := range 10 {
		set(fmt.Sprintf("k%d", i), []byte("v"))
	}
	require.NoError(t, sv.Save())
	assert.Equal(t, []uint64{2}, jnlGenerations(t, path), "the covered generation is removed")
	assert.Equal(t, int64(8<<20), sv.JournalLimit(), "a small snapshot leaves the floor")

	// Large values: the limit becomes twice the snapshot.
	big := bytes.Repeat([]byte("x"), 1<<20)
	for i := range 5 {
		set(fmt.Sprintf("big%d", i), big)
	}
	_, err = s.Delete("k0", "")
	require.NoError(t, err)
	require.NoError(t, j.Commit())
	require.NoError(t, sv.Save())
	assert.Equal(t, []uint64{3}, jnlGenerations(t, path))
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Greater(t, info.Size(), int64(5<<20))
	assert.Equal(t, 2*info.Size(), sv.JournalLimit())

	// Writes after the snapshot live in the new generation.
	set("late", []byte("l"))
	_, err = s.Delete("k1", "")
	require.NoError(t, err)
	require.NoError(t, j.Commit())
	want, version := jnlState(t, s), s.Version()
	require.NoError(t, j.Close())

	got, st := jnlRecover(t, path)
	assert.Equal(t, want, jnlState(t, got))
	assert.GreaterOrEqual(t, got.Version(), version)
	assert.Equal(t, 14, st.SnapshotKeys)
	assert.Equal(t, 2, st.JournalRecords)
}

func TestSaverSkipsSnapshotWhenRotationFails(t *testing.T) {
	path := jnlPath(t)
	j, o := jnlOpenWrapped(t, path, SyncNo)
	s := jnlStoreWithJournal(j)
	_, err := s.Set("a", ttlstore.Write{Value: []byte("1")})
	require.NoError(t, err)
	sv := &Saver{Path: path, Source: s.Snapshot, Version: s.Version, Journal: j}
	o.setFailOpen(syscall.ENOSPC)
	require.ErrorIs(t, sv.Save(), syscall.ENOSPC)
	_, err = os.Stat(path)
	assert.ErrorIs(t, err, fs.ErrNotExist, "no snapshot without a rotation")
	assert.Equal(t, []uint64{1, 2}, jnlGenerations(t, path), "nothing removed")

	o.setFailOpen(nil)
	require.NoError(t, sv.Save())
	assert.Equal(t, []uint64{3}, jnlGenerations(t, path))
}

// TestSaverFailuresLeaveNoEmptyGenerations: a snapshot that fails after its
// rotation (the disk has room for a journal window, not for the snapshot)
// leaves one new generation, and the failures after it add none, since a
// rotation keeps a generation that holds no record yet. The snapshot that
// finally succeeds still covers every older generation.
func TestSaverFailuresLeaveNoEmptyGenerations(t *testing.T) {
	path := jnlPath(t)
	j, err := OpenJournal(path, SyncAlways)
	require.NoError(t, err)
	s := jnlStoreWithJournal(j)
	for i := range 5 {
		_, err := s.Set(fmt.Sprintf("k%d", i), ttlstore.Write{Value: []byte("v")})
		require.NoError(t, err)
	}
	require.NoError(t, j.Commit())
	full := errors.New("no room for the snapshot")
	var failing atomic.Bool
	failing.Store(true)
	sv := &Saver{Path: path, Version: s.Version, Journal: j, Source: func(yield func(ttlstore.Item) error) error {
		if failing.Load() {
			return full
		}
		return s.Snapshot(yield)
	}}
	for range 4 {
		require.ErrorIs(t, sv.Save(), full)
	}
	assert.Equal(t, []uint64{1, 2}, jnlGenerations(t, path))

	// A record written between two rotations is covered by the second.
	_, err = s.Set("between", ttlstore.Write{Value: []byte("v")})
	require.NoError(t, err)
	require.NoError(t, j.Commit())
	require.ErrorIs(t, sv.Save(), full)
	require.ErrorIs(t, sv.Save(), full)
	assert.Equal(t, []uint64{1, 2, 3}, jnlGenerations(t, path))

	failing.Store(false)
	require.NoError(t, sv.Save())
	assert.Equal(t, []uint64{3}, jnlGenerations(t, path))
	_, err = s.Set("after", ttlstore.Write{Value: []byte("v")})
	require.NoError(t, err)
	_, err = s.Delete("k0", "")
	require.NoError(t, err)
	require.NoError(t, j.Commit())
	want, version := jnlState(t, s), s.Version()
	require.NoError(t, j.Close())

	got, st := jnlRecover(t, path)
	assert.Equal(t, want, jnlState(t, got))
	assert.Equal(t, version, got.Version())
	assert.Equal(t, 6, st.SnapshotKeys)
	assert.Equal(t, 2, st.JournalRecords)
}

// jnlMemJournal returns a Journal that is only ever appended to, for
// encoding records in memory: its file is a jnlMemFile.
func jnlMemJournal() *Journal {
	j := &Journal{mode: SyncNo, f: &jnlMemFile{}}
	j.cond = sync.NewCond(&j.mu)
	return j
}

// jnlMemFile is a journal file in memory.
type jnlMemFile struct{ bytes.Buffer }

func (m *jnlMemFile) Sync() error            { return nil }
func (m *jnlMemFile) Truncate(n int64) error { m.Buffer.Truncate(int(n)); return nil }
func (m *jnlMemFile) Close() error           { return nil }

// jnlMem returns what a jnlMemJournal holds.
func jnlMem(j *Journal) []byte { return j.f.(*jnlMemFile).Bytes() }

// jnlBody returns the framed records for changes, without the magic.
func jnlBody(tb testing.TB, changes ...ttlstore.Change) []byte {
	tb.Helper()
	j := jnlMemJournal()
	for _, c := range changes {
		if err := j.Append(c); err != nil {
			tb.Fatal(err)
		}
	}
	return bytes.Clone(jnlMem(j))
}

// BenchmarkJournalAppendCommit measures a write's journal cost: one Append
// and one Commit, from GOMAXPROCS goroutines and from 16 per P (many
// concurrent clients, as the HTTP server has). fsyncs/op shows group
// commit at work in SyncAlways.
func BenchmarkJournalAppendCommit(b *testing.B) {
	value := bytes.Repeat([]byte("v"), 100)
	for _, mode := range jnlModes {
		for _, perP := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/goroutines-per-P=%d", mode, perP), func(b *testing.B) {
				j, o := jnlOpenWrapped(b, filepath.Join(b.TempDir(), "data.db"), mode)
				f := o.last()
				syncs0 := f.syncs.Load()
				var version, failed atomic.Uint64
				b.SetParallelism(perP)
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						v := version.Add(1)
						c := ttlstore.Change{Op: ttlstore.OpSet, Item: ttlstore.Item{
							Key: fmt.Sprintf("key-%012d", v%100_000), Value: value, Version: v,
						}}
						if j.Append(c) != nil || j.Commit() != nil {
							failed.Add(1)
						}
					}
				})
				b.StopTimer()
				if failed.Load() > 0 {
					b.Fatalf("%d appends or commits failed", failed.Load())
				}
				b.ReportMetric(float64(f.syncs.Load()-syncs0)/float64(b.N), "fsyncs/op")
			})
		}
	}
}
