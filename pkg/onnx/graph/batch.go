package graph

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// MakeBatchDynamic returns a copy of model whose batch dimension is
// symbolic, so that onnxruntime accepts any batch size for a model exported
// with a fixed batch of 1. model itself is not modified.
//
// The rewrite, applied to the main graph only:
//   - graph inputs (other than initializers) and graph outputs whose first
//     dimension is the fixed size 1 get the symbolic dimension symbol
//     instead; other dimensions, and first dimensions that are already
//     symbolic, unknown or not 1, are left alone;
//   - value_info entries (intermediate shapes) whose first dimension is the
//     fixed size 1 get an unknown first dimension, so that they cannot
//     contradict the shapes onnxruntime infers for larger batches;
//   - a 1-D INT64 shape tensor (initializer, or the value/value_ints of a
//     Constant node) whose first element is 1 gets 0 there ("copy that
//     dimension from the input") when it is used only as the second input
//     of Reshape nodes without allowzero=1 whose data input is not itself a
//     constant. This undoes exporters hard-coding the batch in patterns
//     such as flatten ([1,-1]) or channel shuffle ([1,2,58,28,28]). It is
//     a heuristic: it is right when the Reshape's data input has the batch
//     as its first dimension, as in those patterns, and callers should
//     check that a batched run equals per-sample runs.
//
// Every byte not involved in an edit is kept verbatim, so the function is
// idempotent: applying it to its own output returns identical bytes. It
// fails with an error wrapping ErrMalformed for bytes that are not a valid
// model encoding, wrapping ErrNoGraph for a model without a graph, and with
// a plain error for an empty symbol.
func MakeBatchDynamic(model []byte, symbol string) ([]byte, error) {
	if symbol == "" {
		return nil, errors.New("make batch dynamic: empty dimension symbol")
	}
	out, err := editGraph(model, func(g []byte) ([]byte, bool, error) {
		return rewriteGraph(g, symbol)
	})
	if err != nil {
		return nil, fmt.Errorf("make batch dynamic: %w", err)
	}
	return out, nil
}

// PruneInitializerInputs returns a copy of model without the graph inputs
// that name an initializer. Since IR version 4, such inputs make the
// initializer an overridable default rather than a constant, which stops
// onnxruntime from constant folding and fusing it (for example folding
// BatchNormalization into Conv); exporters of that era often listed every
// weight as an input. Pruning them keeps the computation and the inputs a
// caller must feed (Info.Inputs) unchanged, and only removes the option to
// override weights at run time. Models with IR version below 4, where
// initializers must be listed as inputs and are constants anyway, are
// returned unchanged, as is anything else not involved; the function is
// idempotent. Errors are those of Inspect.
func PruneInitializerInputs(model []byte) ([]byte, error) {
	info, err := Inspect(model)
	if err != nil {
		return nil, fmt.Errorf("prune initializer inputs: %w", err)
	}
	if info.IRVersion < 4 {
		return append([]byte(nil), model...), nil
	}
	out, err := editGraph(model, pruneInitializerInputs)
	if err != nil {
		return nil, fmt.Errorf("prune initializer inputs: %w", err)
	}
	return out, nil
}

// pruneInitializerInputs drops the inputs of GraphProto g that name an
// initializer.
func pruneInitializerInputs(g []byte) ([]byte, bool, error) {
	inits, err := initializerNames(g)
	if err != nil {
		return nil, false, err
	}
	return editFields(g, func(f field) ([]byte, bool, error) {
		if !f.isBytes(graphInput) {
			return nil, false, nil
		}
		name, err := stringOf(f.val, valueInfoName)
		return nil, err == nil && inits[name], err
	})
}

