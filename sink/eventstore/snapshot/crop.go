// Package snapshot cuts face snapshots for track events: Ring keeps each stream's latest frames
// (from vigil.frames.<stream>) in a bounded ring, and resolves an event's crop reference
// (event.Crop: stream, seq, capture time, box) to a JPEG of the face through a crop function,
// by default Crop, which decodes, cuts and re-encodes with Go's image packages (CropWith takes
// another Cut, such as a cgo one).
//
// The package is pure Go.
package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"image/png"
	"math"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/vigil-video/vigil/pkg/frame"
)

// Defaults of Options.
const (
	DefaultPad       = 0.2
	DefaultSize      = 160
	DefaultQuality   = 85
	DefaultMaxPixels = 4096 * 4096
)

// ErrEmptyCrop is returned by Crop when the box lies outside the frame.
var ErrEmptyCrop = errors.New("snapshot: the box does not overlap the frame")

// ErrTooLarge is wrapped by Crop's error for an image larger than Options.MaxPixels or
// frame.MaxDimension, refused before it is decoded.
var ErrTooLarge = errors.New("snapshot: image too large")

// Options shape a snapshot. The zero value gives the defaults.
type Options struct {
	// Pad is the margin added on each side of the box, as a share of the box's longer side
	// (0..1). Default DefaultPad (0.2); negative: none.
	Pad float64
	// Size is the longest side of the snapshot in pixels: a larger crop is scaled down to it
	// (area average), a smaller one is kept as it is. Default DefaultSize (160).
	Size int
	// Quality is the JPEG quality 1..100. Default DefaultQuality (85).
	Quality int
	// MaxPixels refuses images with more pixels before decoding them (each side is also bounded
	// by frame.MaxDimension). Default DefaultMaxPixels (4096x4096).
	MaxPixels int
}

func (o Options) withDefaults() Options {
	switch {
	case o.Pad == 0:
		o.Pad = DefaultPad
	case o.Pad < 0:
		o.Pad = 0
	}
	o.Pad = min(o.Pad, 1)
	if o.Size <= 0 {
		o.Size = DefaultSize
	}
	if o.Quality <= 0 || o.Quality > 100 {
		o.Quality = DefaultQuality
	}
	if o.MaxPixels <= 0 {
		o.MaxPixels = DefaultMaxPixels
	}
	return o
}

// Cut decodes f's image, cuts r out of it (in the image's pixels; r lies within the image),
// scales the cut to w x h (area average, only ever down) and encodes it as JPEG at quality.
// CropWith plans what to cut and hands it to a Cut; CutGo is the pure-Go one.
type Cut func(f frame.Frame, r image.Rectangle, w, h, quality int) ([]byte, error)

// Crop cuts c.Box out of f (a JPEG or PNG frame) and returns it as a JPEG, following o: CropWith
// with CutGo.
func Crop(f frame.Frame, c event.Crop, o Options) ([]byte, error) { return CropWith(f, c, o, CutGo) }

