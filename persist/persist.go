// Package persist writes and reads durable snapshots of the store, so that a
// restart does not lose every key.
//
// # File format
//
// A snapshot is the 8-byte magic "RDVSNAP\x00" followed by frames. Every
// frame (see FrameWriter, shared with the journal) is
//
//	uint32 payload length, big-endian
//	uint32 CRC-32C (Castagnoli) of the payload, big-endian
//	uint32 CRC-32C of the preceding 8 header bytes, big-endian
//	payload
//
// The header checksum lets a reader trust a length before acting on it: a
// flipped bit in a length is reported as corruption at that frame instead of
// surfacing later as a bogus truncation or a misaligned read. Lengths above
// MaxRecord (16 MiB) are rejected before anything is allocated.
//
// Each payload is one msgpack array:
//
//	header   [format version (uint, currently 2), created (int, Unix ns),
//	          covered (uint, the journal generation the snapshot covers)]
//	item     [key (str), value (bin), expires (int, Unix ns, 0 = never),
//	          owner (bin, 0 or 32 bytes), version (uint)]
//	trailer  [count (uint), max version (uint)]
//
// The header is always the first record and the trailer always the last;
// in between, items and the trailer are told apart by their number of fields
// (5 and 2). Readers look at the format version before anything else in the
// header, so a later version may change the header's shape freely. The
// header carries no item count: the snapshot is streamed from a store that
// keeps serving, so the count is only known at the end.
//
// Covered is the newest journal generation whose records the snapshot
// holds (Saver rotates the journal to a new generation first), or 0 for
// a snapshot written without a journal. Recovery uses it to notice
// journal generations that are missing between the snapshot and the
// oldest journal file left (see Recover). Version 1 files, whose header
// is [1, created], are still read; their covered generation is unknown.
//
// The trailer exists so that a file cut exactly at a frame boundary is
// detected: without it such a file would decode cleanly, with keys missing.
// Its count must equal the number of items read. Its max version must be at
// least the largest item version; it may be larger so that a later writer can
// record the store's version counter, which can be ahead of every surviving
// key after deletions, without a format change.
package persist

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/rendezvous-kv/rendezvous/kv"
)

// Magic is the first bytes of every snapshot file. The trailing NUL keeps a
// text file that happens to start with the same letters from matching.
const Magic = "RDVSNAP\x00"

// FormatVersion is the snapshot format version this package writes. It
// also reads version 1, which did not record the covered journal
// generation.
const FormatVersion = 2

// ownerLen is the size of a SHA-256 hash, the only non-empty Owner the store
// creates.
const ownerLen = 32

// ioBufSize is large enough that a snapshot of small items costs one write
// system call per few thousand items.
const ioBufSize = 256 << 10

// Field counts double as record types; see the package comment.
const (
	headerFields  = 3
	header1Fields = 2 // format version 1
	itemFields    = 5
	trailerFields = 2
)

// ErrBadMagic means the file does not start with Magic, so it is something
// other than a snapshot and must not be overwritten without a human looking.
var ErrBadMagic = errors.New("not a rendezvous snapshot (bad magic)")

// ErrUnsupportedVersion means the snapshot was written by a newer (or
// unknown) format version. It is wrapped with the version found.
var ErrUnsupportedVersion = errors.New("unsupported snapshot format version")

// Stats describes a snapshot that was written or read, for logs and metrics.
type Stats struct {
	// Keys is the number of items written or read.
	Keys int
	// Bytes is the size of the snapshot, magic and framing included.
	Bytes int64
	// Duration is how long the whole operation took, including fsync for
	// WriteFile.
	Duration time.Duration
	// MaxVersion is the largest item version written, or the trailer's max
	// version when reading (which may be higher; see the package comment).
	MaxVersion uint64
	// Created is when the snapshot was started, as recorded in its header,
	// so a restart can log how old the restored state is.
	Created time.Time
	// FormatVersion is the format version of the file read, or of the one
	// written. It is 0 when reading failed before the header was decoded.
	FormatVersion int
	// Covered is the journal generation the snapshot covers, as recorded
	// in its header (see the package comment); 0 in a version 1 file.
	Covered uint64
}