// editGraph validates model with Inspect, then returns a copy whose main
// graph is replaced by fn's result when fn reports a change. Several graph
// fields merge into one message, so they are passed to fn merged, and the
// result takes the place of the first one.
func editGraph(model []byte, fn func(g []byte) ([]byte, bool, error)) ([]byte, error) {
	if _, err := Inspect(model); err != nil {
		return nil, err
	}
	var g []byte
	graphs := 0
	if err := eachField(model, func(f field) error {
		if f.isBytes(modelGraph) {
			graphs++
			g = append(g, f.val...)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	newG, changed, err := fn(g)
	if err != nil {
		return nil, err
	}
	seen := 0
	out, _, err := editFields(model, func(f field) ([]byte, bool, error) {
		if !f.isBytes(modelGraph) {
			return nil, false, nil
		}
		seen++
		switch {
		case seen > 1:
			return nil, true, nil
		case changed:
			return bytesField(modelGraph, newG), true, nil
		case graphs > 1:
			return bytesField(modelGraph, g), true, nil
		}
		return nil, false, nil
	})
	return out, err
}

// rewriteGraph applies the MakeBatchDynamic edits to a GraphProto.
func rewriteGraph(g []byte, symbol string) ([]byte, bool, error) {
	inits, err := initializerNames(g)
	if err != nil {
		return nil, false, err
	}
	targets, err := reshapeShapeTargets(g, inits)
	if err != nil {
		return nil, false, err
	}
	return editFields(g, func(f field) ([]byte, bool, error) {
		if f.typ != protowire.BytesType {
			return nil, false, nil
		}
		p, changed, err := rewriteGraphField(f, symbol, inits, targets)
		if err != nil || !changed {
			return nil, false, err
		}
		return bytesField(f.num, p), true, nil
	})
}

// rewriteGraphField returns the new payload of one length-delimited
// GraphProto field.
func rewriteGraphField(f field, symbol string, inits, targets map[string]bool) ([]byte, bool, error) {
	switch f.num {
	case graphInput, graphOutput:
		name, err := stringOf(f.val, valueInfoName)
		if err != nil || (f.num == graphInput && inits[name]) {
			return nil, false, err
		}
		return editFirstDim(f.val, func(d []byte) ([]byte, bool, error) {
			return replaceDimOne(d, symbol)
		})
	case graphValueInfo:
		return editFirstDim(f.val, func(d []byte) ([]byte, bool, error) {
			return replaceDimOne(d, "")
		})
	case graphInitializer:
		name, err := stringOf(f.val, tensorName)
		if err != nil || !targets[name] {
			return nil, false, err
		}
		return zeroFirstShapeElem(f.val)
	case graphNode:
		n, err := parseNode(f.val)
		if err != nil || !n.isConstant() || len(n.outputs) == 0 || !targets[n.outputs[0]] {
			return nil, false, err
		}
		return zeroFirstConstant(f.val)
	}
	return nil, false, nil
}

// node holds the NodeProto fields the rewrite needs.
type node struct {
	opType, domain  string
	inputs, outputs []string
	allowZero       bool
	subgraphs       [][]byte
}

func (n node) isDefaultDomain() bool { return n.domain == "" || n.domain == "ai.onnx" }
func (n node) isReshape() bool       { return n.opType == "Reshape" && n.isDefaultDomain() }
func (n node) isConstant() bool      { return n.opType == "Constant" && n.isDefaultDomain() }

// parseNode decodes a NodeProto.
func parseNode(b []byte) (node, error) {
	var n node
	err := eachField(b, func(f field) error {
		switch {
		case f.isBytes(nodeInput):
			n.inputs = append(n.inputs, string(f.val))
		case f.isBytes(nodeOutput):
			n.outputs = append(n.outputs, string(f.val))
		case f.isBytes(nodeOpType):
			n.opType = string(f.val)
		case f.isBytes(nodeDomain):
			n.domain = string(f.val)
		case f.isBytes(nodeAttribute):
			var name string
			var i int64
			err := eachField(f.val, func(f field) error {
				switch {
				case f.isBytes(attrName):
					name = string(f.val)
				case f.isVarint(attrI):
					i = int64(f.v)
				case f.isBytes(attrG), f.isBytes(attrGraphs):
					n.subgraphs = append(n.subgraphs, f.val)
				}
				return nil
			})
			if name == "allowzero" && i != 0 {
				n.allowZero = true
			}
			return err
		}
		return nil
	})
	return n, err
}

// reshapeShapeTargets returns the names of the shape tensors that may be
// rewritten: used only as Reshape shape inputs, by Reshapes without
// allowzero whose data input is not an initializer or Constant output.
func reshapeShapeTargets(g []byte, inits map[string]bool) (map[string]bool, error) {
	var nodes []node
	constants := map[string]bool{}
	other := map[string]bool{} // names with a use that forbids rewriting
	err := eachField(g, func(f field) error {
		switch {
		case f.isBytes(graphNode):
			n, err := parseNode(f.val)
			if err != nil {
				return err
			}
			nodes = append(nodes, n)
			if n.isConstant() {
				for _, o := range n.outputs {
					constants[o] = true
				}
			}
			for _, sg := range n.subgraphs {
				if err := collectNames(sg, 1, other); err != nil {
					return err
				}
			}
		case f.isBytes(graphOutput):
			name, err := stringOf(f.val, valueInfoName)
			other[name] = true
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	candidates := map[string]bool{}
	for _, n := range nodes {
		if !n.isReshape() || len(n.inputs) < 2 {
			for _, in := range n.inputs {
				other[in] = true
			}
			continue
		}
		data, shape := n.inputs[0], n.inputs[1]
		other[data] = true
		for _, in := range n.inputs[2:] {
			other[in] = true
		}
		if n.allowZero || inits[data] || constants[data] {
			other[shape] = true
		} else {
			candidates[shape] = true
		}
	}
	for name := range candidates {
		if other[name] {
			delete(candidates, name)
		}
	}
	return candidates, nil
}

// collectNames adds to names every value a subgraph reads: its nodes'
// inputs and its outputs, recursively. A subgraph may read any value of an
// enclosing graph, so all of these count as uses.
func collectNames(g []byte, depth int, names map[string]bool) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: subgraphs nested deeper than %d levels", ErrMalformed, maxDepth)
	}
	return eachField(g, func(f field) error {
		switch {
		case f.isBytes(graphNode):
			n, err := parseNode(f.val)
			if err != nil {
				return err
			}
			for _, in := range n.inputs {
				names[in] = true
			}
			for _, sg := range n.subgraphs {
				if err := collectNames(sg, depth+1, names); err != nil {
					return err
				}
			}
		case f.isBytes(graphOutput):
			name, err := stringOf(f.val, valueInfoName)
			names[name] = true
			return err
		}
		return nil
	})
}

// editFirstDim applies fn to the first dimension of a ValueInfoProto's
// tensor shape, if it has one.
func editFirstDim(vi []byte, fn func(dim []byte) ([]byte, bool, error)) ([]byte, bool, error) {
	done := false
	return editBytes(vi, valueInfoType, func(tp []byte) ([]byte, bool, error) {
		return editBytes(tp, typeTensor, func(tt []byte) ([]byte, bool, error) {
			return editBytes(tt, tensorTypeShape, func(sh []byte) ([]byte, bool, error) {
				return editFields(sh, func(f field) ([]byte, bool, error) {
					if done || !f.isBytes(shapeDim) {
						return nil, false, nil
					}
					done = true
					p, changed, err := fn(f.val)
					if err != nil || !changed {
						return nil, false, err
					}
					return bytesField(shapeDim, p), true, nil
				})
			})
		})
	})
}

// replaceDimOne rewrites a Dimension of fixed size 1 to the symbolic
// dimension symbol, or to an unknown dimension when symbol is "". Other
// fields of the Dimension (denotation, unknown fields) are kept.
func replaceDimOne(dim []byte, symbol string) ([]byte, bool, error) {
	d, err := parseDim(dim)
	if err != nil || d.Value != 1 {
		return nil, false, err
	}
	p, _, err := editFields(dim, func(f field) ([]byte, bool, error) {
		return nil, f.num == dimValue || f.num == dimParam, nil
	})
	if err != nil {
		return nil, false, err
	}
	if symbol != "" {
		p = append(p, bytesField(dimParam, []byte(symbol))...)
	}
	return p, true, nil
}

// zeroFirstShapeElem rewrites the first element of a 1-D INT64 TensorProto
// from 1 to 0. Tensors of another type or rank, stored externally, or with
// an ambiguous (repeated) raw_data field are left alone.
func zeroFirstShapeElem(t []byte) ([]byte, bool, error) {
	var dataType int64
	raws := 0
	ext, err := tensorHasExternal(t)
	if err != nil || ext {
		return nil, false, err
	}
	err = eachField(t, func(f field) error {
		switch {
		case f.isVarint(tensorDataType):
			dataType = int64(f.v)
		case f.isBytes(tensorRawData):
			raws++
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	dims, err := int64s(t, tensorDims)
	if err != nil || dataType != int64(ElemInt64) || len(dims) != 1 || dims[0] < 1 || raws > 1 {
		return nil, false, err
	}
	if raws == 1 {
		return editBytes(t, tensorRawData, func(p []byte) ([]byte, bool, error) {
			q, changed := zeroFirstRawInt64(p)
			return q, changed, nil
		})
	}
	return zeroFirstInt64(t, tensorInt64Data)
}

// zeroFirstConstant rewrites the first element of a Constant node's value
// (a TensorProto) or value_ints attribute from 1 to 0.
func zeroFirstConstant(n []byte) ([]byte, bool, error) {
	return editBytes(n, nodeAttribute, func(a []byte) ([]byte, bool, error) {
		name, err := stringOf(a, attrName)
		if err != nil {
			return nil, false, err
		}
		switch name {
		case "value":
			return editBytes(a, attrT, zeroFirstShapeElem)
		case "value_ints":
			return zeroFirstInt64(a, attrInts)
		}
		return nil, false, nil
	})
}
