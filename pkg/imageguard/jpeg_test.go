package imageguard

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"strings"
	"testing"
)

func encodeJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 3), uint8(x ^ y), 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestCheckJPEGTrailers: bytes after the end-of-image marker, however many (a phone's trailer, a
// motion photo's whole video, a second JPEG), do not make an image "truncated"; a file that
// ends early does.
func TestCheckJPEGTrailers(t *testing.T) {
	good := encodeJPEG(t, 64, 48)
	if err := CheckJPEG(good); err != nil {
		t.Fatalf("plain JPEG: %v", err)
	}
	for name, trailer := range map[string][]byte{
		"63 bytes":     bytes.Repeat([]byte{0x42}, 63),
		"4 KiB":        bytes.Repeat([]byte("trailer!"), 512),
		"motion photo": append([]byte("\x00\x00\x00\x18ftypmp42"), bytes.Repeat([]byte{0xFF, 0xD8, 0x00}, 20000)...),
		"second JPEG":  good,
	} {
		if err := CheckJPEG(append(bytes.Clone(good), trailer...)); err != nil {
			t.Errorf("JPEG + %s: %v", name, err)
		}
	}
	for _, cut := range []int{2, 20, len(good) / 2, len(good) - 1} {
		if err := CheckJPEG(good[:cut]); !errors.Is(err, ErrJPEG) || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("cut at %d of %d: %v, want truncated", cut, len(good), err)
		}
	}
	if err := CheckJPEG([]byte("GIF89a")); !errors.Is(err, ErrJPEG) {
		t.Errorf("not a JPEG: %v", err)
	}
}

// FuzzCheckJPEG: CheckJPEG never panics, and an accepted file stays accepted with any trailer.
func FuzzCheckJPEG(f *testing.F) {
	good := encodeJPEG(f, 16, 16)
	f.Add(good, []byte("trailer"))
	f.Add(good[:len(good)-3], []byte{})
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xD9}, bytes.Repeat([]byte{1}, 100))
	f.Fuzz(func(t *testing.T, data, trailer []byte) {
		if CheckJPEG(data) != nil {
			return
		}
		if err := CheckJPEG(append(bytes.Clone(data), trailer...)); err != nil {
			t.Fatalf("accepted JPEG refused with a trailer: %v", err)
		}
	})
}
