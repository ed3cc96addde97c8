package persist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rendezvous-kv/rendezvous/ttlstore"
)

// checkDecoded asserts the properties every successful decode must have:
// items are well-formed and survive a second trip through Encode and Decode
// unchanged.
func checkDecoded(t *testing.T, st Stats, items []ttlstore.Item) {
	require.Equal(t, len(items), st.Keys)
	for _, it := range items {
		require.NotNil(t, it.Value)
		require.Contains(t, []int{0, ownerLen}, len(it.Owner))
		require.LessOrEqual(t, it.Version, st.MaxVersion)
	}
	var again []ttlstore.Item
	_, err := Decode(bytes.NewReader(encode(t, items)), collect(&again))
	require.NoError(t, err)
	require.Equal(t, items, again)
}

// classified reports whether err is one of the failures Decode documents,
// so that no malformed input escapes as an unexplained error.
func classified(err error) bool {
	for _, target := range []error{ErrTruncated, ErrCorrupt, ErrBadMagic, ErrUnsupportedVersion} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// fuzzSeeds returns whole snapshots, valid and damaged, for FuzzDecode.
func fuzzSeeds(t testing.TB) [][]byte {
	valid := encode(t, sampleItems()[:4])
	truncated := valid[:len(valid)-5]
	flipped := bytes.Clone(valid)
	flipped[len(valid)/2] ^= 0x20
	huge := append(bytes.Clone(valid[:len(Magic)]), forgedHeader(math.MaxUint32)...)
	withinLimit := append(bytes.Clone(valid[:len(Magic)]), forgedHeader(MaxRecord)...)
	badLen := bytes.Clone(valid)
	binary.BigEndian.PutUint32(badLen[len(Magic):], 1<<30)
	return [][]byte{
		valid,
		encode(t, nil),
		encode(t, []ttlstore.Item{{Key: "k", Value: []byte{}, Owner: owner("o"), Expires: 1, Version: 1}}),
		truncated,
		flipped,
		huge,
		withinLimit,
		badLen,
		snapshot(t, header(7), trailer(0, 0)),
		[]byte(Magic),
		{},
	}
}

func FuzzDecode(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var items []ttlstore.Item
		st, err := Decode(bytes.NewReader(data), collect(&items))
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		checkDecoded(t, st, items)
	})
}

// FuzzItemRecord fuzzes the msgpack decoding of one item record. FuzzDecode
// rarely gets that far, since a random mutation almost always breaks a
// checksum first; here the checksums are computed around the fuzzed payload.
func FuzzItemRecord(f *testing.F) {
	own := []byte(owner("o"))
	for _, seed := range [][]byte{
		itemPayload("k", []byte("v"), 0, []byte{}, 1),
		itemPayload("key", []byte{0, 1, 2}, -5, own, uint64(math.MaxUint64)),
		itemPayload("", []byte{}, int64(math.MaxInt64), own, 0),
		itemPayload("k", []byte("v"), 0, []byte("short"), 1),
		trailer(1, 1),
		{0x95, 0xdb, 0xff, 0xff, 0xff, 0xff},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) > MaxRecord {
			return
		}
		data := snapshot(t, header(1), payload, trailer(1, math.MaxUint64))
		var items []ttlstore.Item
		st, err := Decode(bytes.NewReader(data), collect(&items))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("want a corruption error, got: %v", err)
			}
			return
		}
		require.Len(t, items, 1)
		checkDecoded(t, st, items)
	})
}
