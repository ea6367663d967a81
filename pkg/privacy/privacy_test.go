package privacy

import (
	"bytes"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-video/vigil/pkg/testenv"
)

func laplacianVariance(img image.Image, r image.Rectangle) float64 { return Detail(img, r) }

// TestBlurRemovesDetail: a real face photo blurred whole loses at least 95% of its detail in
// the face region (Laplacian variance); a region blurred leaves the rest of the image as it was.
func TestBlurRemovesDetail(t *testing.T) {
	data := testenv.TestData(t)
	raw, err := os.ReadFile(filepath.Join(data, "faces", "Barack_Obama", "obama.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	orig, err := jpeg.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	b := orig.Bounds()
	face := image.Rect(b.Min.X+b.Dx()/4, b.Min.Y+b.Dy()/6, b.Max.X-b.Dx()/4, b.Max.Y-b.Dy()/4) // the portrait's face
	out, err := BlurJPEG(raw, image.Rectangle{}, 90)
	if err != nil {
		t.Fatal(err)
	}
	blurred, err := jpeg.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	before, after := laplacianVariance(orig, face), laplacianVariance(blurred, face)
	t.Logf("Laplacian variance of the face region: %.1f before, %.1f after (%.2f%%)", before, after, 100*after/before)
	if after > 0.05*before {
		t.Errorf("blur kept %.1f%% of the detail, want under 5%%", 100*after/before)
	}

	// Only the region changes.
	part, err := BlurJPEG(raw, face, 95)
	if err != nil {
		t.Fatal(err)
	}
	pimg, _ := jpeg.Decode(bytes.NewReader(part))
	corner := image.Rect(b.Min.X, b.Min.Y, b.Min.X+b.Dx()/5, b.Min.Y+b.Dy()/7)
	if lo, lp := laplacianVariance(orig, corner), laplacianVariance(pimg, corner); lp < 0.5*lo {
		t.Errorf("outside the region the detail fell from %.1f to %.1f", lo, lp)
	}
	if lf := laplacianVariance(pimg, face.Inset(8)); lf > 0.05*before {
		t.Errorf("inside the region %.1f of %.1f detail kept", lf, before)
	}
	if _, err := BlurJPEG([]byte("no jpeg"), image.Rectangle{}, 90); err == nil {
		t.Error("BlurJPEG accepted bytes that are not a JPEG")
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": Off, "off": Off, "blur-unknown": BlurUnknown, "blur-all": BlurAll} {
		if m, err := ParseMode(in); err != nil || m != want {
			t.Errorf("ParseMode(%q) = %q, %v", in, m, err)
		}
	}
	if _, err := ParseMode("blur"); err == nil {
		t.Error("ParseMode(blur) accepted")
	}
	if Off.Blurs(false) || BlurUnknown.Blurs(true) || !BlurUnknown.Blurs(false) || !BlurAll.Blurs(true) {
		t.Error("Blurs")
	}
}