// Encode writes a snapshot of the items produced by iterate to w.
//
// iterate must call yield once per item and should stop and return yield's
// error if it gets one. Encode does not rely on that: once yield has failed
// the snapshot is abandoned and the first yield error is returned whatever
// iterate returns. An error from iterate itself is returned unchanged.
// Items whose Owner is neither empty nor 32 bytes, or whose key and value
// together exceed MaxRecord, are refused with an error, since writing them
// would produce a file that Decode rejects.
func Encode(w io.Writer, iterate func(yield func(kv.Item) error) error) (Stats, error) {
	return EncodeVersion(w, 0, iterate)
}

// EncodeVersion is Encode that also records version, the store's version
// counter, as the snapshot's max version when it is higher than every item's.
// Without it, deleting the newest keys before a snapshot would let versions
// restart below ones clients have already seen.
func EncodeVersion(w io.Writer, version uint64, iterate func(yield func(kv.Item) error) error) (Stats, error) {
	return EncodeCovering(w, version, 0, iterate)
}

// EncodeCovering is EncodeVersion that also records covered, the newest
// journal generation whose records the items include, so that recovery
// can tell whether the journal generations it finds continue from the
// snapshot.
func EncodeCovering(w io.Writer, version, covered uint64, iterate func(yield func(kv.Item) error) error) (Stats, error) {
	start := time.Now()
	st := Stats{Created: start, MaxVersion: version, FormatVersion: FormatVersion, Covered: covered}
	bw := bufio.NewWriterSize(w, ioBufSize)
	if _, err := bw.WriteString(Magic); err != nil {
		return st, err
	}
	fw := NewFrameWriter(bw, int64(len(Magic)))

	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	// The encoder writes into a bytes.Buffer, which cannot fail, so its
	// errors are ignored here and below.
	_ = enc.EncodeArrayLen(headerFields)
	_ = enc.EncodeUint(FormatVersion)
	_ = enc.EncodeInt(start.UnixNano())
	_ = enc.EncodeUint(covered)
	if err := fw.WriteFrame(buf.Bytes()); err != nil {
		return st, err
	}

	var yieldErr error
	yield := func(it kv.Item) error {
		if yieldErr != nil {
			return yieldErr
		}
		buf.Reset()
		if err := encodeItem(enc, &buf, it); err != nil {
			yieldErr = err
			return err
		}
		if err := fw.WriteFrame(buf.Bytes()); err != nil {
			yieldErr = err
			return err
		}
		st.Keys++
		st.MaxVersion = max(st.MaxVersion, it.Version)
		return nil
	}
	err := iterate(yield)
	if yieldErr != nil {
		return st, yieldErr
	}
	if err != nil {
		return st, err
	}

	buf.Reset()
	_ = enc.EncodeArrayLen(trailerFields)
	_ = enc.EncodeUint(uint64(st.Keys))
	_ = enc.EncodeUint(st.MaxVersion)
	if err := fw.WriteFrame(buf.Bytes()); err != nil {
		return st, err
	}
	if err := bw.Flush(); err != nil {
		return st, err
	}
	st.Bytes = fw.Offset()
	st.Duration = time.Since(start)
	return st, nil
}

func encodeItem(enc *msgpack.Encoder, buf *bytes.Buffer, it kv.Item) error {
	_ = enc.EncodeArrayLen(itemFields)
	return encodeItemFields(enc, buf, it)
}

// encodeItemFields writes the five item fields; a journal record puts its
// operation in front of the same fields.
func encodeItemFields(enc *msgpack.Encoder, buf *bytes.Buffer, it kv.Item) error {
	if err := encodeItemHead(enc, buf, it); err != nil {
		return err
	}
	_ = enc.EncodeUint(it.Version)
	return nil
}

