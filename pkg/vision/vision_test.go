package vision

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"os"
	"testing"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/pkg/imageguard/guardtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if n, ok := LiveMats(); ok && n != 0 {
		var b bytes.Buffer
		_ = WriteMatProfile(&b)
		os.Stderr.WriteString(b.String())
		code = 1
	}
	os.Exit(code)
}

func pngBytes(t *testing.T, w, h int, c color.Color) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeAndFill(t *testing.T) {
	m, err := Decode(pngBytes(t, 4, 2, color.NRGBA{R: 200, G: 100, B: 50, A: 255}), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Cols() != 4 || m.Rows() != 2 || m.Type() != gocv.MatTypeCV8UC3 {
		t.Fatalf("decoded %dx%d type %v", m.Cols(), m.Rows(), m.Type())
	}
	dst := make([]float32, 3*8)
	ident := Norm{Scale: 1, Std: [3]float32{1, 1, 1}}
	if err := FillCHW(dst, m, RGB, ident); err != nil {
		t.Fatal(err)
	}
	if dst[0] != 200 || dst[8] != 100 || dst[16] != 50 {
		t.Fatalf("RGB planes start %v %v %v, want 200 100 50", dst[0], dst[8], dst[16])
	}
	if err := FillCHW(dst, m, BGR, Norm{Scale: 1, Mean: [3]float32{127, 127, 127}, Std: [3]float32{128, 128, 128}}); err != nil {
		t.Fatal(err)
	}
	if want := float32(50-127) / 128; dst[0] != want {
		t.Fatalf("BGR plane 0 = %v, want %v", dst[0], want)
	}
	if err := FillCHW(dst[:5], m, RGB, ident); err == nil {
		t.Fatal("FillCHW accepted a short tensor")
	}
	grey := make([]float32, 8)
	if err := FillGray(grey, m, 1); err != nil {
		t.Fatal(err)
	}
	if grey[0] < 110 || grey[0] > 140 {
		t.Fatalf("grey value %v, want about 0.299*200+0.587*100+0.114*50 = 124", grey[0])
	}
}

// hugePNGHeader is a valid PNG signature and IHDR chunk declaring w x h pixels, with no data.
func hugePNGHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.Write([]byte("\x89PNG\r\n\x1a\n"))
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	binary.Write(&b, binary.BigEndian, uint32(13))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func TestDecodeRejects(t *testing.T) {
	good := pngBytes(t, 8, 8, color.White)
	cases := map[string][]byte{
		"not an image":  []byte("hello, world"),
		"empty":         nil,
		"truncated PNG": good[:len(good)/2],
		"truncated JPEG": func() []byte {
			m, err := Decode(good, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			j, err := EncodeJPEG(m, 90)
			if err != nil {
				t.Fatal(err)
			}
			return j[:len(j)-10]
		}(),
		"50000x50000": hugePNGHeader(50000, 50000),
	}
	for name, data := range cases {
		m, err := Decode(data, 0)
		if err == nil {
			m.Close()
		}
		if !errors.Is(err, ErrImage) {
			t.Errorf("%s: Decode error = %v, want ErrImage", name, err)
		}
	}
}

func TestCropResizeWarpFitEncode(t *testing.T) {
	m, err := Decode(pngBytes(t, 100, 50, color.NRGBA{R: 10, G: 20, B: 30, A: 255}), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c, err := CropResize(m, image.Rect(90, 40, 200, 200), 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	if c.Cols() != 16 || c.Rows() != 16 {
		t.Fatalf("crop %dx%d", c.Cols(), c.Rows())
	}
	c.Close()
	if _, err := CropResize(m, image.Rect(200, 200, 300, 300), 16, 16); err == nil {
		t.Fatal("CropResize accepted a crop outside the image")
	}
	w, err := WarpAffine(m, [2][3]float64{{1, 0, -10}, {0, 1, -10}}, 20, 20)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	fw, fh := FittedSize(m, 50, 50)
	if fw != 50 || fh != 25 {
		t.Fatalf("FittedSize = %dx%d, want 50x25", fw, fh)
	}
	jpg, err := EncodeSized(m, fw, fh, 80)
	if err != nil || len(jpg) < 4 || jpg[0] != 0xff || jpg[1] != 0xd8 {
		t.Fatalf("EncodeSized = %d bytes, %v", len(jpg), err)
	}
	back, err := Decode(jpg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if back.Cols() != 50 || back.Rows() != 25 {
		t.Fatalf("encoded at %dx%d, want 50x25", back.Cols(), back.Rows())
	}
	back.Close()
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Add([]byte{0xff, 0xd8, 0xff, 0xe0})
	f.Add(hugePNGHeader(10, 10))
	f.Add(guardtest.BombPNG(10, 10, 2)) // image data inflating past what 10x10 needs
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data, 1<<20)
		if err != nil {
			return
		}
		defer m.Close()
		if m.Empty() || m.Cols()*m.Rows() > 1<<20 {
			t.Fatalf("Decode returned %dx%d without error", m.Cols(), m.Rows())
		}
	})
}
