package graph

import (
	"bytes"
	"testing"

	tm "github.com/vigil-video/vigil/pkg/onnx/internal/testmodel"
)

// fuzzSeeds are small models covering the rewrite paths; the committed
// corpus under testdata/fuzz adds a few malformed inputs.
func fuzzSeeds() [][]byte {
	return [][]byte{
		tm.Tiny(tm.Raw),
		tm.Tiny(tm.Packed),
		tm.Tiny(tm.Unpacked),
		tm.Model(8, 13, tm.Graph(
			tm.Node("Reshape", []string{"x", "s"}, []string{"y"}),
			tm.Node("Constant", nil, []string{"s"}, tm.AttrInts("value_ints", []int64{1, -1})),
			tm.Input(tm.ValueInfo("x", tm.Float, 1, "N", nil)),
			tm.Output(tm.ValueInfo("y", tm.Float, 1, 6)),
			tm.ValueInfoField(tm.ValueInfo("h", tm.Float, 1, 2)))),
		tm.Model(8, 13, tm.Graph(
			tm.Node("If", []string{"c"}, []string{"y"}, tm.AttrGraph("then_branch", tm.Graph(tm.Initializer(tm.ExternalTensor("w", 1))))))),
		tm.Model(8, 13),
	}
}

func FuzzInspect(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, model []byte) {
		info, err := Inspect(model)
		if err != nil {
			return
		}
		for _, v := range append(info.Inputs, info.Outputs...) {
			if !v.HasShape && len(v.Dims) > 0 {
				t.Errorf("%q: dims without shape", v.Name)
			}
		}
	})
}

func FuzzMakeBatchDynamic(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s, "batch")
	}
	f.Fuzz(func(t *testing.T, model []byte, symbol string) {
		orig := append([]byte(nil), model...)
		out, err := MakeBatchDynamic(model, symbol)
		if !bytes.Equal(model, orig) {
			t.Fatal("input modified")
		}
		if err != nil {
			if out != nil {
				t.Fatal("output with error")
			}
			return
		}
		if _, err := Inspect(out); err != nil {
			t.Fatalf("Inspect(output): %v", err)
		}
		again, err := MakeBatchDynamic(out, symbol)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %v", err)
		}
		pruned, err := PruneInitializerInputs(out)
		if err != nil {
			t.Fatalf("PruneInitializerInputs(valid model): %v", err)
		}
		if again, err := PruneInitializerInputs(pruned); err != nil || !bytes.Equal(again, pruned) {
			t.Fatalf("PruneInitializerInputs not idempotent: %v", err)
		}
	})
}
