package persist

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
)

// errNoMmap reports that the journal cannot write through a mapping on
// this system or filesystem; it then writes with write(2) instead.
var errNoMmap = errors.New("memory-mapped journal not supported here")

// errNoPopulate reports that pages cannot be faulted in ahead here.
var errNoPopulate = errors.New("prefaulting not supported here")

// mmapWindow is how much of the journal file is mapped, and preallocated,
// at a time. Only the window counts towards the process's resident memory;
// a record larger than it gets a larger window of its own.
const mmapWindow = 4 << 20

// allocateJournal reserves the windows of new journal files; tests make it
// fail to start a journal on a full disk.
var allocateJournal = allocateFile

// mmapTail appends records to a journal file through a shared memory
// mapping of its tail. A store into a shared file mapping lands in the
// kernel's page cache, the same place a write(2) puts data, so a record is
// safe from a crash of the process as soon as it is copied, and no system
// call is made per record: a CPU profile of SETs with the write(2) journal
// showed the per-batch write as about 5% of the server's time, which was
// most of what separated --fsync everysec from running in memory. fsync
// covers pages dirtied through the mapping like written ones.
//
// The window is preallocated (fallocate) before it is mapped, so a full
// disk is reported when the window is taken, before any byte of a record
// is copied, instead of as a SIGBUS on a store into a hole. A crash leaves
// the unused rest of the window as zeros after the last record, which
// recovery recognises (see journalTail).
type mmapTail struct {
	f     *os.File
	data  []byte // the mapped window
	start int64  // file offset of data[0], a multiple of the page size
	pos   int64  // file offset where the next record goes
	page  int64
	// window is mmapWindow; tests shrink it to cross windows often.
	window int64

	// allocate reserves [off, off+n) of f; tests make it fail.
	allocate func(f *os.File, off, n int64) error

	// pf faults pages in ahead of pos, or is nil where the system cannot.
	pf        *prefaulter
	populated int64 // file offset up to which pages were handed to pf
}

// prefaultAhead is how far ahead of the last record pages are faulted in.
// Each fsync write-protects the dirty pages again, those ahead included,
// so a longer lead would mostly be faulted twice.
const prefaultAhead = 256 << 10

// prefaulter faults in pages of the mapped window on its own goroutine.
// The first store into each page of a shared file mapping takes a page
// fault of several microseconds (the filesystem finds or allocates the
// page, zeroes it and marks it dirty). write runs under the journal's
// lock, so every writer of the server used to wait behind each fault;
// faulted in ahead, the pages take only the copy.
type prefaulter struct {
	reqs chan prefaultReq
	done chan struct{}

	// mu is held while a range is faulted in, and by unmap, so a range is
	// never touched after its window is gone and its addresses reused.
	mu  sync.Mutex
	gen atomic.Uint64 // the window's generation, bumped under mu at each unmap
	off atomic.Bool   // set when the kernel cannot prefault
}

type prefaultReq struct {
	gen  uint64
	data []byte
}

func newPrefaulter() *prefaulter {
	pf := &prefaulter{reqs: make(chan prefaultReq, 1), done: make(chan struct{})}
	go pf.run()
	return pf
}

func (pf *prefaulter) run() {
	defer close(pf.done)
	for r := range pf.reqs {
		pf.mu.Lock()
		// Failure only means the faults happen in write instead.
		if r.gen == pf.gen.Load() && errors.Is(populateWrite(r.data), errNoPopulate) {
			pf.off.Store(true)
		}
		pf.mu.Unlock()
	}
}

// unmapping marks every request made so far as stale; the caller holds
// pf.mu until the window is unmapped.
func (pf *prefaulter) unmapping() {
	pf.mu.Lock()
	pf.gen.Add(1)
}

func (pf *prefaulter) stop() {
	close(pf.reqs)
	<-pf.done
}

// ahead asks pf to fault in the pages after pos, when the last request
// is running out. It never blocks: if pf is busy, the writer takes the
// faults itself.
func (m *mmapTail) ahead() {
	if m.pf == nil || m.pos+prefaultAhead/2 <= m.populated || m.pf.off.Load() {
		return
	}
	end := m.start + int64(len(m.data))
	from := max(m.populated, (m.pos+m.page-1)&^(m.page-1))
	to := min(from+prefaultAhead, end)
	if from >= to {
		return
	}
	select {
	case m.pf.reqs <- prefaultReq{gen: m.pf.gen.Load(), data: m.data[from-m.start : to-m.start]}:
		m.populated = to
	default:
	}
}

// write copies a record (its frame header, then its payload) to the end of
// the journal. On error nothing has been copied.
func (m *mmapTail) write(hdr, payload []byte) error {
	n := int64(len(hdr) + len(payload))
	if m.pos+n > m.start+int64(len(m.data)) {
		if err := m.remap(n); err != nil {
			return err
		}
	}
	off := m.pos - m.start
	copy(m.data[off:], hdr)
	copy(m.data[off+int64(len(hdr)):], payload)
	m.pos += n
	m.ahead()
	return nil
}

// remap moves the window so that it starts at the page holding pos and has
// room for n more bytes. The old window stays in place if anything fails.
func (m *mmapTail) remap(n int64) error {
	start := m.pos &^ (m.page - 1)
	size := max(m.window, (m.pos-start+n+m.page-1)&^(m.page-1))
	if err := m.allocate(m.f, start, size); err != nil {
		return err
	}
	data, err := mapFile(m.f, start, size)
	if err != nil {
		return err
	}
	if m.data != nil {
		_ = m.unmap()
	}
	m.data, m.start, m.populated = data, start, start
	return nil
}

// unmap unmaps the window once no prefault is running in it.
func (m *mmapTail) unmap() error {
	if m.pf != nil {
		m.pf.unmapping()
		defer m.pf.mu.Unlock()
	}
	return unmapFile(m.data)
}

// finish unmaps the window and cuts the file at the end of its last
// record, dropping the preallocated rest. The file stays open.
func (m *mmapTail) finish() error {
	var err error
	if m.pf != nil {
		m.pf.stop()
		m.pf = nil
	}
	if m.data != nil {
		err = m.unmap()
		m.data = nil
	}
	if terr := m.f.Truncate(m.pos); err == nil {
		err = terr
	}
	return err
}

// newMmapTail starts appending to f, whose first size bytes are written,
// through a mapping. It returns errNoMmap when the system or the
// filesystem cannot preallocate or map the file.
func newMmapTail(f *os.File, size int64) (*mmapTail, error) {
	m := &mmapTail{f: f, pos: size, page: int64(os.Getpagesize()), window: mmapWindow, allocate: allocateJournal}
	if err := m.remap(0); err != nil {
		return nil, err
	}
	if canPopulate {
		m.pf = newPrefaulter()
	}
	return m, nil
}
