package persist

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// FrameHeaderSize is the number of bytes in front of every frame payload:
// payload length, payload CRC-32C and header CRC-32C, each a big-endian
// uint32.
const FrameHeaderSize = 12

// MaxRecord is the largest payload a frame may carry. Readers reject larger
// lengths before allocating anything, so a forged or damaged length field
// cannot make them reserve gigabytes; writers refuse to produce frames that a
// reader with the default limit would reject.
const MaxRecord = 16 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrTruncated marks a stream that ends part-way through a frame, or before
// a record the format requires. It is what a crash during a write leaves
// behind, as opposed to damage to bytes that were once written completely.
var ErrTruncated = errors.New("truncated")

// ErrCorrupt marks bytes that are present but wrong: a checksum mismatch, an
// impossible length, or a payload that does not decode.
var ErrCorrupt = errors.New("corrupt")

// RecordError reports a bad frame or record together with where it starts,
// so an operator can inspect the file and a journal can cut a torn tail at
// the last good frame boundary.
type RecordError struct {
	// Offset is the byte offset in the stream of the first byte of the bad
	// frame (for a truncation, where the incomplete part starts).
	Offset int64
	// Err is ErrTruncated, ErrCorrupt or the underlying read error.
	Err error
	// Detail says what is wrong when Err is ErrCorrupt, such as
	// "checksum mismatch".
	Detail string
}

// Error describes the problem in a form meant to be prefixed with the name
// of the file, such as "truncated at byte 1234" or "checksum mismatch in
// record at byte 56".
func (e *RecordError) Error() string {
	switch {
	case e.Err == ErrTruncated:
		return fmt.Sprintf("truncated at byte %d", e.Offset)
	case e.Detail != "":
		return fmt.Sprintf("%s in record at byte %d", e.Detail, e.Offset)
	default:
		return fmt.Sprintf("reading record at byte %d: %v", e.Offset, e.Err)
	}
}

// Unwrap lets callers test for ErrTruncated, ErrCorrupt or an I/O error with
// errors.Is.
func (e *RecordError) Unwrap() error { return e.Err }

func corruptAt(off int64, format string, args ...any) *RecordError {
	return &RecordError{Offset: off, Err: ErrCorrupt, Detail: fmt.Sprintf(format, args...)}
}

// putFrameHeader fills hdr for payload. The header carries its own checksum
// so that a damaged length is reported as corruption instead of sending the
// reader past the end of the file, where it would look like a torn write and
// could be silently cut off by journal recovery.
func putFrameHeader(hdr *[FrameHeaderSize]byte, payload []byte) {
	putFrameHeaderCRC(hdr, len(payload), crc32.Checksum(payload, castagnoli))
}

// putFrameHeaderCRC fills hdr for a payload of n bytes whose CRC-32C is
// already known.
func putFrameHeaderCRC(hdr *[FrameHeaderSize]byte, n int, crc uint32) {
	binary.BigEndian.PutUint32(hdr[0:4], uint32(n))
	binary.BigEndian.PutUint32(hdr[4:8], crc)
	binary.BigEndian.PutUint32(hdr[8:12], crc32.Checksum(hdr[0:8], castagnoli))
}

// FrameWriter appends checksummed, length-prefixed frames to a stream.
// It is not safe for concurrent use.
type FrameWriter struct {
	w   io.Writer
	bw  *bufio.Writer
	hdr [FrameHeaderSize]byte
	buf []byte
	off int64
	err error
}

// NewFrameWriter returns a FrameWriter that writes to w. offset is the number
// of bytes already in the stream (such as a file magic), so that Offset
// matches positions in the file and in reader error messages.
//
// When w is a *bufio.Writer the header and payload are handed to it
// separately, since it coalesces them anyway. Any other writer receives each
// frame in a single Write call, which matters for an append-only journal: a
// crash then tears at most the frame being written.
func NewFrameWriter(w io.Writer, offset int64) *FrameWriter {
	fw := &FrameWriter{w: w, off: offset}
	if bw, ok := w.(*bufio.Writer); ok {
		fw.bw = bw
	}
	return fw
}

