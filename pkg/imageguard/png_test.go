package imageguard

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"testing"

	"github.com/vigil-video/vigil/pkg/imageguard/guardtest"
)

var (
	chunk    = guardtest.Chunk
	ihdr     = guardtest.IHDR
	buildPNG = guardtest.PNG
)

func zlibOf(_ testing.TB, raw []byte) []byte { return guardtest.Zlib(raw) }

func bomb(_ testing.TB, gib int) []byte { return guardtest.Bomb(gib << 10) }

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestCheckPNGAcceptsEncodedImages(t *testing.T) {
	rect := image.Rect(0, 0, 37, 23)
	pal := image.NewPaletted(rect, color.Palette{color.Black, color.White, color.Gray{128}})
	gray16 := image.NewGray16(rect)
	rgba := image.NewNRGBA(rect)
	rgba64 := image.NewNRGBA64(rect)
	for i := range rgba.Pix {
		rgba.Pix[i] = byte(i * 7)
	}
	for name, img := range map[string]image.Image{"gray": image.NewGray(rect), "gray16": gray16, "paletted": pal,
		"nrgba": rgba, "nrgba64": rgba64, "1x1": image.NewGray(image.Rect(0, 0, 1, 1))} {
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		if err := CheckPNG(b.Bytes()); err != nil {
			t.Errorf("%s: CheckPNG = %v, want nil", name, err)
		}
	}
}

// An interlaced PNG's data is the sum of its seven passes; Go's decoder agrees it is complete.
func TestCheckPNGInterlaced(t *testing.T) {
	for _, sz := range [][2]int{{1, 1}, {3, 5}, {9, 9}, {17, 4}} {
		w, h := sz[0], sz[1]
		need, err := imageBytes(ihdr(uint32(w), uint32(h), 8, 2, 1))
		if err != nil {
			t.Fatal(err)
		}
		data := buildPNG(ihdr(uint32(w), uint32(h), 8, 2, 1), zlibOf(t, make([]byte, need)))
		if _, err := png.Decode(bytes.NewReader(data)); err != nil {
			t.Fatalf("%dx%d: Go decodes the test image: %v (size arithmetic wrong)", w, h, err)
		}
		if err := CheckPNG(data); err != nil {
			t.Errorf("%dx%d interlaced: CheckPNG = %v, want nil", w, h, err)
		}
	}
}

// The probe's bomb: 100x100 declared, 9 GiB of image data. It is refused after reading a few
// kilobytes of it, not the 9.4 MB (26 s of CPU in libpng).
func TestCheckPNGRefusesBombFast(t *testing.T) {
	z := bomb(t, 9)
	data := buildPNG(ihdr(100, 100, 8, 2, 0), z)
	err := CheckPNG(data)
	if !errors.Is(err, ErrPNG) {
		t.Fatalf("CheckPNG(9 GiB bomb) = %v, want ErrPNG", err)
	}
	t.Logf("%d-byte bomb refused: %v", len(data), err)
	cr := &countingReader{r: bytes.NewReader(z)}
	if err := inflateExactly(cr, 100*301); err == nil {
		t.Fatal("inflateExactly accepted the bomb")
	}
	if cr.n > 64<<10 {
		t.Errorf("read %d compressed bytes of %d before refusing; want a bound near the declared size", cr.n, len(z))
	}
}

