package manifest

import (
	"fmt"
	"strings"

	"github.com/vigil-video/vigil/pkg/onnx/graph"
)

// Shape is what CheckModel found: the input's name and the scores output's name and position.
type Shape struct {
	// Input is the model input's name.
	Input string
	// Output is the scores output's name and OutputIndex its position among the model outputs.
	Output      string
	OutputIndex int
}

// CheckModel compares the manifest with the model's declared inputs and outputs (from
// graph.Inspect). The model must keep all its data inside the file, have exactly one float32
// input of rank 4 whose first dimension is the batch and whose other dimensions match
// Input.Layout, Width, Height and the colour's channel count, and have a float32 scores output
// (Output.Name, or its only output) whose per-sample size is len(Labels) (for example [N,K] or
// [N,K,1,1]). Dimensions the model leaves symbolic are accepted here; running the model on
// registration catches the rest. Errors wrap ErrModel and say what the model declares.
func (m *Manifest) CheckModel(info graph.Info) (Shape, error) {
	s, err := m.checkModel(info)
	if err != nil {
		return Shape{}, fmt.Errorf("%w: it does not fit manifest %s: %w", ErrModel, m.Name, err)
	}
	return s, nil
}

func (m *Manifest) checkModel(info graph.Info) (Shape, error) {
	if info.HasExternalData {
		return Shape{}, fmt.Errorf("the model keeps tensor data in external files; export it with all data inside the .onnx file")
	}
	if len(info.Inputs) != 1 {
		return Shape{}, fmt.Errorf("the model has %d inputs (%s); a classifier takes exactly one image tensor", len(info.Inputs), names(info.Inputs))
	}
	in := info.Inputs[0]
	if m.Input.Name != "" && in.Name != m.Input.Name {
		return Shape{}, fmt.Errorf("input.name %q: the model's input is called %q", m.Input.Name, in.Name)
	}
	if in.ElemType != graph.ElemFloat {
		return Shape{}, fmt.Errorf("input %q has element type %d; only float32 (1) inputs are supported", in.Name, in.ElemType)
	}
	if !in.HasShape || len(in.Dims) != 4 {
		return Shape{}, fmt.Errorf("input %q has shape %s; want rank 4 (%s)", in.Name, dims(in), m.Input.Layout)
	}
	c, h, w := int64(m.Input.Channels()), int64(m.Input.Height), int64(m.Input.Width)
	want := []int64{c, h, w}
	labels := []string{"channels", "height", "width"}
	if m.Input.Layout == LayoutNHWC {
		want = []int64{h, w, c}
		labels = []string{"height", "width", "channels"}
	}
	if d := in.Dims[0]; d.Fixed() && d.Value != 1 {
		return Shape{}, fmt.Errorf("input %q has shape %s: its first dimension must be the batch (1 or symbolic)", in.Name, dims(in))
	}
	for i, d := range in.Dims[1:] {
		if d.Fixed() && d.Value != want[i] {
			return Shape{}, fmt.Errorf("input %q has shape %s, but the manifest (%s, %dx%d, %s) needs %s %d at position %d",
				in.Name, dims(in), m.Input.Layout, m.Input.Width, m.Input.Height, m.Input.Color, labels[i], want[i], i+1)
		}
	}
	idx := -1
	if m.Output.Name == "" {
		if len(info.Outputs) != 1 {
			return Shape{}, fmt.Errorf("the model has %d outputs (%s); name the scores output in output.name", len(info.Outputs), names(info.Outputs))
		}
		idx = 0
	} else {
		for i, o := range info.Outputs {
			if o.Name == m.Output.Name {
				idx = i
			}
		}
		if idx < 0 {
			return Shape{}, fmt.Errorf("output.name %q: the model's outputs are %s", m.Output.Name, names(info.Outputs))
		}
	}
	out := info.Outputs[idx]
	if out.ElemType != graph.ElemFloat {
		return Shape{}, fmt.Errorf("output %q has element type %d; only float32 (1) scores are supported", out.Name, out.ElemType)
	}
	if out.HasShape {
		if len(out.Dims) == 0 {
			return Shape{}, fmt.Errorf("output %q is a scalar; want [batch, %d]", out.Name, len(m.Labels))
		}
		if d := out.Dims[0]; d.Fixed() && d.Value != 1 {
			return Shape{}, fmt.Errorf("output %q has shape %s: its first dimension must be the batch", out.Name, dims(out))
		}
		n, known := int64(1), true
		for _, d := range out.Dims[1:] {
			if !d.Fixed() {
				known = false
				break
			}
			n *= d.Value
		}
		if known && n != int64(len(m.Labels)) {
			return Shape{}, fmt.Errorf("output %q has shape %s, %d scores per image, but the manifest has %d labels", out.Name, dims(out), n, len(m.Labels))
		}
	}
	return Shape{Input: in.Name, Output: out.Name, OutputIndex: idx}, nil
}

func names(vs []graph.ValueInfo) string {
	if len(vs) == 0 {
		return "none"
	}
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprintf("%q %s", v.Name, dims(v))
	}
	return strings.Join(s, ", ")
}

func dims(v graph.ValueInfo) string {
	if !v.HasShape {
		return "[unknown]"
	}
	s := make([]string, len(v.Dims))
	for i, d := range v.Dims {
		s[i] = d.String()
	}
	return "[" + strings.Join(s, ",") + "]"
}
