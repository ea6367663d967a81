package faceengine

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/analyze/analyzetest"
	"github.com/vigil-video/vigil/analyze/faceapi"
	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/pkg/vision"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// newEngine loads the real models through the real onnxruntime.
func newEngine(t testing.TB) *Engine {
	t.Helper()
	ms := analyzetest.ModelSet(t)
	e, err := New(Config{Models: ms.Get})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type labelled struct {
	id, path string
	emb      []float32
}

// faceEmbeddings embeds every photo of ../shared/testdata/faces/<identity>/.
func faceEmbeddings(t *testing.T, e *Engine) []labelled {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(testenv.TestData(t), "faces", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no identities in the test data: %v", err)
	}
	var out []labelled
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := e.Analyze(context.Background(), data, faceapi.Options{Embeddings: true})
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(res.Faces) != 1 || res.Embeddings[0] == nil {
				t.Fatalf("%s: %d faces, want 1 with an embedding", f, len(res.Faces))
			}
			out = append(out, labelled{id: filepath.Base(dir), path: f, emb: res.Embeddings[0]})
		}
	}
	return out
}

// TestThresholdFromData measures gallery.DefaultThreshold's evidence: on the labelled photos,
// every same-person pair must reach it and every different-person pair stay below it, with a
// margin on both sides.
func TestThresholdFromData(t *testing.T) {
	testenv.NeedsTestData(t)
	e := newEngine(t)
	photos := faceEmbeddings(t, e)
	minSame, maxDiff := float32(2), float32(-2)
	var minSamePair, maxDiffPair string
	var same, diff []float64
	for i := range photos {
		for j := i + 1; j < len(photos); j++ {
			a, b := photos[i], photos[j]
			s := gallery.Cosine(a.emb, b.emb)
			pair := filepath.Base(a.path) + " / " + filepath.Base(b.path)
			if a.id == b.id {
				same = append(same, float64(s))
				if s < minSame {
					minSame, minSamePair = s, pair
				}
			} else {
				diff = append(diff, float64(s))
				if s > maxDiff {
					maxDiff, maxDiffPair = s, pair
				}
			}
		}
	}
	sort.Float64s(same)
	sort.Float64s(diff)
	t.Logf("%d photos: %d same-person pairs (lowest %.3f: %s; median %.3f), %d different-person pairs (highest %.3f: %s; median %.3f)",
		len(photos), len(same), minSame, minSamePair, same[len(same)/2], len(diff), maxDiff, maxDiffPair, diff[len(diff)/2])
	thr := float32(gallery.DefaultThreshold)
	if minSame < thr || maxDiff >= thr {
		t.Fatalf("threshold %.2f does not separate the labelled pairs: lowest same %.3f, highest different %.3f", thr, minSame, maxDiff)
	}
	if minSame-thr < 0.08 || thr-maxDiff < 0.08 {
		t.Fatalf("threshold %.2f is within 0.08 of the data (lowest same %.3f, highest different %.3f): re-centre it", thr, minSame, maxDiff)
	}
}

// TestCheckImageOnEncoders: JPEGs as libjpeg writes them (baseline, progressive, with restart
// markers, optimised) and every photo of the shared test data pass faceapi.CheckImage, and the
// engine finds the same faces in each; each cut short anywhere is refused before decoding.
func TestCheckImageOnEncoders(t *testing.T) {
	testenv.NeedsTestData(t)
	e := newEngine(t)
	td := testenv.TestData(t)
	src, err := os.ReadFile(filepath.Join(td, "detect", "two_people.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := vision.Decode(src, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	variants := map[string][]int{
		"baseline":    {gocv.IMWriteJpegQuality, 90},
		"progressive": {gocv.IMWriteJpegProgressive, 1},
		"restarts":    {gocv.IMWriteJpegRstInterval, 4},
		"optimized":   {gocv.IMWriteJpegOptimize, 1},
		"all":         {gocv.IMWriteJpegProgressive, 1, gocv.IMWriteJpegRstInterval, 2, gocv.IMWriteJpegOptimize, 1},
	}
	for name, params := range variants {
		buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, m, params)
		if err != nil {
			t.Fatal(err)
		}
		data := bytes.Clone(buf.GetBytes())
		buf.Close()
		if _, err := faceapi.CheckImage(data, 0); err != nil {
			t.Errorf("%s JPEG refused: %v", name, err)
			continue
		}
		res, err := e.Analyze(context.Background(), data, faceapi.Options{})
		if err != nil || len(res.Faces) != 2 {
			t.Errorf("%s JPEG: %d faces, %v", name, len(res.Faces), err)
		}
		for _, cut := range []int{len(data) / 10, len(data) / 2, len(data) - 3, len(data) - 1} {
			if _, err := faceapi.CheckImage(data[:cut], 0); !errors.Is(err, faceapi.ErrInvalidImage) {
				t.Errorf("%s JPEG cut at %d of %d accepted: %v", name, cut, len(data), err)
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(td, "*", "*"))
	deeper, _ := filepath.Glob(filepath.Join(td, "*", "*", "*"))
	files = append(files, deeper...)
	n := 0
	for _, f := range files {
		if ext := strings.ToLower(filepath.Ext(f)); ext != ".jpg" && ext != ".jpeg" && ext != ".png" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := faceapi.CheckImage(data, 0); err != nil {
			t.Errorf("%s refused: %v", f, err)
		}
		n++
	}
	if n < 40 {
		t.Fatalf("only %d images checked", n)
	}
}

// TestEngineHeads: each request gets exactly the heads it asks for, from pipelines built once
// per head set; an unknown head is an ErrUnknownHead.
func TestEngineHeads(t *testing.T) {
	testenv.NeedsTestData(t)
	e := newEngine(t)
	data, err := os.ReadFile(filepath.Join(testenv.TestData(t), "faces", "Joe_Biden", "biden.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, heads := range [][]string{nil, {"age"}, {"pose", "gender"}, {"gender", "pose"}} {
		res, err := e.Analyze(context.Background(), data, faceapi.Options{Heads: heads})
		if err != nil || len(res.Faces) != 1 {
			t.Fatalf("heads %v: %v", heads, err)
		}
		f := res.Faces[0]
		has := map[string]bool{"age": f.Age != nil, "gender": f.Gender != nil, "pose": f.Pose != nil, "emotion": f.Emotion != nil, "liveness": f.Liveness != nil}
		for h, ok := range has {
			want := false
			for _, x := range heads {
				want = want || x == h
			}
			if ok != want {
				t.Errorf("heads %v: %s present = %v", heads, h, ok)
			}
		}
		if res.Embeddings != nil {
			t.Errorf("heads %v: embeddings returned without asking", heads)
		}
	}
	if len(e.pipes) != 3 {
		t.Errorf("%d pipelines for 3 head sets", len(e.pipes))
	}
	if _, err := e.Analyze(context.Background(), data, faceapi.Options{Heads: []string{"embedding"}}); !errors.Is(err, faceapi.ErrUnknownHead) {
		t.Errorf("head \"embedding\" as an attribute: %v", err)
	}
	if _, err := e.Analyze(context.Background(), []byte("junk"), faceapi.Options{}); !errors.Is(err, faceapi.ErrInvalidImage) {
		t.Errorf("junk: %v", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without models")
	}
}
