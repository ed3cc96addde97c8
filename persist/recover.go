package persist

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// Restorer is what recovery loads into; *ttlstore.Store implements it.
// Restore and RestoreDelete must be idempotent by version (a record only
// takes effect over an older version), which is what makes replaying a
// journal on top of a newer snapshot safe.
type Restorer interface {
	Restore(kv.Item)
	RestoreDelete(key string, version uint64)
	AdvanceVersion(uint64)
}

// RecoverStats describes a recovery.
type RecoverStats struct {
	SnapshotKeys   int
	JournalFiles   int
	JournalRecords int
	// TornTails counts journal files whose incomplete last record was cut.
	TornTails int
	// CorruptTails counts journal files whose last record was whole but
	// failed its checksum, and was cut (see journalTail).
	CorruptTails int
	// CutAside lists the files that hold what followed a hole of
	// unwritten pages in the newest journal (see journalHole): the journal
	// is cut at the hole and the bytes after it are kept there.
	CutAside []string
	// MovedAside lists the files that --repair renamed out of the way:
	// damaged ones, and all of them when journal generations are missing.
	MovedAside []string
	// LastGeneration is the highest journal generation found, or covered
	// by the snapshot if that is higher; OpenJournalAfter starts above it.
	LastGeneration uint64
	Duration       time.Duration
}

// RepairError is a refusal to start that recovery with repair set gets
// past. The wording of how to ask for that (a flag, a field) is the
// caller's.
type RepairError struct {
	Err error
	// Repair says what a recovery with repair set does instead, as a
	// phrase that follows "to".
	Repair string
}

func (e *RepairError) Error() string { return e.Err.Error() }

func (e *RepairError) Unwrap() error { return e.Err }

// Recover loads the snapshot at path and replays the journal generations
// beside it, oldest first.
//
// A journal that ends inside a record (a write torn by a crash) is cut back
// to its last whole record and recovery goes on: under SyncAlways that
// record was never acknowledged. So is one whose last record is whole but
// fails its checksum, with only preallocated zeros after it (see
// journalTail). In the newest journal, a record that runs into a page of
// zeros (a page a power cut left unwritten, see journalHole) is cut the
// same way, and the bytes from it to the end are kept in a file beside
// the journal (RecoverStats.CutAside). Any other
// damage, in a journal or in the snapshot, stops recovery with an error
// naming the file and byte offset, unless repair is set: then the records
// before the damage are kept, the damaged file is renamed aside (never
// deleted) and recovery goes on. After a repair the caller should write a
// snapshot at once, since the kept records now live only in memory.
//
// Journal generations must also follow on from each other and from the
// snapshot: with a snapshot that covers generation k, the oldest journal
// file must be k+1 or older (older ones are left when removing them after
// a snapshot failed part-way; they must then reach up to k), and with no
// snapshot it must be generation 1, the first of a new data directory.
// With no journal file at all nothing is missing. A missing generation,
// or a missing snapshot, would lose the keys written in it, so recovery
// stops with an error naming what is missing before it changes any file.
// With repair it loads what is there, leaves every journal file whole (no
// torn tail is cut) and renames the snapshot and the journal files aside,
// so that the snapshot written next neither replaces nor deletes them.
func Recover(path string, into Restorer, repair bool, log *slog.Logger) (RecoverStats, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	// Loading allocates what it keeps and almost no garbage, so collecting
	// during it only re-marks a growing heap over and over (a third of
	// the load time for a million keys). The collector is paused for the
	// load; a memory limit set by the process still applies.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	pipe := newPipeline(into)
	st, err := recoverInto(path, pipe, repair, log)
	pipe.close() // every record is applied before the caller serves
	st.Duration = time.Since(start)
	return st, err
}

