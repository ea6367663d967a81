package graph

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	tm "github.com/vigil-video/vigil/pkg/onnx/internal/testmodel"
)

// vi is shorthand for a float ValueInfo with the given dims (int → fixed,
// string → symbolic, nil → unknown).
func vi(name string, dims ...any) ValueInfo {
	v := ValueInfo{Name: name, ElemType: ElemFloat, HasShape: true}
	for _, d := range dims {
		switch d := d.(type) {
		case int:
			v.Dims = append(v.Dims, Dim{Value: int64(d)})
		case string:
			v.Dims = append(v.Dims, Dim{Value: -1, Param: d})
		default:
			v.Dims = append(v.Dims, Dim{Value: -1})
		}
	}
	return v
}

func TestInspect(t *testing.T) {
	ifGraph := func(inner []byte) []byte {
		return tm.Model(8, 13, tm.Graph(
			tm.Node("If", []string{"c"}, []string{"y"}, tm.AttrGraph("then_branch", inner), tm.AttrGraph("else_branch", tm.Graph())),
			tm.Input(tm.ValueInfo("c", 9)),
			tm.Output(tm.ValueInfo("y", tm.Float, 1)),
		))
	}
	deep := tm.Graph(tm.Initializer(tm.ExternalTensor("w", 1)))
	for range maxDepth + 2 {
		deep = tm.Graph(tm.Node("If", []string{"c"}, []string{"y"}, tm.AttrGraph("then_branch", deep)))
	}
	tests := []struct {
		name    string
		model   []byte
		want    Info
		wantErr error
	}{
		{
			name:  "tiny",
			model: tm.Tiny(tm.Raw),
			want: Info{IRVersion: 8, Opset: 13,
				Inputs:  []ValueInfo{vi("x", 1, 2, 3)},
				Outputs: []ValueInfo{vi("flat", 1, 6), vi("neg", 1, 2, 3)}},
		},
		{
			name: "symbolic, unknown and scalar dims; initializer listed as input",
			model: tm.Model(3, 7, tm.Graph(
				tm.Initializer(tm.FloatTensor("w", []int64{3}, []float32{1, 2, 3})),
				tm.Input(tm.ValueInfo("x", tm.Float, "N", nil, 3)),
				tm.Input(tm.ValueInfo("w", tm.Float, 3)),
				tm.Output(tm.ValueInfo("s", tm.Float)),
				tm.Output(tm.Str(1, "untyped")),
				tm.Output(tm.ValueInfo("neg", tm.Float, -5)),
			)),
			want: Info{IRVersion: 3, Opset: 7,
				Inputs:  []ValueInfo{vi("x", "N", nil, 3)},
				Outputs: []ValueInfo{vi("s"), {Name: "untyped"}, vi("neg", nil)}},
		},
		{
			name:  "external initializer",
			model: tm.Model(8, 13, tm.Graph(tm.Initializer(tm.ExternalTensor("w", 2)))),
			want:  Info{IRVersion: 8, Opset: 13, HasExternalData: true},
		},
		{
			name: "external Constant value",
			model: tm.Model(8, 13, tm.Graph(
				tm.Node("Constant", nil, []string{"c"}, tm.AttrTensor("value", tm.ExternalTensor("", 2))))),
			want: Info{IRVersion: 8, Opset: 13, HasExternalData: true},
		},
		{
			name: "external sparse initializer",
			model: tm.Model(8, 13, tm.Graph(tm.Bytes(15, tm.Cat(
				tm.Bytes(1, tm.ExternalTensor("sv", 2)),
				tm.Bytes(2, tm.Int64Tensor("si", []int64{0, 1}, tm.Raw)),
				tm.Varint(3, 4))))),
			want: Info{IRVersion: 8, Opset: 13, HasExternalData: true},
		},
		{
			name:  "external initializer in subgraph",
			model: ifGraph(tm.Graph(tm.Initializer(tm.ExternalTensor("w", 1)))),
			want: Info{IRVersion: 8, Opset: 13,
				Inputs:          []ValueInfo{{Name: "c", ElemType: 9, HasShape: true}},
				Outputs:         []ValueInfo{vi("y", 1)},
				HasExternalData: true},
		},
		{
			name:  "external data in model function",
			model: tm.Cat(tm.Model(8, 13, tm.Graph()), tm.Bytes(25, tm.Bytes(7, tm.NodeProto("Constant", nil, []string{"c"}, tm.AttrTensor("value", tm.ExternalTensor("", 2)))))),
			want:  Info{IRVersion: 8, Opset: 13, HasExternalData: true},
		},
		{
			name:  "data_location default is not external",
			model: tm.Model(8, 13, tm.Graph(tm.Initializer(tm.Cat(tm.FloatTensor("w", []int64{1}, []float32{1}), tm.Varint(14, 0))))),
			want:  Info{IRVersion: 8, Opset: 13},
		},
		{
			name:  "graph split over two fields merges",
			model: tm.Model(8, 13, tm.Graph(tm.Input(tm.ValueInfo("a", tm.Float, 1))), tm.Output(tm.ValueInfo("b", tm.Float, 2))),
			want: Info{IRVersion: 8, Opset: 13,
				Inputs:  []ValueInfo{vi("a", 1)},
				Outputs: []ValueInfo{vi("b", 2)}},
		},
		{
			name:  "unknown fields ignored",
			model: tm.Cat(tm.Varint(999, 5), tm.Model(8, 13, tm.Graph(tm.Str(999, "x"), tm.Input(tm.Cat(tm.ValueInfo("a", tm.Float, 1), tm.Varint(77, 1)))))),
			want:  Info{IRVersion: 8, Opset: 13, Inputs: []ValueInfo{vi("a", 1)}},
		},
		{name: "empty", model: nil, wantErr: ErrNoGraph},
		{name: "no graph", model: tm.Model(8, 13), wantErr: ErrNoGraph},
		{name: "graph with wrong wire type", model: tm.Varint(7, 1), wantErr: ErrNoGraph},
		{name: "garbage", model: []byte("this is not an onnx model at all"), wantErr: ErrMalformed},
		{name: "truncated", model: tm.Tiny(tm.Raw)[:40], wantErr: ErrMalformed},
		{name: "bad nested message", model: tm.Model(8, 13, tm.Graph(tm.Input([]byte{0xff}))), wantErr: ErrMalformed},
		{name: "nesting too deep", model: tm.Model(8, 13, deep), wantErr: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Inspect(tc.model)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Inspect error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Inspect =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

// shapeValues returns the int64 values of the initializer or Constant node
// output called name in the main graph of model.
func shapeValues(t *testing.T, model []byte, name string) []int64 {
	t.Helper()
	g, err := lastBytes(model, modelGraph)
	if err != nil {
		t.Fatal(err)
	}
	var vals []int64
	found := false
	values := func(tensor []byte) []int64 {
		if raw, _ := lastBytes(tensor, tensorRawData); raw != nil {
			var v []int64
			for i := 0; i+8 <= len(raw); i += 8 {
				var x uint64
				for j := 7; j >= 0; j-- {
					x = x<<8 | uint64(raw[i+j])
				}
				v = append(v, int64(x))
			}
			return v
		}
		v, _ := int64s(tensor, tensorInt64Data)
		return v
	}
	err = eachField(g, func(f field) error {
		switch {
		case f.isBytes(graphInitializer):
			if n, _ := stringOf(f.val, tensorName); n == name {
				vals, found = values(f.val), true
			}
		case f.isBytes(graphNode):
			n, err := parseNode(f.val)
			if err != nil || !n.isConstant() || n.outputs[0] != name {
				return err
			}
			found = true
			return eachField(f.val, func(f field) error {
				if !f.isBytes(nodeAttribute) {
					return nil
				}
				if ints, _ := int64s(f.val, attrInts); len(ints) > 0 {
					vals = ints
				}
				if tensor, _ := lastBytes(f.val, attrT); tensor != nil {
					vals = values(tensor)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil || !found {
		t.Fatalf("shape tensor %q not found (err %v)", name, err)
	}
	return vals
}

func TestMakeBatchDynamic(t *testing.T) {
	in := func(dims ...any) []byte { return tm.Input(tm.ValueInfo("x", tm.Float, dims...)) }
	out := func(dims ...any) []byte { return tm.Output(tm.ValueInfo("y", tm.Float, dims...)) }
	reshape := func(shape []byte, attrs ...[]byte) []byte {
		return tm.Model(8, 13, tm.Graph(
			tm.Node("Relu", []string{"x"}, []string{"r"}),
			tm.Node("Reshape", []string{"r", "s"}, []string{"y"}, attrs...),
			shape, in(1, 2, 3), out(1, 6)))
	}
	init := func(vals ...int64) []byte { return tm.Initializer(tm.Int64Tensor("s", vals, tm.Raw)) }
	tests := []struct {
		name      string
		model     []byte
		inputs    []ValueInfo // want, after rewrite
		outputs   []ValueInfo
		shape     []int64 // want values of shape tensor "s" after rewrite, if set
		unchanged bool    // want output == input
	}{
		{name: "raw initializer", model: tm.Tiny(tm.Raw),
			inputs:  []ValueInfo{vi("x", "batch", 2, 3)},
			outputs: []ValueInfo{vi("flat", "batch", 6), vi("neg", "batch", 2, 3)}},
		{name: "packed initializer", model: reshape(tm.Initializer(tm.Int64Tensor("s", []int64{1, -1}, tm.Packed))),
			inputs: []ValueInfo{vi("x", "batch", 2, 3)}, outputs: []ValueInfo{vi("y", "batch", 6)}, shape: []int64{0, -1}},
		{name: "unpacked initializer", model: reshape(tm.Initializer(tm.Int64Tensor("s", []int64{1, 2, 3}, tm.Unpacked))),
			shape: []int64{0, 2, 3}},
		{name: "Constant value tensor", model: reshape(tm.Node("Constant", nil, []string{"s"}, tm.AttrTensor("value", tm.Int64Tensor("", []int64{1, 2, 58, 28, 28}, tm.Raw)))),
			shape: []int64{0, 2, 58, 28, 28}},
		{name: "Constant value_ints", model: reshape(tm.Node("Constant", nil, []string{"s"}, tm.AttrInts("value_ints", []int64{1, -1}))),
			shape: []int64{0, -1}},
		{name: "allowzero=1 keeps shape", model: reshape(init(1, -1), tm.AttrInt("allowzero", 1)), shape: []int64{1, -1}},
		{name: "allowzero=0 rewrites", model: reshape(init(1, -1), tm.AttrInt("allowzero", 0)), shape: []int64{0, -1}},
		{name: "first element not 1", model: reshape(init(2, -1)), shape: []int64{2, -1}},
		{name: "already 0", model: reshape(init(0, -1)), shape: []int64{0, -1}},
		{name: "shape also used by another node",
			model: tm.Model(8, 13, tm.Graph(
				tm.Node("Reshape", []string{"x", "s"}, []string{"y"}),
				tm.Node("Identity", []string{"s"}, []string{"s2"}),
				init(1, -1), in(1, 2, 3), out(1, 6))),
			shape: []int64{1, -1}},
		{name: "shape is a graph output",
			model: tm.Model(8, 13, tm.Graph(
				tm.Node("Reshape", []string{"x", "s"}, []string{"y"}),
				init(1, -1), in(1, 2, 3), out(1, 6), tm.Output(tm.ValueInfo("s", tm.Int64, 2)))),
			shape: []int64{1, -1}},
		{name: "shape read by a subgraph",
			model: tm.Model(8, 13, tm.Graph(
				tm.Node("Reshape", []string{"x", "s"}, []string{"y"}),
				tm.Node("If", []string{"c"}, []string{"z"}, tm.AttrGraph("then_branch", tm.Graph(tm.Node("Identity", []string{"s"}, []string{"z"})))),
				init(1, -1), in(1, 2, 3), out(1, 6))),
			shape: []int64{1, -1}},
		{name: "reshape of a constant keeps shape",
			model: tm.Model(8, 13, tm.Graph(
				tm.Node("Reshape", []string{"w", "s"}, []string{"y"}),
				tm.Initializer(tm.FloatTensor("w", []int64{3}, []float32{1, 2, 3})),
				init(1, 3), in(1, 2, 3), out(1, 3))),
			shape: []int64{1, 3}},
		{name: "rank-2 shape tensor ignored",
			model: reshape(tm.Initializer(tm.Cat(tm.Varint(1, 1), tm.Int64Tensor("s", []int64{1, -1}, tm.Raw)))),
			shape: []int64{1, -1}},
		{name: "other dims and non-1 batch untouched",
			model:   tm.Model(8, 13, tm.Graph(in("N", 1, 1), tm.Output(tm.ValueInfo("y", tm.Float, 4, 1)), tm.Output(tm.ValueInfo("z", tm.Float)))),
			inputs:  []ValueInfo{vi("x", "N", 1, 1)},
			outputs: []ValueInfo{vi("y", 4, 1), vi("z")}, unchanged: true},
		{name: "value_info batch cleared",
			model: tm.Model(8, 13, tm.Graph(in(1, 2), out(1, 2),
				tm.ValueInfoField(tm.ValueInfo("h", tm.Float, 1, 2)),
				tm.ValueInfoField(tm.ValueInfo("k", tm.Float, 4, 1)))),
			inputs: []ValueInfo{vi("x", "batch", 2)}, outputs: []ValueInfo{vi("y", "batch", 2)}},
		{name: "initializer listed as input untouched",
			model: tm.Model(3, 8, tm.Graph(in(1, 2), out(1, 2),
				tm.Initializer(tm.FloatTensor("w", []int64{1, 2}, []float32{1, 2})),
				tm.Input(tm.ValueInfo("w", tm.Float, 1, 2)))),
			inputs: []ValueInfo{vi("x", "batch", 2)}, outputs: []ValueInfo{vi("y", "batch", 2)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MakeBatchDynamic(tc.model, "batch")
			if err != nil {
				t.Fatalf("MakeBatchDynamic: %v", err)
			}
			if again, err := MakeBatchDynamic(got, "batch"); err != nil || !bytes.Equal(again, got) {
				t.Errorf("not idempotent (err %v)", err)
			}
			if tc.unchanged != bytes.Equal(got, tc.model) {
				t.Errorf("output unchanged = %v, want %v", !tc.unchanged, tc.unchanged)
			}
			info, err := Inspect(got)
			if err != nil {
				t.Fatalf("Inspect(result): %v", err)
			}
			if tc.inputs != nil && !reflect.DeepEqual(info.Inputs, tc.inputs) {
				t.Errorf("inputs = %+v, want %+v", info.Inputs, tc.inputs)
			}
			if tc.outputs != nil && !reflect.DeepEqual(info.Outputs, tc.outputs) {
				t.Errorf("outputs = %+v, want %+v", info.Outputs, tc.outputs)
			}
			if tc.shape != nil {
				if v := shapeValues(t, got, "s"); !reflect.DeepEqual(v, tc.shape) {
					t.Errorf("shape = %v, want %v", v, tc.shape)
				}
			}
		})
	}
}

func TestMakeBatchDynamicValueInfo(t *testing.T) {
	m := tm.Model(8, 13, tm.Graph(
		tm.ValueInfoField(tm.ValueInfo("h", tm.Float, 1, 2)),
		tm.ValueInfoField(tm.ValueInfo("k", tm.Float, 4, 1))))
	got, err := MakeBatchDynamic(m, "batch")
	if err != nil {
		t.Fatal(err)
	}
	g, _ := lastBytes(got, modelGraph)
	var dims [][]Dim
	_ = eachField(g, func(f field) error {
		if f.isBytes(graphValueInfo) {
			v, err := parseValueInfo(f.val)
			dims = append(dims, v.Dims)
			return err
		}
		return nil
	})
	want := [][]Dim{{{Value: -1}, {Value: 2}}, {{Value: 4}, {Value: 1}}}
	if !reflect.DeepEqual(dims, want) {
		t.Errorf("value_info dims = %v, want %v", dims, want)
	}
}

func TestMakeBatchDynamicPreservesUnknownFields(t *testing.T) {
	// Unknown fields at every level the rewrite touches: model, graph,
	// value info, type, tensor type, shape, dimension (with a denotation),
	// node and tensor.
	marks := [][]byte{
		tm.Str(1001, "model-extra"), tm.Str(1002, "graph-extra"), tm.Str(1003, "vi-extra"),
		tm.Str(1004, "type-extra"), tm.Str(1005, "tt-extra"), tm.Str(1006, "shape-extra"),
		tm.Str(3, "DATA_BATCH"), tm.Str(1008, "node-extra"), tm.Str(1009, "tensor-extra"),
	}
	dim := tm.Bytes(1, tm.Cat(tm.Varint(1, 1), marks[6]))
	shape := tm.Cat(dim, tm.Bytes(1, tm.Varint(1, 3)), marks[5])
	tt := tm.Cat(tm.Varint(1, tm.Float), tm.Bytes(2, shape), marks[4])
	typ := tm.Cat(tm.Bytes(1, tt), marks[3])
	xvi := tm.Cat(tm.Str(1, "x"), tm.Bytes(2, typ), marks[2])
	nodeBody := tm.Cat(tm.Str(1, "x"), tm.Str(1, "s"), tm.Str(2, "y"), tm.Str(4, "Reshape"), marks[7])
	model := tm.Cat(marks[0], tm.Model(8, 13, tm.Graph(
		tm.Input(xvi),
		tm.Output(tm.ValueInfo("y", tm.Float, 1, 3)),
		tm.Bytes(1, nodeBody),
		tm.Initializer(tm.Cat(tm.Int64Tensor("s", []int64{1, -1}, tm.Raw), marks[8])),
		marks[1],
	)))
	got, err := MakeBatchDynamic(model, "batch")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range marks {
		if !bytes.Contains(got, m) {
			t.Errorf("unknown field %q lost", m)
		}
	}
	if v := shapeValues(t, got, "s"); !reflect.DeepEqual(v, []int64{0, -1}) {
		t.Errorf("shape = %v, want [0 -1]", v)
	}
	info, err := Inspect(got)
	if err != nil {
		t.Fatal(err)
	}
	if want := vi("x", "batch", 3); !reflect.DeepEqual(info.Inputs[0], want) {
		t.Errorf("input = %+v, want %+v", info.Inputs[0], want)
	}
}

func TestMakeBatchDynamicErrors(t *testing.T) {
	tests := []struct {
		name    string
		model   []byte
		symbol  string
		wantErr error
	}{
		{"garbage", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, "batch", ErrMalformed},
		{"text", []byte("hello"), "batch", ErrMalformed},
		{"no graph", tm.Model(8, 13), "batch", ErrNoGraph},
		{"empty", nil, "batch", ErrNoGraph},
		{"empty symbol", tm.Tiny(tm.Raw), "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := MakeBatchDynamic(tc.model, tc.symbol)
			if err == nil || out != nil {
				t.Fatalf("MakeBatchDynamic = %d bytes, %v; want error", len(out), err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tc.wantErr)
			}
		})
	}
}

func TestMakeBatchDynamicDoesNotModifyInput(t *testing.T) {
	m := tm.Tiny(tm.Packed)
	orig := append([]byte(nil), m...)
	if _, err := MakeBatchDynamic(m, "n"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m, orig) {
		t.Error("input modified")
	}
}

// realModel describes a face model as shipped, and what the rewrite does.
type realModel struct {
	name     string
	opset    int64
	inputs   []ValueInfo
	outputs  []ValueInfo
	reshapes map[string][]int64 // Reshape shape constants rewritten: name → new values
}

var realModels = []realModel{
	{name: "detect", opset: 9,
		inputs:  []ValueInfo{vi("input", 1, 3, 240, 320)},
		outputs: []ValueInfo{vi("scores", 1, 4420, 2), vi("boxes", 1, 4420, 4)}},
	{name: "landmark", opset: 9,
		inputs:  []ValueInfo{vi("input", 1, 1, 64, 64)},
		outputs: []ValueInfo{vi("output", 1, 136)}},
	{name: "feature", opset: 9,
		inputs:   []ValueInfo{vi("input", 1, 3, 112, 112)},
		outputs:  []ValueInfo{vi("output", 1, 512)},
		reshapes: map[string][]int64{"703": {0, -1}}},
	{name: "age", opset: 9,
		inputs:  []ValueInfo{vi("input", 1, 3, 64, 64)},
		outputs: ssrOutputs()},
	{name: "gender", opset: 9,
		inputs:  []ValueInfo{vi("input", 1, 3, 64, 64)},
		outputs: ssrOutputs(),
		reshapes: map[string][]int64{"260": {0, -1}, "263": {0, -1}, "266": {0, -1},
			"269": {0, -1}, "272": {0, -1}, "275": {0, -1}}},
	{name: "expression", opset: 9,
		inputs:  []ValueInfo{vi("input", 1, 3, 224, 224)},
		outputs: []ValueInfo{vi("output", 1, 7)}},
	{name: "liveness", opset: 9,
		inputs:  []ValueInfo{vi("input", 1, 3, 128, 128)},
		outputs: []ValueInfo{vi("output", 1, 3)}},
	{name: "eye", opset: 9,
		inputs:  []ValueInfo{vi("input", 1, 1, 24, 24)},
		outputs: []ValueInfo{vi("output", 1, 2)}},
	{name: "pose", opset: 9,
		inputs:  []ValueInfo{vi("input", 1, 3, 224, 224)},
		outputs: []ValueInfo{vi("output", 1, 66), vi("617", 1, 66), vi("618", 1, 66)},
		reshapes: map[string][]int64{
			"361": {0, 2, 58, 28, 28}, "364": {0, -1, 28, 28}, "559": {0, 2, 232, 7, 7}, "610": {0, -1, 7, 7}}},
}

// ssrOutputs are the nine outputs of the SSR-Net style age and gender
// models.
func ssrOutputs() []ValueInfo {
	var out []ValueInfo
	for _, s := range []string{"1", "2", "3"} {
		out = append(out, vi("prob_stage_"+s, 1, 3))
	}
	for _, s := range []string{"1", "2", "3"} {
		out = append(out, vi("stage"+s+"_delta_k", 1, 1))
	}
	for _, s := range []string{"1", "2", "3"} {
		out = append(out, vi("index_offset_stage"+s, 1, 3))
	}
	return out
}

// batched returns vs with the first dimension of each made symbolic.
func batched(vs []ValueInfo) []ValueInfo {
	out := make([]ValueInfo, len(vs))
	for i, v := range vs {
		v.Dims = append([]Dim{{Value: -1, Param: "batch"}}, v.Dims[1:]...)
		out[i] = v
	}
	return out
}

func readRealModel(t *testing.T, name string) []byte {
	t.Helper()
	deps, ok := tm.DepsDir()
	if !ok {
		t.Skip("face models not found: set VIGIL_DEPS or run `make setup` to populate build/deps")
	}
	b, err := os.ReadFile(filepath.Join(deps, "models", "fr_"+name+".onnx"))
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("model %s not found: %v", name, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRealModels(t *testing.T) {
	for _, rm := range realModels {
		t.Run(rm.name, func(t *testing.T) {
			model := readRealModel(t, rm.name)
			info, err := Inspect(model)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if info.Opset != rm.opset || info.HasExternalData ||
				!reflect.DeepEqual(info.Inputs, rm.inputs) || !reflect.DeepEqual(info.Outputs, rm.outputs) {
				t.Errorf("Inspect = %+v\nwant opset %d inputs %+v outputs %+v", info, rm.opset, rm.inputs, rm.outputs)
			}
			dyn, err := MakeBatchDynamic(model, "batch")
			if err != nil {
				t.Fatalf("MakeBatchDynamic: %v", err)
			}
			again, err := MakeBatchDynamic(dyn, "batch")
			if err != nil || !bytes.Equal(again, dyn) {
				t.Errorf("not idempotent (err %v)", err)
			}
			dinfo, err := Inspect(dyn)
			if err != nil {
				t.Fatalf("Inspect(dynamic): %v", err)
			}
			if !reflect.DeepEqual(dinfo.Inputs, batched(rm.inputs)) || !reflect.DeepEqual(dinfo.Outputs, batched(rm.outputs)) {
				t.Errorf("dynamic inputs %+v outputs %+v", dinfo.Inputs, dinfo.Outputs)
			}
			for name, want := range rm.reshapes {
				if got := shapeValues(t, dyn, name); !reflect.DeepEqual(got, want) {
					t.Errorf("shape %s = %v, want %v", name, got, want)
				}
			}
			t.Logf("%d bytes -> %d bytes", len(model), len(dyn))
		})
	}
}

// graphInputNames lists every GraphProto.input of model, initializers
// included.
func graphInputNames(t *testing.T, model []byte) []string {
	t.Helper()
	g, err := lastBytes(model, modelGraph)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	err = eachField(g, func(f field) error {
		if f.isBytes(graphInput) {
			v, err := parseValueInfo(f.val)
			names = append(names, v.Name)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestPruneInitializerInputs(t *testing.T) {
	graphWithInitInputs := tm.Graph(
		tm.Node("Add", []string{"x", "w"}, []string{"y"}),
		tm.Initializer(tm.FloatTensor("w", []int64{1, 2}, []float32{1, 2})),
		tm.Input(tm.ValueInfo("w", tm.Float, 1, 2)),
		tm.Input(tm.ValueInfo("x", tm.Float, 1, 2)),
		tm.Output(tm.ValueInfo("y", tm.Float, 1, 2)))
	tests := []struct {
		name  string
		model []byte
		want  []string // graph inputs after pruning
	}{
		{"IR 8 pruned", tm.Model(8, 13, graphWithInitInputs), []string{"x"}},
		{"IR 4 pruned", tm.Model(4, 9, graphWithInitInputs), []string{"x"}},
		{"IR 3 kept", tm.Model(3, 8, graphWithInitInputs), []string{"w", "x"}},
		{"nothing to prune", tm.Tiny(tm.Raw), []string{"x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PruneInitializerInputs(tc.model)
			if err != nil {
				t.Fatal(err)
			}
			if names := graphInputNames(t, got); !reflect.DeepEqual(names, tc.want) {
				t.Errorf("graph inputs = %v, want %v", names, tc.want)
			}
			before, _ := Inspect(tc.model)
			after, err := Inspect(got)
			if err != nil || !reflect.DeepEqual(before, after) {
				t.Errorf("Inspect changed: %+v -> %+v (%v)", before, after, err)
			}
			if again, err := PruneInitializerInputs(got); err != nil || !bytes.Equal(again, got) {
				t.Errorf("not idempotent (err %v)", err)
			}
		})
	}
	for _, bad := range [][]byte{[]byte("junk"), tm.Model(8, 13)} {
		if out, err := PruneInitializerInputs(bad); err == nil || out != nil {
			t.Errorf("PruneInitializerInputs(%q) = %d bytes, %v; want error", bad, len(out), err)
		}
	}
}

func TestPruneInitializerInputsRealModels(t *testing.T) {
	for _, rm := range realModels {
		t.Run(rm.name, func(t *testing.T) {
			model := readRealModel(t, rm.name)
			got, err := PruneInitializerInputs(model)
			if err != nil {
				t.Fatal(err)
			}
			n := len(graphInputNames(t, model))
			if names := graphInputNames(t, got); len(names) != 1 {
				t.Errorf("%d graph inputs -> %v, want only the data input", n, names)
			}
			if (n > 1) == bytes.Equal(got, model) {
				t.Errorf("%d graph inputs, but output unchanged = %v", n, bytes.Equal(got, model))
			}
			if n > 1 {
				t.Logf("pruned %d initializer inputs", n-1)
			}
		})
	}
}

func ExampleMakeBatchDynamic() {
	dyn, err := MakeBatchDynamic(tm.Tiny(tm.Raw), "batch")
	if err != nil {
		panic(err)
	}
	info, _ := Inspect(dyn)
	fmt.Println(info.Inputs[0].Name, info.Inputs[0].Dims)
	// Output: x [batch 2 3]
}
