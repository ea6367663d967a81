package dataset

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"
)

// TestCheckImageJPEGTrailer: a training image with a trailer after its end-of-image marker
// (a phone's, a motion photo's video) is an image; a cut one is not.
func TestCheckImageJPEGTrailer(t *testing.T) {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, 20, 10)), nil); err != nil {
		t.Fatal(err)
	}
	good := b.Bytes()
	with := append(bytes.Clone(good), bytes.Repeat([]byte("trailer "), 100)...)
	if f, w, h, err := CheckImage(with, 1000); err != nil || f != "jpeg" || w != 20 || h != 10 {
		t.Fatalf("JPEG with an 800-byte trailer: %s %dx%d %v", f, w, h, err)
	}
	if _, _, _, err := CheckImage(good[:len(good)-20], 1000); err == nil {
		t.Fatal("a cut JPEG was accepted")
	}
}
