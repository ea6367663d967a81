package classify_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/analyze/classify"
	"github.com/vigil-video/vigil/analyze/classify/dataset"
	"github.com/vigil-video/vigil/analyze/classify/manifest"
	"github.com/vigil-video/vigil/analyze/classify/train"
	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/pkg/vision"
)

// TestTrainMobileNetClothes trains the 4-class clothing classifier on MobileNetV2's pooled
// features (the reference task), reports its 5-fold cross-validated accuracy, then
// registers the exported model and runs it like an analyzer would.
func TestTrainMobileNetClothes(t *testing.T) {
	testenv.NeedsTestData(t)
	ctx := context.Background()
	rt := newRuntime(t)
	ds := clothes(t)
	var phases []string
	res, err := classify.Train(ctx, rt, ds, classify.TrainConfig{
		Name: "clothes", Backbone: classify.ImageNetBackbone("mobilenetv2-12-int8", mobileNet(t)), Folds: 5,
		Progress: func(p classify.TrainProgress) {
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Report
	cv := r.CrossValidation
	t.Logf("features %s (%d-d) of %d images in %.1fs, head in %.1fs; held-out accuracy %.1f%% (%d images, best epoch %d of %d); export check %.2g",
		r.Features, r.FeatureDim, r.Images, r.EmbedSeconds, r.TrainSeconds, 100*r.ValAccuracy, r.ValSize, r.BestEpoch, r.Epochs, r.ExportMaxDiff)
	t.Logf("5-fold cross-validated accuracy: %.1f%% ± %.1f%% (folds %.3v), pooled confusion %v (rows true %v)",
		100*cv.Mean, 100*cv.Std, cv.Accuracy, cv.Confusion, r.Labels)
	// 90.8% before augmentation, the weight decay chosen by cross-validation and the refit on
	// every image; 94.2% after; 95.8% with one common scale for the features (issue 16).
	if cv.Mean < 0.95 {
		t.Errorf("5-fold accuracy %.3f, want at least 0.95", cv.Mean)
	}
	if r.Images != 120 || len(r.Skipped) != 0 || r.FeatureDim != 1280 || r.Features != "472_quantized" {
		t.Errorf("report %+v", r)
	}
	if r.ExportMaxDiff > 1e-4 {
		t.Errorf("exported model differs from the head by %g", r.ExportMaxDiff)
	}
	t.Logf("weight decay %g chosen by 5-fold cross-validation from %+v; %d augmented vectors; retrained on all: %v",
		r.L2, r.L2Grid, r.Augmented, r.RetrainedOnAll)
	if r.Augmented != 3*120 || !r.RetrainedOnAll || len(r.L2Grid) != 4 {
		t.Errorf("augmented %d (want 360), retrained on all %v, %d weight decays tried (want 4)", r.Augmented, r.RetrainedOnAll, len(r.L2Grid))
	}
	if want := "embed crossval train export"; joinWords(phases) != want {
		t.Errorf("progress phases %q, want %q", joinWords(phases), want)
	}
	m := res.Manifest
	if m.Name != "clothes" || len(m.Labels) != 4 || m.Output.Name != "scores" || m.Output.Softmax || m.Trained == nil ||
		m.Input.Resize != manifest.ResizeShorterSide {
		t.Errorf("manifest %+v", m)
	}

	// Registered and run like an analyzer: the exported model classifies training photos.
	reg := openRegistry(t, newStore(t))
	st, err := reg.Register(ctx, m, res.Model)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != classify.StateLoaded {
		t.Fatalf("registered: %+v", st)
	}
	runner := &classify.Runner{Source: reg, Log: quiet}
	correct := 0
	for i := 0; i < len(ds.Images); i += 10 {
		data, _ := ds.ReadImage(i)
		img, err := vision.Decode(data, 0)
		if err != nil {
			t.Fatal(err)
		}
		out, err := runner.Classify(ctx, []classify.Frame{{Stream: "shop", Image: img}})
		img.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(out[0]) != 1 || out[0][0].Model != "clothes" || out[0][0].Target != "frame" {
			t.Fatalf("classifications %+v", out[0])
		}
		if out[0][0].Label == ds.Classes[ds.Images[i].Class] {
			correct++
		}
	}
	if correct < 11 {
		t.Errorf("%d of 12 training photos classified as their class", correct)
	}
}

// TestClothesCrossValidationSeeds measures the clothing classifier's 5-fold accuracy over three
// fold seeds, as README.md reports it: one seed's folds can flatter or wrong a recipe by a few
// points (seed 1 ranges 90.8-95.8% over the variants tried for issue 16), the mean of three
// less so. Per-feature standardisation gives 91.9% (94.2, 91.7, 90.0); one common scale for the
// L2-normalised features 93.1% (95.8, 92.5, 90.8).
func TestClothesCrossValidationSeeds(t *testing.T) {
	testenv.NeedsTestData(t)
	ctx := context.Background()
	rt := newRuntime(t)
	ds := clothes(t)
	bb := classify.ImageNetBackbone("mobilenetv2-12-int8", mobileNet(t))
	var sum float64
	var per []float64
	for _, seed := range []uint64{1, 2, 3} {
		res, err := classify.Train(ctx, rt, ds, classify.TrainConfig{Name: "clothes", Backbone: bb, Folds: 5, Head: train.Config{Seed: seed}})
		if err != nil {
			t.Fatal(err)
		}
		cv := res.Report.CrossValidation
		per = append(per, cv.Mean)
		sum += cv.Mean
		t.Logf("fold seed %d: %.1f%% ± %.1f%% at weight decay %g, pooled confusion %v", seed, 100*cv.Mean, 100*cv.Std, res.Report.L2, cv.Confusion)
	}
	mean := sum / 3
	t.Logf("5-fold accuracy, mean over fold seeds 1-3: %.1f%%", 100*mean)
	if mean < 0.925 {
		t.Errorf("5-fold accuracy over fold seeds 1-3 %.3f (%.3v), want at least 0.925", mean, per)
	}
}

func joinWords(s []string) string {
	out := ""
	for i, w := range s {
		if i > 0 {
			out += " "
		}
		out += w
	}
	return out
}

// facePipeline loads the detector and landmark models as a FaceFinder, and the face embedding
// model as a backbone.
func facePipeline(t testing.TB, rt *onnx.Runtime) (classify.FaceFinder, classify.Backbone) {
	t.Helper()
	deps := testenv.DepsDir(t)
	man, err := models.Load()
	if err != nil {
		t.Fatal(err)
	}
	ms := analyze.NewModelSet(rt, man, deps, onnx.SessionOptions{})
	t.Cleanup(func() { _ = ms.Close() })
	p, err := analyze.NewPipeline(analyze.PipelineConfig{}, ms.Get)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := man.ReadVerified(deps, "fr_feature")
	if err != nil {
		t.Fatal(err)
	}
	bb, err := classify.FaceBackbone("fr_feature", fb)
	if err != nil {
		t.Fatal(err)
	}
	finder := classify.FaceFinderFunc(func(ctx context.Context, frames []gocv.Mat) ([][]result.Face, error) {
		ff, err := p.Analyze(ctx, frames)
		if err != nil {
			return nil, err
		}
		out := make([][]result.Face, len(ff))
		for i, f := range ff {
			out[i] = f.Faces
		}
		return out, nil
	})
	return finder, bb
}

// TestTrainFaceClassifier trains a face-crop classifier on the face embedding (three people of
// the shared face photos, 11 each) and runs it on the faces of a photo.
func TestTrainFaceClassifier(t *testing.T) {
	testenv.NeedsTestData(t)
	ctx := context.Background()
	rt := newRuntime(t)
	finder, bb := facePipeline(t, rt)
	dir := t.TempDir()
	src := filepath.Join(testenv.TestData(t), "faces")
	for _, who := range []string{"John_Salley", "John_Savage", "John_Schneider"} {
		files, err := os.ReadDir(filepath.Join(src, who))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, who), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(src, who, f.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, who, f.Name()), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	ds, err := dataset.Scan(dir, dataset.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := classify.Train(ctx, rt, ds, classify.TrainConfig{Name: "people", Backbone: bb, Faces: finder, Folds: 3})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Report
	t.Logf("face classifier: %d images (%d skipped), held-out accuracy %.1f%%, 3-fold %.1f%% (pooled confusion %v), export check %.2g",
		r.Images, len(r.Skipped), 100*r.ValAccuracy, 100*r.CrossValidation.Mean, r.CrossValidation.Confusion, r.ExportMaxDiff)
	if r.CrossValidation.Mean < 0.9 || r.ExportMaxDiff > 1e-4 {
		t.Errorf("face classifier report %+v", r)
	}
	if m := res.Manifest; m.Target != manifest.TargetFace || m.Face.Crop != manifest.FaceAlign || m.Input.Color != manifest.ColorBGR {
		t.Errorf("manifest %+v face %+v", m, m.Face)
	}

	// Run it on one of the photos the way the analyzer does: faces from the pipeline.
	c, err := classify.Load(ctx, rt, res.Manifest, res.Model, onnx.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data, _ := ds.ReadImage(len(ds.Images) - 1) // John_Schneider
	img, err := vision.Decode(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	faces, err := finder.FindFaces(ctx, []gocv.Mat{img})
	if err != nil {
		t.Fatal(err)
	}
	out, err := (&classify.Runner{Source: staticSource{c}}).Classify(ctx, []classify.Frame{{Stream: "s", Image: img, Faces: faces[0]}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out[0]) != 1 || out[0][0].Target != "face:0" || out[0][0].Label != "John_Schneider" {
		t.Errorf("classifications %+v", out[0])
	}
}
