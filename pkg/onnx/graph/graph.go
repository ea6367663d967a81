// Package graph reads and edits serialized ONNX models at the protobuf wire
// level, without generated ONNX bindings and without cgo.
//
// Only the handful of fields it needs are decoded (ModelProto.graph,
// GraphProto.input/output/value_info/initializer/node, and the messages
// below them). Every other field, known or unknown, is copied byte for byte,
// so a rewritten model differs from the original only where an edit was
// made. All functions treat their input as untrusted: malformed input yields
// an error wrapping ErrMalformed, never a panic, and nesting of subgraphs is
// bounded.
package graph

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrMalformed is wrapped by every error caused by bytes that are not a
// valid protobuf encoding of an ONNX model, or that nest subgraphs deeper
// than this package follows.
var ErrMalformed = errors.New("malformed ONNX model")

// ErrNoGraph is wrapped by the error returned for a well-formed protobuf
// message that has no ModelProto.graph field (for example an empty file or
// a file that is not an ONNX model at all).
var ErrNoGraph = errors.New("ONNX model has no graph")

// ONNX protobuf field numbers (onnx/onnx.proto3).
const (
	modelIRVersion   protowire.Number = 1
	modelGraph       protowire.Number = 7
	modelOpsetImport protowire.Number = 8
	modelFunctions   protowire.Number = 25

	opsetDomain  protowire.Number = 1
	opsetVersion protowire.Number = 2

	graphNode              protowire.Number = 1
	graphInitializer       protowire.Number = 5
	graphInput             protowire.Number = 11
	graphOutput            protowire.Number = 12
	graphValueInfo         protowire.Number = 13
	graphSparseInitializer protowire.Number = 15

	nodeInput     protowire.Number = 1
	nodeOutput    protowire.Number = 2
	nodeOpType    protowire.Number = 4
	nodeAttribute protowire.Number = 5
	nodeDomain    protowire.Number = 7

	attrName          protowire.Number = 1
	attrI             protowire.Number = 3
	attrT             protowire.Number = 5
	attrG             protowire.Number = 6
	attrInts          protowire.Number = 8
	attrTensors       protowire.Number = 10
	attrGraphs        protowire.Number = 11
	attrSparseTensor  protowire.Number = 22
	attrSparseTensors protowire.Number = 23

	tensorDims         protowire.Number = 1
	tensorDataType     protowire.Number = 2
	tensorInt64Data    protowire.Number = 7
	tensorName         protowire.Number = 8
	tensorRawData      protowire.Number = 9
	tensorExternalData protowire.Number = 13
	tensorDataLocation protowire.Number = 14

	sparseValues  protowire.Number = 1
	sparseIndices protowire.Number = 2

	functionNode protowire.Number = 7

	valueInfoName protowire.Number = 1
	valueInfoType protowire.Number = 2

	typeTensor       protowire.Number = 1
	typeSparseTensor protowire.Number = 8

	tensorTypeElem  protowire.Number = 1
	tensorTypeShape protowire.Number = 2

	shapeDim protowire.Number = 1

	dimValue protowire.Number = 1
	dimParam protowire.Number = 2
)

// Element types (TensorProto.DataType) used by this package.
const (
	// ElemFloat is TensorProto.FLOAT, the float32 element type.
	ElemFloat int32 = 1
	// ElemInt64 is TensorProto.INT64.
	ElemInt64 int32 = 7

	dataLocationExternal = 1
)

// Dim is one dimension of a tensor shape.
type Dim struct {
	// Value is the fixed size of the dimension, or -1 when the dimension is
	// symbolic (Param is set) or unknown (neither dim_value nor dim_param).
	Value int64
	// Param is the symbolic name (dim_param) of the dimension, or "".
	Param string
}

// Fixed reports whether d has a known, non-negative size.
func (d Dim) Fixed() bool { return d.Value >= 0 }

// String renders d as its size, its symbol, or "?" when unknown.
func (d Dim) String() string {
	switch {
	case d.Fixed():
		return fmt.Sprint(d.Value)
	case d.Param != "":
		return d.Param
	}
	return "?"
}

// ValueInfo describes one graph input or output.
type ValueInfo struct {
	// Name is the value's name in the graph.
	Name string
	// ElemType is the TensorProto.DataType of a tensor value (ElemFloat for
	// float32), or 0 when the value is not a tensor or its type is unset.
	ElemType int32
	// HasShape reports whether a shape is declared. When it is false the
	// rank is unknown and Dims is empty; when it is true, len(Dims) is the
	// rank (0 for a scalar).
	HasShape bool
	// Dims are the declared dimensions, outermost first.
	Dims []Dim
}

