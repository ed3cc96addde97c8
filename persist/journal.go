package persist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// JournalMagic starts every journal file.
const JournalMagic = "RDVJRNL\x00"

// A journal generation is JournalMagic followed by frames (see
// FrameWriter), one record each. A record is a msgpack array of one of two
// shapes, told apart by their number of fields:
//
//	change   [op (uint: 1 set, 2 delete), key (str), value (bin),
//	          expires (int, Unix ns, 0 = never), owner (bin, 0 or 32 bytes),
//	          version (uint)]
//	commit   [3, changes (array of [op, key, value, expires, owner]),
//	          version (uint)]
//
// A delete has an empty value and owner and expires 0. A commit is one
// transaction (ttlstore.Store.Commit): at least one change, no key twice,
// all at the commit's one version. Its frame's checksum makes it whole or
// torn, so recovery applies all of it or none. The version comes last so
// that a record can be encoded before its version is known.
const (
	journalFields = 6 // fields of a change record
	commitFields  = 3 // fields of a commit record
	changeFields  = 5 // fields of each change in a commit
	opCommit      = 3
)

// SyncMode says when journal records reach the disk, the same trade Redis
// makes with appendfsync.
type SyncMode uint8

// The sync modes.
const (
	// SyncEverySec writes each record to the OS before the write is
	// acknowledged and fsyncs once a second: a process crash loses nothing,
	// a power cut at most about a second.
	SyncEverySec SyncMode = iota
	// SyncAlways acknowledges a write only after its record is fsynced.
	// Concurrent writers share one fsync (group commit).
	SyncAlways
	// SyncNo writes records to the OS and leaves flushing to it.
	SyncNo
)

// ParseSyncMode parses "always", "everysec" or "no".
func ParseSyncMode(s string) (SyncMode, error) {
	switch s {
	case "always":
		return SyncAlways, nil
	case "everysec":
		return SyncEverySec, nil
	case "no":
		return SyncNo, nil
	}
	return 0, fmt.Errorf("want always, everysec or no")
}

func (m SyncMode) String() string {
	switch m {
	case SyncAlways:
		return "always"
	case SyncNo:
		return "no"
	}
	return "everysec"
}

// journalFile is the part of *os.File the journal uses; tests substitute
// one that fails on demand.
type journalFile interface {
	Write([]byte) (int, error)
	Sync() error
	Truncate(int64) error
	Close() error
}

// Journal is an append-only log of mutations between snapshots, kept in
// numbered generation files beside the snapshot (<data>.journal.<gen>).
// A snapshot rotates to a new generation first and removes the older ones
// once it is safely in place, so the journal never grows without bound.
//
// Append is called by the store for each mutation while the key's shard
// lock is held. Commit, called before a write is acknowledged, makes
// everything appended so far durable in the chosen mode.
//
// On Linux, Append copies each record into a shared mapping of the file's
// preallocated tail (see mmapTail): the record is then in the page cache,
// as after a write(2), so SyncEverySec and SyncNo need nothing more and
// SyncAlways only an fsync. Elsewhere, or where the filesystem cannot
// preallocate, Append writes each record with write(2) before it returns.
// Either way a record is with the OS before the store makes its change
// visible, so a crash of the process never loses a write that a reader
// has seen, and a record that cannot be written refuses its change. In
// SyncAlways concurrent writers share one fsync (group commit).
type Journal struct {
	path string // snapshot path; generations are path.journal.<gen>
	mode SyncMode

	// open replaces os.OpenFile in tests.
	open func(name string) (journalFile, error)

	syncMu sync.Mutex // serialises fsyncs with rotation, so a file is never closed under a Sync

	mu       sync.Mutex
	cond     *sync.Cond
	f        journalFile
	mm       *mmapTail // the mapped tail of f, or nil to write with write(2)
	gen      uint64
	fileSize int64  // bytes of the current generation known to be written
	frame    []byte // a record as write(2) takes it, reused
	appended int64  // bytes ever appended (a position across generations)
	written  int64  // of those, handed to the OS
	synced   int64  // of those, fsynced
	fsyncing bool   // a Commit is fsyncing, with mu released
	err      error  // sticky: set by a failed write, cleared by a rotation
	closed   bool   // set by Close; a stalled journal then stays without a file

	// runEvery is Run's period, a second; tests shorten it.
	runEvery time.Duration
}