func recoverInto(path string, into *pipeline, repair bool, log *slog.Logger) (RecoverStats, error) {
	var st RecoverStats
	snap, err := ReadFile(path, func(it kv.Item) error {
		into.Restore(it)
		return nil
	})
	st.SnapshotKeys = snap.Keys
	loaded := err == nil
	// What the journal must follow on from; see missingGenerations.
	anchor := snapshotAnchor{path: path, present: true, covered: snap.Covered, known: snap.FormatVersion >= 2}
	switch {
	case err == nil:
		into.AdvanceVersion(snap.MaxVersion)
	case errors.Is(err, fs.ErrNotExist):
		anchor = snapshotAnchor{path: path, known: true}
	case !repair:
		return st, err
	default:
		aside, merr := moveAside(path)
		if merr != nil {
			return st, fmt.Errorf("%v; moving it aside failed: %w", err, merr)
		}
		log.Warn("repair: snapshot damaged; kept the records before the damage and moved the file aside",
			"err", err, "moved_to", aside, "kept", snap.Keys)
		st.MovedAside = append(st.MovedAside, aside)
	}

	gens, err := journalGenerations(path)
	if err != nil {
		return st, err
	}
	st.LastGeneration = snap.Covered
	if len(gens) > 0 {
		st.LastGeneration = max(st.LastGeneration, gens[len(gens)-1].gen)
	}
	missing := missingGenerations(anchor, gens)
	if missing != "" && !repair {
		return st, &RepairError{Err: errors.New(missing), Repair: "start from what is there and keep every file, renamed aside"}
	}
	// Files that a repair moves aside whole are not cut: their bytes are
	// kept as they are for whoever looks into what went missing.
	keepWhole := missing != ""
	movedDamaged := make([]bool, len(gens))
	for i, g := range gens {
		n, err := replayJournal(g.name, into)
		st.JournalFiles++
		st.JournalRecords += n
		var re *RecordError
		tail, flipAt := tailDamaged, int64(-1)
		if errors.As(err, &re) && (errors.Is(err, ErrTruncated) || errors.Is(err, ErrCorrupt)) {
			if errors.Is(err, ErrTruncated) {
				tail = tailTorn // ends inside a frame: a write(2) cut short
			} else if re.Offset >= int64(len(JournalMagic)) {
				var terr error
				if tail, flipAt, terr = journalTail(g.name, re); terr != nil {
					return st, fmt.Errorf("journal %s: %w", g.name, terr)
				}
			}
			if tail == tailDamaged && errors.Is(err, ErrCorrupt) && i == len(gens)-1 {
				// Only the newest generation can have unwritten pages:
				// rotation fsyncs a generation before starting the next.
				hole, herr := journalHole(g.name, re.Offset)
				if herr != nil {
					return st, fmt.Errorf("journal %s: %w", g.name, herr)
				}
				if hole {
					tail = tailHole
					if !keepWhole {
						aside, cerr := copyTailAside(g.name, re.Offset)
						if cerr != nil {
							return st, fmt.Errorf("journal %s: keeping the bytes after byte %d: %w", g.name, re.Offset, cerr)
						}
						st.CutAside = append(st.CutAside, aside)
					}
				}
			}
			if tail != tailDamaged && !keepWhole {
				if terr := os.Truncate(g.name, re.Offset); terr != nil {
					return st, fmt.Errorf("journal %s: cutting the tail at byte %d: %w", g.name, re.Offset, terr)
				}
			}
		}
		// What the log says was done with a tail that is not damage.
		done := func(cut string) string {
			if keepWhole {
				return "kept the records before it and left the file whole, to be moved aside"
			}
			return cut
		}
		switch {
		case err == nil:
		case tail == tailSpare:
			log.Debug("journal ends in preallocated space; cut it after the last record",
				"file", g.name, "offset", re.Offset, "records", n)
		case tail == tailTorn:
			log.Warn("journal ended inside a record (torn write); "+done("cut it at the last whole record"),
				"file", g.name, "offset", re.Offset, "records", n)
			if !keepWhole {
				st.TornTails++
			}
		case tail == tailCorrupt:
			args := []any{"file", g.name, "offset", re.Offset, "records", n}
			if flipAt >= 0 {
				args = append(args, "flipped_bit_in_byte", flipAt)
			}
			log.Warn("journal's last record is whole but fails its checksum, so its bytes changed after it was written "+
				"rather than a crash cutting it short; "+done("cut it before that record"), args...)
			if !keepWhole {
				st.CorruptTails++
			}
		case tail == tailHole && keepWhole:
			log.Warn("journal has a page of zeros where records should be, as a power cut leaves pages that were never written back; "+done(""),
				"file", g.name, "offset", re.Offset, "records", n)
		case tail == tailHole:
			log.Warn("journal has a page of zeros where records should be, as a power cut leaves pages that were never written back; "+
				"cut it there and kept the bytes after it aside",
				"file", g.name, "offset", re.Offset, "records", n, "moved_to", st.CutAside[len(st.CutAside)-1])
		case !repair:
			return st, &RepairError{Err: fmt.Errorf("journal %s: %w", g.name, err), Repair: "keep the records before it and move the file aside"}
		default:
			aside, merr := moveAside(g.name)
			if merr != nil {
				return st, fmt.Errorf("journal %s: %v; moving it aside failed: %w", g.name, err, merr)
			}
			log.Warn("repair: journal damaged; kept the records before the damage and moved the file aside",
				"file", g.name, "err", err, "moved_to", aside, "kept", n)
			st.MovedAside = append(st.MovedAside, aside)
			movedDamaged[i] = true
		}
	}
	if keepWhole {
		// One time stamp for the set, so the files that belong together
		// sort together.
		stamp := time.Now()
		var names []string
		if loaded {
			names = append(names, path)
		}
		for i, g := range gens {
			if !movedDamaged[i] {
				names = append(names, g.name)
			}
		}
		var moved []string
		for _, name := range names {
			aside, merr := renameAside(name, "gap", stamp)
			if merr != nil {
				return st, fmt.Errorf("repair: %s; moving %s aside failed: %w", missing, name, merr)
			}
			moved = append(moved, aside)
		}
		log.Warn("repair: journal generations are missing; loaded what is there and moved the files aside, "+
			"so the snapshot written next neither replaces nor deletes them",
			"problem", missing, "moved_to", strings.Join(moved, ", "))
		st.MovedAside = append(st.MovedAside, moved...)
	}
	return st, nil
}

