package detect

import (
	"image"
	"math"
	"math/rand"
	"testing"
)

func TestIoU(t *testing.T) {
	a := Box{0, 0, 10, 10}
	if got := IoU(a, a); got != 1 {
		t.Fatalf("IoU(a,a) = %v", got)
	}
	if got := IoU(a, Box{20, 20, 30, 30}); got != 0 {
		t.Fatalf("disjoint IoU = %v", got)
	}
	if got := IoU(a, Box{5, 0, 15, 10}); math.Abs(float64(got)-1.0/3) > 1e-6 {
		t.Fatalf("half overlap IoU = %v, want 1/3", got)
	}
}

func TestNMSKeepsBestOfOverlaps(t *testing.T) {
	dets := []Detection{
		{Box: Box{0, 0, 10, 10}, Score: 0.9},
		{Box: Box{1, 1, 11, 11}, Score: 0.8},   // overlaps the first: suppressed
		{Box: Box{50, 50, 60, 60}, Score: 0.7}, // separate face
		{Box: Box{2, 2, 4, 4}, Score: 0.85},    // an eye inside the first face: IoU 0.04, contained
	}
	got := NMS(dets, 0.4, 0.6)
	if len(got) != 2 || got[0].Score != 0.9 || got[1].Score != 0.7 {
		t.Fatalf("NMS = %+v", got)
	}
	if got := NMS(dets, 0.4, 0); len(got) != 3 {
		t.Fatalf("NMS without containment = %+v, want the eye kept", got)
	}
}

func TestDecode(t *testing.T) {
	// Three priors: one strong face, a weaker duplicate, one below threshold.
	scores := []float32{0.1, 0.9, 0.2, 0.8, 0.9, 0.1}
	boxes := []float32{
		0.25, 0.25, 0.5, 0.75,
		0.26, 0.26, 0.5, 0.75,
		0, 0, 1, 1,
	}
	got := Decode(scores, boxes, 640, 480, DefaultPostConfig())
	if len(got) != 1 {
		t.Fatalf("Decode = %+v, want one face", got)
	}
	b := got[0].Box
	// Height 0.5*480 = 240 px, centred at (240, 240): square 120..360.
	if math.Abs(float64(b.H()-240)) > 0.01 || math.Abs(float64(b.W()-240)) > 0.01 || math.Abs(float64(b.X1-120)) > 0.01 {
		t.Fatalf("box %+v, want a 240 px square at x=120", b)
	}
	if Decode(scores[:4], boxes, 640, 480, DefaultPostConfig()) != nil {
		t.Fatal("Decode accepted mismatched lengths")
	}
	nan := []float32{0, float32(math.NaN())}
	if got := Decode(nan, boxes[:4], 640, 480, DefaultPostConfig()); len(got) != 0 {
		t.Fatal("Decode kept a NaN score")
	}
}

func TestExpandedRectStaysInside(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		w, h := 2+r.Intn(800), 2+r.Intn(800)
		x1, y1 := r.Float32()*float32(w), r.Float32()*float32(h)
		b := Box{x1, y1, x1 + 1 + r.Float32()*float32(w), y1 + 1 + r.Float32()*float32(h)}
		for _, s := range []float32{1, 1.4, 2.7} {
			rect := ExpandedRect(b, w, h, s)
			if !rect.In(image.Rect(0, 0, w, h)) {
				t.Fatalf("ExpandedRect(%+v, %dx%d, %v) = %v outside the frame", b, w, h, s, rect)
			}
		}
		if m := MarginRect(b, w, h, 0.25); !m.In(image.Rect(0, 0, w, h)) {
			t.Fatalf("MarginRect outside the frame: %v", m)
		}
	}
	// A centred box well inside the frame grows by the scale.
	rect := ExpandedRect(Box{100, 100, 200, 200}, 1000, 1000, 1.4)
	if rect.Dx() != 140 || rect.Dy() != 140 {
		t.Fatalf("1.4x crop = %v, want 140x140", rect)
	}
}

