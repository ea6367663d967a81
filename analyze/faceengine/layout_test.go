package faceengine

import (
	"image"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestLayoutLabels: the labels of faces side by side (boxes touching, labels wider than the
// boxes) and of a face at the image's edge neither overlap each other nor leave the image.
func TestLayoutLabels(t *testing.T) {
	const w, h = 800, 600
	var boxes []image.Rectangle
	var sizes []image.Point
	for i := range 4 {
		x := 200 + 80*i
		boxes = append(boxes, image.Rect(x, 250, x+80, 340))
		sizes = append(sizes, image.Pt(170, 48))
	}
	boxes = append(boxes, image.Rect(0, 0, 60, 60), image.Rect(760, 560, 800, 600))
	sizes = append(sizes, image.Pt(120, 60), image.Pt(150, 30))
	got := layoutLabels(boxes, sizes, w, h)
	if len(got) != len(boxes) {
		t.Fatalf("%d blocks for %d faces", len(got), len(boxes))
	}
	for i, r := range got {
		if r.Size() != sizes[i] || !r.In(image.Rect(0, 0, w, h)) {
			t.Errorf("block %d %v: want size %v inside the image", i, r, sizes[i])
		}
		for j := i + 1; j < len(got); j++ {
			if r.Overlaps(got[j]) {
				t.Errorf("blocks %d %v and %d %v overlap", i, r, j, got[j])
			}
		}
	}
	// A lone face's label goes right above it.
	if one := layoutLabels(boxes[:1], sizes[:1], w, h); one[0] != image.Rect(200, 250-48-2, 370, 250-2) {
		t.Errorf("a lone face's label at %v, want right above its box", one[0])
	}
}

// TestAnnotateAdjacentFaces annotates five faces in a row and a half (labels wider than the
// gaps between the faces) on the real models: every face is drawn; with VIGIL_SCREENSHOTS set
// the image is saved there to look at.
func TestAnnotateAdjacentFaces(t *testing.T) {
	testenv.NeedsTestData(t)
	e := newEngine(t)
	f := newAPIFixture(t, e)
	five := composite(t, f.file(t, "faces/John_Salley/000179_02159509.jpg"), f.file(t, "faces/John_Savage/000264_01099001.jpg"),
		f.file(t, "faces/John_Schneider/000288_00925786.jpg"), f.file(t, "faces/John_Salley/000183_02159543.jpg"),
		f.file(t, "faces/John_Savage/000274_01099061.jpg"))
	body, ct := form(t, filePart("image", five), field("heads", "age,gender,liveness,pose"))
	r := call(t, "POST", f.url+"/v1/annotate", body, ct)
	if r.status != 200 || r.header.Get("X-Faces") != "5" {
		t.Fatalf("annotate: %d X-Faces=%s %s", r.status, r.header.Get("X-Faces"), r.body)
	}
	if dir := os.Getenv("VIGIL_SCREENSHOTS"); dir != "" {
		path := filepath.Join(dir, "annotate-adjacent.jpg")
		if err := os.WriteFile(path, r.body, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("annotated image: %s", path)
	}
}
