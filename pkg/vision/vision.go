// Package vision holds the gocv (OpenCV) helpers the analyzers and sources share: bounded image
// decoding, JPEG encoding, crops, warps and the conversion of 8-bit images into the float CHW
// tensors the models take. It is a cgo leaf: packages above it see Mats and float slices only.
//
// Every function returning a gocv.Mat hands ownership to the caller, who must Close it; on error
// the Mat is the zero value and must be neither used nor closed.
package vision

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // header parsing for DecodeConfig
	_ "image/png"  // header parsing for DecodeConfig

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/pkg/imageguard"
)

// ErrImage is wrapped by every error Decode returns for bytes that are not an acceptable image.
var ErrImage = errors.New("invalid image")

// DefaultMaxPixels bounds decoded images: 8192x8192.
const DefaultMaxPixels = 8192 * 8192

// Decode decodes a JPEG or PNG into an 8-bit BGR Mat. It reads the header first and refuses
// images larger than maxPixels (0: DefaultMaxPixels) before OpenCV allocates anything, so a tiny
// file declaring 50000x50000 pixels costs nothing. A PNG's image data must inflate to exactly
// what its declared size needs (imageguard.CheckPNG), so a decompression bomb is refused after
// inflating at most that much. Alpha is dropped, grey is expanded to BGR.
func Decode(data []byte, maxPixels int) (gocv.Mat, error) { return DecodeReduced(data, maxPixels, 1) }

// DecodeReduced is Decode at 1/factor of the image's size (factor 1, 2, 4 or 8; others count as
// 1): a JPEG is decoded by DCT scaling, which costs about half of a full decode at factor 2, for
// uses that do not need every pixel (face detection runs at 320x240). The limits apply to the
// full size.
func DecodeReduced(data []byte, maxPixels, factor int) (gocv.Mat, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("%w: %w", ErrImage, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > int64(maxPixels) {
		return gocv.Mat{}, fmt.Errorf("%w: %s of %dx%d pixels exceeds the limit of %d pixels", ErrImage, format, cfg.Width, cfg.Height, maxPixels)
	}
	if err := checkComplete(data, format); err != nil {
		return gocv.Mat{}, err
	}
	if format == "png" {
		if err := imageguard.CheckPNG(data); err != nil { // decompression bombs, before libpng inflates
			return gocv.Mat{}, fmt.Errorf("%w: %w", ErrImage, err)
		}
	}
	flag := gocv.IMReadColor
	switch factor {
	case 2:
		flag = gocv.IMReadReducedColor2
	case 4:
		flag = gocv.IMReadReducedColor4
	case 8:
		flag = gocv.IMReadReducedColor8
	}
	m, err := gocv.IMDecode(data, flag)
	if err != nil {
		m.Close()
		return gocv.Mat{}, fmt.Errorf("%w: %w", ErrImage, err)
	}
	if m.Empty() {
		m.Close()
		return gocv.Mat{}, fmt.Errorf("%w: %s data does not decode", ErrImage, format)
	}
	return m, nil
}

// checkComplete refuses truncated JPEGs, which decoders would otherwise return half grey: the
// segments and scans must run to the end-of-image marker (imageguard.CheckJPEG). What follows
// that marker (phone trailers, a motion photo's video) is allowed. A PNG's chunks are walked to
// IEND by imageguard.CheckPNG in Decode.
func checkComplete(data []byte, format string) error {
	if format == "jpeg" {
		if err := imageguard.CheckJPEG(data); err != nil {
			return fmt.Errorf("%w: %w", ErrImage, err)
		}
	}
	return nil
}

// EncodeJPEG encodes an 8-bit BGR Mat as JPEG at quality 1..100.
func EncodeJPEG(m gocv.Mat, quality int) ([]byte, error) {
	if m.Empty() {
		return nil, fmt.Errorf("encode JPEG: empty image")
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, m, []int{gocv.IMWriteJpegQuality, quality})
	if err != nil {
		return nil, fmt.Errorf("encode JPEG: %w", err)
	}
	defer buf.Close()
	return bytes.Clone(buf.GetBytes()), nil
}

// CropResize returns the part r of src resized to w x h (bilinear). r is clipped to src; an
// empty intersection yields an error.
func CropResize(src gocv.Mat, r image.Rectangle, w, h int) (gocv.Mat, error) {
	r = r.Intersect(image.Rect(0, 0, src.Cols(), src.Rows()))
	if r.Empty() {
		return gocv.Mat{}, fmt.Errorf("crop %v is outside the %dx%d image", r, src.Cols(), src.Rows())
	}
	roi := src.Region(r)
	defer roi.Close()
	dst := gocv.NewMat()
	gocv.Resize(roi, &dst, image.Pt(w, h), 0, 0, gocv.InterpolationLinear)
	return dst, nil
}

// FittedSize is the size src scales down to so that neither side exceeds maxW x maxH, keeping
// the aspect ratio: its own when within bounds. Zero bounds mean unbounded.
func FittedSize(src gocv.Mat, maxW, maxH int) (int, int) {
	w, h := src.Cols(), src.Rows()
	s := 1.0
	if maxW > 0 && w > maxW {
		s = float64(maxW) / float64(w)
	}
	if maxH > 0 && float64(h)*s > float64(maxH) {
		s = float64(maxH) / float64(h)
	}
	if s >= 1 {
		return w, h
	}
	return max(1, int(float64(w)*s+0.5)), max(1, int(float64(h)*s+0.5))
}

// EncodeSized encodes src as JPEG at quality at w x h: as it is, without a copy, when that is
// its size (a 720p frame is 2.7 MB), else scaled (INTER_AREA) to it.
func EncodeSized(src gocv.Mat, w, h, quality int) ([]byte, error) {
	if w == src.Cols() && h == src.Rows() {
		return EncodeJPEG(src, quality)
	}
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("vision: encode at %dx%d", w, h)
	}
	dst := gocv.NewMat()
	defer dst.Close()
	gocv.Resize(src, &dst, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	return EncodeJPEG(dst, quality)
}

// WarpAffine maps src through the 2x3 matrix a (destination = a * source) into a w x h image,
// bilinear, with black borders.
func WarpAffine(src gocv.Mat, a [2][3]float64, w, h int) (gocv.Mat, error) {
	m := gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F)
	defer m.Close()
	for r := 0; r < 2; r++ {
		for c := 0; c < 3; c++ {
			m.SetDoubleAt(r, c, a[r][c])
		}
	}
	dst := gocv.NewMat()
	gocv.WarpAffine(src, &dst, m, image.Pt(w, h))
	if dst.Empty() {
		dst.Close()
		return gocv.Mat{}, fmt.Errorf("warp produced no image")
	}
	return dst, nil
}

