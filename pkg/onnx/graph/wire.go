package graph

import (
	"encoding/binary"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// maxDepth bounds how deeply nested subgraphs (If/Loop/Scan bodies) are
// followed. Real models nest a handful of levels; the bound keeps hostile
// input from driving the walkers into deep recursion.
const maxDepth = 32

// field is one decoded protobuf field of a message.
type field struct {
	num protowire.Number
	typ protowire.Type
	raw []byte // the complete encoding: tag and value
	val []byte // payload for BytesType fields
	v   uint64 // value for VarintType fields
}

// isBytes reports whether f is the length-delimited field num.
func (f field) isBytes(num protowire.Number) bool {
	return f.num == num && f.typ == protowire.BytesType
}

// isVarint reports whether f is the varint field num.
func (f field) isVarint(num protowire.Number) bool {
	return f.num == num && f.typ == protowire.VarintType
}

// eachField calls fn for every field of the encoded message b, in order.
// It fails with ErrMalformed when b is not a valid protobuf encoding.
func eachField(b []byte, fn func(f field) error) error {
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return fmt.Errorf("%w: bad tag at offset %d: %v", ErrMalformed, off, protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[off+n:])
		if m < 0 {
			return fmt.Errorf("%w: bad value of field %d at offset %d: %v", ErrMalformed, num, off, protowire.ParseError(m))
		}
		f := field{num: num, typ: typ, raw: b[off : off+n+m]}
		switch typ {
		case protowire.BytesType:
			f.val, _ = protowire.ConsumeBytes(b[off+n:])
		case protowire.VarintType:
			f.v, _ = protowire.ConsumeVarint(b[off+n:])
		}
		if err := fn(f); err != nil {
			return err
		}
		off += n + m
	}
	return nil
}

// editFields rebuilds message b, calling fn for every field. When fn
// returns changed, the field is replaced by repl (the complete encoding of
// zero or more fields; nil deletes it); otherwise the field's original bytes
// are kept verbatim. The result reports whether any field changed.
func editFields(b []byte, fn func(f field) (repl []byte, changed bool, err error)) ([]byte, bool, error) {
	out := make([]byte, 0, len(b)+16)
	changedAny := false
	err := eachField(b, func(f field) error {
		repl, changed, err := fn(f)
		if err != nil {
			return err
		}
		if changed {
			changedAny = true
			out = append(out, repl...)
		} else {
			out = append(out, f.raw...)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, changedAny, nil
}

// editBytes is editFields for nested messages: fn receives the payload of
// every length-delimited field numbered num and returns its new payload.
// Other fields are kept verbatim.
func editBytes(b []byte, num protowire.Number, fn func(payload []byte) ([]byte, bool, error)) ([]byte, bool, error) {
	return editFields(b, func(f field) ([]byte, bool, error) {
		if !f.isBytes(num) {
			return nil, false, nil
		}
		p, changed, err := fn(f.val)
		if err != nil || !changed {
			return nil, false, err
		}
		return bytesField(num, p), true, nil
	})
}

// bytesField encodes a length-delimited field.
func bytesField(num protowire.Number, payload []byte) []byte {
	b := protowire.AppendTag(make([]byte, 0, len(payload)+8), num, protowire.BytesType)
	return protowire.AppendBytes(b, payload)
}

// varintField encodes a varint field.
func varintField(num protowire.Number, v uint64) []byte {
	b := protowire.AppendTag(nil, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// stringOf returns the last occurrence of the string field num in b
// (protobuf's last-one-wins rule for singular fields).
func stringOf(b []byte, num protowire.Number) (string, error) {
	var s string
	err := eachField(b, func(f field) error {
		if f.isBytes(num) {
			s = string(f.val)
		}
		return nil
	})
	return s, err
}

// packedVarints decodes a packed repeated varint payload.
func packedVarints(p []byte) ([]uint64, error) {
	var vs []uint64
	for len(p) > 0 {
		v, n := protowire.ConsumeVarint(p)
		if n < 0 {
			return nil, fmt.Errorf("%w: bad packed varint: %v", ErrMalformed, protowire.ParseError(n))
		}
		vs = append(vs, v)
		p = p[n:]
	}
	return vs, nil
}

// int64s returns all values of the repeated int64 field num in b, accepting
// both packed and unpacked encodings (protobuf parsers must accept both).
func int64s(b []byte, num protowire.Number) ([]int64, error) {
	var out []int64
	err := eachField(b, func(f field) error {
		switch {
		case f.isVarint(num):
			out = append(out, int64(f.v))
		case f.isBytes(num):
			vs, err := packedVarints(f.val)
			if err != nil {
				return err
			}
			for _, v := range vs {
				out = append(out, int64(v))
			}
		}
		return nil
	})
	return out, err
}

// zeroFirstInt64 rewrites the first value of the repeated int64 field num
// in b from 1 to 0, whichever encoding carries it. It reports false when the
// field is absent or its first value is not 1.
func zeroFirstInt64(b []byte, num protowire.Number) ([]byte, bool, error) {
	seen := false
	return editFields(b, func(f field) ([]byte, bool, error) {
		if seen || f.num != num {
			return nil, false, nil
		}
		switch f.typ {
		case protowire.VarintType:
			seen = true
			if f.v != 1 {
				return nil, false, nil
			}
			return varintField(num, 0), true, nil
		case protowire.BytesType:
			vs, err := packedVarints(f.val)
			if err != nil || len(vs) == 0 {
				return nil, false, err
			}
			seen = true
			if vs[0] != 1 {
				return nil, false, nil
			}
			vs[0] = 0
			var p []byte
			for _, v := range vs {
				p = protowire.AppendVarint(p, v)
			}
			return bytesField(num, p), true, nil
		}
		return nil, false, nil
	})
}

// zeroFirstRawInt64 rewrites the first little-endian int64 of the raw_data
// payload p from 1 to 0.
func zeroFirstRawInt64(p []byte) ([]byte, bool) {
	if len(p) < 8 || binary.LittleEndian.Uint64(p) != 1 {
		return nil, false
	}
	q := append([]byte(nil), p...)
	binary.LittleEndian.PutUint64(q, 0)
	return q, true
}