// encodeItemHead writes the item fields before the version, which comes
// last so that a journal record can be encoded before its version is known.
func encodeItemHead(enc *msgpack.Encoder, buf *bytes.Buffer, it kv.Item) error {
	if len(it.Owner) != 0 && len(it.Owner) != ownerLen {
		return fmt.Errorf("key %.64q: owner is %d bytes, want 0 or %d", it.Key, len(it.Owner), ownerLen)
	}
	// Checked before encoding so an absurd value is not copied first. The
	// slack covers the msgpack field headers.
	if len(it.Key)+len(it.Value)+len(it.Owner) > MaxRecord-64 {
		return fmt.Errorf("key %.64q: key and value are too large for a snapshot record", it.Key)
	}
	value := it.Value
	if value == nil {
		// EncodeBytes writes msgpack nil for a nil slice; an empty bin keeps
		// one encoding per value and lets the decoder reject nil.
		value = []byte{}
	}
	_ = enc.EncodeString(it.Key)
	_ = enc.EncodeBytes(value)
	_ = enc.EncodeInt(it.Expires)
	_ = enc.EncodeBytesLen(len(it.Owner))
	buf.WriteString(string(it.Owner))
	return nil
}

// Decode reads a snapshot from r, calling fn for each item in file order.
//
// Items are handed to fn before the trailer has been checked, so a caller
// must treat everything it received as void when Decode returns an error,
// for example by loading into a fresh store and keeping it only on success.
// Each item's Key, Value and Owner are freshly allocated; Value is never nil.
//
// Decode never panics on malformed input, and a forged length never makes it
// allocate more than MaxRecord (in practice, not much more than the input's
// size). Errors wrap ErrBadMagic, ErrUnsupportedVersion, ErrTruncated or
// ErrCorrupt (the last two as a *RecordError carrying the byte offset), a
// read error, or whatever fn returned, which is passed through unchanged.
func Decode(r io.Reader, fn func(kv.Item) error) (Stats, error) {
	start := time.Now()
	var st Stats
	// Frames are read in small pieces, so unbuffered input is wrapped; input
	// that is already in memory or buffered is used as is, which keeps
	// decoding small inputs (and fuzzing) cheap.
	br, ok := r.(byteReader)
	if !ok {
		br = bufio.NewReaderSize(r, ioBufSize)
	}

	var magic [len(Magic)]byte
	n, err := io.ReadFull(br, magic[:])
	if string(magic[:n]) != Magic[:n] {
		return st, ErrBadMagic
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		// A prefix of the magic: most likely a write that never finished.
		return st, &RecordError{Offset: 0, Err: ErrTruncated}
	}
	if err != nil {
		return st, err
	}

	fr := NewFrameReader(br, int64(len(Magic)), MaxRecord)
	var d recordDecoder
	d.dec = msgpack.NewDecoder(&d.r)

	payload, off, err := fr.ReadFrame()
	if err != nil {
		return st, eofIsTruncation(err, fr)
	}
	if err := d.header(payload, off, &st); err != nil {
		return st, err
	}

	var maxItemVersion uint64
	for {
		payload, off, err = fr.ReadFrame()
		if err != nil {
			return st, eofIsTruncation(err, fr)
		}
		fields, err := d.begin(payload, off)
		if err != nil {
			return st, err
		}
		if fields == trailerFields {
			break
		}
		if fields != itemFields {
			return st, corruptAt(off, "record has %d fields, want %d for an item or %d for the trailer",
				fields, itemFields, trailerFields)
		}
		it, err := d.item(off)
		if err != nil {
			return st, err
		}
		maxItemVersion = max(maxItemVersion, it.Version)
		st.Keys++
		if err := fn(it); err != nil {
			return st, err
		}
	}

	count, maxVersion, err := d.trailer(off)
	if err != nil {
		return st, err
	}
	if count != uint64(st.Keys) {
		return st, corruptAt(off, "trailer count %d, but %d items were read", count, st.Keys)
	}
	if maxVersion < maxItemVersion {
		return st, corruptAt(off, "trailer max version %d, but an item has version %d", maxVersion, maxItemVersion)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		if err != nil {
			return st, err
		}
		return st, corruptAt(fr.Offset(), "unexpected data after the trailer")
	}
	st.MaxVersion = maxVersion
	st.Bytes = fr.Offset()
	st.Duration = time.Since(start)
	return st, nil
}

