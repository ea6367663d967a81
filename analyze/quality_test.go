package analyze

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/testenv"
	"gocv.io/x/gocv"
)

// TestFaceGate: the face-quality gate drops the cat's face the detector takes for a human one
// and keeps every real face of the shared photos (each identity photo holds exactly one face).
func TestFaceGate(t *testing.T) {
	td := testenv.TestData(t)
	ms := newModelSet(t)
	gated := newPipeline(t, ms, nil)
	open, err := NewPipeline(PipelineConfig{MirrorTolerance: -1}, ms.Get)
	if err != nil {
		t.Fatal(err)
	}
	cat := filepath.Join(td, "detect", "cat_chelsea.png")
	if n := len(analyzeFile(t, open, cat).Faces); n == 0 {
		t.Fatalf("without the gate the detector finds no face on the cat: the test no longer shows the gate working")
	}
	if n := len(analyzeFile(t, gated, cat).Faces); n != 0 {
		t.Errorf("cat_chelsea.png: %d faces through the gate, want 0", n)
	}
	if n := len(analyzeFile(t, gated, filepath.Join(td, "detect", "two_people.jpg")).Faces); n != 2 {
		t.Errorf("two_people.jpg: %d faces, want 2", n)
	}
	ids, err := os.ReadDir(filepath.Join(td, "faces"))
	if err != nil {
		t.Fatal(err)
	}
	photos := 0
	for _, id := range ids {
		files, _ := filepath.Glob(filepath.Join(td, "faces", id.Name(), "*"))
		for _, f := range files {
			photos++
			if n := len(analyzeFile(t, gated, f).Faces); n != 1 {
				t.Errorf("%s: %d faces through the gate, want 1", f, n)
			}
		}
	}
	if photos < 30 {
		t.Fatalf("only %d identity photos", photos)
	}
}

// TestTiledDetection: with tiles (ForImages) the crowd photos' faces of 17 to 45 px are found,
// which the whole-frame detector misses.
func TestTiledDetection(t *testing.T) {
	td := testenv.TestData(t)
	ms := newModelSet(t)
	whole := newPipeline(t, ms, nil)
	tiled, err := NewPipeline(ForImages(PipelineConfig{}), ms.Get)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		min, max int
	}{{"group_suits.jpg", 75, 79}, {"group_students.jpg", 50, 53}, {"group_steps.jpg", 26, 26}, {"two_people.jpg", 2, 2}, {"no-faces.jpg", 0, 0}} {
		path := filepath.Join(td, "detect", c.name)
		n, before := len(analyzeFile(t, tiled, path).Faces), len(analyzeFile(t, whole, path).Faces)
		t.Logf("%s: %d faces tiled, %d whole-frame", c.name, n, before)
		if n < c.min || n > c.max {
			t.Errorf("%s: %d faces tiled (%d whole-frame), want %d..%d", c.name, n, before, c.min, c.max)
		}
	}
}

// TestLandmarksRunOncePerFace: the landmark model runs once for every face's landmarks (one
// batch) and, with the quality gate on, once more per face for the mirror check; the gate's
// landmarks are the faces' own, not computed a third time. The faces get landmarks either way.
func TestLandmarksRunOncePerFace(t *testing.T) {
	img := decodeFile(t, filepath.Join(testenv.TestData(t), "detect", "obama_and_biden.jpg"))
	defer img.Close()
	ms := newModelSet(t)
	m, err := ms.Get("fr_landmark")
	if err != nil {
		t.Fatal(err)
	}
	sess := m.(*onnx.Session)
	for _, c := range []struct {
		name      string
		tolerance float32
		mirror    bool
	}{{"gate on", 0, true}, {"gate off", -1, false}} {
		p, err := NewPipeline(PipelineConfig{MirrorTolerance: c.tolerance}, ms.Get)
		if err != nil {
			t.Fatal(err)
		}
		before := sess.Latency()
		out, err := p.AnalyzeWith(context.Background(), []gocv.Mat{img}, nil)
		if err != nil {
			t.Fatal(err)
		}
		after := sess.Latency()
		faces := len(out[0].Faces)
		// One batch for every face's landmarks, plus with the gate one mirror check per face.
		want := uint64(1)
		if c.mirror {
			want += uint64(faces)
		}
		if faces < 2 || after.Count-before.Count != want {
			t.Fatalf("%s: %d landmark invocations for %d faces, want %d", c.name, after.Count-before.Count, faces, want)
		}
		for _, f := range out[0].Faces {
			if len(f.Landmarks) != 5 {
				t.Fatalf("%s: face %+v without landmarks", c.name, f.Box)
			}
		}
	}
}
