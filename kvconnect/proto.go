package kvconnect

import (
	"encoding/binary"
	"errors"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/rendezvous-kv/rendezvous/policy"
)

// The data path's messages (package com.deno.kv.datapath) are read and
// written field by field with protowire: eight small messages do not need
// generated code, and this way the decoder is ours to bound and fuzz.

var errProto = errors.New("request protobuf is invalid")

// field walks the fields of a message, calling fn with each field's
// number, wire type and value bytes (for varints, the value in v).
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errProto
		}
		b = b[n:]
		var v uint64
		var data []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			data, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errProto
		}
		b = b[n:]
		if err := fn(num, typ, v, data); err != nil {
			return err
		}
	}
	return nil
}

// want checks that a known field has the wire type its schema gives it.
func want(typ, is protowire.Type) error {
	if typ != is {
		return errProto
	}
	return nil
}

// decodeSnapshotRead reads a SnapshotRead.
func decodeSnapshotRead(b []byte) ([]policy.TupleRange, error) {
	var ranges []policy.TupleRange
	err := fields(b, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) error {
		if num != 1 {
			return nil
		}
		if err := want(typ, protowire.BytesType); err != nil {
			return err
		}
		if len(ranges) >= policy.TupleMaxRanges {
			return errTooManyRanges
		}
		var r policy.TupleRange
		err := fields(data, func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error {
			switch num {
			case 1:
				r.Start = data
				return want(typ, protowire.BytesType)
			case 2:
				r.End = data
				return want(typ, protowire.BytesType)
			case 3:
				r.Limit = int(int32(v))
				return want(typ, protowire.VarintType)
			case 4:
				r.Reverse = v != 0
				return want(typ, protowire.VarintType)
			}
			return nil
		})
		ranges = append(ranges, r)
		return err
	})
	return ranges, err
}

var errTooManyRanges = policy.Errorf(policy.KindBadRequest, "too many ranges: at most %d per read", policy.TupleMaxRanges)

// The wire values of MutationType.
const (
	mSet                   = 1
	mDelete                = 2
	mSum                   = 3
	mMax                   = 4
	mMin                   = 5
	mSetSuffixVersionstamp = 9
)

// atomicWrite is a decoded AtomicWrite.
type atomicWrite struct {
	write    policy.TupleWrite
	enqueues int
	// badCheck is set when a check's versionstamp is neither empty nor 10
	// bytes.
	badCheck bool
	// sumBounds is set when a mutation carries sum_min, sum_max or
	// sum_clamp, which only V8 sums use.
	sumBounds bool
}

// decodeAtomicWrite reads an AtomicWrite. Counts are bounded while
// decoding, so a huge body of tiny messages cannot make it allocate
// beyond the limits.
func decodeAtomicWrite(b []byte) (atomicWrite, error) {
	var aw atomicWrite
	err := fields(b, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) error {
		switch num {
		case 1:
			if err := want(typ, protowire.BytesType); err != nil {
				return err
			}
			if len(aw.write.Checks) > policy.TupleMaxChecks {
				return errTooManyChecks
			}
			// A check without a versionstamp asks for absence.
			ck := policy.TupleCheck{Absent: true}
			err := fields(data, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) error {
				switch num {
				case 1:
					ck.Key = data
					return want(typ, protowire.BytesType)
				case 2:
					switch len(data) {
					case 0:
						ck.Absent = true
					case 10:
						ck.Absent = false
						ck.Version = versionOf(data)
					default:
						aw.badCheck = true
					}
					return want(typ, protowire.BytesType)
				}
				return nil
			})
			aw.write.Checks = append(aw.write.Checks, ck)
			return err
		case 2:
			if err := want(typ, protowire.BytesType); err != nil {
				return err
			}
			if len(aw.write.Mutations) > policy.TupleMaxMutations {
				return errTooManyMutations
			}
			m, err := decodeMutation(data, &aw)
			aw.write.Mutations = append(aw.write.Mutations, m)
			return err
		case 3:
			aw.enqueues++
			return want(typ, protowire.BytesType)
		}
		return nil
	})
	return aw, err
}

var (
	errTooManyChecks    = policy.Errorf(policy.KindBadRequest, "too many checks: at most %d per write", policy.TupleMaxChecks)
	errTooManyMutations = policy.Errorf(policy.KindBadRequest, "too many mutations: at most %d per write", policy.TupleMaxMutations)
	errMutationKind     = policy.Errorf(policy.KindBadRequest, "invalid mutation kind or arguments")
)

// versionOf reads a versionstamp: the store's version in 8 big-endian
// bytes, then 2 zero bytes. One with other last bytes names no version
// of this server, so it is 0, which no check matches.
func versionOf(vs []byte) uint64 {
	if vs[8] != 0 || vs[9] != 0 {
		return 0
	}
	var v uint64
	for _, c := range vs[:8] {
		v = v<<8 | uint64(c)
	}
	return v
}