// Info summarizes a model, as returned by Inspect.
type Info struct {
	// IRVersion is ModelProto.ir_version.
	IRVersion int64
	// Opset is the version imported for the default ONNX operator domain
	// ("" or "ai.onnx"), or 0 when the model declares none.
	Opset int64
	// Inputs are the graph inputs that must be fed at run time, in graph
	// order. Inputs that name an initializer (which older exporters list as
	// inputs) are left out, as onnxruntime leaves them out.
	Inputs []ValueInfo
	// Outputs are the graph outputs, in graph order.
	Outputs []ValueInfo
	// HasExternalData reports whether any tensor of the model (initializer,
	// sparse initializer or Constant/attribute tensor, in the main graph,
	// any subgraph or any model-local function) keeps its data outside the
	// model file (data_location EXTERNAL or external_data entries). Loading
	// such a model makes onnxruntime open files named by the model, so
	// untrusted models with external data must be refused.
	HasExternalData bool
}

// Inspect decodes the parts of a serialized ModelProto described by Info.
// It fails with an error wrapping ErrMalformed when model is not a valid
// encoding, and with one wrapping ErrNoGraph when it has no graph.
func Inspect(model []byte) (Info, error) {
	var info Info
	var g []byte
	hasGraph := false
	err := eachField(model, func(f field) error {
		switch {
		case f.isVarint(modelIRVersion):
			info.IRVersion = int64(f.v)
		case f.isBytes(modelGraph):
			// Repeated occurrences of a message field merge, which is the
			// same as concatenating their encodings.
			hasGraph = true
			g = append(g, f.val...)
		case f.isBytes(modelOpsetImport):
			domain, err := stringOf(f.val, opsetDomain)
			if err != nil {
				return err
			}
			vs, err := int64s(f.val, opsetVersion)
			if err != nil {
				return err
			}
			if (domain == "" || domain == "ai.onnx") && len(vs) > 0 {
				info.Opset = vs[len(vs)-1]
			}
		case f.isBytes(modelFunctions):
			ext, err := functionHasExternal(f.val)
			if err != nil {
				return err
			}
			info.HasExternalData = info.HasExternalData || ext
		}
		return nil
	})
	if err != nil {
		return Info{}, fmt.Errorf("inspect model: %w", err)
	}
	if !hasGraph {
		return Info{}, fmt.Errorf("inspect model: %w", ErrNoGraph)
	}
	ext, err := graphHasExternal(g, 0)
	if err != nil {
		return Info{}, fmt.Errorf("inspect model: %w", err)
	}
	info.HasExternalData = info.HasExternalData || ext

	inits, err := initializerNames(g)
	if err != nil {
		return Info{}, fmt.Errorf("inspect model: %w", err)
	}
	err = eachField(g, func(f field) error {
		if !f.isBytes(graphInput) && !f.isBytes(graphOutput) {
			return nil
		}
		vi, err := parseValueInfo(f.val)
		if err != nil {
			return err
		}
		if f.num == graphOutput {
			info.Outputs = append(info.Outputs, vi)
		} else if !inits[vi.Name] {
			info.Inputs = append(info.Inputs, vi)
		}
		return nil
	})
	if err != nil {
		return Info{}, fmt.Errorf("inspect model: %w", err)
	}
	return info, nil
}

// parseValueInfo decodes a ValueInfoProto.
func parseValueInfo(b []byte) (ValueInfo, error) {
	var vi ValueInfo
	err := eachField(b, func(f field) error {
		switch {
		case f.isBytes(valueInfoName):
			vi.Name = string(f.val)
		case f.isBytes(valueInfoType):
			return eachField(f.val, func(f field) error {
				if !f.isBytes(typeTensor) && !f.isBytes(typeSparseTensor) {
					return nil
				}
				return eachField(f.val, func(f field) error {
					switch {
					case f.isVarint(tensorTypeElem):
						vi.ElemType = int32(f.v)
					case f.isBytes(tensorTypeShape):
						vi.HasShape = true
						return eachField(f.val, func(f field) error {
							if !f.isBytes(shapeDim) {
								return nil
							}
							d, err := parseDim(f.val)
							vi.Dims = append(vi.Dims, d)
							return err
						})
					}
					return nil
				})
			})
		}
		return nil
	})
	return vi, err
}

