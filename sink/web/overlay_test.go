package web

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/result"
)

// TestOverlayInBrowser draws a frame in a real Chromium with three faces side by side (boxes
// touching, labels wider than the boxes), a face too small to recognise, and classifications of
// a face and of the whole frame: every label block is drawn without overlapping another, the
// too small face says so instead of "unknown", and the classifications show on the canvas, in
// the faces table and under the canvas.
func TestOverlayInBrowser(t *testing.T) {
	jpg, w, h := photo(t, "detect/two_people.jpg")
	f := newFixture(t, Config{})
	age := float32(37)
	fw, fh := float32(w)*0.12, float32(h)*0.22
	var faces []result.Face
	for i := range 3 {
		x := float32(w)*0.2 + float32(i)*fw
		faces = append(faces, result.Face{Box: result.Box{X1: x, Y1: float32(h) * 0.3, X2: x + fw, Y2: float32(h)*0.3 + fh}, Score: 0.98,
			TrackID: "t9-" + string(rune('a'+i)), Age: &age, Gender: &result.Gender{Label: "female", Score: 0.9},
			Liveness: &result.Liveness{Real: true, Score: 0.93}})
	}
	faces[1].Identity = &result.Identity{Name: "Ada Lovelace", Similarity: 0.71}
	faces = append(faces, result.Face{Box: result.Box{X1: float32(w) * 0.8, Y1: float32(h) * 0.7, X2: float32(w)*0.8 + 30, Y2: float32(h)*0.7 + 30},
		Score: 0.8, TrackID: "t9-d", Age: &age, TooSmall: true})
	now := time.Now().UTC()
	res := result.Result{Schema: result.SchemaVersion, Stream: "hall", Seq: 1, CapturedAt: now, AnalyzedAt: now, Width: w, Height: h, Faces: faces,
		Classifications: []result.Classification{
			{Model: "clothes", Label: "suit", Score: 0.91, Target: "face:0"},
			{Model: "scene", Label: "office", Score: 0.88, Target: "frame"},
		}}
	f.keepLive(t, jpg, w, h, res)

	page := openPage(t, f.url+PagePath)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := page.WaitFor(ctx, `+document.getElementById("canvas").dataset.drawn >= 1`, 30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Labels, Blocks string
		Rows           [][]string
		Frame          []string
	}
	if err := page.Eval(ctx, `({Labels: document.getElementById("canvas").dataset.labels, Blocks: document.getElementById("canvas").dataset.blocks,
		Rows: [...document.querySelectorAll("#faces tbody tr")].map((r) => [...r.cells].map((c) => c.textContent)),
		Frame: [...document.querySelectorAll("#frame-classes li")].map((li) => li.textContent)})`, &got); err != nil {
		t.Fatal(err)
	}
	shot(t, page, "overlay-labels.png")
	var labels []string
	var blocks [][4]float64
	if err := json.Unmarshal([]byte(got.Labels), &labels); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(got.Blocks), &blocks); err != nil {
		t.Fatal(err)
	}
	t.Logf("labels %q, blocks %v", labels, blocks)
	if len(labels) != 5 || len(blocks) != 5 {
		t.Fatalf("%d labels, %d blocks: want the frame's and 4 faces'", len(labels), len(blocks))
	}
	for i := range blocks {
		for j := i + 1; j < len(blocks); j++ {
			a, b := blocks[i], blocks[j]
			// Rounded to whole pixels: touching blocks may share a pixel.
			if min(a[0]+a[2], b[0]+b[2])-max(a[0], b[0]) > 1 && min(a[1]+a[3], b[1]+b[3])-max(a[1], b[1]) > 1 {
				t.Errorf("label blocks %d %v and %d %v overlap (%q, %q)", i, a, j, b, labels[i], labels[j])
			}
		}
	}
	for i, want := range []string{"frame | scene: office 0.88", "unknown  #a | 37y · female · live 0.93 | clothes: suit 0.91",
		"Ada Lovelace 0.71  #b |", "unknown  #c |", "too small  #d | 37y"} {
		if !strings.HasPrefix(labels[i], want) {
			t.Errorf("label %d %q, want it to start %q", i, labels[i], want)
		}
	}
	if len(got.Rows) != 4 || got.Rows[3][1] != "too small" || got.Rows[3][5] != "too small" || got.Rows[0][6] != "clothes: suit 0.91" || got.Rows[1][6] != "–" {
		t.Errorf("faces table %q", got.Rows)
	}
	if len(got.Frame) != 1 || got.Frame[0] != "scene: office 0.88" {
		t.Errorf("frame classifications %q", got.Frame)
	}
}
