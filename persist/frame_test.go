package persist

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func framed(t testing.TB, offset int64, payloads ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw := NewFrameWriter(&buf, offset)
	for _, p := range payloads {
		require.NoError(t, fw.WriteFrame(p))
	}
	require.Equal(t, offset+int64(buf.Len()), fw.Offset())
	return buf.Bytes()
}

func TestFrameRoundTrip(t *testing.T) {
	payloads := [][]byte{[]byte("hello"), {}, bytes.Repeat([]byte{0xAB}, 100_000), []byte("x")}
	data := framed(t, 8, payloads...)

	fr := NewFrameReader(bytes.NewReader(data), 8, 0)
	want := int64(8)
	for _, p := range payloads {
		got, off, err := fr.ReadFrame()
		require.NoError(t, err)
		assert.Equal(t, want, off)
		assert.Equal(t, len(p), len(got))
		assert.True(t, bytes.Equal(p, got))
		want += int64(FrameHeaderSize + len(p))
	}
	_, _, err := fr.ReadFrame()
	assert.Equal(t, io.EOF, err, "a clean end on a frame boundary is plain io.EOF")
	assert.Equal(t, want, fr.Offset())
}

func TestFrameWriterBufioAndPlainAgree(t *testing.T) {
	payloads := [][]byte{[]byte("a"), {}, []byte("longer payload")}
	plain := framed(t, 0, payloads...)

	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	fw := NewFrameWriter(bw, 0)
	for _, p := range payloads {
		require.NoError(t, fw.WriteFrame(p))
	}
	require.NoError(t, bw.Flush())
	assert.Equal(t, plain, buf.Bytes())
}

// countingWriter records how many Write calls it received.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

func TestFrameWriterOneWritePerFrame(t *testing.T) {
	var w countingWriter
	fw := NewFrameWriter(&w, 0)
	for range 3 {
		require.NoError(t, fw.WriteFrame([]byte("payload")))
	}
	assert.Equal(t, 3, w.writes)
}

type failingWriter struct{ after int }

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after <= 0 {
		return 0, errDiskFull
	}
	w.after--
	return len(p), nil
}

func TestFrameWriterErrorIsSticky(t *testing.T) {
	w := &failingWriter{after: 1}
	fw := NewFrameWriter(w, 0)
	require.NoError(t, fw.WriteFrame([]byte("ok")))
	require.ErrorIs(t, fw.WriteFrame([]byte("fails")), errDiskFull)
	w.after = 100
	require.ErrorIs(t, fw.WriteFrame([]byte("still fails")), errDiskFull,
		"after a failed write the stream may be misaligned")
	assert.Equal(t, int64(FrameHeaderSize+2), fw.Offset())
}

func TestFrameWriterRefusesOversize(t *testing.T) {
	var buf bytes.Buffer
	fw := NewFrameWriter(&buf, 0)
	require.Error(t, fw.WriteFrame(make([]byte, MaxRecord+1)))
	assert.Zero(t, buf.Len())
	require.NoError(t, fw.WriteFrame([]byte("fine")), "refusing is not a stream error")
}

func TestFrameTruncatedAtEveryByte(t *testing.T) {
	data := framed(t, 8, []byte("first"), []byte("second!"))
	second := int64(8 + FrameHeaderSize + len("first"))
	for cut := 0; cut < len(data); cut++ {
		fr := NewFrameReader(bytes.NewReader(data[:cut]), 8, 0)
		var err error
		for err == nil {
			_, _, err = fr.ReadFrame()
		}
		if cut == 0 || int64(cut)+8 == second {
			assert.Equal(t, io.EOF, err, "cut %d is a frame boundary", cut)
			continue
		}
		var re *RecordError
		require.ErrorAs(t, err, &re, "cut %d", cut)
		assert.ErrorIs(t, err, ErrTruncated, "cut %d", cut)
		wantOff := int64(8)
		if int64(cut)+8 > second {
			wantOff = second
		}
		assert.Equal(t, wantOff, re.Offset, "cut %d", cut)
		assert.Equal(t, wantOff, fr.Offset(), "cut %d", cut)
	}
}