// Order says which colour planes a model's input takes, in order.
type Order int

const (
	// BGR feeds planes B, G, R (OpenCV's native order).
	BGR Order = iota
	// RGB feeds planes R, G, B.
	RGB
)

// Norm maps an 8-bit value v of plane c (in the model's plane order) to (v*Scale - Mean[c]) / Std[c].
type Norm struct {
	Scale float32
	Mean  [3]float32
	Std   [3]float32
}

// FillCHW writes the 8-bit 3-channel Mat m into dst as planar CHW floats in the given plane order
// and normalisation. dst must hold exactly 3*rows*cols values.
func FillCHW(dst []float32, m gocv.Mat, order Order, n Norm) error {
	rows, cols := m.Rows(), m.Cols()
	if m.Type() != gocv.MatTypeCV8UC3 {
		return fmt.Errorf("fill tensor: want an 8-bit 3-channel image, got type %v", m.Type())
	}
	if len(dst) != 3*rows*cols {
		return fmt.Errorf("fill tensor: %d floats for a %dx%dx3 image", len(dst), cols, rows)
	}
	src, err := continuousBytes(m)
	if err != nil {
		return err
	}
	plane := rows * cols
	// Source channel feeding model plane p.
	srcCh := [3]int{0, 1, 2}
	if order == RGB {
		srcCh = [3]int{2, 1, 0}
	}
	for p := 0; p < 3; p++ {
		out := dst[p*plane : (p+1)*plane]
		sc := srcCh[p]
		mul := n.Scale / n.Std[p]
		add := -n.Mean[p] / n.Std[p]
		for i := range out {
			out[i] = float32(src[3*i+sc])*mul + add
		}
	}
	return nil
}

