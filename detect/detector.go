package detect

import (
	"context"
	"fmt"
	"image"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/pkg/vision"
)

// Detector runs the 320x240 face detector (fr_detect) on batches of frames.
type Detector struct {
	model     Model
	post      PostConfig
	w, h      int
	boxesOut  int
	scoresOut int
}

// detectorNorm maps 0..255 to about -1..1, as the reference library does.
var detectorNorm = vision.Norm{Scale: 1, Mean: [3]float32{127, 127, 127}, Std: [3]float32{128, 128, 128}}

// NewDetector wraps the fr_detect model. It checks the model's input is [3,H,W] and that it has
// "scores" and "boxes" outputs.
func NewDetector(m Model, post PostConfig) (*Detector, error) {
	in := m.InputShape()
	if len(in) != 3 || in[0] != 3 {
		return nil, fmt.Errorf("face detector: input shape %v, want [3 H W]", in)
	}
	d := &Detector{model: m, post: post, w: int(in[2]), h: int(in[1]),
		boxesOut: OutputIndex(m, "boxes"), scoresOut: OutputIndex(m, "scores")}
	if d.boxesOut < 0 || d.scoresOut < 0 {
		return nil, fmt.Errorf("face detector: outputs %v, want \"scores\" and \"boxes\"", m.Outputs())
	}
	return d, nil
}

// Detect finds the faces in each frame (8-bit BGR Mats of any size) with one batched model call.
// The i-th result lists frame i's faces, best score first, in that frame's pixels.
func (d *Detector) Detect(ctx context.Context, frames []gocv.Mat) ([][]Detection, error) {
	if len(frames) == 0 {
		return nil, nil
	}
	per := 3 * d.w * d.h
	input := make([]float32, len(frames)*per)
	small := gocv.NewMat()
	defer small.Close()
	for i, f := range frames {
		if f.Empty() || f.Type() != gocv.MatTypeCV8UC3 {
			return nil, fmt.Errorf("face detector: frame %d is empty or not 8-bit BGR", i)
		}
		gocv.Resize(f, &small, image.Pt(d.w, d.h), 0, 0, gocv.InterpolationLinear)
		if err := vision.FillCHW(input[i*per:(i+1)*per], small, vision.BGR, detectorNorm); err != nil {
			return nil, fmt.Errorf("face detector: %w", err)
		}
	}
	out, err := d.model.Run(ctx, len(frames), input)
	if err != nil {
		return nil, fmt.Errorf("face detector: %w", err)
	}
	scores, boxes := out[d.scoresOut], out[d.boxesOut]
	ns, nb := len(scores)/len(frames), len(boxes)/len(frames)
	res := make([][]Detection, len(frames))
	for i, f := range frames {
		res[i] = Decode(scores[i*ns:(i+1)*ns], boxes[i*nb:(i+1)*nb], f.Cols(), f.Rows(), d.post)
	}
	return res, nil
}
