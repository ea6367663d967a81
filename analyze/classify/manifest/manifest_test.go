package manifest

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vigil-video/vigil/pkg/onnx/graph"
)

// clothesYAML is a complete manifest in YAML.
const clothesYAML = `
name: clothes
description: what people wear
labels: [pants, shoes, shorts, t-shirt]
target: frame
input:
  name: input
  width: 224
  height: 224
  layout: NCHW
  color: RGB
  scale: 0.00392156862745098
  mean: [0.485, 0.456, 0.406]
  std: [0.229, 0.224, 0.225]
  resize: shorter_side
  resize_size: 256
  crop: center
output:
  name: scores
  softmax: false
threshold: 0.5
`

// helmetJSON is a minimal manifest in JSON: defaults fill the rest.
const helmetJSON = `{"name": "helmet", "labels": ["no", "yes"], "target": "face", "input": {"width": 64, "height": 64}, "output": {"softmax": true}}`

func TestParse(t *testing.T) {
	m, err := Parse([]byte(clothesYAML))
	if err != nil {
		t.Fatal(err)
	}
	want := Manifest{Name: "clothes", Description: "what people wear", Labels: []string{"pants", "shoes", "shorts", "t-shirt"},
		Target: TargetFrame, Input: Input{Name: "input", Width: 224, Height: 224, Layout: LayoutNCHW, Color: ColorRGB,
			Scale: 1.0 / 255, Mean: []float32{0.485, 0.456, 0.406}, Std: []float32{0.229, 0.224, 0.225},
			Resize: ResizeShorterSide, ResizeSize: 256, Crop: CropCenter},
		Output: Output{Name: "scores"}, Threshold: 0.5}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("Parse(YAML) =\n%+v\nwant\n%+v", m, want)
	}

	h, err := Parse([]byte(helmetJSON))
	if err != nil {
		t.Fatal(err)
	}
	if h.Face == nil || h.Face.Crop != FaceBox || h.Face.Margin != 0.2 || h.Input.Layout != LayoutNCHW || h.Input.Color != ColorRGB ||
		h.Input.Scale != 1.0/255 || h.Input.Resize != ResizeStretch || h.Input.Crop != CropNone || !h.Output.Softmax {
		t.Errorf("defaults not applied: %+v face %+v", h, h.Face)
	}
	mean, std := h.Input.Norm()
	if !reflect.DeepEqual(mean, []float32{0, 0, 0}) || !reflect.DeepEqual(std, []float32{1, 1, 1}) {
		t.Errorf("Norm() = %v %v", mean, std)
	}

	// Encode round-trips through Parse.
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(b)
	if err != nil || !reflect.DeepEqual(again, m) {
		t.Errorf("round trip = %+v, %v", again, err)
	}
}

