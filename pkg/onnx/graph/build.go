package graph

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// LinearHead is a linear classifier to append to a backbone with
// AppendLinearHead: scores = softmax(W·x + b), where x is the backbone's
// feature vector, optionally L2-normalised first.
type LinearHead struct {
	// Input names the float32 [batch, InDim] tensor the head reads, for
	// example the output ExposeFeatures added.
	Input string
	// InDim is the feature length.
	InDim int
	// Weights holds W, Classes rows of InDim values each (row-major).
	Weights []float32
	// Bias holds b, one value per class. Its length is the class count.
	Bias []float32
	// L2Normalize divides x by its Euclidean norm before W is applied
	// (LpNormalization, p=2), as for face embeddings.
	L2Normalize bool
	// Softmax turns the scores into probabilities; without it the output
	// holds the logits W·x + b.
	Softmax bool
	// Output names the scores output, float32 [batch, classes]. Default
	// "scores".
	Output string
}

// headPrefix prefixes the names of the values AppendLinearHead adds.
const headPrefix = "vigil_head_"

// AppendLinearHead returns a copy of model with h appended to its main
// graph and h's scores as the graph's only output: one self-contained
// model (backbone and head) that onnxruntime runs as is. The weights are
// stored in the model as initializers. It fails when h's sizes disagree
// (len(Weights) must be len(Bias)*InDim, at least 2 classes), a value is
// not finite, h.Input is not a value of the graph (ErrUnknownTensor), a
// name the head adds is taken, or the model imports a default-domain
// opset older than 7.
func AppendLinearHead(model []byte, h LinearHead) ([]byte, error) {
	out, err := appendLinearHead(model, h)
	if err != nil {
		return nil, fmt.Errorf("append linear head: %w", err)
	}
	return out, nil
}

func appendLinearHead(model []byte, h LinearHead) ([]byte, error) {
	if h.Output == "" {
		h.Output = "scores"
	}
	k := len(h.Bias)
	switch {
	case h.Input == "":
		return nil, errors.New("no input tensor named")
	case h.InDim <= 0:
		return nil, fmt.Errorf("input dimension %d must be positive", h.InDim)
	case k < 2:
		return nil, fmt.Errorf("%d classes; a classifier needs at least 2", k)
	case len(h.Weights) != k*h.InDim:
		return nil, fmt.Errorf("%d weights for %d classes of %d features, want %d", len(h.Weights), k, h.InDim, k*h.InDim)
	}
	for _, v := range append(h.Weights[:len(h.Weights):len(h.Weights)], h.Bias...) {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, errors.New("weights or bias hold a value that is not finite")
		}
	}
	info, err := Inspect(model)
	if err != nil {
		return nil, err
	}
	if info.Opset != 0 && info.Opset < 7 {
		return nil, fmt.Errorf("the model imports opset %d; the head needs 7 or later", info.Opset)
	}
	batch := Dim{Value: -1, Param: "batch"}
	if len(info.Inputs) > 0 && len(info.Inputs[0].Dims) > 0 && info.Inputs[0].Dims[0].Param != "" {
		batch = info.Inputs[0].Dims[0]
	}

	w, b := headPrefix+"weight", headPrefix+"bias"
	x := h.Input
	var nodes [][]byte
	defines := []string{w, b, h.Output}
	if h.L2Normalize {
		nodes = append(nodes, nodeProto("LpNormalization", headPrefix+"l2norm", "", []string{x}, []string{headPrefix + "normalized"},
			intAttribute("axis", 1), intAttribute("p", 2)))
		x = headPrefix + "normalized"
		defines = append(defines, x)
	}
	logits := h.Output
	if h.Softmax {
		logits = headPrefix + "logits"
		defines = append(defines, logits)
	}
	nodes = append(nodes, nodeProto("Gemm", headPrefix+"gemm", "", []string{x, w, b}, []string{logits}, intAttribute("transB", 1)))
	if h.Softmax {
		nodes = append(nodes, nodeProto("Softmax", headPrefix+"softmax", "", []string{logits}, []string{h.Output}, intAttribute("axis", 1)))
	}
	inits := [][]byte{
		floatTensor(w, []int64{int64(k), int64(h.InDim)}, h.Weights),
		floatTensor(b, []int64{int64(k)}, h.Bias),
	}
	withHead, err := appendToGraph(model, nodes, inits, defines, []string{h.Input})
	if err != nil {
		return nil, err
	}
	return SetOutputs(withHead, ValueInfo{Name: h.Output, ElemType: ElemFloat, HasShape: true, Dims: []Dim{batch, {Value: int64(k)}}})
}

// nodeProto encodes a NodeProto.
func nodeProto(op, name, domain string, inputs, outputs []string, attrs ...[]byte) []byte {
	var b []byte
	for _, in := range inputs {
		b = append(b, bytesField(nodeInput, []byte(in))...)
	}
	for _, out := range outputs {
		b = append(b, bytesField(nodeOutput, []byte(out))...)
	}
	b = append(b, bytesField(nodeName, []byte(name))...)
	b = append(b, bytesField(nodeOpType, []byte(op))...)
	for _, a := range attrs {
		b = append(b, bytesField(nodeAttribute, a)...)
	}
	if domain != "" {
		b = append(b, bytesField(nodeDomain, []byte(domain))...)
	}
	return b
}

// attrType is AttributeProto.type; attrTypeInt its INT value.
const (
	attrType    protowire.Number = 20
	attrTypeInt                  = 2
)

// intAttribute encodes an AttributeProto of type INT.
func intAttribute(name string, v int64) []byte {
	b := bytesField(attrName, []byte(name))
	b = append(b, varintField(attrI, uint64(v))...)
	return append(b, varintField(attrType, attrTypeInt)...)
}

// floatTensor encodes a FLOAT TensorProto with raw_data.
func floatTensor(name string, dims []int64, vals []float32) []byte {
	var b []byte
	for _, d := range dims {
		b = append(b, varintField(tensorDims, uint64(d))...)
	}
	b = append(b, varintField(tensorDataType, uint64(ElemFloat))...)
	b = append(b, bytesField(tensorName, []byte(name))...)
	raw := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return append(b, bytesField(tensorRawData, raw)...)
}