// snapshotAnchor is what recovery knows of the snapshot that the journal
// generations must follow on from.
type snapshotAnchor struct {
	path    string
	present bool   // the file exists (it may have been moved aside as damaged)
	covered uint64 // the generation it covers, when known
	known   bool   // covered is known: a version 2 header, or no snapshot at all
}

// missingGenerations returns what is missing from the journal generations
// gens, found beside the snapshot anchor, as the start of an error
// message; or "" when they follow on from the snapshot and from each
// other. Only the first thing missing is described.
//
// With no journal file at all nothing is missing: a snapshot copied on
// its own, to restore a backup or to seed a new server, starts as it is.
// Generations the snapshot covers need not be there (a snapshot removes
// them), but those that are must reach up to it: replaying a set without
// the delete that followed it in a missing generation would bring a
// deleted key back.
func missingGenerations(anchor snapshotAnchor, gens []generation) string {
	if len(gens) == 0 {
		return ""
	}
	first, last := gens[0], gens[len(gens)-1]
	if anchor.known {
		k := anchor.covered
		switch {
		case !anchor.present && first.gen > 1:
			return fmt.Sprintf("there is no snapshot %s, but the oldest journal file %s is generation %d, not 1: "+
				"the snapshot that held the keys written before it is missing, so starting would lose them",
				anchor.path, first.name, first.gen)
		case anchor.present && first.gen > k+1:
			return fmt.Sprintf("%s between snapshot %s, which %s, and %s, so starting would lose the keys written in %s",
				generationsMissing(k+1, first.gen-1), anchor.path, coversText(k), first.name, them(k+1, first.gen-1))
		}
	}
	for i := 1; i < len(gens); i++ {
		if a, b := gens[i-1], gens[i]; b.gen != a.gen+1 {
			return fmt.Sprintf("%s between %s and %s, so starting would lose the keys written in %s",
				generationsMissing(a.gen+1, b.gen-1), a.name, b.name, them(a.gen+1, b.gen-1))
		}
	}
	if anchor.present && anchor.known && last.gen < anchor.covered {
		return fmt.Sprintf("%s between %s and snapshot %s, which %s, so starting would bring back keys deleted in %s",
			generationsMissing(last.gen+1, anchor.covered), last.name, anchor.path, coversText(anchor.covered), them(last.gen+1, anchor.covered))
	}
	return ""
}