func TestCheckPNGRefuses(t *testing.T) {
	hdr := ihdr(10, 10, 8, 0, 0) // 10 rows of 1+10 bytes
	good := zlibOf(t, make([]byte, 110))
	metaBomb := append([]byte("Comment\x00\x00"), bomb(t, 1)...)
	iccBomb := append([]byte("icc\x00\x00"), zlibOf(t, make([]byte, MaxMetadataBytes+1))...)
	itxt := append([]byte("k\x00\x01\x00en\x00\x00"), zlibOf(t, make([]byte, MaxMetadataBytes+1))...)
	cases := map[string][]byte{
		"too much data":   buildPNG(hdr, zlibOf(t, make([]byte, 111))),
		"too little data": buildPNG(hdr, zlibOf(t, make([]byte, 109))),
		"not zlib":        buildPNG(hdr, []byte("nonsense")),
		"no IDAT":         append(append([]byte(pngSignature), chunk("IHDR", hdr)...), chunk("IEND", nil)...),
		"no IEND":         buildPNG(hdr, good)[:len(buildPNG(hdr, good))-12],
		"bad depth":       buildPNG(ihdr(10, 10, 3, 2, 0), good),
		"zero width":      buildPNG(ihdr(0, 10, 8, 0, 0), good),
		"zTXt bomb":       buildPNG(hdr, good, chunk("zTXt", metaBomb)),
		"iCCP bomb":       buildPNG(hdr, good, chunk("iCCP", iccBomb)),
		"iTXt bomb":       buildPNG(hdr, good, chunk("iTXt", itxt)),
		"JPEG":            {0xff, 0xd8, 0xff, 0xe0},
	}
	// IDAT, another chunk, then IDAT again.
	split := []byte(pngSignature)
	split = append(split, chunk("IHDR", hdr)...)
	split = append(split, chunk("IDAT", good[:4])...)
	split = append(split, chunk("tEXt", []byte("a\x00b"))...)
	split = append(split, chunk("IDAT", good[4:])...)
	cases["split IDAT"] = append(split, chunk("IEND", nil)...)
	for name, data := range cases {
		if err := CheckPNG(data); !errors.Is(err, ErrPNG) {
			t.Errorf("%s: CheckPNG = %v, want ErrPNG", name, err)
		}
	}
	if err := CheckPNG(buildPNG(hdr, good)); err != nil {
		t.Errorf("the well-formed control: %v", err)
	}
	small := append([]byte("Comment\x00\x00"), zlibOf(t, []byte("hello"))...)
	if err := CheckPNG(buildPNG(hdr, good, chunk("zTXt", small))); err != nil {
		t.Errorf("a small zTXt chunk: %v", err)
	}
}

// FuzzCheckPNG: CheckPNG never panics, and accepts whatever Go's own strict decoder (which
// also refuses too much or too little image data) decodes.
func FuzzCheckPNG(f *testing.F) {
	hdr := ihdr(4, 3, 8, 2, 0)
	f.Add(buildPNG(hdr, zlibOf(f, make([]byte, 3*13))))
	f.Add(buildPNG(hdr, zlibOf(f, make([]byte, 3*13+1))))
	f.Add(buildPNG(ihdr(3, 5, 8, 2, 1), zlibOf(f, make([]byte, 64))))
	f.Add([]byte(pngSignature))
	var b bytes.Buffer
	_ = png.Encode(&b, image.NewNRGBA(image.Rect(0, 0, 5, 5)))
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		err := CheckPNG(data)
		if err != nil && !errors.Is(err, ErrPNG) {
			t.Fatalf("error %v does not wrap ErrPNG", err)
		}
		cfg, err2 := png.DecodeConfig(bytes.NewReader(data))
		if err2 != nil || cfg.Width*cfg.Height > 1<<16 {
			return
		}
		if _, derr := png.Decode(bytes.NewReader(data)); derr == nil && err != nil {
			t.Fatalf("Go decodes the image but CheckPNG refuses it: %v", err)
		}
	})
}

// BenchmarkCheckPNG: the cost of the check on the probe's 9 GiB bomb (refused after 30 KB of
// output) and on an honest 1920x1080 RGB PNG (what the check adds to its decode).
func BenchmarkCheckPNG(b *testing.B) {
	honest := image.NewNRGBA(image.Rect(0, 0, 1920, 1080))
	for i := range honest.Pix {
		honest.Pix[i] = byte(i*31 + i/7919)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, honest); err != nil {
		b.Fatal(err)
	}
	for name, data := range map[string][]byte{"bomb9GiB": buildPNG(ihdr(100, 100, 8, 2, 0), bomb(b, 9)), "honest1080p": buf.Bytes()} {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				_ = CheckPNG(data)
			}
		})
	}
}