// OpenJournal starts a new journal generation after the highest one found
// beside path. Older generations stay until a snapshot covers them. When the
// disk is too full to start it, the journal opens stalled instead of
// failing: it refuses records (Err says why) until Run or Rotate manages to
// start the generation.
func OpenJournal(path string, mode SyncMode) (*Journal, error) {
	return OpenJournalAfter(path, mode, 0)
}

// OpenJournalAfter is OpenJournal that also starts above after, such as
// RecoverStats.LastGeneration: numbering must not restart below the
// generation a snapshot says it covers, or below files that recovery
// moved aside, even when no journal file is left beside path.
func OpenJournalAfter(path string, mode SyncMode, after uint64) (*Journal, error) {
	j := &Journal{path: path, mode: mode, open: openJournalFile}
	j.cond = sync.NewCond(&j.mu)
	gens, err := journalGenerations(path)
	if err != nil {
		return nil, err
	}
	next := after + 1
	if len(gens) > 0 {
		next = max(next, gens[len(gens)-1].gen+1)
	}
	if err := j.startGeneration(next); err != nil {
		if !noSpace(err) {
			return nil, err
		}
		j.stall(next-1, err)
	}
	return j, nil
}

func openJournalFile(name string) (journalFile, error) {
	// Read-write, because a shared writable mapping needs it.
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// journalName returns the file name of generation gen. Generations are
// zero-padded so they also sort by name.
func journalName(path string, gen uint64) string {
	return fmt.Sprintf("%s.journal.%016d", path, gen)
}

type generation struct {
	gen  uint64
	name string
}

// journalGenerations lists the journal files beside path, oldest first.
func journalGenerations(path string) ([]generation, error) {
	names, err := filepath.Glob(path + ".journal.*")
	if err != nil {
		return nil, err
	}
	var gens []generation
	for _, name := range names {
		n, err := strconv.ParseUint(strings.TrimPrefix(name, path+".journal."), 10, 64)
		if err != nil {
			continue // a damaged file moved aside, or someone else's
		}
		gens = append(gens, generation{gen: n, name: name})
	}
	sort.Slice(gens, func(a, b int) bool { return gens[a].gen < gens[b].gen })
	return gens, nil
}

// startGeneration opens generation gen and writes its magic. The caller
// holds no lock or holds j.mu with no flush in progress.
func (j *Journal) startGeneration(gen uint64) error {
	name := journalName(j.path, gen)
	f, err := j.open(name)
	if err != nil {
		return fmt.Errorf("journal %s: %w", name, err)
	}
	if _, err := f.Write([]byte(JournalMagic)); err != nil {
		f.Close()
		os.Remove(name)
		return fmt.Errorf("journal %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(name)
		return fmt.Errorf("journal %s: %w", name, err)
	}
	if err := syncDir(filepath.Dir(name)); err != nil {
		// Leaving the file would make every later rotation fail on it.
		f.Close()
		os.Remove(name)
		return fmt.Errorf("journal %s: %w", name, err)
	}
	var mm *mmapTail
	if osf, ok := f.(*os.File); ok {
		mm, err = newMmapTail(osf, int64(len(JournalMagic)))
		if err != nil && !errors.Is(err, errNoMmap) {
			f.Close()
			os.Remove(name)
			return fmt.Errorf("journal %s: %w", name, err)
		}
	}
	j.f, j.mm, j.gen, j.fileSize = f, mm, gen, int64(len(JournalMagic))
	return nil
}

// Prepare encodes the record for c up to its version, outside the store's
// ordering lock (ttlstore.Options.Prepare), so that Append, which runs
// under it, has only the version to add before the copy: that lock is
// taken by every write of the server, so the shorter its sections the
// fewer writers queue behind one that is descheduled. The result is for
// Append, as c.Prepared; nil for a change the journal does not record.
func (j *Journal) Prepare(c kv.Change) any {
	if journalOp(c.Op) == 0 {
		return nil
	}
	return prepareRecord(c)
}

func journalOp(op kv.Op) uint64 {
	switch op {
	case kv.OpSet:
		return 1
	case kv.OpDelete:
		return 2
	}
	return 0
}

func prepareRecord(c kv.Change) *recordBuf {
	it := c.Item
	if c.Op == kv.OpDelete {
		it.Value, it.Owner, it.Expires = nil, "", 0
	}
	rb := recordBufs.Get().(*recordBuf)
	rb.buf.Reset()
	_ = rb.enc.EncodeArrayLen(journalFields)
	_ = rb.enc.EncodeUint(journalOp(c.Op))
	rb.err = encodeItemHead(rb.enc, &rb.buf, it)
	rb.head = rb.buf.Len()
	rb.crc = crc32.Update(0, castagnoli, rb.buf.Bytes())
	return rb
}

// Append records c, with c.Prepared from Prepare when the store has one.
// Expiry removals are not recorded: replay drops expired entries by their
// own expiry. It returns the sticky write error, if any, so the store
// refuses the mutation instead of applying an unrecorded one.
func (j *Journal) Append(c kv.Change) error {
	if journalOp(c.Op) == 0 {
		return nil
	}
	rb, ok := c.Prepared.(*recordBuf)
	if !ok {
		rb = prepareRecord(c)
	}
	defer rb.release()
	if rb.err != nil {
		return rb.err
	}
	return j.appendRecord(rb, c.Item.Version)
}

// PrepareTxn encodes the commit record of a transaction's changes up to
// its version, as Prepare does for one change (ttlstore.Options.
// PrepareCommit). The result is for AppendTxn.
func (j *Journal) PrepareTxn(cs []kv.Change) any {
	return prepareTxnRecord(cs)
}

func prepareTxnRecord(cs []kv.Change) *recordBuf {
	rb := recordBufs.Get().(*recordBuf)
	rb.buf.Reset()
	rb.err = nil
	_ = rb.enc.EncodeArrayLen(commitFields)
	_ = rb.enc.EncodeUint(opCommit)
	_ = rb.enc.EncodeArrayLen(len(cs))
	for _, c := range cs {
		op := journalOp(c.Op)
		if op == 0 {
			rb.err = fmt.Errorf("journal: a transaction cannot record a change of kind %v", c.Op)
			break
		}
		it := c.Item
		if c.Op == kv.OpDelete {
			it.Value, it.Owner, it.Expires = nil, "", 0
		}
		_ = rb.enc.EncodeArrayLen(changeFields)
		_ = rb.enc.EncodeUint(op)
		if rb.err = encodeItemHead(rb.enc, &rb.buf, it); rb.err != nil {
			break
		}
	}
	if rb.err == nil && rb.buf.Len() > MaxRecord-16 {
		rb.err = fmt.Errorf("journal: a transaction of %d changes takes %d bytes, over the %d of a record",
			len(cs), rb.buf.Len(), MaxRecord)
	}
	rb.head = rb.buf.Len()
	rb.crc = crc32.Update(0, castagnoli, rb.buf.Bytes())
	return rb
}

// AppendTxn records the changes of one transaction, which share one
// version, as one commit record (ttlstore.Options.OnCommit), with prepared
// from PrepareTxn when the store has it. Like Append, it returns the sticky
// write error, if any, so the store refuses the whole transaction.
func (j *Journal) AppendTxn(cs []kv.Change, prepared any) error {
	if len(cs) == 0 {
		return nil
	}
	rb, ok := prepared.(*recordBuf)
	if !ok {
		rb = prepareTxnRecord(cs)
	}
	defer rb.release()
	if rb.err != nil {
		return rb.err
	}
	return j.appendRecord(rb, cs[0].Item.Version)
}

// appendRecord finishes rb with version and appends its frame.
func (j *Journal) appendRecord(rb *recordBuf, version uint64) error {
	_ = rb.enc.EncodeUint(version)
	payload := rb.buf.Bytes()
	crc := crc32.Update(rb.crc, castagnoli, payload[rb.head:])
	putFrameHeaderCRC(&rb.hdr, len(payload), crc)

	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	n := int64(FrameHeaderSize + len(payload))
	if j.mm != nil {
		if err := j.mm.write(rb.hdr[:], payload); err != nil {
			// Nothing was copied, but keep refusing until a rotation, as
			// after a failed write: the disk is full or failing.
			j.err = fmt.Errorf("journal write failed: %w", err)
			return j.err
		}
		j.fileSize += n
		j.appended += n
		j.written = j.appended
		return nil
	}
	// One write(2) under mu, so records reach the file whole and in
	// order. It may overlap a Commit's fsync, which covers what was
	// written when it began.
	j.frame = append(append(j.frame[:0], rb.hdr[:]...), payload...)
	if _, err := j.f.Write(j.frame); err != nil {
		// Cut off whatever part reached the file, so the next start does
		// not find a torn record in the middle of the journal.
		_ = j.f.Truncate(j.fileSize)
		j.err = fmt.Errorf("journal write failed: %w", err)
		return j.err
	}
	if cap(j.frame) > 1<<20 {
		j.frame = nil // one huge record's buffer is not kept
	}
	j.fileSize += n
	j.appended += n
	j.written = j.appended
	return nil
}

// recordBuf holds one record from Prepare to Append.
type recordBuf struct {
	buf  bytes.Buffer
	enc  *msgpack.Encoder
	hdr  [FrameHeaderSize]byte
	head int    // bytes before the version
	crc  uint32 // CRC-32C of those
	err  error  // from encoding them
}

// recordBufs keeps recordBufs for reuse, since Append runs for every write.
var recordBufs = sync.Pool{New: func() any {
	rb := new(recordBuf)
	rb.enc = msgpack.NewEncoder(&rb.buf)
	return rb
}}

// release returns rb to the pool, unless a large value made it large.
func (rb *recordBuf) release() {
	if rb.buf.Cap() <= 64<<10 {
		recordBufs.Put(rb)
	}
}

// Commit returns once every record appended before the call is written to
// the OS (SyncEverySec, SyncNo) or fsynced (SyncAlways). It returns the
// write error if that could not be done; the caller must then not
// acknowledge the write.
func (j *Journal) Commit() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	// Append hands every record to the OS before it returns: only
	// SyncAlways has more to do.
	target := j.appended
	for {
		if j.err != nil {
			return j.err
		}
		if j.mode != SyncAlways || j.synced >= target {
			return nil
		}
		if j.fsyncing {
			j.cond.Wait()
			continue
		}
		j.fsyncLocked()
	}
}

// fsyncLocked fsyncs what is written, releasing j.mu during the call so
// that other writers keep appending (the next fsync covers them).
func (j *Journal) fsyncLocked() {
	j.fsyncing = true
	end, f := j.written, j.f
	j.mu.Unlock()
	err := f.Sync()
	j.mu.Lock()
	if err != nil {
		// As in Sync: the kernel may have dropped the dirty pages, so
		// refuse further writes until a rotation.
		j.err = fmt.Errorf("journal fsync failed: %w", err)
	} else {
		j.synced = max(j.synced, end)
	}
	j.fsyncing = false
	j.cond.Broadcast()
}

// drainLocked waits until no Commit is fsyncing.
func (j *Journal) drainLocked() {
	for j.fsyncing {
		j.cond.Wait()
	}
}

// Sync fsyncs what has been written so far. SyncEverySec calls it each
// second from Run; a snapshot calls it through Rotate.
func (j *Journal) Sync() error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	f, target := j.f, j.written
	if j.synced >= target || j.err != nil {
		j.mu.Unlock()
		return nil
	}
	j.mu.Unlock()
	if err := f.Sync(); err != nil {
		// After a failed fsync the kernel may have dropped the dirty pages,
		// so written records may never reach the disk. Refuse further
		// writes, as for a failed write, until a rotation starts a fresh
		// file and the snapshot after it saves what is in memory.
		err = fmt.Errorf("journal fsync failed: %w", err)
		j.mu.Lock()
		if j.err == nil {
			j.err = err
		}
		j.cond.Broadcast()
		j.mu.Unlock()
		return err
	}
	j.mu.Lock()
	j.synced = max(j.synced, target)
	j.mu.Unlock()
	return nil
}

