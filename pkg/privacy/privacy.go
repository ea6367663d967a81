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
func Blur(img *image.RGBA, r image.Rectangle) {
	r = r.Intersect(img.Bounds())
	if r.Empty() {
		return
	}
	block := max(min(r.Dx(), r.Dy())/8, 4)
	for y := r.Min.Y; y < r.Max.Y; y += block {
		for x := r.Min.X; x < r.Max.X; x += block {
			b := image.Rect(x, y, min(x+block, r.Max.X), min(y+block, r.Max.Y))
			var sum [4]int
			n := 0
			for yy := b.Min.Y; yy < b.Max.Y; yy++ {
				row := img.Pix[img.PixOffset(b.Min.X, yy):img.PixOffset(b.Max.X, yy)]
				for i := 0; i < len(row); i += 4 {
					sum[0], sum[1], sum[2], sum[3] = sum[0]+int(row[i]), sum[1]+int(row[i+1]), sum[2]+int(row[i+2]), sum[3]+int(row[i+3])
					n++
				}
			}
			c := [4]uint8{uint8(sum[0] / n), uint8(sum[1] / n), uint8(sum[2] / n), uint8(sum[3] / n)}
			for yy := b.Min.Y; yy < b.Max.Y; yy++ {
				row := img.Pix[img.PixOffset(b.Min.X, yy):img.PixOffset(b.Max.X, yy)]
				for i := 0; i < len(row); i += 4 {
					copy(row[i:i+4], c[:])
				}
			}
		}
	}
	boxBlur(img, r, block/2)
}

// boxBlur smooths r with a (2k+1)-wide box, horizontally then vertically.
func boxBlur(img *image.RGBA, r image.Rectangle, k int) {
	if k < 1 {
		return
	}
	w, h := r.Dx(), r.Dy()
	buf := make([]int, w*h*4)
	for y := 0; y < h; y++ {
		row := img.Pix[img.PixOffset(r.Min.X, r.Min.Y+y):img.PixOffset(r.Max.X, r.Min.Y+y)]
		for i, v := range row {
			buf[y*w*4+i] = int(v)
		}
	}
	// pass blurs n lines of m pixels; at(line, i) is the index of pixel i of a line in buf.
	pass := func(lines, m int, at func(line, i int) int) {
		tmp := make([]int, m*4)
		for l := 0; l < lines; l++ {
			// A running sum over the window [i-k, i+k] clipped to the line.
			var sum [4]int
			for d := 0; d <= min(k, m-1); d++ {
				for c := range 4 {
					sum[c] += buf[at(l, d)+c]
				}
			}
			for i := 0; i < m; i++ {
				lo, hi := max(i-k, 0), min(i+k, m-1)
				for c := range 4 {
					tmp[i*4+c] = sum[c] / (hi - lo + 1)
				}
				if i+k+1 < m {
					for c := range 4 {
						sum[c] += buf[at(l, i+k+1)+c]
					}
				}
				if i-k >= 0 {
					for c := range 4 {
						sum[c] -= buf[at(l, i-k)+c]
					}
				}
			}
			for i := 0; i < m; i++ {
				copy(buf[at(l, i):at(l, i)+4], tmp[i*4:i*4+4])
			}
		}
	}
	pass(h, w, func(y, x int) int { return (y*w + x) * 4 })
	pass(w, h, func(x, y int) int { return (y*w + x) * 4 })
	for y := 0; y < h; y++ {
		row := img.Pix[img.PixOffset(r.Min.X, r.Min.Y+y):img.PixOffset(r.Max.X, r.Min.Y+y)]
		for i := range row {
			row[i] = uint8(buf[y*w*4+i])
		}
	}
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

// BlurJPEGRegions decodes a JPEG, blurs each region of rs and encodes it again at quality. With
// no region it returns data unchanged.
func BlurJPEGRegions(data []byte, rs []image.Rectangle, quality int) ([]byte, error) {
	if len(rs) == 0 {
		return data, nil
	}
	src, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("privacy: %w", err)
	}
	img := image.NewRGBA(src.Bounds())
	draw.Draw(img, img.Bounds(), src, src.Bounds().Min, draw.Src)
	for _, r := range rs {
		Blur(img, r)
	}
	var out bytes.Buffer
	if err := jpeg.Encode(&out, img, &jpeg.Options{Quality: quality}); err != nil {
		return nil, fmt.Errorf("privacy: %w", err)
	}
	return out.Bytes(), nil
}

// Detail is the variance of the 4-neighbour Laplacian of img's grey levels inside r (clipped to
// its bounds): the usual measure of detail, large for sharp edges, near 0 for a flat region. A
// blurred face keeps a few percent of its detail; tests and checks compare it before and after.
func Detail(img image.Image, r image.Rectangle) float64 {
	r = r.Intersect(img.Bounds())
	grey := func(x, y int) float64 {
		cr, cg, cb, _ := img.At(x, y).RGBA()
		return 0.299*float64(cr>>8) + 0.587*float64(cg>>8) + 0.114*float64(cb>>8)
	}
	var sum, sum2, n float64
	for y := r.Min.Y + 1; y < r.Max.Y-1; y++ {
		for x := r.Min.X + 1; x < r.Max.X-1; x++ {
			l := grey(x-1, y) + grey(x+1, y) + grey(x, y-1) + grey(x, y+1) - 4*grey(x, y)
			sum, sum2, n = sum+l, sum2+l*l, n+1
		}
	}
	if n == 0 {
		return 0
	}
	m := sum / n
	return sum2/n - m*m
}