type byteReader interface {
	io.Reader
	io.ByteReader
}

// eofIsTruncation turns a clean end of stream, which is only legal after the
// trailer, into a truncation at the current offset.
func eofIsTruncation(err error, fr *FrameReader) error {
	if err == io.EOF {
		return &RecordError{Offset: fr.Offset(), Err: ErrTruncated}
	}
	return err
}

// recordDecoder decodes record payloads by hand rather than with reflection,
// both for speed and because every type and length has to be checked against
// hostile input: the msgpack library would otherwise happily turn nil into
// zero, or allocate a claimed 4 GiB string before noticing the data is short.
// Strings and byte slices are therefore sliced out of the payload after
// checking their length against what is left, and copied.
type recordDecoder struct {
	r       bytes.Reader
	dec     *msgpack.Decoder
	payload []byte
}

// begin starts decoding payload and returns its number of fields.
func (d *recordDecoder) begin(payload []byte, off int64) (int, error) {
	d.payload = payload
	d.r.Reset(payload)
	c, err := d.dec.PeekCode()
	if err != nil || !isArrayCode(c) {
		return 0, corruptAt(off, "record is not a msgpack array")
	}
	n, err := d.dec.DecodeArrayLen()
	if err != nil {
		return 0, corruptAt(off, "record is cut short")
	}
	return n, nil
}

// end checks that the whole payload was consumed, so that no two byte
// sequences decode to the same record unnoticed.
func (d *recordDecoder) end(off int64, what string) error {
	if n := d.r.Len(); n != 0 {
		return corruptAt(off, "%d stray bytes after the %s", n, what)
	}
	return nil
}

// header decodes the header record into st's Created, FormatVersion and
// Covered.
func (d *recordDecoder) header(payload []byte, off int64, st *Stats) error {
	n, err := d.begin(payload, off)
	if err != nil {
		return err
	}
	if n < 1 {
		return corruptAt(off, "bad header: no format version")
	}
	version, err := d.readUint()
	if err != nil {
		return corruptAt(off, "bad header: format version: %v", err)
	}
	want := headerFields
	switch version {
	case FormatVersion:
	case 1:
		want = header1Fields
	default:
		return fmt.Errorf("%w %d", ErrUnsupportedVersion, version)
	}
	if n != want {
		return corruptAt(off, "bad header: %d fields, want %d", n, want)
	}
	created, err := d.readInt()
	if err != nil {
		return corruptAt(off, "bad header: created: %v", err)
	}
	var covered uint64
	if version >= 2 {
		if covered, err = d.readUint(); err != nil {
			return corruptAt(off, "bad header: covered generation: %v", err)
		}
	}
	if err := d.end(off, "header"); err != nil {
		return err
	}
	st.Created, st.FormatVersion, st.Covered = time.Unix(0, created), int(version), covered
	return nil
}

// item decodes the fields of an item record after begin.
func (d *recordDecoder) item(off int64) (kv.Item, error) {
	it, err := d.itemHead(off, "item")
	if err != nil {
		return it, err
	}
	if it.Version, err = d.readUint(); err != nil {
		return it, corruptAt(off, "bad item: version: %v", err)
	}
	if err := d.end(off, "item"); err != nil {
		return it, err
	}
	return it, nil
}