func generationsMissing(from, to uint64) string {
	if from == to {
		return fmt.Sprintf("journal generation %d is missing", from)
	}
	return fmt.Sprintf("journal generations %d to %d are missing", from, to)
}

func them(from, to uint64) string {
	if from == to {
		return "it"
	}
	return "them"
}

func coversText(k uint64) string {
	if k == 0 {
		return "covers no journal generation"
	}
	return fmt.Sprintf("covers generations up to %d", k)
}

// What follows the last whole record of a journal.
const (
	tailDamaged = iota // bytes that are not a crash's leftovers
	tailSpare          // only zeros: space a mapped journal preallocated
	tailTorn           // a record cut short by a crash, then nothing or zeros
	tailCorrupt        // a whole record failing its checksum, then zeros
	tailHole           // unwritten pages after a power cut, then more bytes
)

// journalTail looks at a journal from the frame that failed its checksum
// (re, ErrCorrupt) to the end of the file, and says whether that is what
// a crash of a mapped journal leaves behind.
//
// A mapped journal (mmapTail) preallocates ahead, so after a crash its last
// record is followed by zeros up to the end of the mapped window, and a
// crash during a copy leaves the start of a record there, header first,
// with zeros after it. So the failing frame is a crash's leftover when it
// is followed by zeros, at least one and nothing else, and its checksum
// fails; and if the frame itself is all zeros nothing was being written.
// Anything else is damage: a frame whose checksum matches but does not
// decode, a failing frame that ends the file (a crash of a write(2)
// journal instead ends inside the frame, which the reader reports as
// ErrTruncated, and a mapped journal that was closed has its zeros cut),
// or anything non-zero after the frame.
//
// Before the zeros, a torn copy and a whole record with changed bytes
// look alike, and both are cut: under --fsync everysec or no, a record
// still in the page cache at a power cut may not be on the disk whole.
// They are told apart, for the log, as well as the bytes allow. A frame
// whose header is incomplete, or whose payload ends in a zero byte, is a
// torn copy (tailTorn): the zeros are the part never copied. A payload
// that ends in a non-zero byte was copied to its end, so it is a whole
// record that changed (tailCorrupt); and so is one where a single flipped
// bit accounts for the checksum mismatch (the returned offset, in the
// file, of the byte that holds it, or -1), whatever its last byte.
// What stays ambiguous: a whole record that ends in a zero byte (a
// version whose low byte is zero) with more than one bit changed is taken
// for a torn copy; and since a large copy may store its last bytes before
// its first ones, a process killed during one can leave a record that is
// taken for a whole one that changed.
func journalTail(name string, re *RecordError) (int, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return tailDamaged, -1, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(io.NewSectionReader(f, re.Offset, 1<<62), ioBufSize)
	var hdr [FrameHeaderSize]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return tailDamaged, -1, err // ErrCorrupt means the header was all there
	}
	zeroHeader := hdr == [FrameHeaderSize]byte{}
	var payload []byte
	if !zeroHeader && crc32.Checksum(hdr[0:8], castagnoli) == binary.BigEndian.Uint32(hdr[8:12]) {
		// A whole header: the payload must fail its checksum.
		length := int64(binary.BigEndian.Uint32(hdr[0:4]))
		if length > MaxRecord {
			return tailDamaged, -1, nil
		}
		payload = make([]byte, length)
		if _, err := io.ReadFull(br, payload); err != nil {
			return tailDamaged, -1, err
		}
		if crc32.Checksum(payload, castagnoli) == binary.BigEndian.Uint32(hdr[4:8]) {
			return tailDamaged, -1, nil // intact, yet it did not decode
		}
	}
	n, zeros, err := zerosToEOF(br)
	if err != nil || !zeros {
		return tailDamaged, -1, err
	}
	switch {
	case zeroHeader:
		return tailSpare, -1, nil
	case n == 0:
		return tailDamaged, -1, nil
	case payload == nil:
		return tailTorn, -1, nil
	}
	if i := flippedBit(payload, binary.BigEndian.Uint32(hdr[4:8])); i >= 0 {
		return tailCorrupt, re.Offset + FrameHeaderSize + int64(i), nil
	}
	if len(payload) > 0 && payload[len(payload)-1] != 0 {
		return tailCorrupt, -1, nil
	}
	return tailTorn, -1, nil
}