// WriteFrame writes payload as one frame. Payloads above MaxRecord are
// refused so that nothing is written that a reader would reject. After a
// write error every later call returns the same error, because the stream
// may hold a partial frame and anything appended would be misaligned.
func (fw *FrameWriter) WriteFrame(payload []byte) error {
	if fw.err != nil {
		return fw.err
	}
	if len(payload) > MaxRecord {
		// Refusing is not a stream error: nothing was written.
		return fmt.Errorf("record of %d bytes is over the %d-byte limit", len(payload), MaxRecord)
	}
	putFrameHeader(&fw.hdr, payload)
	var err error
	if fw.bw != nil {
		if _, err = fw.bw.Write(fw.hdr[:]); err == nil {
			_, err = fw.bw.Write(payload)
		}
	} else {
		fw.buf = append(append(fw.buf[:0], fw.hdr[:]...), payload...)
		_, err = fw.w.Write(fw.buf)
	}
	if err != nil {
		fw.err = err
		return err
	}
	fw.off += int64(FrameHeaderSize + len(payload))
	return nil
}

// Offset returns the stream position after the last frame written,
// including the starting offset given to NewFrameWriter.
func (fw *FrameWriter) Offset() int64 { return fw.off }

// FrameReader reads frames written by FrameWriter, verifying lengths and
// checksums. It is not safe for concurrent use.
type FrameReader struct {
	r     io.Reader
	off   int64
	limit int
	hdr   [FrameHeaderSize]byte
	buf   []byte
	err   error
}

// NewFrameReader returns a FrameReader that reads from r, whose first frame
// starts at byte offset in the underlying file. limit caps the payload
// length the reader will accept; zero or a negative value means MaxRecord.
// A caller that knows tighter bounds (such as the largest key and value the
// server accepts) can pass them to reject damage sooner.
func NewFrameReader(r io.Reader, offset int64, limit int) *FrameReader {
	if limit <= 0 || limit > MaxRecord {
		limit = MaxRecord
	}
	return &FrameReader{r: r, off: offset, limit: limit}
}

// ReadFrame returns the next payload and the offset at which its frame
// starts. The payload is only valid until the next call, because the buffer
// is reused to avoid an allocation per record.
//
// At a clean end of stream, exactly on a frame boundary, it returns io.EOF.
// Otherwise a failure is a *RecordError wrapping ErrTruncated (the stream
// ends inside the frame), ErrCorrupt (checksum or length is wrong) or the
// read error. Errors are sticky, since the position in the stream is no
// longer known to be a frame boundary.
func (fr *FrameReader) ReadFrame() (payload []byte, offset int64, err error) {
	if fr.err != nil {
		return nil, fr.off, fr.err
	}
	payload, err = fr.readFrame()
	if err != nil {
		fr.err = err
		return nil, fr.off, err
	}
	offset = fr.off
	fr.off += int64(FrameHeaderSize + len(payload))
	return payload, offset, nil
}

func (fr *FrameReader) readFrame() ([]byte, error) {
	start := fr.off
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fr.readErr(err)
	}
	if crc32.Checksum(fr.hdr[0:8], castagnoli) != binary.BigEndian.Uint32(fr.hdr[8:12]) {
		return nil, corruptAt(start, "header checksum mismatch")
	}
	n := binary.BigEndian.Uint32(fr.hdr[0:4])
	if uint64(n) > uint64(fr.limit) {
		return nil, corruptAt(start, "length %d over the %d-byte limit", n, fr.limit)
	}
	if err := fr.fill(int(n)); err != nil {
		return nil, fr.readErr(err)
	}
	if crc32.Checksum(fr.buf, castagnoli) != binary.BigEndian.Uint32(fr.hdr[4:8]) {
		return nil, corruptAt(start, "checksum mismatch")
	}
	return fr.buf, nil
}

func (fr *FrameReader) readErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = ErrTruncated
	}
	return &RecordError{Offset: fr.off, Err: err}
}

// fill reads n bytes into fr.buf. When the buffer has to grow it grows in
// steps no larger than what has already arrived, so a length that is within
// the limit but longer than the rest of the stream costs memory in proportion
// to the bytes actually present rather than to the claimed length.
func (fr *FrameReader) fill(n int) error {
	if n <= cap(fr.buf) {
		fr.buf = fr.buf[:n]
		_, err := io.ReadFull(fr.r, fr.buf)
		return err
	}
	const minStep = 64 << 10
	fr.buf = fr.buf[:0]
	for len(fr.buf) < n {
		have := len(fr.buf)
		step := min(n-have, max(have, minStep))
		if cap(fr.buf) < have+step {
			grown := make([]byte, have, have+step)
			copy(grown, fr.buf)
			fr.buf = grown
		}
		m, err := io.ReadFull(fr.r, fr.buf[have:have+step])
		fr.buf = fr.buf[:have+m]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// Offset returns the stream position of the next frame, which after an
// error is the start of the bad frame: the length of the valid prefix.
func (fr *FrameReader) Offset() int64 { return fr.off }
