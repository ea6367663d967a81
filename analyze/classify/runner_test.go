package classify_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-video/vigil/analyze/classify"
	"github.com/vigil-video/vigil/analyze/classify/manifest"
	"github.com/vigil-video/vigil/analyze/classify/selection"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/pkg/vision"
)

// staticSource serves fixed classifiers.
type staticSource []*classify.Classifier

func (s staticSource) Classifiers() []*classify.Classifier { return s }

func TestRunnerTargets(t *testing.T) {
	testenv.NeedsTestData(t)
	ctx := context.Background()
	rt := newRuntime(t)
	model := mobileNet(t)
	variant := func(name string, fn func(m *manifest.Manifest)) *classify.Classifier {
		m := imageNetManifest(t, name)
		fn(&m)
		m.SetDefaults()
		c, err := classify.Load(ctx, rt, m, model, onnx.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	src := staticSource{
		variant("center", func(m *manifest.Manifest) {
			m.Target, m.Region = manifest.TargetRegion, &manifest.Region{X: 0.25, Y: 0.25, W: 0.5, H: 0.5}
		}),
		variant("facealign", func(m *manifest.Manifest) {
			m.Target, m.Face = manifest.TargetFace, &manifest.Face{Crop: manifest.FaceAlign}
		}),
		variant("facebox", func(m *manifest.Manifest) { m.Target = manifest.TargetFace }),
		variant("picky", func(m *manifest.Manifest) { m.Threshold = 0.9999999 }),
		variant("scene", func(m *manifest.Manifest) {}),
	}
	img, err := vision.Decode(decodeFile(t, filepath.Join(testenv.TestData(t), "detect", "two_people.jpg")), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	w, h := float32(img.Cols()), float32(img.Rows())
	faces := []result.Face{
		{Box: result.Box{X1: 0.1 * w, Y1: 0.1 * h, X2: 0.3 * w, Y2: 0.4 * h}, Landmarks: []result.Point{
			{X: 0.15 * w, Y: 0.2 * h}, {X: 0.25 * w, Y: 0.2 * h}, {X: 0.2 * w, Y: 0.27 * h}, {X: 0.16 * w, Y: 0.33 * h}, {X: 0.24 * w, Y: 0.33 * h}}},
		{Box: result.Box{X1: 0.6 * w, Y1: 0.1 * h, X2: 0.8 * w, Y2: 0.4 * h}}, // no landmarks: no aligned crop
		{Box: result.Box{X1: 2 * w, Y1: 2 * h, X2: 3 * w, Y2: 3 * h}},         // outside the frame: skipped
	}
	sel, err := selection.Parse("lobby=*; door=scene")
	if err != nil {
		t.Fatal(err)
	}
	r := &classify.Runner{Source: src, Selection: sel, Log: quiet}
	frames := []classify.Frame{{Stream: "lobby", Image: img, Faces: faces}, {Stream: "door", Image: img}, {Stream: "garden", Image: img}}
	out, err := r.Classify(ctx, frames)
	if err != nil {
		t.Fatal(err)
	}
	got := func(cs []result.Classification) string {
		var s []string
		for _, c := range cs {
			if c.Score <= 0 || c.Score > 1 || c.Label == "" {
				t.Errorf("classification %+v", c)
			}
			s = append(s, c.Model+"/"+c.Target)
		}
		return strings.Join(s, " ")
	}
	if g, want := got(out[0]), "center/region facealign/face:0 facebox/face:0 facebox/face:1 scene/frame"; g != want {
		t.Errorf("lobby: %s\nwant   %s", g, want)
	}
	if g := got(out[1]); g != "scene/frame" {
		t.Errorf("door: %s, want scene/frame", g)
	}
	if len(out[2]) != 0 {
		t.Errorf("garden (no rule): %v", out[2])
	}
	// The picky classifier ran but stays below its threshold: Predict shows it, Classify not.
	preds, err := r.Predict(ctx, frames[:1], []string{"picky"})
	if err != nil {
		t.Fatal(err)
	}
	if len(preds[0]) != 1 || !preds[0][0].Below || len(preds[0][0].Scores) != 1000 {
		t.Errorf("picky: %+v", preds[0])
	}
	// Batched over frames equals one at a time.
	one, err := r.Predict(ctx, frames[1:2], []string{"scene"})
	if err != nil {
		t.Fatal(err)
	}
	both, err := r.Predict(ctx, frames[:2], []string{"scene"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(one[0][0].Scores[:5]) != fmt.Sprint(both[1][0].Scores[:5]) {
		t.Errorf("batched scores differ: %v vs %v", one[0][0].Scores[:5], both[1][0].Scores[:5])
	}
	// A classifier closed under the runner (unloaded by a registry) is skipped, not an error.
	_ = src[4].Close()
	out, err = r.Classify(ctx, frames[1:2])
	if err != nil || len(out[0]) != 0 {
		t.Errorf("after unloading: %v, %v", out, err)
	}
}