func TestFrameFlippedByteIsChecksumError(t *testing.T) {
	data := framed(t, 0, []byte("first"), []byte("second"))
	second := int64(FrameHeaderSize + len("first"))
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 0x10
		fr := NewFrameReader(bytes.NewReader(bad), 0, 0)
		var err error
		for err == nil {
			_, _, err = fr.ReadFrame()
		}
		require.ErrorIs(t, err, ErrCorrupt, "byte %d", i)
		assert.NotErrorIs(t, err, ErrTruncated, "byte %d", i)
		want := int64(0)
		if int64(i) >= second {
			want = second
		}
		assert.Contains(t, err.Error(), "checksum mismatch", "byte %d", i)
		assert.Equal(t, want, err.(*RecordError).Offset, "byte %d", i)
	}
}

// forgedHeader returns a frame header with a valid header checksum that
// claims n payload bytes: what an attacker, not bit rot, would produce.
func forgedHeader(n uint32) []byte {
	var hdr [FrameHeaderSize]byte
	binary.BigEndian.PutUint32(hdr[0:4], n)
	binary.BigEndian.PutUint32(hdr[8:12], crc32.Checksum(hdr[0:8], castagnoli))
	return hdr[:]
}

// countingReader counts bytes handed out, to prove a frame was rejected
// before its payload was read.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestFrameForgedLengthOverLimit(t *testing.T) {
	for _, n := range []uint32{MaxRecord + 1, 1 << 31, 0xFFFFFFFF} {
		data := append(forgedHeader(n), make([]byte, 1000)...)
		cr := &countingReader{r: bytes.NewReader(data)}
		fr := NewFrameReader(cr, 0, 0)
		_, _, err := fr.ReadFrame()
		require.ErrorIs(t, err, ErrCorrupt)
		assert.Contains(t, err.Error(), "limit")
		assert.Equal(t, FrameHeaderSize, cr.n, "payload must not be read")
	}
	// A caller-supplied limit is honoured too.
	data := append(forgedHeader(101), make([]byte, 101)...)
	_, _, err := NewFrameReader(bytes.NewReader(data), 0, 100).ReadFrame()
	require.ErrorIs(t, err, ErrCorrupt)
}

func TestFrameForgedLengthWithinLimitAllocatesLittle(t *testing.T) {
	// MaxRecord claimed, 10 bytes present: the reader must not reserve 16 MiB.
	data := append(forgedHeader(MaxRecord), make([]byte, 10)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 10 {
		_, _, err := NewFrameReader(bytes.NewReader(data), 0, 0).ReadFrame()
		require.ErrorIs(t, err, ErrTruncated)
	}
	runtime.ReadMemStats(&after)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(4<<20))
}

func TestFrameReaderReusesBuffer(t *testing.T) {
	data := framed(t, 0, []byte("aaaa"), []byte("bbbb"))
	fr := NewFrameReader(bytes.NewReader(data), 0, 0)
	p1, _, err := fr.ReadFrame()
	require.NoError(t, err)
	p2, _, err := fr.ReadFrame()
	require.NoError(t, err)
	assert.Equal(t, &p1[0], &p2[0], "the payload buffer is reused between frames")
}

func TestFrameReaderErrorIsSticky(t *testing.T) {
	data := framed(t, 0, []byte("good"), []byte("bad"))
	data[len(data)-1] ^= 1
	data = append(data, framed(t, 0, []byte("unreachable"))...)
	fr := NewFrameReader(bytes.NewReader(data), 0, 0)
	_, _, err := fr.ReadFrame()
	require.NoError(t, err)
	_, _, err1 := fr.ReadFrame()
	_, _, err2 := fr.ReadFrame()
	require.ErrorIs(t, err1, ErrCorrupt)
	assert.Equal(t, err1, err2)
}

func TestFrameReaderReadError(t *testing.T) {
	data := framed(t, 0, []byte("payload"))
	r := io.MultiReader(bytes.NewReader(data[:FrameHeaderSize+2]), &failingReader{})
	_, _, err := NewFrameReader(r, 0, 0).ReadFrame()
	require.ErrorIs(t, err, errDiskFull)
	assert.NotErrorIs(t, err, ErrTruncated)
	assert.Contains(t, err.Error(), "at byte 0")
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errDiskFull }