// flipSearchLimit bounds the payloads flippedBit searches. A payload of n
// bytes has 8n single-bit errors, each with its own CRC-32C syndrome, so
// damage of another kind matches one by chance with odds of about 8n in
// 2^32: under 1 in 8000 up to this size.
const flipSearchLimit = 64 << 10

// flippedBit returns the index of the byte of payload in which flipping a
// single bit makes its CRC-32C equal want, or -1 if there is none (or the
// payload is over flipSearchLimit).
//
// Without its initial and final inversion a CRC is linear, so the CRC of
// the payload xor the CRC it should have is the bare CRC register of the
// error pattern alone: for a bit in byte i, the table entry of that bit
// carried through the len-1-i zero bytes after it. Walking from the last
// byte back keeps the eight candidates, one per bit, a single step each.
func flippedBit(payload []byte, want uint32) int {
	if len(payload) > flipSearchLimit {
		return -1
	}
	syndrome := crc32.Checksum(payload, castagnoli) ^ want
	if syndrome == 0 {
		return -1
	}
	var reg [8]uint32
	for b := range reg {
		reg[b] = castagnoli[1<<b]
	}
	for i := len(payload) - 1; i >= 0; i-- {
		for b := range reg {
			if reg[b] == syndrome {
				return i
			}
			reg[b] = castagnoli[byte(reg[b])] ^ reg[b]>>8
		}
	}
	return -1
}

// holePage is the unit a power cut can leave unwritten: 4 KiB, the
// smallest page and filesystem block in use.
const holePage = 4096

