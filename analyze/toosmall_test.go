package analyze

import (
	"context"
	"image"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestTooSmallFaces: a face below MinRecognitionSize is marked TooSmall and gets no embedding
// and no liveness (no guess at who it is or whether it is live), while its other heads still
// run; a face above it gets everything. The frame shows the same portrait twice, at full size
// and at a third of it.
func TestTooSmallFaces(t *testing.T) {
	td := testenv.TestData(t)
	ms := newModelSet(t)
	src := decodeFile(t, filepath.Join(td, "faces", "Barack_Obama", "obama.jpg"))
	defer src.Close()
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(src, &small, image.Point{}, 1.0/3, 1.0/3, gocv.InterpolationArea)
	frame := gocv.NewMatWithSize(max(src.Rows(), small.Rows())+40, src.Cols()+small.Cols()+80, gocv.MatTypeCV8UC3)
	defer frame.Close()
	frame.SetTo(gocv.NewScalar(255, 255, 255, 0))
	for _, c := range []struct {
		m  gocv.Mat
		at image.Point
	}{{src, image.Pt(20, 20)}, {small, image.Pt(src.Cols()+60, 20)}} {
		roi := frame.Region(image.Rectangle{Min: c.at, Max: c.at.Add(image.Pt(c.m.Cols(), c.m.Rows()))})
		c.m.CopyTo(&roi)
		roi.Close()
	}
	run := func(minSize float32) FrameFaces {
		p, err := NewPipeline(PipelineConfig{Heads: DefaultHeads, MinRecognitionSize: minSize}, ms.Get)
		if err != nil {
			t.Fatal(err)
		}
		out, err := p.Analyze(context.Background(), []gocv.Mat{frame})
		if err != nil {
			t.Fatal(err)
		}
		if len(out[0].Faces) != 2 {
			t.Fatalf("%d faces, want the portrait and its small copy", len(out[0].Faces))
		}
		return out[0]
	}
	side := func(b result.Box) float32 { return min(b.X2-b.X1, b.Y2-b.Y1) }
	all := run(-1) // no minimum: both faces get every head
	big, little := side(all.Faces[0].Box), side(all.Faces[1].Box)
	t.Logf("face sides: %.0f px and %.0f px", big, little)
	for i, f := range all.Faces {
		if f.TooSmall || all.Embeddings[i] == nil || f.Liveness == nil {
			t.Fatalf("without a minimum, face %d: too_small %v, embedding %v, liveness %v", i, f.TooSmall, all.Embeddings[i] != nil, f.Liveness)
		}
	}
	got := run((big + little) / 2)
	if f := got.Faces[0]; f.TooSmall || got.Embeddings[0] == nil || f.Liveness == nil || f.Age == nil {
		t.Errorf("the large face: too_small %v, embedding %v, liveness %v, age %v", f.TooSmall, got.Embeddings[0] != nil, f.Liveness, f.Age)
	}
	if f := got.Faces[1]; !f.TooSmall || got.Embeddings[1] != nil || f.Liveness != nil || f.Age == nil || f.Gender == nil || len(f.Landmarks) != 5 {
		t.Errorf("the small face: too_small %v, embedding %v, liveness %v, age %v, gender %v: want too small, no embedding, no liveness, "+
			"age, gender and landmarks", f.TooSmall, got.Embeddings[1] != nil, f.Liveness, f.Age, f.Gender)
	}
	// The default minimum is the documented one.
	var cfg PipelineConfig
	cfg.setDefaults()
	if cfg.MinRecognitionSize != result.DefaultMinRecognitionSize {
		t.Errorf("default MinRecognitionSize %v, want %v", cfg.MinRecognitionSize, result.DefaultMinRecognitionSize)
	}
}