func decodeMutation(b []byte, aw *atomicWrite) (policy.TupleMutation, error) {
	var m policy.TupleMutation
	var kind uint64
	err := fields(b, func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error {
		switch num {
		case 1:
			m.Key = data
			return want(typ, protowire.BytesType)
		case 2:
			if err := want(typ, protowire.BytesType); err != nil {
				return err
			}
			return fields(data, func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error {
				switch num {
				case 1:
					m.Value = data
					return want(typ, protowire.BytesType)
				case 2:
					m.Encoding = policy.ValueEncoding(min(v, 255))
					if v > 3 {
						m.Encoding = 0
					}
					return want(typ, protowire.VarintType)
				}
				return nil
			})
		case 3:
			kind = v
			return want(typ, protowire.VarintType)
		case 4:
			m.ExpireAtMs = int64(v)
			return want(typ, protowire.VarintType)
		case 5, 6:
			if len(data) > 0 {
				aw.sumBounds = true
			}
			return want(typ, protowire.BytesType)
		case 7:
			if v != 0 {
				aw.sumBounds = true
			}
			return want(typ, protowire.VarintType)
		}
		return nil
	})
	if err != nil {
		return m, err
	}
	switch kind {
	case mSet:
		m.Kind = policy.MutationSet
	case mDelete:
		m.Kind = policy.MutationDelete
	case mSum:
		m.Kind = policy.MutationSum
	case mMax:
		m.Kind = policy.MutationMax
	case mMin:
		m.Kind = policy.MutationMin
	case mSetSuffixVersionstamp:
		m.Kind = policy.MutationSetSuffixVersionstamp
	default:
		return m, errMutationKind
	}
	return m, nil
}

// decodeWatch reads a Watch: its keys.
func decodeWatch(b []byte) ([][]byte, error) {
	var keys [][]byte
	err := fields(b, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) error {
		if num != 1 {
			return nil
		}
		if err := want(typ, protowire.BytesType); err != nil {
			return err
		}
		if len(keys) >= policy.TupleMaxWatchKeys {
			return errTooManyWatchKeys
		}
		var key []byte
		err := fields(data, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) error {
			if num == 1 {
				key = data
				return want(typ, protowire.BytesType)
			}
			return nil
		})
		keys = append(keys, key)
		return err
	})
	return keys, err
}

var errTooManyWatchKeys = policy.Errorf(policy.KindBadRequest, "too many keys: at most %d per watch", policy.TupleMaxWatchKeys)

// The wire values of the output statuses.
const (
	srSuccess      = 1
	awSuccess      = 1
	awCheckFailure = 2
)

// entrySize is the size of a KvEntry's encoding.
func entrySize(e policy.TupleEntry) int {
	return protowire.SizeTag(1) + protowire.SizeBytes(len(e.Key)) +
		protowire.SizeTag(2) + protowire.SizeBytes(len(e.Value)) +
		protowire.SizeTag(3) + protowire.SizeVarint(uint64(e.Encoding)) +
		protowire.SizeTag(4) + protowire.SizeBytes(10)
}

// appendEntry appends a KvEntry as field num of the message being built,
// in place: the sizes are known up front.
func appendEntry(b []byte, num protowire.Number, e policy.TupleEntry) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(entrySize(e)))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, e.Key)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, e.Value)
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(e.Encoding))
	b = protowire.AppendTag(b, 4, protowire.BytesType)
	b = protowire.AppendVarint(b, 10)
	var vs [8]byte
	binary.BigEndian.PutUint64(vs[:], e.Version)
	return append(append(b, vs[:]...), 0, 0)
}

// encodeSnapshotReadOutput writes a SnapshotReadOutput: one range output
// per range, status SR_SUCCESS and strongly consistent, which Deno
// requires.
func encodeSnapshotReadOutput(ranges [][]policy.TupleEntry) []byte {
	sizes := make([]int, len(ranges))
	total := 8
	for i, r := range ranges {
		for _, e := range r {
			n := entrySize(e)
			sizes[i] += protowire.SizeTag(1) + protowire.SizeBytes(n)
		}
		total += protowire.SizeTag(1) + protowire.SizeBytes(sizes[i])
	}
	b := make([]byte, 0, total)
	for i, r := range ranges {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizes[i]))
		for _, e := range r {
			b = appendEntry(b, 1, e)
		}
	}
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	b = protowire.AppendVarint(b, 1)
	b = protowire.AppendTag(b, 8, protowire.VarintType)
	return protowire.AppendVarint(b, srSuccess)
}

// encodeAtomicWriteOutput writes an AtomicWriteOutput.
func encodeAtomicWriteOutput(version uint64, failed []int) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	if failed != nil {
		b = protowire.AppendVarint(b, awCheckFailure)
		var packed []byte
		for _, f := range failed {
			packed = protowire.AppendVarint(packed, uint64(f))
		}
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		return protowire.AppendBytes(b, packed)
	}
	b = protowire.AppendVarint(b, awSuccess)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendBytes(b, policy.Versionstamp(version))
}

// encodeWatchOutput writes a WatchOutput with every key marked changed:
// entries[i] is nil for an absent key.
func encodeWatchOutput(entries []*policy.TupleEntry) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, srSuccess)
	for _, e := range entries {
		var k []byte
		k = protowire.AppendTag(k, 1, protowire.VarintType)
		k = protowire.AppendVarint(k, 1)
		if e != nil {
			k = appendEntry(k, 2, *e)
		}
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, k)
	}
	return b
}