func TestParseRejects(t *testing.T) {
	base := func(extra string) string {
		return "name: x\nlabels: [a, b]\ninput: {width: 8, height: 8}\n" + extra
	}
	tests := []struct {
		name, doc, want string
	}{
		{"empty", "", "empty manifest"},
		{"unknown field", base("colour: RGB\n"), "colour"},
		{"typo in nested field", "name: x\nlabels: [a, b]\ninput: {width: 8, hieght: 8}\n", "hieght"},
		{"bad name", "name: Bad Name\nlabels: [a, b]\ninput: {width: 8, height: 8}\n", "name \"Bad Name\""},
		{"no labels", "name: x\ninput: {width: 8, height: 8}\n", "labels: none"},
		{"duplicate label", "name: x\nlabels: [a, a]\ninput: {width: 8, height: 8}\n", "repeats"},
		{"empty label", "name: x\nlabels: [a, '']\ninput: {width: 8, height: 8}\n", "labels[1]"},
		{"control label", "name: x\nlabels: [a, \"b\\u0007\"]\ninput: {width: 8, height: 8}\n", "control"},
		{"no size", "name: x\nlabels: [a, b]\n", "input.width 0"},
		{"huge size", "name: x\nlabels: [a, b]\ninput: {width: 100000, height: 8}\n", "1..4096"},
		{"bad layout", base("input: {width: 8, height: 8, layout: CHW}\n"), ""},
		{"bad target", base("target: car\n"), "target \"car\""},
		{"region without target", base("region: {x: 0, y: 0, w: 1, h: 1}\n"), "region"},
		{"target region without region", base("target: region\n"), "region"},
		{"region outside", base("target: region\nregion: {x: 0.5, y: 0, w: 0.6, h: 1}\n"), "x+w <= 1"},
		{"face crop on frame", base("face: {crop: align}\n"), "face:"},
		{"bad face crop", base("target: face\nface: {crop: mask}\n"), "face.crop"},
		{"margin with align", base("target: face\nface: {crop: align, margin: 0.1}\n"), "margin"},
		{"bad color", "name: x\nlabels: [a, b]\ninput: {width: 8, height: 8, color: CMYK}\n", "input.color"},
		{"mean count", "name: x\nlabels: [a, b]\ninput: {width: 8, height: 8, mean: [1, 2]}\n", "input.mean"},
		{"zero std", "name: x\nlabels: [a, b]\ninput: {width: 8, height: 8, std: [0]}\n", "input.std"},
		{"negative scale", "name: x\nlabels: [a, b]\ninput: {width: 8, height: 8, scale: -1}\n", "input.scale"},
		{"crop with stretch", "name: x\nlabels: [a, b]\ninput: {width: 8, height: 8, crop: center}\n", "input.crop"},
		{"resize size too small", "name: x\nlabels: [a, b]\ninput: {width: 8, height: 8, resize: shorter_side, resize_size: 4}\n", "resize_size"},
		{"bad resize", "name: x\nlabels: [a, b]\ninput: {width: 8, height: 8, resize: fit}\n", "input.resize"},
		{"softmax over one", "name: x\nlabels: [a]\ninput: {width: 8, height: 8}\noutput: {softmax: true}\n", "softmax"},
		{"threshold over 1 with softmax", base("output: {softmax: true}\nthreshold: 2\n"), "threshold"},
		{"bad sha", base("sha256: abc\n"), "sha256"},
		{"upper-case sha", base("sha256: " + strings.Repeat("A", 64) + "\n"), "sha256"},
		{"two documents", base("---\nname: y\n"), "more than one document"},
		{"not a mapping", "- a\n- b\n", "YAML"},
		{"JSON unknown field", `{"name": "x", "labels": ["a","b"], "input": {"width": 8, "height": 8}, "extra": 1}`, "extra"},
		{"JSON trailing data", `{"name": "x", "labels": ["a","b"], "input": {"width": 8, "height": 8}} {}`, "after"},
		{"JSON wrong type", `{"name": "x", "labels": "a", "input": {"width": 8, "height": 8}}`, "JSON"},
		{"too large", "name: x\n" + strings.Repeat("#", MaxSize), "at most"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestCheckModel(t *testing.T) {
	m, err := Parse([]byte(clothesYAML))
	if err != nil {
		t.Fatal(err)
	}
	dim := func(v any) graph.Dim {
		switch v := v.(type) {
		case int:
			return graph.Dim{Value: int64(v)}
		case string:
			return graph.Dim{Value: -1, Param: v}
		}
		return graph.Dim{Value: -1}
	}
	val := func(name string, elem int32, dims ...any) graph.ValueInfo {
		v := graph.ValueInfo{Name: name, ElemType: elem, HasShape: true}
		for _, d := range dims {
			v.Dims = append(v.Dims, dim(d))
		}
		return v
	}
	good := graph.Info{Inputs: []graph.ValueInfo{val("input", 1, "N", 3, 224, 224)},
		Outputs: []graph.ValueInfo{val("features", 1, "N", 1280), val("scores", 1, "N", 4)}}
	s, err := m.CheckModel(good)
	if err != nil {
		t.Fatal(err)
	}
	if s != (Shape{Input: "input", Output: "scores", OutputIndex: 1}) {
		t.Errorf("shape %+v", s)
	}
	// [N,4,1,1] scores and a fixed batch of 1 are fine too.
	ok2 := graph.Info{Inputs: []graph.ValueInfo{val("input", 1, 1, 3, 224, 224)}, Outputs: []graph.ValueInfo{val("scores", 1, 1, 4, 1, 1)}}
	if _, err := m.CheckModel(ok2); err != nil {
		t.Errorf("[1,4,1,1]: %v", err)
	}
	nhwc := m
	nhwc.Input.Layout = LayoutNHWC
	tests := []struct {
		name string
		m    Manifest
		info graph.Info
		want string
	}{
		{"external data", m, graph.Info{HasExternalData: true, Inputs: good.Inputs, Outputs: good.Outputs}, "external"},
		{"two inputs", m, graph.Info{Inputs: []graph.ValueInfo{good.Inputs[0], val("b", 1, 1)}, Outputs: good.Outputs}, "2 inputs"},
		{"wrong input name", m, graph.Info{Inputs: []graph.ValueInfo{val("data", 1, "N", 3, 224, 224)}, Outputs: good.Outputs}, "input.name"},
		{"int input", m, graph.Info{Inputs: []graph.ValueInfo{val("input", 2, "N", 3, 224, 224)}, Outputs: good.Outputs}, "element type"},
		{"rank 3", m, graph.Info{Inputs: []graph.ValueInfo{val("input", 1, 3, 224, 224)}, Outputs: good.Outputs}, "rank 4"},
		{"wrong size", m, graph.Info{Inputs: []graph.ValueInfo{val("input", 1, "N", 3, 299, 299)}, Outputs: good.Outputs}, "height 224"},
		{"layout", nhwc, good, "height 224 at position 1"},
		{"batch 8", m, graph.Info{Inputs: []graph.ValueInfo{val("input", 1, 8, 3, 224, 224)}, Outputs: good.Outputs}, "batch"},
		{"missing output", m, graph.Info{Inputs: good.Inputs, Outputs: good.Outputs[:1]}, "output.name \"scores\""},
		{"labels vs outputs", m, graph.Info{Inputs: good.Inputs, Outputs: []graph.ValueInfo{val("scores", 1, "N", 1000)}}, "4 labels"},
		{"scalar output", m, graph.Info{Inputs: good.Inputs, Outputs: []graph.ValueInfo{val("scores", 1)}}, "scalar"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.m.CheckModel(tc.info)
			if !errors.Is(err, ErrModel) {
				t.Fatalf("error = %v, want ErrModel", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	unnamed := m
	unnamed.Output.Name = ""
	if _, err := unnamed.CheckModel(good); err == nil || !strings.Contains(err.Error(), "name the scores output") {
		t.Errorf("two outputs without output.name: %v", err)
	}
}

// FuzzParse feeds the manifest parser arbitrary documents: it must never panic, and whatever
// it accepts must validate and survive an Encode/Parse round trip unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range []string{clothesYAML, helmetJSON, "name: x\nlabels: [a, b]\ninput: {width: 8, height: 8}\n",
		"name: r\nlabels: [a]\ntarget: region\nregion: {x: 0.1, y: 0.1, w: 0.5, h: 0.5}\ninput: {width: 8, height: 8, color: GRAY}\n",
		"a: &a [*a]\n", "{", "", "- 1\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		m, err := Parse(doc)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Parse accepted a manifest Validate rejects: %v", err)
		}
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(b)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip changed the manifest:\n%+v\n%+v", m, again)
		}
	})
}