// journalHole reports whether the record that failed at off shows a page
// the kernel never wrote back before a power cut. With --fsync everysec or
// no, pages dirtied since the last fsync reach the disk in no set order, so
// after a power cut the newest journal can read as zeros in places and
// hold records again after them. Those writes were acknowledged but not
// yet synced, which is the loss those modes accept; recovery cuts the
// journal at the hole instead of refusing to start, and keeps the bytes
// after it aside (copyTailAside).
//
// A flipped bit does not zero a page, so this does not excuse ordinary
// damage. It is a hole when the failing record's header is zeros up to the
// end of its page (the page was written back before the record was copied
// into it), or when a whole 4 KiB page that the record reaches into (as far
// as its length says, or just its header if that is damaged) is zeros. A
// damaged record whose value holds a page of zeros is taken for a hole
// too; its bytes are kept aside all the same.
func journalHole(name string, off int64) (bool, error) {
	f, err := os.Open(name)
	if err != nil {
		return false, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return false, err
	}
	var hdr [FrameHeaderSize]byte
	if _, err := f.ReadAt(hdr[:], off); err != nil {
		return false, nil // ends inside the header: not a hole
	}
	boundary := (off + holePage - 1) &^ (holePage - 1)
	reach := off + FrameHeaderSize // the record's bytes end before reach
	switch {
	case hdr == [FrameHeaderSize]byte{}:
		if boundary > off {
			rest := make([]byte, boundary-off)
			_, err := f.ReadAt(rest, off)
			return err == nil && allZero(rest), nil
		}
		reach = off + 1
	case crc32.Checksum(hdr[0:8], castagnoli) == binary.BigEndian.Uint32(hdr[8:12]):
		if length := int64(binary.BigEndian.Uint32(hdr[0:4])); length <= MaxRecord {
			reach += length
		}
	}
	page := make([]byte, holePage)
	for b := boundary; b < reach && b+holePage <= info.Size(); b += holePage {
		if _, err := f.ReadAt(page, b); err != nil {
			return false, err
		}
		if allZero(page) {
			return true, nil
		}
	}
	return false, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// copyTailAside copies name from off to its end into a new file beside
// it and syncs that file, before the journal is cut at off.
func copyTailAside(name string, off int64) (string, error) {
	src, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer src.Close()
	aside := fmt.Sprintf("%s.cut-%d", name, time.Now().UnixNano())
	dst, err := os.OpenFile(aside, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(dst, io.NewSectionReader(src, off, 1<<62))
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(aside))
	}
	if err != nil {
		os.Remove(aside)
		return "", err
	}
	return aside, nil
}

// zerosToEOF reads r to its end and reports how many bytes it held and
// whether they were all zeros.
func zerosToEOF(r io.Reader) (int64, bool, error) {
	buf := make([]byte, 64<<10)
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if !allZero(buf[:n]) {
			return total, false, nil
		}
		if err == io.EOF {
			return total, true, nil
		}
		if err != nil {
			return total, false, err
		}
	}
}

// moveAside renames a damaged file to a name recovery will not read again.
func moveAside(name string) (string, error) {
	return renameAside(name, "damaged", time.Now())
}

// renameAside renames name to name.<why>-<at in Unix ns>, which recovery
// does not read: journalGenerations skips it and it is not the snapshot.
func renameAside(name, why string, at time.Time) (string, error) {
	aside := fmt.Sprintf("%s.%s-%d", name, why, at.UnixNano())
	return aside, os.Rename(name, aside)
}

// replayJournal applies the records of one journal file and returns how
// many it applied. Errors are *RecordError values carrying the offset of
// the first bad byte.
func replayJournal(name string, into Restorer) (int, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, ioBufSize)
	var magic [len(JournalMagic)]byte
	n, err := io.ReadFull(br, magic[:])
	if string(magic[:n]) != JournalMagic[:n] {
		return 0, corruptAt(0, "not a rendezvous journal (bad magic)")
	}
	if err != nil {
		if n == 0 && err == io.EOF {
			return 0, nil // created, crashed before the magic was written
		}
		if err == io.ErrUnexpectedEOF {
			return 0, &RecordError{Offset: 0, Err: ErrTruncated}
		}
		// A read error is not a torn write: Recover would cut the file.
		return 0, &RecordError{Offset: 0, Err: err}
	}
	return decodeJournal(br, int64(len(JournalMagic)), into)
}

