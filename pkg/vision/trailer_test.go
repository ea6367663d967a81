package vision

import (
	"bytes"
	"image/color"
	"testing"
)

// TestDecodeJPEGTrailer: a JPEG followed by more than 62 bytes (a phone's trailer, a motion
// photo's video) decodes; it used to be called truncated because the end-of-image marker was
// looked for only in the last 64 bytes.
func TestDecodeJPEGTrailer(t *testing.T) {
	m, err := Decode(pngBytes(t, 32, 24, color.NRGBA{R: 200, G: 100, B: 50, A: 255}), 0)
	if err != nil {
		t.Fatal(err)
	}
	j, err := EncodeJPEG(m, 90)
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	withTrailer := append(bytes.Clone(j), bytes.Repeat([]byte("MotionPhoto_Data"), 4096)...)
	d, err := Decode(withTrailer, 0)
	if err != nil {
		t.Fatalf("JPEG with a 64 KiB trailer: %v", err)
	}
	defer d.Close()
	if d.Cols() != 32 || d.Rows() != 24 {
		t.Fatalf("decoded %dx%d, want 32x24", d.Cols(), d.Rows())
	}
}