// CropWith is Crop with the decoding, cutting and encoding done by cut. The box is in pixels of a
// c.Width x c.Height image (the analysed frame); when the frame's decoded size differs, the box is
// scaled to it (0 sizes mean the frame's own). The image's header is checked against
// o.MaxPixels and frame.MaxDimension before cut runs.
func CropWith(f frame.Frame, c event.Crop, o Options, cut Cut) ([]byte, error) {
	o = o.withDefaults()
	rd := bytes.NewReader(f.Data)
	var cfg image.Config
	var err error
	switch f.Encoding {
	case frame.EncodingPNG:
		cfg, err = png.DecodeConfig(rd)
	case frame.EncodingJPEG, "":
		cfg, err = jpeg.DecodeConfig(rd)
	default:
		return nil, fmt.Errorf("snapshot: frame %d: unknown encoding %q", f.Seq, f.Encoding)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: frame %d: %w", f.Seq, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > frame.MaxDimension || cfg.Height > frame.MaxDimension ||
		cfg.Width*cfg.Height > o.MaxPixels {
		return nil, fmt.Errorf("%w: frame %d is %dx%d (at most %d pixels, %d a side)", ErrTooLarge, f.Seq, cfg.Width, cfg.Height, o.MaxPixels, frame.MaxDimension)
	}
	r, err := cropRect(c, cfg.Width, cfg.Height, o.Pad)
	if err != nil {
		return nil, err
	}
	w, h := r.Dx(), r.Dy()
	if long := max(w, h); long > o.Size {
		w = max(1, int(math.Round(float64(r.Dx())*float64(o.Size)/float64(long))))
		h = max(1, int(math.Round(float64(r.Dy())*float64(o.Size)/float64(long))))
	}
	return cut(f, r, w, h, o.Quality)
}

// CutGo is a Cut with Go's image packages.
func CutGo(f frame.Frame, r image.Rectangle, w, h, quality int) ([]byte, error) {
	decode := jpeg.Decode
	if f.Encoding == frame.EncodingPNG {
		decode = png.Decode
	}
	img, err := decode(bytes.NewReader(f.Data))
	if err != nil {
		return nil, fmt.Errorf("snapshot: frame %d: %w", f.Seq, err)
	}
	r = r.Add(img.Bounds().Min).Intersect(img.Bounds())
	if r.Empty() {
		return nil, ErrEmptyCrop
	}
	src := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	draw.Draw(src, src.Bounds(), img, r.Min, draw.Src)
	out := src
	if w < r.Dx() || h < r.Dy() {
		out = shrink(src, w, h)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, out, &jpeg.Options{Quality: quality}); err != nil {
		return nil, fmt.Errorf("snapshot: encode: %w", err)
	}
	return b.Bytes(), nil
}

// cropRect returns the padded box in pixels of a w x h image, clipped to it.
func cropRect(c event.Crop, w, h int, pad float64) (image.Rectangle, error) {
	refW, refH := c.Width, c.Height
	if refW <= 0 || refH <= 0 {
		refW, refH = w, h
	}
	sx, sy := float64(w)/float64(refW), float64(h)/float64(refH)
	x1, y1 := float64(c.Box.X1)*sx, float64(c.Box.Y1)*sy
	x2, y2 := float64(c.Box.X2)*sx, float64(c.Box.Y2)*sy
	for _, v := range []float64{x1, y1, x2, y2} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return image.Rectangle{}, fmt.Errorf("snapshot: box %+v is not finite", c.Box)
		}
	}
	if x2 <= x1 || y2 <= y1 {
		return image.Rectangle{}, ErrEmptyCrop
	}
	m := pad * math.Max(x2-x1, y2-y1)
	clamp := func(v float64, hi int) int { return int(math.Max(0, math.Min(v, float64(hi)))) }
	r := image.Rect(clamp(math.Floor(x1-m), w), clamp(math.Floor(y1-m), h), clamp(math.Ceil(x2+m), w), clamp(math.Ceil(y2+m), h))
	if r.Empty() {
		return image.Rectangle{}, ErrEmptyCrop
	}
	return r, nil
}

// shrink scales src down to w x h by averaging the source pixels under each output pixel.
func shrink(src *image.RGBA, w, h int) *image.RGBA {
	sw, sh := src.Rect.Dx(), src.Rect.Dy()
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		y0, y1 := y*sh/h, max((y+1)*sh/h, y*sh/h+1)
		for x := 0; x < w; x++ {
			x0, x1 := x*sw/w, max((x+1)*sw/w, x*sw/w+1)
			var r, g, b, a, n uint32
			for yy := y0; yy < y1; yy++ {
				row := src.Pix[yy*src.Stride:]
				for xx := x0; xx < x1; xx++ {
					p := row[xx*4 : xx*4+4]
					r, g, b, a = r+uint32(p[0]), g+uint32(p[1]), b+uint32(p[2]), a+uint32(p[3])
					n++
				}
			}
			o := dst.Pix[y*dst.Stride+x*4:]
			o[0], o[1], o[2], o[3] = uint8(r/n), uint8(g/n), uint8(b/n), uint8(a/n)
		}
	}
	return dst
}