// decodeJournal applies the framed records in r, which starts at byte
// offset off of the file, and returns how many changes it applied (a
// commit record counts each of its changes). A commit record is decoded
// whole before any of it is applied, so a damaged one applies nothing.
func decodeJournal(r io.Reader, off int64, into Restorer) (int, error) {
	fr := NewFrameReader(r, off, MaxRecord)
	var d recordDecoder
	d.dec = msgpack.NewDecoder(&d.r)
	count := 0
	var txn []txnChange
	for {
		payload, at, err := fr.ReadFrame()
		if err == io.EOF {
			return count, nil
		}
		if err != nil {
			return count, err
		}
		fields, err := d.begin(payload, at)
		if err != nil {
			return count, err
		}
		if fields != journalFields && fields != commitFields {
			return count, corruptAt(at, "journal record has %d fields, want %d, or %d for a transaction",
				fields, journalFields, commitFields)
		}
		op, err := d.readUint()
		if err != nil {
			return count, corruptAt(at, "bad journal record: op: %v", err)
		}
		switch {
		case fields == commitFields && op == opCommit:
			if txn, err = d.txn(at, txn[:0]); err != nil {
				return count, err
			}
			for _, c := range txn {
				if c.delete {
					into.RestoreDelete(c.item.Key, c.item.Version)
				} else {
					into.Restore(c.item)
				}
			}
			count += len(txn)
			clear(txn) // the items belong to the store now
			continue
		case fields == commitFields || op == opCommit:
			return count, corruptAt(at, "bad journal record: op %d in a record of %d fields", op, fields)
		}
		it, err := d.item(at)
		if err != nil {
			return count, err
		}
		switch op {
		case 1:
			into.Restore(it)
		case 2:
			into.RestoreDelete(it.Key, it.Version)
		default:
			return count, corruptAt(at, "bad journal record: unknown op %d", op)
		}
		count++
	}
}

// txnChange is one decoded change of a commit record.
type txnChange struct {
	item   kv.Item
	delete bool
}

// txn decodes the rest of a commit record after its op, appending its
// changes, each with the commit's version, to buf.
func (d *recordDecoder) txn(off int64, buf []txnChange) ([]txnChange, error) {
	c, err := d.dec.PeekCode()
	if err != nil || !isArrayCode(c) {
		return buf, corruptAt(off, "bad transaction: changes are not a msgpack array")
	}
	n, err := d.dec.DecodeArrayLen()
	switch {
	case err != nil:
		return buf, corruptAt(off, "bad transaction: cut short")
	case n < 1:
		return buf, corruptAt(off, "bad transaction: no change")
	case n > d.r.Len()/changeFields:
		// Each change takes a byte per field at least; checked before
		// anything is allocated for a forged count.
		return buf, corruptAt(off, "bad transaction: %d changes cannot fit in the record", n)
	}
	seen := make(map[string]struct{}, n)
	for i := range n {
		c, err := d.dec.PeekCode()
		if err != nil || !isArrayCode(c) {
			return buf, corruptAt(off, "bad transaction: change %d is not a msgpack array", i)
		}
		if fields, err := d.dec.DecodeArrayLen(); err != nil || fields != changeFields {
			return buf, corruptAt(off, "bad transaction: change %d does not have %d fields", i, changeFields)
		}
		op, err := d.readUint()
		if err != nil {
			return buf, corruptAt(off, "bad transaction: change %d: op: %v", i, err)
		}
		if op != 1 && op != 2 {
			return buf, corruptAt(off, "bad transaction: change %d: unknown op %d", i, op)
		}
		it, err := d.itemHead(off, "transaction change")
		if err != nil {
			return buf, err
		}
		if _, dup := seen[it.Key]; dup {
			return buf, corruptAt(off, "bad transaction: key %.64q appears twice", it.Key)
		}
		seen[it.Key] = struct{}{}
		buf = append(buf, txnChange{item: it, delete: op == 2})
	}
	version, err := d.readUint()
	if err != nil {
		return buf, corruptAt(off, "bad transaction: version: %v", err)
	}
	if err := d.end(off, "transaction"); err != nil {
		return buf, err
	}
	for i := range buf {
		buf[i].item.Version = version
	}
	return buf, nil
}
