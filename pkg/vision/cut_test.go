package vision

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"strconv"
	"testing"

	"github.com/vigil-video/vigil/pkg/privacy"
	"gocv.io/x/gocv"
)

// frameJPEG is a 1280x720 JPEG with gradients and a bright square at (500,200)-(600,300).
func frameJPEG(t testing.TB) []byte {
	t.Helper()
	m := gocv.NewMatWithSize(720, 1280, gocv.MatTypeCV8UC3)
	defer m.Close()
	for y := range 720 {
		for x := range 1280 {
			m.SetUCharAt(y, 3*x, uint8(x/5))
			m.SetUCharAt(y, 3*x+1, uint8(y/3))
			m.SetUCharAt(y, 3*x+2, uint8((x+y)/8))
		}
	}
	gocv.Rectangle(&m, image.Rect(500, 200, 600, 300), color.RGBA{R: 255, G: 255, B: 255}, -1)
	data, err := EncodeJPEG(m, 90)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestCutJPEG: a cut decoded at reduced scale matches cutting the fully decoded image and
// scaling it down (INTER_AREA) within JPEG noise, at every reduction factor; a box outside the
// image is an error.
func TestCutJPEG(t *testing.T) {
	data := frameJPEG(t)
	full, err := Decode(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	for _, tc := range []struct {
		r    image.Rectangle
		w, h int
	}{
		{image.Rect(450, 150, 650, 350), 160, 160}, // factor 1
		{image.Rect(400, 100, 740, 440), 160, 160}, // factor 2
		{image.Rect(300, 0, 1000, 700), 160, 160},  // factor 4
		{image.Rect(0, 0, 1280, 720), 160, 90},     // factor 8
		{image.Rect(1200, 650, 1300, 800), 40, 35}, // clipped to the image by the caller: 80x70 inside
		{image.Rect(501, 201, 599, 299), 98, 98},   // no scaling
	} {
		r := tc.r.Intersect(image.Rect(0, 0, 1280, 720))
		got, err := CutJPEG(data, r, tc.w, tc.h, 95, 0)
		if err != nil {
			t.Fatalf("%v: %v", tc.r, err)
		}
		gm, err := Decode(got, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := gocv.NewMat()
		roi := full.Region(r)
		gocv.Resize(roi, &want, image.Pt(tc.w, tc.h), 0, 0, gocv.InterpolationArea)
		roi.Close()
		if gm.Cols() != tc.w || gm.Rows() != tc.h {
			t.Fatalf("%v: cut is %dx%d, want %dx%d", tc.r, gm.Cols(), gm.Rows(), tc.w, tc.h)
		}
		d := meanAbsDiff(gm, want)
		gm.Close()
		want.Close()
		if d > 3 {
			t.Fatalf("%v to %dx%d: mean difference %.2f from a full decode's cut", tc.r, tc.w, tc.h, d)
		}
	}
	if _, err := CutJPEG(data, image.Rect(1300, 800, 1400, 900), 50, 50, 90, 0); err == nil {
		t.Fatal("a box outside the image cut without error")
	}
	if _, err := CutJPEG(data[:len(data)/2], image.Rect(0, 0, 100, 100), 50, 50, 90, 0); err == nil {
		t.Fatal("a truncated JPEG cut without error")
	}
}

// BenchmarkCutJPEG: a 160 px snapshot of a face in a 720p frame: 240 px (a full decode by
// libjpeg-turbo), 480 px (decoded at 1/2 scale), and Go's image/jpeg decode of the frame alone,
// which the event store's pure-Go cut pays before it cuts anything.
func BenchmarkCutJPEG(b *testing.B) {
	data := frameJPEG(b)
	for _, side := range []int{240, 480} {
		r := image.Rect(400, 100, 400+side, 100+side)
		b.Run(strconv.Itoa(side)+"px", func(b *testing.B) {
			for range b.N {
				if _, err := CutJPEG(data, r, 160, 160, 85, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("go-image-jpeg-decode", func(b *testing.B) {
		for range b.N {
			if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestEncodeSized: a frame within the bounds is encoded at its own size, a larger one scaled
// down to fit (FittedSize), and one asked at half of that at half, all decoding to what they
// were given.
func TestEncodeSized(t *testing.T) {
	full, err := Decode(frameJPEG(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	for _, c := range []struct{ maxW, maxH, w, h, half int }{{1280, 720, 1280, 720, 0}, {0, 0, 1280, 720, 0}, {640, 640, 640, 360, 0}, {1280, 720, 640, 360, 2}} {
		w, h := FittedSize(full, c.maxW, c.maxH)
		if c.half > 0 {
			w, h = w/c.half, h/c.half
		}
		data, err := EncodeSized(full, w, h, 90)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Decode(data, 0)
		if err != nil {
			t.Fatal(err)
		}
		if w != c.w || h != c.h || m.Cols() != w || m.Rows() != h {
			t.Fatalf("bounds %dx%d: encoded %dx%d (reported %dx%d), want %dx%d", c.maxW, c.maxH, m.Cols(), m.Rows(), w, h, c.w, c.h)
		}
		want := gocv.NewMat()
		gocv.Resize(full, &want, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
		d := meanAbsDiff(m, want)
		want.Close()
		m.Close()
		if d > 2 {
			t.Fatalf("bounds %dx%d: mean difference %.2f from the fitted frame", c.maxW, c.maxH, d)
		}
	}
}

// TestBlurRegions: the regions get the given blur, as on an image decoded by Go (here a blur
// that paints them black), the rest of the frame is kept, and no region returns the input.
func TestBlurRegions(t *testing.T) {
	data := frameJPEG(t)
	paint := func(img *image.RGBA, r image.Rectangle) {
		r = r.Intersect(img.Bounds())
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				img.SetRGBA(x, y, color.RGBA{A: 255})
			}
		}
	}
	rs := []image.Rectangle{image.Rect(500, 200, 600, 300), image.Rect(1200, 650, 1400, 800)}
	out, err := BlurRegions(data, rs, 95, 0, paint)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(out, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	orig, err := Decode(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	mean := func(m gocv.Mat, r image.Rectangle) float64 {
		roi := m.Region(r)
		defer roi.Close()
		v := roi.Mean()
		return (v.Val1 + v.Val2 + v.Val3) / 3
	}
	for _, r := range []image.Rectangle{image.Rect(510, 210, 590, 290), image.Rect(1210, 660, 1280, 720)} {
		if m := mean(got, r); m > 6 {
			t.Fatalf("region %v: mean %.1f after painting it black", r, m)
		}
	}
	if a, b := mean(got, image.Rect(100, 400, 300, 600)), mean(orig, image.Rect(100, 400, 300, 600)); a-b > 3 || b-a > 3 {
		t.Fatalf("outside the regions: mean %.1f, was %.1f", a, b)
	}
	if same, err := BlurRegions(data, nil, 95, 0, paint); err != nil || !bytes.Equal(same, data) {
		t.Fatalf("no region: %v, data changed %v", err, !bytes.Equal(same, data))
	}
}

// BenchmarkBlurRegions: two faces of a 720p frame blurred with privacy.Blur, decoded and
// encoded by libjpeg-turbo (BlurRegions) against Go's image packages (privacy.BlurJPEGRegions).
func BenchmarkBlurRegions(b *testing.B) {
	data := frameJPEG(b)
	rs := []image.Rectangle{image.Rect(500, 200, 650, 380), image.Rect(800, 150, 900, 270)}
	b.Run("turbo", func(b *testing.B) {
		for range b.N {
			if _, err := BlurRegions(data, rs, 85, 0, privacy.Blur); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("go", func(b *testing.B) {
		for range b.N {
			if _, err := privacy.BlurJPEGRegions(data, rs, 85); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// meanAbsDiff is the mean absolute difference of two 3-channel images of one size, over their
// pixels and channels.
func meanAbsDiff(a, b gocv.Mat) float64 {
	diff := gocv.NewMat()
	defer diff.Close()
	gocv.AbsDiff(a, b, &diff)
	m := diff.Mean()
	return (m.Val1 + m.Val2 + m.Val3) / 3
}