// itemHead decodes the item fields before the version; what names the
// record in errors.
func (d *recordDecoder) itemHead(off int64, what string) (kv.Item, error) {
	var it kv.Item
	key, err := d.readBytes(msgpcode.IsString, "string")
	if err != nil {
		return it, corruptAt(off, "bad %s: key: %v", what, err)
	}
	value, err := d.readBytes(msgpcode.IsBin, "binary")
	if err != nil {
		return it, corruptAt(off, "bad %s: value: %v", what, err)
	}
	if it.Expires, err = d.readInt(); err != nil {
		return it, corruptAt(off, "bad %s: expires: %v", what, err)
	}
	owner, err := d.readBytes(msgpcode.IsBin, "binary")
	if err != nil {
		return it, corruptAt(off, "bad %s: owner: %v", what, err)
	}
	if len(owner) != 0 && len(owner) != ownerLen {
		return it, corruptAt(off, "bad %s: owner is %d bytes, want 0 or %d", what, len(owner), ownerLen)
	}
	// Key and value go into one allocation, the key first: the store keeps
	// such an item's memory as it is (see ttlstore.Store.Restore) instead
	// of copying both into a new one, which made a 1M-key start-up a
	// third slower. The value is never nil, unlike bytes.Clone of nil.
	buf := make([]byte, len(key)+len(value))
	copy(buf, key)
	copy(buf[len(key):], value)
	if len(key) > 0 {
		it.Key = unsafe.String(&buf[0], len(key))
	}
	it.Value = buf[len(key):len(buf):len(buf)]
	it.Owner = kv.Owner(owner)
	return it, nil
}

// trailer decodes the fields of the trailer record after begin.
func (d *recordDecoder) trailer(off int64) (count, maxVersion uint64, err error) {
	if count, err = d.readUint(); err != nil {
		return 0, 0, corruptAt(off, "bad trailer: count: %v", err)
	}
	if maxVersion, err = d.readUint(); err != nil {
		return 0, 0, corruptAt(off, "bad trailer: max version: %v", err)
	}
	return count, maxVersion, d.end(off, "trailer")
}

var (
	errShort   = errors.New("record is cut short")
	errNotInt  = errors.New("not an integer")
	errRange   = errors.New("integer out of range")
	errNoBytes = errors.New("length runs past the end of the record")
)

// readUint decodes a non-negative integer in any msgpack integer encoding.
func (d *recordDecoder) readUint() (uint64, error) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return 0, errShort
	}
	if !isIntCode(c) {
		return 0, errNotInt
	}
	if c == msgpcode.Uint64 {
		v, err := d.dec.DecodeUint64()
		if err != nil {
			return 0, errShort
		}
		return v, nil
	}
	v, err := d.dec.DecodeInt64()
	if err != nil {
		return 0, errShort
	}
	if v < 0 {
		return 0, errRange
	}
	return uint64(v), nil
}

// readInt decodes an integer that fits in an int64.
func (d *recordDecoder) readInt() (int64, error) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return 0, errShort
	}
	if !isIntCode(c) {
		return 0, errNotInt
	}
	if c == msgpcode.Uint64 {
		v, err := d.dec.DecodeUint64()
		if err != nil {
			return 0, errShort
		}
		if v > math.MaxInt64 {
			return 0, errRange
		}
		return int64(v), nil
	}
	v, err := d.dec.DecodeInt64()
	if err != nil {
		return 0, errShort
	}
	return v, nil
}

// readBytes returns the next str or bin field as a slice of the payload, which
// the caller must copy before the next frame is read.
func (d *recordDecoder) readBytes(ok func(byte) bool, kind string) ([]byte, error) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return nil, errShort
	}
	if !ok(c) {
		return nil, fmt.Errorf("not a msgpack %s", kind)
	}
	n, err := d.dec.DecodeBytesLen()
	if err != nil {
		return nil, errShort
	}
	if n < 0 || n > d.r.Len() {
		return nil, errNoBytes
	}
	start := len(d.payload) - d.r.Len()
	if _, err := d.r.Seek(int64(n), io.SeekCurrent); err != nil {
		return nil, err
	}
	return d.payload[start : start+n : start+n], nil
}

