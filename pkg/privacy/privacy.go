// Package privacy blurs faces in what Vigil stores or shows, irreversibly: a face region is
// pixelated into blocks of about an eighth of its side (each block one flat colour: the detail
// inside is gone, not hidden) and the blocks' edges are then smoothed with a box blur, so
// neither deconvolution nor "enhance" brings the face back.
//
// The package is pure Go.
package privacy

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
)

// Mode says which faces are blurred.
type Mode string

// Modes.
const (
	// Off blurs nothing (the default).
	Off Mode = "off"
	// BlurUnknown blurs faces without an identity; enrolled people stay visible.
	BlurUnknown Mode = "blur-unknown"
	// BlurAll blurs every face.
	BlurAll Mode = "blur-all"
)

// ParseMode reads a Mode ("" is Off).
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", Off:
		return Off, nil
	case BlurUnknown, BlurAll:
		return Mode(s), nil
	}
	return "", fmt.Errorf("privacy mode %q: want off, blur-unknown or blur-all", s)
}

// Blurs reports whether a face is blurred under m: identified tells whether it has an identity.
func (m Mode) Blurs(identified bool) bool {
	return m == BlurAll || (m == BlurUnknown && !identified)
}

// Blur makes the region r of img unrecognisable in place (pixelation, then a box blur).
func Blur(img draw.Image, r image.Rectangle) {
	r = r.Intersect(img.Bounds())
	if r.Empty() {
		return
	}
	block := max(min(r.Dx(), r.Dy())/8, 4)
	for y := r.Min.Y; y < r.Max.Y; y += block {
		for x := r.Min.X; x < r.Max.X; x += block {
			b := image.Rect(x, y, min(x+block, r.Max.X), min(y+block, r.Max.Y))
			var sr, sg, sb, sa, n uint64
			for yy := b.Min.Y; yy < b.Max.Y; yy++ {
				for xx := b.Min.X; xx < b.Max.X; xx++ {
					cr, cg, cb, ca := img.At(xx, yy).RGBA()
					sr, sg, sb, sa, n = sr+uint64(cr), sg+uint64(cg), sb+uint64(cb), sa+uint64(ca), n+1
				}
			}
			c := rgba64(sr/n, sg/n, sb/n, sa/n)
			draw.Draw(img, b, &image.Uniform{C: c}, image.Point{}, draw.Src)
		}
	}
	boxBlur(img, r, block/2)
}

// boxBlur smooths r with a (2k+1)-wide box, horizontally then vertically.
func boxBlur(img draw.Image, r image.Rectangle, k int) {
	if k < 1 {
		return
	}
	w, h := r.Dx(), r.Dy()
	buf := make([][4]uint32, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			cr, cg, cb, ca := img.At(r.Min.X+x, r.Min.Y+y).RGBA()
			buf[y*w+x] = [4]uint32{cr, cg, cb, ca}
		}
	}
	pass := func(get func(i, j int) [4]uint32, set func(i, j int, v [4]uint32), n, m int) {
		for j := 0; j < m; j++ {
			line := make([][4]uint32, n)
			for i := 0; i < n; i++ {
				var s [4]uint64
				cnt := uint64(0)
				for d := max(i-k, 0); d <= min(i+k, n-1); d++ {
					v := get(d, j)
					for c := range 4 {
						s[c] += uint64(v[c])
					}
					cnt++
				}
				for c := range 4 {
					line[i][c] = uint32(s[c] / cnt)
				}
			}
			for i := 0; i < n; i++ {
				set(i, j, line[i])
			}
		}
	}
	pass(func(i, j int) [4]uint32 { return buf[j*w+i] }, func(i, j int, v [4]uint32) { buf[j*w+i] = v }, w, h)
	pass(func(i, j int) [4]uint32 { return buf[i*w+j] }, func(i, j int, v [4]uint32) { buf[i*w+j] = v }, h, w)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := buf[y*w+x]
			img.Set(r.Min.X+x, r.Min.Y+y, rgba64(uint64(v[0]), uint64(v[1]), uint64(v[2]), uint64(v[3])))
		}
	}
}

func rgba64(r, g, b, a uint64) color.RGBA64 {
	return color.RGBA64{R: uint16(r), G: uint16(g), B: uint16(b), A: uint16(a)}
}

// BlurJPEG decodes a JPEG, blurs the region r (the whole image when r is empty) and encodes it
// again at quality.
func BlurJPEG(data []byte, r image.Rectangle, quality int) ([]byte, error) {
	src, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("privacy: %w", err)
	}
	img := image.NewRGBA(src.Bounds())
	draw.Draw(img, img.Bounds(), src, src.Bounds().Min, draw.Src)
	if r.Empty() {
		r = img.Bounds()
	}
	Blur(img, r)
	var out bytes.Buffer
	if err := jpeg.Encode(&out, img, &jpeg.Options{Quality: quality}); err != nil {
		return nil, fmt.Errorf("privacy: %w", err)
	}
	return out.Bytes(), nil
}