func TestSimilarityRecoversTransform(t *testing.T) {
	// Rotate by 20 degrees, scale 1.7, translate; the fit must recover it exactly.
	th := 20 * math.Pi / 180
	a, b := 1.7*math.Cos(th), 1.7*math.Sin(th)
	want := Affine{{a, -b, 13}, {b, a, -7}}
	var dst [5]Point
	for i, p := range Template112 {
		dst[i] = want.Apply(p)
	}
	got, ok := Similarity(Template112, dst)
	if !ok {
		t.Fatal("Similarity failed")
	}
	for r := 0; r < 2; r++ {
		for c := 0; c < 3; c++ {
			if math.Abs(got[r][c]-want[r][c]) > 1e-4 {
				t.Fatalf("got %v, want %v", got, want)
			}
		}
	}
	if _, ok := Similarity([5]Point{}, Template112); ok {
		t.Fatal("Similarity accepted coincident points")
	}
}

func TestLandmarks5(t *testing.T) {
	pts := make([]float32, 136)
	for i := 0; i < 68; i++ {
		pts[2*i], pts[2*i+1] = float32(i), float32(100+i)
	}
	p, ok := Landmarks5(pts)
	if !ok {
		t.Fatal("Landmarks5 refused 68 points")
	}
	if p[2] != (Point{30, 130}) || p[0].X != (37+38+40+41)/4.0 {
		t.Fatalf("Landmarks5 = %+v", p)
	}
	if _, ok := Landmarks5(pts[:10]); ok {
		t.Fatal("Landmarks5 accepted 5 points")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 640, 480)
	f.Fuzz(func(t *testing.T, raw []byte, w, h int) {
		n := len(raw) / 6
		scores := make([]float32, 2*n)
		boxes := make([]float32, 4*n)
		for i := 0; i < n; i++ {
			scores[2*i+1] = float32(raw[6*i]) / 255
			for k := 0; k < 4; k++ {
				boxes[4*i+k] = float32(int(raw[6*i+1+k])-64) / 128
			}
		}
		if w > 1<<14 || h > 1<<14 {
			return
		}
		for _, d := range Decode(scores, boxes, w, h, DefaultPostConfig()) {
			if d.Box.X1 < 0 || d.Box.Y1 < 0 || d.Box.X2 > float32(w) || d.Box.Y2 > float32(h) || d.Box.Area() <= 0 {
				t.Fatalf("box %+v outside %dx%d frame or empty", d.Box, w, h)
			}
		}
	})
}

func TestTiles(t *testing.T) {
	if got := Tiles(480, 360, TileConfig{}); got != nil {
		t.Fatalf("a frame of one tile's size: %v, want no tiles", got)
	}
	for _, c := range []struct{ w, h, n int }{{1024, 559, 6}, {720, 478, 4}, {1920, 1080, 24}, {1000, 300, 3}} {
		got := Tiles(c.w, c.h, TileConfig{})
		if len(got) != c.n {
			t.Errorf("%dx%d: %d tiles %v, want %d", c.w, c.h, len(got), got, c.n)
		}
		frame := image.Rect(0, 0, c.w, c.h)
		// Every point of the frame lies in some tile, with a margin of 0.3 tile where tiles overlap.
		for y := 0; y < c.h; y += 7 {
			for x := 0; x < c.w; x += 7 {
				in := false
				for _, r := range got {
					in = in || image.Pt(x, y).In(r)
					if !r.In(frame) || r.Dx() > 480 || r.Dy() > 360 {
						t.Fatalf("%dx%d: tile %v outside the frame or over 480x360", c.w, c.h, r)
					}
				}
				if !in {
					t.Fatalf("%dx%d: (%d,%d) in no tile %v", c.w, c.h, x, y, got)
				}
			}
		}
	}
}