func isArrayCode(c byte) bool {
	return msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32
}

func isIntCode(c byte) bool {
	if msgpcode.IsFixedNum(c) {
		return true
	}
	switch c {
	case msgpcode.Uint8, msgpcode.Uint16, msgpcode.Uint32, msgpcode.Uint64,
		msgpcode.Int8, msgpcode.Int16, msgpcode.Int32, msgpcode.Int64:
		return true
	}
	return false
}

// WriteFile writes a snapshot to path atomically, so that a crash or an error
// at any point leaves either the old snapshot or the complete new one.
//
// The snapshot goes to a temporary file (mode 0600, since values may be
// secrets) in the same directory, so the final rename cannot cross file
// systems. The file is fsynced before the rename, because otherwise a crash
// could leave the new name pointing at unwritten data, and the directory is
// fsynced after it, because otherwise the rename itself may not survive. On
// an error before the rename the temporary file is removed and the old file
// is untouched. If only the final directory fsync fails the new snapshot is
// in place but may not be durable, and the error says so.
//
// Concurrent calls for the same path are safe (each uses its own temporary
// file; the last rename wins) but wasteful.
func WriteFile(path string, iterate func(yield func(kv.Item) error) error) (st Stats, err error) {
	return WriteFileVersion(path, 0, iterate)
}

// WriteFileVersion is WriteFile that records the store's version counter as
// EncodeVersion does. It also removes temporary files that an earlier
// process left behind when it died in the middle of a write.
func WriteFileVersion(path string, version uint64, iterate func(yield func(kv.Item) error) error) (st Stats, err error) {
	return WriteFileCovering(path, version, 0, iterate)
}

// WriteFileCovering is WriteFileVersion that also records covered, the
// journal generation the snapshot covers, as EncodeCovering does.
func WriteFileCovering(path string, version, covered uint64, iterate func(yield func(kv.Item) error) error) (st Stats, err error) {
	start := time.Now()
	dir := filepath.Dir(path)
	pattern := "." + filepath.Base(path) + ".tmp-*"
	if stale, _ := filepath.Glob(filepath.Join(dir, pattern)); len(stale) > 0 {
		for _, name := range stale {
			_ = os.Remove(name)
		}
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return st, fmt.Errorf("snapshot %s: %w", path, err)
	}
	tmp := f.Name()
	closed := false
	defer func() {
		if err == nil || tmp == "" {
			return
		}
		if !closed {
			_ = f.Close()
		}
		_ = os.Remove(tmp)
	}()

	if st, err = EncodeCovering(f, version, covered, iterate); err != nil {
		return st, fmt.Errorf("snapshot %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return st, fmt.Errorf("snapshot %s: %w", path, err)
	}
	closed = true
	if err = f.Close(); err != nil {
		return st, fmt.Errorf("snapshot %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return st, fmt.Errorf("snapshot %s: %w", path, err)
	}
	tmp = ""
	if err = syncDir(dir); err != nil {
		return st, fmt.Errorf("snapshot %s: written, but may not survive a crash: %w", path, err)
	}
	st.Duration = time.Since(start)
	return st, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadFile reads the snapshot at path, calling fn for each item as Decode
// does.
//
// A missing file returns an error for which errors.Is(err, fs.ErrNotExist)
// holds, so the caller can start with an empty store; every other problem
// must stop the caller from overwriting the file. Errors name the file, as in
// "snapshot /var/lib/rendezvous.db: truncated at byte 1234".
func ReadFile(path string, fn func(kv.Item) error) (Stats, error) {
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		// The path is already in our prefix; keep only the cause.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return Stats{}, fmt.Errorf("snapshot %s: %w", path, err)
	}
	defer f.Close()
	st, err := Decode(f, fn)
	if err != nil {
		return st, fmt.Errorf("snapshot %s: %w", path, err)
	}
	st.Duration = time.Since(start)
	return st, nil
}