// FillGray converts the 8-bit BGR Mat m to grey and writes v*scale into dst (rows*cols values).
func FillGray(dst []float32, m gocv.Mat, scale float32) error {
	g := gocv.NewMat()
	defer g.Close()
	gocv.CvtColor(m, &g, gocv.ColorBGRToGray)
	if len(dst) != g.Rows()*g.Cols() {
		return fmt.Errorf("fill tensor: %d floats for a %dx%d grey image", len(dst), g.Cols(), g.Rows())
	}
	src, err := continuousBytes(g)
	if err != nil {
		return err
	}
	for i, v := range src[:len(dst)] {
		dst[i] = float32(v) * scale
	}
	return nil
}

func continuousBytes(m gocv.Mat) ([]byte, error) {
	if !m.IsContinuous() {
		return nil, fmt.Errorf("fill tensor: image is not continuous")
	}
	b, err := m.DataPtrUint8()
	if err != nil {
		return nil, fmt.Errorf("fill tensor: %w", err)
	}
	return b, nil
}

// CutJPEG decodes a JPEG or PNG (with Decode's checks and maxPixels), cuts r out of it (in the
// image's pixels; r is clipped to the image), scales the cut to w x h (INTER_AREA) and encodes it
// as JPEG at quality. A JPEG whose cut is at least twice the output size on both sides is decoded
// at 1/2, 1/4 or 1/8 scale by DCT scaling, so a small snapshot of a large frame costs a fraction
// of a full decode.
func CutJPEG(data []byte, r image.Rectangle, w, h, quality, maxPixels int) ([]byte, error) {
	if w <= 0 || h <= 0 || r.Empty() {
		return nil, fmt.Errorf("cut %v to %dx%d: empty", r, w, h)
	}
	factor := 1
	for _, k := range []int{8, 4, 2} {
		if r.Dx() >= k*w && r.Dy() >= k*h {
			factor = k
			break
		}
	}
	img, err := DecodeReduced(data, maxPixels, factor)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	if factor > 1 {
		r = image.Rect(r.Min.X/factor, r.Min.Y/factor, (r.Max.X+factor-1)/factor, (r.Max.Y+factor-1)/factor)
	}
	r = r.Intersect(image.Rect(0, 0, img.Cols(), img.Rows()))
	if r.Empty() {
		return nil, fmt.Errorf("cut: the box lies outside the %dx%d image", img.Cols(), img.Rows())
	}
	roi := img.Region(r)
	defer roi.Close()
	out := gocv.NewMat()
	defer out.Close()
	if r.Dx() == w && r.Dy() == h {
		roi.CopyTo(&out)
	} else {
		gocv.Resize(roi, &out, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	}
	return EncodeJPEG(out, quality)
}

// BlurRegions decodes a JPEG or PNG (with Decode's checks and maxPixels), applies blur to each
// region of rs (in the image's pixels) on an RGBA view of the decoded pixels, and encodes the
// result as JPEG at quality: the same blur as on an image decoded by Go, with libjpeg-turbo's
// decoding and encoding (two faces of a 720p frame: 22 ms against 56 ms with Go's image
// packages, BenchmarkBlurRegions). With no region it returns data unchanged.
func BlurRegions(data []byte, rs []image.Rectangle, quality, maxPixels int, blur func(*image.RGBA, image.Rectangle)) ([]byte, error) {
	if len(rs) == 0 {
		return data, nil
	}
	bgr, err := Decode(data, maxPixels)
	if err != nil {
		return nil, err
	}
	defer bgr.Close()
	rgba := gocv.NewMat()
	defer rgba.Close()
	gocv.CvtColor(bgr, &rgba, gocv.ColorBGRToRGBA)
	pix, err := rgba.DataPtrUint8()
	if err != nil {
		return nil, fmt.Errorf("blur: %w", err)
	}
	img := &image.RGBA{Pix: pix, Stride: rgba.Step(), Rect: image.Rect(0, 0, rgba.Cols(), rgba.Rows())}
	for _, r := range rs {
		blur(img, r)
	}
	gocv.CvtColor(rgba, &bgr, gocv.ColorRGBAToBGR)
	return EncodeJPEG(bgr, quality)
}