// Run fsyncs once a second in SyncEverySec mode until ctx is done. While
// the journal is stalled for want of disk space, it instead tries once a
// second to start the journal's generation, so that writes are taken again
// soon after space is freed, without a restart. In the other modes it
// returns once the journal is not stalled.
func (j *Journal) Run(ctx context.Context) {
	every := j.runEvery
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if j.mode != SyncEverySec && !j.stalled() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !j.resume() && j.mode == SyncEverySec {
				_ = j.Sync()
			}
		}
	}
}

// Rotate makes the current generation durable, closes it and starts the
// next. It returns the generation that was closed: once a snapshot taken
// after Rotate is in place, that generation and older ones are redundant.
// A successful rotation clears an earlier write error, since the records
// that failed are in memory and the snapshot about to be taken saves them.
//
// A current generation that holds no record yet is kept, and the one
// before it returned: a new one would only leave it behind, empty, each
// time the snapshot after the rotation failed, as on a full disk. Every
// record appended so far is in the older generations, and the snapshot
// covers those. A stalled journal starts its generation instead, or
// fails.
func (j *Journal) Rotate() (uint64, error) {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		if j.closed {
			return 0, j.err
		}
		// Stalled: no record was taken, the older generations hold them all.
		if err := j.resumeLocked(); err != nil {
			return 0, err
		}
		return j.gen - 1, nil
	}
	j.drainLocked()
	if j.err == nil && j.fileSize == int64(len(JournalMagic)) {
		return j.gen - 1, nil
	}
	old, f, mm := j.gen, j.f, j.mm
	if err := f.Sync(); err != nil && j.err == nil {
		return 0, fmt.Errorf("journal fsync: %w", err)
	}
	if err := j.startGeneration(old + 1); err != nil {
		j.f, j.mm = f, mm
		return 0, err
	}
	if mm != nil {
		_ = mm.finish() // synced above; a crash before the cut leaves zeros recovery skips
	}
	f.Close()
	j.err = nil
	j.written = j.appended
	j.synced = j.written
	j.cond.Broadcast()
	return old, nil
}

// RemoveThrough deletes the journal generations up to and including gen.
func (j *Journal) RemoveThrough(gen uint64) error {
	gens, err := journalGenerations(j.path)
	if err != nil {
		return err
	}
	for _, g := range gens {
		if g.gen > gen {
			break
		}
		// Oldest first, stopping at the first failure: removing a newer
		// generation while an older one stays could drop a delete whose
		// key the older one would bring back.
		if err := os.Remove(g.name); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Size returns the bytes in the current generation;
// the saver compares it with the snapshot size to decide when churn alone
// calls for a new snapshot.
func (j *Journal) Size() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.fileSize
}

// Close fsyncs the records written and closes the current file.
func (j *Journal) Close() error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closed = true
	if j.f == nil {
		// Stalled: no file, and nothing was taken that could be pending.
		j.err = errors.New("journal is closed")
		return nil
	}
	j.drainLocked()
	err := j.err
	if serr := j.f.Sync(); err == nil {
		err = serr
	}
	if j.mm != nil {
		if merr := j.mm.finish(); err == nil {
			err = merr
		}
		j.mm = nil
	}
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		j.err = errors.New("journal is closed")
	}
	return err
}