// parseDim decodes a TensorShapeProto.Dimension (a oneof: the last of
// dim_value and dim_param wins).
func parseDim(b []byte) (Dim, error) {
	d := Dim{Value: -1}
	err := eachField(b, func(f field) error {
		switch {
		case f.isVarint(dimValue):
			d = Dim{Value: max(int64(f.v), -1)} // a negative size is invalid: unknown
		case f.isBytes(dimParam):
			d = Dim{Value: -1, Param: string(f.val)}
		}
		return nil
	})
	return d, err
}

// initializerNames returns the names of the graph's initializers and
// sparse initializers.
func initializerNames(g []byte) (map[string]bool, error) {
	names := map[string]bool{}
	err := eachField(g, func(f field) error {
		t := f.val
		switch {
		case f.isBytes(graphInitializer):
		case f.isBytes(graphSparseInitializer):
			var err error
			if t, err = lastBytes(f.val, sparseValues); err != nil {
				return err
			}
		default:
			return nil
		}
		name, err := stringOf(t, tensorName)
		names[name] = true
		return err
	})
	return names, err
}

// lastBytes returns the payload of the last occurrence of the bytes field
// num in b, or nil.
func lastBytes(b []byte, num protowire.Number) ([]byte, error) {
	var p []byte
	err := eachField(b, func(f field) error {
		if f.isBytes(num) {
			p = f.val
		}
		return nil
	})
	return p, err
}

// tensorHasExternal reports whether a TensorProto stores its data
// externally.
func tensorHasExternal(t []byte) (bool, error) {
	ext := false
	err := eachField(t, func(f field) error {
		switch {
		case f.isVarint(tensorDataLocation):
			ext = ext || f.v == dataLocationExternal
		case f.num == tensorExternalData:
			ext = true
		}
		return nil
	})
	return ext, err
}

// sparseHasExternal reports whether a SparseTensorProto's values or
// indices are stored externally.
func sparseHasExternal(s []byte) (bool, error) {
	ext := false
	err := eachField(s, func(f field) error {
		if f.isBytes(sparseValues) || f.isBytes(sparseIndices) {
			e, err := tensorHasExternal(f.val)
			ext = ext || e
			return err
		}
		return nil
	})
	return ext, err
}

// graphHasExternal reports whether any tensor in graph g, its nodes'
// attributes or their subgraphs is stored externally.
func graphHasExternal(g []byte, depth int) (bool, error) {
	if depth > maxDepth {
		return false, fmt.Errorf("%w: subgraphs nested deeper than %d levels", ErrMalformed, maxDepth)
	}
	ext := false
	err := eachField(g, func(f field) error {
		var e bool
		var err error
		switch {
		case f.isBytes(graphInitializer):
			e, err = tensorHasExternal(f.val)
		case f.isBytes(graphSparseInitializer):
			e, err = sparseHasExternal(f.val)
		case f.isBytes(graphNode):
			e, err = nodeHasExternal(f.val, depth)
		}
		ext = ext || e
		return err
	})
	return ext, err
}

// nodeHasExternal reports whether any attribute tensor of a NodeProto, or
// any of its subgraphs, is stored externally.
func nodeHasExternal(n []byte, depth int) (bool, error) {
	ext := false
	err := eachField(n, func(f field) error {
		if !f.isBytes(nodeAttribute) {
			return nil
		}
		return eachField(f.val, func(f field) error {
			var e bool
			var err error
			switch {
			case f.isBytes(attrT), f.isBytes(attrTensors):
				e, err = tensorHasExternal(f.val)
			case f.isBytes(attrSparseTensor), f.isBytes(attrSparseTensors):
				e, err = sparseHasExternal(f.val)
			case f.isBytes(attrG), f.isBytes(attrGraphs):
				e, err = graphHasExternal(f.val, depth+1)
			}
			ext = ext || e
			return err
		})
	})
	return ext, err
}

// functionHasExternal reports whether a FunctionProto's nodes hold an
// externally stored tensor.
func functionHasExternal(fn []byte) (bool, error) {
	ext := false
	err := eachField(fn, func(f field) error {
		if f.isBytes(functionNode) {
			e, err := nodeHasExternal(f.val, 1)
			ext = ext || e
			return err
		}
		return nil
	})
	return ext, err
}
