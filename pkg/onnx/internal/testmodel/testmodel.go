// Package testmodel builds small serialized ONNX models for tests, at the
// protobuf wire level. Every function returns the encoding of one protobuf
// field (or, for Model, a whole ModelProto), so a test composes a model by
// concatenating fields, including deliberately odd or invalid ones.
package testmodel

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/encoding/protowire"
)

// ONNX element types and attribute types used by the builders.
const (
	Float = 1
	Int64 = 7

	attrTypeInt    = 2
	attrTypeTensor = 4
	attrTypeGraph  = 5
	attrTypeInts   = 7
)

// Encoding selects how Int64Tensor stores its values.
type Encoding int

const (
	// Raw stores values as little-endian raw_data.
	Raw Encoding = iota
	// Packed stores values as a packed int64_data field.
	Packed
	// Unpacked stores values as one int64_data field per value.
	Unpacked
)

// Cat concatenates encoded fields into one message body.
func Cat(fields ...[]byte) []byte {
	var b []byte
	for _, f := range fields {
		b = append(b, f...)
	}
	return b
}

// Bytes encodes a length-delimited field.
func Bytes(num protowire.Number, payload []byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, payload)
}

// Str encodes a string field.
func Str(num protowire.Number, s string) []byte { return Bytes(num, []byte(s)) }

