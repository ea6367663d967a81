package manifest

import (
	"errors"
	"strings"
	"testing"
)

// TestParseAnyCase: enumerated values are accepted in any case and stored in their canonical
// one; a value that is not one of them is still refused, naming the accepted ones.
func TestParseAnyCase(t *testing.T) {
	m, err := Parse([]byte(`
name: clothes
labels: [a, b]
target: Face
face: {crop: ALIGN}
input: {width: 8, height: 8, layout: nhwc, color: bgr, resize: Shorter_Side, crop: CENTER}
`))
	if err != nil {
		t.Fatal(err)
	}
	if m.Target != TargetFace || m.Face.Crop != FaceAlign || m.Input.Layout != LayoutNHWC || m.Input.Color != ColorBGR ||
		m.Input.Resize != ResizeShorterSide || m.Input.Crop != CropCenter {
		t.Fatalf("not canonical: %+v %+v %+v", m, *m.Face, m.Input)
	}
	j, err := Parse([]byte(`{"name": "x", "labels": ["a"], "input": {"width": 8, "height": 8, "layout": "nchw", "color": "Gray"}}`))
	if err != nil || j.Input.Layout != LayoutNCHW || j.Input.Color != ColorGray {
		t.Fatalf("JSON: %+v %v", j.Input, err)
	}
	_, err = Parse([]byte("name: x\nlabels: [a]\ninput: {width: 8, height: 8, layout: nwhc}\n"))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"NWHC": use NCHW or NHWC`) {
		t.Fatalf("bad layout: %v", err)
	}
}
