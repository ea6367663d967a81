package analyze

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/pkg/vision"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// newModelSet loads the real models through the real onnxruntime.
func newModelSet(t testing.TB) *ModelSet {
	t.Helper()
	deps := testenv.DepsDir(t)
	rt, err := onnx.NewRuntime(filepath.Join(deps, "lib", "libonnxruntime.so.1"))
	if err != nil {
		t.Fatal(err)
	}
	man, err := models.Load()
	if err != nil {
		t.Fatal(err)
	}
	ms := NewModelSet(rt, man, deps, onnx.SessionOptions{})
	t.Cleanup(func() {
		if err := ms.Close(); err != nil {
			t.Error(err)
		}
		if err := rt.Close(); err != nil {
			t.Error(err)
		}
	})
	return ms
}

func newPipeline(t testing.TB, ms *ModelSet, heads []string) *Pipeline {
	t.Helper()
	p, err := NewPipeline(PipelineConfig{Heads: heads}, ms.Get)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func decodeFile(t testing.TB, path string) gocv.Mat {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := vision.Decode(data, 0)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func analyzeFile(t testing.TB, p *Pipeline, path string) FrameFaces {
	t.Helper()
	m := decodeFile(t, path)
	defer m.Close()
	out, err := p.Analyze(context.Background(), []gocv.Mat{m})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out[0]
}

type photo struct {
	id, path string
	ff       FrameFaces
}

// analyzeFaces runs the pipeline on every photo of ../shared/testdata/faces/<identity>/.
// td is testenv.TestData(t), taken by the caller before it loads any model.
func analyzeFaces(t *testing.T, p *Pipeline, td string) []photo {
	dirs, err := filepath.Glob(filepath.Join(td, "faces", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no identities in the test data: %v", err)
	}
	var out []photo
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, f := range files {
			out = append(out, photo{id: filepath.Base(dir), path: f, ff: analyzeFile(t, p, f)})
		}
	}
	return out
}

func TestFacesAccuracy(t *testing.T) {
	td := testenv.TestData(t)
	p := newPipeline(t, newModelSet(t), DefaultHeads)
	photos := analyzeFaces(t, p, td)
	real := 0
	for _, ph := range photos {
		if n := len(ph.ff.Faces); n != 1 {
			t.Fatalf("%s: %d faces, want exactly 1", ph.path, n)
		}
		f := ph.ff.Faces[0]
		if ph.ff.Embeddings[0] == nil || f.Age == nil || f.Gender == nil || f.Liveness == nil || f.Pose == nil || len(f.Landmarks) != 5 {
			t.Fatalf("%s: a default head gave no output: %+v", ph.path, f)
		}
		if f.Emotion != nil {
			t.Fatalf("%s: emotion ran though it is not a default head", ph.path)
		}
		if ph.id == "Barack_Obama" || ph.id == "Joe_Biden" {
			if f.Gender.Label != "male" {
				t.Errorf("%s: gender %+v, want male", ph.path, *f.Gender)
			}
		}
		if *f.Age < 15 || *f.Age > 90 {
			t.Errorf("%s: age %.1f is not an adult's", ph.path, *f.Age)
		}
		if f.Liveness.Real {
			real++
		}
	}
	// Every photo is of a live person; the measured share is 38 of 39.
	if share := float64(real) / float64(len(photos)); share < 0.9 {
		t.Errorf("liveness called %d of %d real photos real (%.0f%%), want >= 90%%", real, len(photos), 100*share)
	}

	// For every identity, every same-person pair is more similar than any pair of that person
	// with someone else.
	ids := map[string]bool{}
	for _, ph := range photos {
		ids[ph.id] = true
	}
	var all []float64
	for id := range ids {
		minSame, maxDiff := float32(2), float32(-2)
		for i := range photos {
			for j := i + 1; j < len(photos); j++ {
				a, b := photos[i], photos[j]
				if a.id != id && b.id != id {
					continue
				}
				s := Cosine(a.ff.Embeddings[0], b.ff.Embeddings[0])
				if a.id == b.id {
					minSame = min(minSame, s)
				} else {
					maxDiff = max(maxDiff, s)
				}
			}
		}
		t.Logf("%-15s lowest same-person similarity %.3f, highest different-person %.3f", id, minSame, maxDiff)
		if minSame <= maxDiff {
			t.Errorf("%s: a same-person pair (%.3f) is no more similar than a different-person pair (%.3f)", id, minSame, maxDiff)
		}
		all = append(all, float64(minSame-maxDiff))
	}
	sort.Float64s(all)
	t.Logf("smallest identity margin %.3f", all[0])
}

func TestEmbeddingsAreUnitLength(t *testing.T) {
	img := filepath.Join(testenv.TestData(t), "detect", "two_people.jpg")
	p := newPipeline(t, newModelSet(t), []string{HeadEmbedding})
	ff := analyzeFile(t, p, img)
	for i, e := range ff.Embeddings {
		if len(e) != 512 {
			t.Fatalf("face %d: embedding of %d values, want 512", i, len(e))
		}
		var s float64
		for _, v := range e {
			s += float64(v) * float64(v)
		}
		if math.Abs(s-1) > 1e-4 {
			t.Fatalf("face %d: |e|^2 = %v, want 1", i, s)
		}
	}
	if ff.Faces[0].Embedding != nil {
		t.Fatal("embedding put into the result though KeepEmbeddings is off")
	}
}

func TestDetectionCounts(t *testing.T) {
	td := testenv.TestData(t)
	p := newPipeline(t, newModelSet(t), nil)
	// From ../shared/testdata/README.md.
	want := map[string][2]int{
		"two_people.jpg":         {2, 2},
		"obama_and_biden.jpg":    {2, 4},
		"obama_partial_face.jpg": {1, 1},
		"obama_32bit.png":        {1, 1},
		"no-faces.jpg":           {0, 0},
		"dogs.jpg":               {0, 0},
	}
	for name, w := range want {
		n := len(analyzeFile(t, p, filepath.Join(td, "detect", name)).Faces)
		if n < w[0] || n > w[1] {
			t.Errorf("%s: %d faces, want %d..%d", name, n, w[0], w[1])
		}
	}
	messi := "/usr/share/doc/opencv-doc/examples/data/messi5.jpg"
	if _, err := os.Stat(messi); err != nil {
		t.Fatalf("%s missing: run \"make setup\" (apt package opencv-doc): %v", messi, err)
	}
	if n := len(analyzeFile(t, p, messi).Faces); n != 1 {
		t.Errorf("messi5.jpg: %d faces, want 1", n)
	}
}

// TestBatchEqualsSingle runs several frames with several faces through every head in one batch
// and one at a time: the outputs must match.
func TestBatchEqualsSingle(t *testing.T) {
	td := testenv.TestData(t)
	p := newPipeline(t, newModelSet(t), AllHeads)
	paths := []string{
		filepath.Join(td, "detect", "two_people.jpg"),
		filepath.Join(td, "detect", "obama_and_biden.jpg"),
		filepath.Join(td, "detect", "no-faces.jpg"),
		filepath.Join(td, "faces", "Joe_Biden"),
	}
	if files, _ := filepath.Glob(filepath.Join(paths[3], "*")); len(files) > 0 {
		paths[3] = files[0]
	}
	var frames []gocv.Mat
	for _, path := range paths {
		frames = append(frames, decodeFile(t, path))
	}
	defer func() {
		for _, f := range frames {
			f.Close()
		}
	}()
	batched, err := p.Analyze(context.Background(), frames)
	if err != nil {
		t.Fatal(err)
	}
	faces := 0
	for i, f := range frames {
		single, err := p.Analyze(context.Background(), []gocv.Mat{f})
		if err != nil {
			t.Fatal(err)
		}
		b, s := batched[i], single[0]
		if len(b.Faces) != len(s.Faces) {
			t.Fatalf("%s: %d faces batched, %d alone", paths[i], len(b.Faces), len(s.Faces))
		}
		for j := range b.Faces {
			faces++
			bf, sf := b.Faces[j], s.Faces[j]
			if d := maxDiff(bf.Box.X1, sf.Box.X1, bf.Box.Y2, sf.Box.Y2, bf.Score, sf.Score); d > 1e-3 {
				t.Errorf("%s face %d: box/score differ by %v", paths[i], j, d)
			}
			if d := maxDiff(*bf.Age, *sf.Age, bf.Gender.Score, sf.Gender.Score, bf.Liveness.Score, sf.Liveness.Score,
				bf.Pose.Yaw, sf.Pose.Yaw, bf.Emotion.Scores["happy"], sf.Emotion.Scores["happy"]); d > 1e-3 {
				t.Errorf("%s face %d: attributes differ by %v", paths[i], j, d)
			}
			if c := Cosine(b.Embeddings[j], s.Embeddings[j]); c < 0.99999 {
				t.Errorf("%s face %d: batched and single embeddings have cosine %v", paths[i], j, c)
			}
		}
	}
	if faces < 5 {
		t.Fatalf("only %d faces compared; the test needs several per batch", faces)
	}
}

func maxDiff(pairs ...float32) float32 {
	var d float32
	for i := 0; i+1 < len(pairs); i += 2 {
		d = max(d, float32(math.Abs(float64(pairs[i]-pairs[i+1]))))
	}
	return d
}

func TestParseHeads(t *testing.T) {
	for in, want := range map[string]string{"all": strings.Join(AllHeads, ","), "default": strings.Join(DefaultHeads, ","), "": "", "none": "", "age, gender,age": "age,gender"} {
		got, err := ParseHeads(in)
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("ParseHeads(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := ParseHeads("age,telepathy"); err == nil || !strings.Contains(err.Error(), "telepathy") {
		t.Fatalf("unknown head: %v", err)
	}
}

func TestMissingModelNamesSetup(t *testing.T) {
	man, err := models.Load()
	if err != nil {
		t.Fatal(err)
	}
	deps := testenv.DepsDir(t)
	rt, err := onnx.NewRuntime(filepath.Join(deps, "lib", "libonnxruntime.so.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	empty := t.TempDir()
	ms := NewModelSet(rt, man, empty, onnx.SessionOptions{})
	defer ms.Close()
	_, err = NewPipeline(PipelineConfig{}, ms.Get)
	if err == nil || !strings.Contains(err.Error(), "make setup") {
		t.Fatalf("missing model error = %v, want one naming make setup", err)
	}
	// A model file with the wrong content.
	if err := os.MkdirAll(filepath.Join(empty, "models"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(empty, "models", "fr_detect.onnx"), []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = NewPipeline(PipelineConfig{}, ms.Get)
	if err == nil || !strings.Contains(err.Error(), "sha256") || !strings.Contains(err.Error(), "make setup") {
		t.Fatalf("wrong model error = %v, want a sha256 mismatch naming make setup", err)
	}
}

// TestOnDemandHeads: an on-demand head runs only on the frames that request it.
func TestOnDemandHeads(t *testing.T) {
	img := filepath.Join(testenv.TestData(t), "detect", "two_people.jpg")
	p, err := NewPipeline(PipelineConfig{Heads: []string{HeadAge}, OnDemand: []string{HeadPose, HeadAge}}, newModelSet(t).Get)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.OnDemandHeads(), ","); got != HeadPose {
		t.Fatalf("OnDemandHeads = %q, want pose (age is always on)", got)
	}
	m := decodeFile(t, img)
	defer m.Close()
	out, err := p.AnalyzeWith(context.Background(), []gocv.Mat{m, m}, [][]string{nil, {HeadPose, "unknown"}})
	if err != nil {
		t.Fatal(err)
	}
	for j := range out[0].Faces {
		if out[0].Faces[j].Pose != nil || out[0].Faces[j].Age == nil {
			t.Fatalf("frame 0 face %d: pose ran unrequested or age missing", j)
		}
		if out[1].Faces[j].Pose == nil || out[1].Faces[j].Age == nil {
			t.Fatalf("frame 1 face %d: requested pose missing", j)
		}
	}
}
