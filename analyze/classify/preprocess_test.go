package classify

import (
	"image"
	"math"
	"testing"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/analyze/classify/manifest"
)

// bgr returns a w x h 8-bit BGR Mat whose pixel (x, y) is (B, G, R) = (10x+y, 20+x, 100+y).
func bgr(w, h int) gocv.Mat {
	m := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.SetUCharAt(y, 3*x, uint8(10*x+y))
			m.SetUCharAt(y, 3*x+1, uint8(20+x))
			m.SetUCharAt(y, 3*x+2, uint8(100+y))
		}
	}
	return m
}

func TestPreprocessLayouts(t *testing.T) {
	img := bgr(4, 2)
	defer img.Close()
	full := image.Rect(0, 0, 4, 2)
	in := manifest.Input{Width: 4, Height: 2, Scale: 1, Mean: []float32{1, 2, 3}, Std: []float32{2, 2, 2}}
	for _, tc := range []struct{ layout, color string }{
		{manifest.LayoutNCHW, manifest.ColorRGB},
		{manifest.LayoutNHWC, manifest.ColorRGB},
		{manifest.LayoutNCHW, manifest.ColorBGR},
	} {
		in := in
		in.Layout, in.Color = tc.layout, tc.color
		m := manifest.Manifest{Name: "x", Labels: []string{"a", "b"}, Input: in}
		m.SetDefaults()
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
		p := newPreprocessor(m.Input)
		dst := make([]float32, p.sampleLen)
		if err := p.fill(dst, img, full); err != nil {
			t.Fatal(err)
		}
		for y := 0; y < 2; y++ {
			for x := 0; x < 4; x++ {
				b, g, r := float32(10*x+y), float32(20+x), float32(100+y)
				vals := []float32{r, g, b}
				if tc.color == manifest.ColorBGR {
					vals = []float32{b, g, r}
				}
				for c := 0; c < 3; c++ {
					want := (vals[c] - in.Mean[c]) / 2
					idx := c*8 + y*4 + x
					if tc.layout == manifest.LayoutNHWC {
						idx = (y*4+x)*3 + c
					}
					if dst[idx] != want {
						t.Errorf("%s %s: channel %d at (%d,%d) = %v, want %v", tc.layout, tc.color, c, x, y, dst[idx], want)
					}
				}
			}
		}
	}
	// Grey: one plane of luminance.
	gm := manifest.Manifest{Name: "g", Labels: []string{"a", "b"}, Input: manifest.Input{Width: 4, Height: 2, Color: manifest.ColorGray, Scale: 1}}
	gm.SetDefaults()
	p := newPreprocessor(gm.Input)
	dst := make([]float32, p.sampleLen)
	if err := p.fill(dst, img, full); err != nil {
		t.Fatal(err)
	}
	if len(dst) != 8 || math.Abs(float64(dst[0])-(0.299*100+0.587*20+0.114*0)) > 1 {
		t.Errorf("grey = %v", dst)
	}
	if err := p.fill(dst, img, image.Rect(10, 10, 20, 20)); err == nil {
		t.Error("a target outside the image was accepted")
	}
}

func TestShorterSideCrop(t *testing.T) {
	in := manifest.Input{Width: 224, Height: 224, Resize: manifest.ResizeShorterSide, ResizeSize: 256, Crop: manifest.CropCenter}
	p := newPreprocessor(in)
	// 400x300: scale 256/300; the 224x224 centre crop covers 262.5 source pixels around (200,150).
	if got, want := p.cropRect(image.Rect(0, 0, 400, 300)), image.Rect(69, 19, 331, 281); got != want {
		t.Errorf("cropRect(400x300) = %v, want %v", got, want)
	}
	// Regions keep their offset.
	if got, want := p.cropRect(image.Rect(100, 50, 500, 350)), image.Rect(169, 69, 431, 331); got != want {
		t.Errorf("cropRect(offset) = %v, want %v", got, want)
	}
	stretch := newPreprocessor(manifest.Input{Width: 8, Height: 8, Resize: manifest.ResizeStretch})
	if r := image.Rect(1, 2, 30, 40); stretch.cropRect(r) != r {
		t.Error("stretch changed the rectangle")
	}
}