// Varint encodes a varint field.
func Varint(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

// Model returns a ModelProto with the given IR version, default-domain
// opset and graph fields (pass none for a model without graph).
func Model(irVersion, opset int64, graphs ...[]byte) []byte {
	b := Cat(Varint(1, uint64(irVersion)), Bytes(8, Cat(Str(1, ""), Varint(2, uint64(opset)))))
	for _, g := range graphs {
		b = append(b, Bytes(7, g)...)
	}
	return b
}

// Graph returns a GraphProto body named "g" holding the given fields
// (built by Node, Initializer, Input, Output, ValueInfoField).
func Graph(fields ...[]byte) []byte { return Cat(append([][]byte{Str(2, "g")}, fields...)...) }

// Node returns a GraphProto.node field.
func Node(op string, inputs, outputs []string, attrs ...[]byte) []byte {
	return Bytes(1, NodeProto(op, inputs, outputs, attrs...))
}

// NodeProto returns a NodeProto body.
func NodeProto(op string, inputs, outputs []string, attrs ...[]byte) []byte {
	var b []byte
	for _, in := range inputs {
		b = append(b, Str(1, in)...)
	}
	for _, out := range outputs {
		b = append(b, Str(2, out)...)
	}
	b = append(b, Str(3, op+"_"+outputs[0])...)
	b = append(b, Str(4, op)...)
	return Cat(append([][]byte{b}, attrs...)...)
}

// Initializer returns a GraphProto.initializer field holding tensor t
// (built by Int64Tensor, FloatTensor or ExternalTensor).
func Initializer(t []byte) []byte { return Bytes(5, t) }

// Input returns a GraphProto.input field.
func Input(vi []byte) []byte { return Bytes(11, vi) }

// Output returns a GraphProto.output field.
func Output(vi []byte) []byte { return Bytes(12, vi) }

// ValueInfoField returns a GraphProto.value_info field.
func ValueInfoField(vi []byte) []byte { return Bytes(13, vi) }

// ValueInfo returns a ValueInfoProto body for a tensor. Each dim is an int
// (dim_value), a string (dim_param) or nil (unknown dimension).
func ValueInfo(name string, elem int32, dims ...any) []byte {
	var shape []byte
	for _, d := range dims {
		var dim []byte
		switch d := d.(type) {
		case int:
			dim = Varint(1, uint64(d))
		case string:
			dim = Str(2, d)
		}
		shape = append(shape, Bytes(1, dim)...)
	}
	tt := Cat(Varint(1, uint64(elem)), Bytes(2, shape))
	return Cat(Str(1, name), Bytes(2, Bytes(1, tt)))
}

// Int64Tensor returns a 1-D INT64 TensorProto body.
func Int64Tensor(name string, vals []int64, enc Encoding) []byte {
	b := Cat(Varint(1, uint64(len(vals))), Varint(2, Int64), Str(8, name))
	switch enc {
	case Raw:
		raw := make([]byte, 8*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
		}
		b = append(b, Bytes(9, raw)...)
	case Packed:
		var p []byte
		for _, v := range vals {
			p = protowire.AppendVarint(p, uint64(v))
		}
		b = append(b, Bytes(7, p)...)
	case Unpacked:
		for _, v := range vals {
			b = append(b, Varint(7, uint64(v))...)
		}
	}
	return b
}

// FloatTensor returns a FLOAT TensorProto body with raw_data.
func FloatTensor(name string, dims []int64, vals []float32) []byte {
	var b []byte
	for _, d := range dims {
		b = append(b, Varint(1, uint64(d))...)
	}
	raw := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return Cat(b, Varint(2, Float), Str(8, name), Bytes(9, raw))
}

// ExternalTensor returns a FLOAT TensorProto body of the given dims whose
// data lives in the external file "weights.bin" (data_location EXTERNAL).
func ExternalTensor(name string, dims ...int64) []byte {
	var b []byte
	for _, d := range dims {
		b = append(b, Varint(1, uint64(d))...)
	}
	entry := Cat(Str(1, "location"), Str(2, "weights.bin"))
	return Cat(b, Varint(2, Float), Str(8, name), Bytes(13, entry), Varint(14, 1))
}

// AttrInt returns a NodeProto.attribute field of type INT.
func AttrInt(name string, v int64) []byte {
	return Bytes(5, Cat(Str(1, name), Varint(3, uint64(v)), Varint(20, attrTypeInt)))
}

// AttrInts returns a NodeProto.attribute field of type INTS (packed).
func AttrInts(name string, vals []int64) []byte {
	var p []byte
	for _, v := range vals {
		p = protowire.AppendVarint(p, uint64(v))
	}
	return Bytes(5, Cat(Str(1, name), Bytes(8, p), Varint(20, attrTypeInts)))
}

// AttrTensor returns a NodeProto.attribute field of type TENSOR.
func AttrTensor(name string, t []byte) []byte {
	return Bytes(5, Cat(Str(1, name), Bytes(5, t), Varint(20, attrTypeTensor)))
}

// AttrGraph returns a NodeProto.attribute field of type GRAPH.
func AttrGraph(name string, g []byte) []byte {
	return Bytes(5, Cat(Str(1, name), Bytes(6, g), Varint(20, attrTypeGraph)))
}

// Tiny returns a runnable model (IR 8, opset 13) with one float input "x"
// of shape [1,2,3] and two outputs: "flat" = Reshape(Relu(x), [1,-1]) of
// shape [1,6], and "neg" = Neg(x) of shape [1,2,3]. The Reshape's shape is
// an initializer in the given encoding, so the model exercises the batch
// rewrite of hard-coded Reshape shapes.
func Tiny(enc Encoding) []byte {
	return Model(8, 13, Graph(
		Node("Relu", []string{"x"}, []string{"r"}),
		Node("Reshape", []string{"r", "shape"}, []string{"flat"}),
		Node("Neg", []string{"x"}, []string{"neg"}),
		Initializer(Int64Tensor("shape", []int64{1, -1}, enc)),
		Input(ValueInfo("x", Float, 1, 2, 3)),
		Output(ValueInfo("flat", Float, 1, 6)),
		Output(ValueInfo("neg", Float, 1, 2, 3)),
	))
}

// ModelNames are the base names of the nine face models under
// DEPS/models/fr_NAME.onnx.
var ModelNames = []string{"detect", "landmark", "feature", "age", "gender", "expression", "liveness", "eye", "pose"}

// DepsDir returns the directory holding lib/libonnxruntime.so.1 and
// models/: $VIGIL_DEPS when set, else build/deps in the module root found
// by walking up from the working directory to go.mod. ok is false when the
// directory does not exist.
func DepsDir() (dir string, ok bool) {
	if d := os.Getenv("VIGIL_DEPS"); d != "" {
		_, err := os.Stat(d)
		return d, err == nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			dir = filepath.Join(d, "build", "deps")
			_, err := os.Stat(dir)
			return dir, err == nil
		}
		if filepath.Dir(d) == d {
			return "", false
		}
	}
}
