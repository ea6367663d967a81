package graph

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	tm "github.com/vigil-video/vigil/pkg/onnx/internal/testmodel"
)

// classifierModel is a small image classifier: x [N,3,4,4] → GlobalAveragePool → Flatten →
// "pooled" [N,3] → linear layer (built by layer) → "logits" [N,5].
func classifierModel(layer ...[]byte) []byte {
	fields := [][]byte{
		tm.Node("GlobalAveragePool", []string{"x"}, []string{"gap"}),
		tm.Node("Flatten", []string{"gap"}, []string{"pooled"}),
	}
	fields = append(fields, layer...)
	fields = append(fields,
		tm.Input(tm.ValueInfo("x", tm.Float, "N", 3, 4, 4)),
		tm.Output(tm.ValueInfo("logits", tm.Float, "N", 5)),
		tm.ValueInfoField(tm.ValueInfo("pooled", tm.Float, 1, 3)),
	)
	return tm.Model(8, 13, tm.Graph(fields...))
}

func weights(name string, dims ...int64) []byte {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	return tm.Initializer(tm.FloatTensor(name, dims, make([]float32, n)))
}

func TestNodes(t *testing.T) {
	got, err := Nodes(tm.Tiny(tm.Raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []Node{
		{Name: "Relu_r", OpType: "Relu", Inputs: []string{"x"}, Outputs: []string{"r"}},
		{Name: "Reshape_flat", OpType: "Reshape", Inputs: []string{"r", "shape"}, Outputs: []string{"flat"}},
		{Name: "Neg_neg", OpType: "Neg", Inputs: []string{"x"}, Outputs: []string{"neg"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Nodes =\n%+v\nwant\n%+v", got, want)
	}
	if _, err := Nodes([]byte("not a model")); !errors.Is(err, ErrMalformed) {
		t.Errorf("Nodes(garbage) error = %v, want ErrMalformed", err)
	}
	if _, err := Nodes(tm.Model(8, 13)); !errors.Is(err, ErrNoGraph) {
		t.Errorf("Nodes(no graph) error = %v, want ErrNoGraph", err)
	}
}

func TestSetOutputs(t *testing.T) {
	model := classifierModel(tm.Node("Gemm", []string{"pooled", "W", "b"}, []string{"logits"}, tm.AttrInt("transB", 1)),
		weights("W", 5, 3), weights("b", 5))
	out, err := SetOutputs(model, vi("pooled", "N", 3), vi("logits", "N", 5))
	if err != nil {
		t.Fatal(err)
	}
	info, err := Inspect(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := []ValueInfo{vi("pooled", "N", 3), vi("logits", "N", 5)}; !reflect.DeepEqual(info.Outputs, want) {
		t.Errorf("outputs = %+v, want %+v", info.Outputs, want)
	}
	if bytes.Contains(out, tm.ValueInfoField(tm.ValueInfo("pooled", tm.Float, 1, 3))) {
		t.Error("value_info of the exposed tensor kept; it would contradict the output's shape")
	}
	if !bytes.Contains(out, tm.Node("Gemm", []string{"pooled", "W", "b"}, []string{"logits"}, tm.AttrInt("transB", 1))) {
		t.Error("nodes not kept byte for byte")
	}
	// An initializer and the input can be outputs too.
	if _, err := SetOutputs(model, vi("W", 5, 3), vi("x", "N", 3, 4, 4)); err != nil {
		t.Errorf("SetOutputs(initializer, input): %v", err)
	}
	for _, tc := range []struct {
		name string
		outs []ValueInfo
		want error
	}{
		{"unknown tensor", []ValueInfo{vi("nope", 1)}, ErrUnknownTensor},
		{"no outputs", nil, nil},
		{"empty name", []ValueInfo{{ElemType: ElemFloat}}, nil},
		{"duplicate", []ValueInfo{vi("pooled", 3), vi("pooled", 3)}, nil},
	} {
		_, err := SetOutputs(model, tc.outs...)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: error = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := SetOutputs([]byte{0xff}, vi("x", 1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("malformed: error = %v", err)
	}
}

func TestFindFeatures(t *testing.T) {
	dq := tm.Node("DequantizeLinear", []string{"Wq", "Ws", "Wz"}, []string{"Wd"})
	tests := []struct {
		name string
		m    []byte
		want Features
		err  error
	}{
		{"Gemm transB", classifierModel(tm.Node("Gemm", []string{"pooled", "W", "b"}, []string{"logits"}, tm.AttrInt("transB", 1)),
			weights("W", 5, 3), weights("b", 5)), Features{Tensor: "pooled", Dim: 3, Layer: "Gemm"}, nil},
		{"Gemm", classifierModel(tm.Node("Gemm", []string{"pooled", "W", "b"}, []string{"logits"}), weights("W", 3, 5), weights("b", 5)),
			Features{Tensor: "pooled", Dim: 3, Layer: "Gemm"}, nil},
		{"MatMul then Add", classifierModel(tm.Node("MatMul", []string{"pooled", "W"}, []string{"mm"}),
			tm.Node("Add", []string{"mm", "b"}, []string{"logits"}), weights("W", 3, 5), weights("b", 5)),
			Features{Tensor: "pooled", Dim: 3, Layer: "MatMul"}, nil},
		{"MatMul of a dequantized weight", classifierModel(dq, tm.Node("MatMul", []string{"pooled", "Wd"}, []string{"logits"}),
			weights("Wq", 3, 5), weights("Ws"), weights("Wz")), Features{Tensor: "pooled", Dim: 3, Layer: "MatMul"}, nil},
		{"QLinearMatMul", classifierModel(tm.Node("QLinearMatMul", []string{"pq", "ps", "pz", "Wq", "Ws", "Wz", "ys", "yz"}, []string{"logits"}),
			weights("Wq", 3, 5)), Features{Tensor: "pq", Scale: "ps", ZeroPoint: "pz", Dim: 3, Layer: "QLinearMatMul"}, nil},
		{"QGemm", classifierModel(tm.Node("QGemm", []string{"pq", "ps", "pz", "Wq", "Ws", "Wz"}, []string{"logits"}, tm.AttrInt("transB", 1), tm.Str(7, "com.microsoft")),
			weights("Wq", 5, 3)), Features{Tensor: "pq", Scale: "ps", ZeroPoint: "pz", Dim: 3, Layer: "QGemm"}, nil},
		{"last linear layer wins", classifierModel(tm.Node("Gemm", []string{"pooled", "W1", "b1"}, []string{"h"}, tm.AttrInt("transB", 1)),
			tm.Node("Gemm", []string{"h", "W2", "b2"}, []string{"logits"}, tm.AttrInt("transB", 1)), weights("W1", 7, 3), weights("W2", 5, 7)),
			Features{Tensor: "h", Dim: 7, Layer: "Gemm"}, nil},
		{"weight not an initializer", classifierModel(tm.Node("MatMul", []string{"pooled", "x"}, []string{"logits"})), Features{}, ErrUnknownTensor},
		{"transA", classifierModel(tm.Node("Gemm", []string{"pooled", "W", "b"}, []string{"logits"}, tm.AttrInt("transA", 1)), weights("W", 3, 5)), Features{}, ErrUnknownTensor},
		{"no linear layer", tm.Tiny(tm.Raw), Features{}, ErrUnknownTensor},
		{"garbage", []byte("garbage"), Features{}, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FindFeatures(tc.m)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("FindFeatures = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestExposeFeaturesAndAppendHead(t *testing.T) {
	model := classifierModel(tm.Node("Gemm", []string{"pooled", "W", "b"}, []string{"logits"}, tm.AttrInt("transB", 1)),
		weights("W", 5, 3), weights("b", 5))
	f, err := FindFeatures(model)
	if err != nil {
		t.Fatal(err)
	}
	exposed, err := ExposeFeatures(model, f, "features")
	if err != nil {
		t.Fatal(err)
	}
	info, err := Inspect(exposed)
	if err != nil {
		t.Fatal(err)
	}
	if want := []ValueInfo{vi("features", "N", 3)}; !reflect.DeepEqual(info.Outputs, want) {
		t.Errorf("outputs = %+v, want %+v", info.Outputs, want)
	}
	nodes, _ := Nodes(exposed)
	if last := nodes[len(nodes)-1]; last.OpType != "Identity" || !reflect.DeepEqual(last.Inputs, []string{"pooled"}) {
		t.Errorf("last node %+v, want Identity(pooled)", last)
	}
	// Quantized features get a DequantizeLinear.
	q := classifierModel(tm.Node("QLinearMatMul", []string{"pq", "ps", "pz", "Wq", "Ws", "Wz", "ys", "yz"}, []string{"logits"}),
		weights("Wq", 3, 5), tm.Node("QuantizeLinear", []string{"pooled", "ps", "pz"}, []string{"pq"}), weights("ps"), weights("pz"))
	fq, err := FindFeatures(q)
	if err != nil {
		t.Fatal(err)
	}
	eq, err := ExposeFeatures(q, fq, "features")
	if err != nil {
		t.Fatal(err)
	}
	nodes, _ = Nodes(eq)
	if last := nodes[len(nodes)-1]; last.OpType != "DequantizeLinear" || !reflect.DeepEqual(last.Inputs, []string{"pq", "ps", "pz"}) {
		t.Errorf("last node %+v, want DequantizeLinear(pq, ps, pz)", last)
	}

	w := []float32{1, 0, 0, 0, 1, 0}
	withHead, err := AppendLinearHead(exposed, LinearHead{Input: "features", InDim: 3, Weights: w, Bias: []float32{0, 1},
		L2Normalize: true, Softmax: true})
	if err != nil {
		t.Fatal(err)
	}
	info, err = Inspect(withHead)
	if err != nil {
		t.Fatal(err)
	}
	if want := []ValueInfo{vi("scores", "N", 2)}; !reflect.DeepEqual(info.Outputs, want) {
		t.Errorf("outputs = %+v, want %+v", info.Outputs, want)
	}
	nodes, _ = Nodes(withHead)
	var ops []string
	for _, n := range nodes[len(nodes)-3:] {
		ops = append(ops, n.OpType)
	}
	if strings.Join(ops, ",") != "LpNormalization,Gemm,Softmax" {
		t.Errorf("head ops %v", ops)
	}
	if !bytes.Contains(withHead, floatTensor(headPrefix+"weight", []int64{2, 3}, w)) {
		t.Error("weights not stored as a [classes, features] initializer")
	}
	if again, err := AppendLinearHead(withHead, LinearHead{Input: "features", InDim: 3, Weights: w, Bias: []float32{0, 1}}); err == nil {
		_ = again
		t.Error("appending a second head with the same names succeeded")
	}

	bad := []struct {
		name string
		h    LinearHead
		want error
	}{
		{"unknown input", LinearHead{Input: "nope", InDim: 3, Weights: w, Bias: []float32{0, 1}}, ErrUnknownTensor},
		{"one class", LinearHead{Input: "features", InDim: 3, Weights: w[:3], Bias: []float32{0}}, nil},
		{"size mismatch", LinearHead{Input: "features", InDim: 3, Weights: w[:5], Bias: []float32{0, 1}}, nil},
		{"NaN", LinearHead{Input: "features", InDim: 3, Weights: []float32{1, 0, 0, 0, float32(math.NaN()), 0}, Bias: []float32{0, 1}}, nil},
		{"output taken", LinearHead{Input: "features", InDim: 3, Weights: w, Bias: []float32{0, 1}, Output: "pooled"}, nil},
	}
	for _, tc := range bad {
		if _, err := AppendLinearHead(exposed, tc.h); err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: error = %v, want one (%v)", tc.name, err, tc.want)
		}
	}
	if _, err := ExposeFeatures(model, Features{Tensor: "pooled", Dim: 3}, "pooled"); err == nil {
		t.Error("ExposeFeatures onto an existing name succeeded")
	}
	if _, err := ExposeFeatures(model, Features{Tensor: "nope", Dim: 3}, "features"); !errors.Is(err, ErrUnknownTensor) {
		t.Errorf("ExposeFeatures(unknown) error = %v", err)
	}
}

func FuzzFindFeatures(f *testing.F) {
	f.Add(classifierModel(tm.Node("Gemm", []string{"pooled", "W", "b"}, []string{"logits"}, tm.AttrInt("transB", 1)), weights("W", 5, 3)))
	f.Add(classifierModel(tm.Node("QLinearMatMul", []string{"pq", "ps", "pz", "Wq", "Ws", "Wz", "ys", "yz"}, []string{"logits"}), weights("Wq", 3, 5)))
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, model []byte) {
		feat, err := FindFeatures(model)
		if err != nil {
			return
		}
		out, err := ExposeFeatures(model, feat, "vigil_fuzz_features")
		if err != nil {
			return
		}
		info, err := Inspect(out)
		if err != nil {
			t.Fatalf("Inspect(exposed): %v", err)
		}
		if len(info.Outputs) != 1 || info.Outputs[0].Name != "vigil_fuzz_features" {
			t.Fatalf("exposed outputs %+v", info.Outputs)
		}
		if feat.Dim > 1<<16 {
			return
		}
		w := make([]float32, 2*feat.Dim)
		head, err := AppendLinearHead(out, LinearHead{Input: "vigil_fuzz_features", InDim: int(feat.Dim), Weights: w, Bias: make([]float32, 2)})
		if err != nil {
			return // e.g. an old opset, or a name the head needs is taken
		}
		if info, err := Inspect(head); err != nil || len(info.Outputs) != 1 || info.Outputs[0].Name != "scores" {
			t.Fatalf("Inspect(with head) = %+v, %v", info.Outputs, err)
		}
	})
}
