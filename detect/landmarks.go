package detect

import (
	"context"
	"fmt"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/pkg/vision"
)

// FaceRef is a face in a frame: what the per-face models take. Frame is borrowed, not owned.
type FaceRef struct {
	Frame gocv.Mat
	Box   Box
}

// Landmarker runs the 68-point landmark model (fr_landmark) on batches of faces.
type Landmarker struct {
	model Model
	size  int
}

// NewLandmarker wraps the fr_landmark model, whose input must be [1,S,S] (grey) and whose output
// holds 136 values per face.
func NewLandmarker(m Model) (*Landmarker, error) {
	in := m.InputShape()
	if len(in) != 3 || in[0] != 1 || in[1] != in[2] {
		return nil, fmt.Errorf("landmark model: input shape %v, want [1 S S]", in)
	}
	if len(m.Outputs()) != 1 || volume(m.OutputShape(0)) != 136 {
		return nil, fmt.Errorf("landmark model: want one output of 136 values")
	}
	return &Landmarker{model: m, size: int(in[1])}, nil
}

// Landmarks returns 68 points (x0,y0,...,x67,y67, frame pixels) for each face, with one batched
// model call. A face whose crop is empty gets a nil slice.
func (l *Landmarker) Landmarks(ctx context.Context, faces []FaceRef) ([][]float32, error) {
	if len(faces) == 0 {
		return nil, nil
	}
	per := l.size * l.size
	input := make([]float32, len(faces)*per)
	rects := make([]struct{ x, y, w, h float32 }, len(faces))
	for i, f := range faces {
		r := ExpandedRect(f.Box, f.Frame.Cols(), f.Frame.Rows(), 1.0)
		crop, err := vision.CropResize(f.Frame, r, l.size, l.size)
		if err != nil {
			continue // stays zero; its landmarks are discarded below
		}
		err = vision.FillGray(input[i*per:(i+1)*per], crop, 1.0/256)
		crop.Close()
		if err != nil {
			return nil, fmt.Errorf("landmark model: %w", err)
		}
		rects[i].x, rects[i].y = float32(r.Min.X), float32(r.Min.Y)
		rects[i].w, rects[i].h = float32(r.Dx()), float32(r.Dy())
	}
	out, err := l.model.Run(ctx, len(faces), input)
	if err != nil {
		return nil, fmt.Errorf("landmark model: %w", err)
	}
	res := make([][]float32, len(faces))
	for i := range faces {
		if rects[i].w == 0 {
			continue
		}
		pts := make([]float32, 136)
		for k := 0; k < 68; k++ {
			pts[2*k] = out[0][i*136+2*k]*rects[i].w + rects[i].x
			pts[2*k+1] = out[0][i*136+2*k+1]*rects[i].h + rects[i].y
		}
		res[i] = pts
	}
	return res, nil
}

// Align warps the face whose five landmarks are pts onto the 112x112 ArcFace template with a
// least-squares similarity transform. The caller closes the returned Mat.
func Align(frame gocv.Mat, pts [5]Point) (gocv.Mat, error) {
	a, ok := Similarity(pts, Template112)
	if !ok {
		return gocv.Mat{}, fmt.Errorf("align: degenerate landmarks %v", pts)
	}
	return vision.WarpAffine(frame, a, 112, 112)
}
