package analyze

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/pkg/vision"
)

// TestAnalyzeScaledMatchesFullDecode: a frame decoded at half size (what the Role does for
// frames that request no heads) gives the same faces as the full decode, reported in
// full-size pixels: same count, boxes within a few pixels, TooSmall decided on the full size.
func TestAnalyzeScaledMatchesFullDecode(t *testing.T) {
	data := jpegOf(t, filepath.Join(testenv.TestData(t), "detect", "obama_and_biden.jpg")) // 2000x1428
	p := newPipeline(t, newModelSet(t), nil)
	full, err := vision.Decode(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	half, err := vision.DecodeReduced(data, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	if half.Cols() != (full.Cols()+1)/2 {
		t.Fatalf("reduced decode is %d wide, want half of %d", half.Cols(), full.Cols())
	}
	want, err := p.AnalyzeWith(context.Background(), []gocv.Mat{full}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.AnalyzeScaled(context.Background(), []gocv.Mat{half}, nil, []float32{2})
	if err != nil {
		t.Fatal(err)
	}
	if len(got[0].Faces) != len(want[0].Faces) || len(want[0].Faces) < 2 {
		t.Fatalf("%d faces at half size, %d at full size; want the same, Obama's and Biden's among them", len(got[0].Faces), len(want[0].Faces))
	}
	for i, w := range want[0].Faces {
		g := got[0].Faces[i]
		side := float64(w.Box.X2 - w.Box.X1)
		for _, d := range []float32{g.Box.X1 - w.Box.X1, g.Box.Y1 - w.Box.Y1, g.Box.X2 - w.Box.X2, g.Box.Y2 - w.Box.Y2} {
			if math.Abs(float64(d)) > 0.05*side {
				t.Fatalf("face %d: box %+v at half size, %+v at full size", i, g.Box, w.Box)
			}
		}
		if len(g.Landmarks) != 5 || math.Abs(float64(g.Landmarks[2].X-w.Landmarks[2].X)) > 0.05*side {
			t.Fatalf("face %d: landmarks %+v, want about %+v", i, g.Landmarks, w.Landmarks)
		}
		if g.TooSmall != w.TooSmall {
			t.Fatalf("face %d: too_small %v at half size, %v at full size", i, g.TooSmall, w.TooSmall)
		}
	}
}
