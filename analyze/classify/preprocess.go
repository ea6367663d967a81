package classify

import (
	"fmt"
	"image"
	"math"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/analyze/classify/manifest"
	"github.com/vigil-video/vigil/pkg/result"
)

// preprocessor turns a rectangle of an 8-bit BGR image into one input sample, as a manifest's
// Input describes.
type preprocessor struct {
	in        manifest.Input
	mul, add  []float32 // per model channel: value*mul + add
	srcCh     []int     // source (BGR) channel feeding each model channel; nil for grey
	sampleLen int
}

func newPreprocessor(in manifest.Input) *preprocessor {
	p := &preprocessor{in: in, sampleLen: in.Width * in.Height * in.Channels()}
	mean, std := in.Norm()
	for c := range mean {
		p.mul = append(p.mul, in.Scale/std[c])
		p.add = append(p.add, -mean[c]/std[c])
	}
	switch in.Color {
	case manifest.ColorRGB:
		p.srcCh = []int{2, 1, 0}
	case manifest.ColorBGR:
		p.srcCh = []int{0, 1, 2}
	}
	return p
}

// cropRect returns the source rectangle of r (within src's bounds) that the resize and crop
// modes turn into the input: r itself for stretch, the centre part of r with the input's aspect
// ratio that a shorter-side resize to ResizeSize followed by a centre crop keeps.
func (p *preprocessor) cropRect(r image.Rectangle) image.Rectangle {
	if p.in.Resize != manifest.ResizeShorterSide {
		return r
	}
	scale := float64(p.in.ResizeSize) / float64(min(r.Dx(), r.Dy()))
	cw, ch := float64(p.in.Width)/scale, float64(p.in.Height)/scale
	cx, cy := float64(r.Min.X)+float64(r.Dx())/2, float64(r.Min.Y)+float64(r.Dy())/2
	out := image.Rect(int(math.Round(cx-cw/2)), int(math.Round(cy-ch/2)), int(math.Round(cx+cw/2)), int(math.Round(cy+ch/2)))
	out = out.Intersect(r)
	if out.Empty() {
		return r
	}
	return out
}

// fill writes the sample for rectangle r of the 8-bit BGR image src into dst (sampleLen
// floats). r is clipped to src; an empty rectangle is an error.
func (p *preprocessor) fill(dst []float32, src gocv.Mat, r image.Rectangle) error {
	if len(dst) != p.sampleLen {
		return fmt.Errorf("preprocess: %d floats for a sample of %d", len(dst), p.sampleLen)
	}
	if src.Type() != gocv.MatTypeCV8UC3 {
		return fmt.Errorf("preprocess: want an 8-bit 3-channel image, got type %v", src.Type())
	}
	r = r.Intersect(image.Rect(0, 0, src.Cols(), src.Rows()))
	if r.Empty() {
		return fmt.Errorf("preprocess: the target lies outside the %dx%d image", src.Cols(), src.Rows())
	}
	r = p.cropRect(r)
	roi := src.Region(r)
	defer roi.Close()
	w, h := p.in.Width, p.in.Height
	resized := gocv.NewMat()
	defer resized.Close()
	interp := gocv.InterpolationLinear
	if r.Dx() > w && r.Dy() > h {
		interp = gocv.InterpolationArea // shrinking: average, do not alias
	}
	gocv.Resize(roi, &resized, image.Pt(w, h), 0, 0, interp)
	img := resized
	if p.in.Color == manifest.ColorGray {
		gray := gocv.NewMat()
		defer gray.Close()
		gocv.CvtColor(resized, &gray, gocv.ColorBGRToGray)
		img = gray
	}
	if !img.IsContinuous() || img.Rows() != h || img.Cols() != w {
		return fmt.Errorf("preprocess: unexpected %dx%d non-continuous image", img.Cols(), img.Rows())
	}
	px, err := img.DataPtrUint8()
	if err != nil {
		return fmt.Errorf("preprocess: %w", err)
	}
	plane := w * h
	if p.srcCh == nil { // grey: one channel, layouts coincide
		for i := 0; i < plane; i++ {
			dst[i] = float32(px[i])*p.mul[0] + p.add[0]
		}
		return nil
	}
	if p.in.Layout == manifest.LayoutNHWC {
		for i := 0; i < plane; i++ {
			for c, sc := range p.srcCh {
				dst[3*i+c] = float32(px[3*i+sc])*p.mul[c] + p.add[c]
			}
		}
		return nil
	}
	for c, sc := range p.srcCh {
		out := dst[c*plane : (c+1)*plane]
		mul, add := p.mul[c], p.add[c]
		for i := range out {
			out[i] = float32(px[3*i+sc])*mul + add
		}
	}
	return nil
}

// regionRect returns a region target's rectangle in a w x h frame.
func regionRect(r *manifest.Region, w, h int) image.Rectangle {
	return image.Rect(int(math.Round(r.X*float64(w))), int(math.Round(r.Y*float64(h))),
		int(math.Round((r.X+r.W)*float64(w))), int(math.Round((r.Y+r.H)*float64(h))))
}

// faceRect returns a face's box enlarged by margin of its size on each side.
func faceRect(b result.Box, margin float64) image.Rectangle {
	w, h := float64(b.X2-b.X1), float64(b.Y2-b.Y1)
	return image.Rect(int(math.Floor(float64(b.X1)-margin*w)), int(math.Floor(float64(b.Y1)-margin*h)),
		int(math.Ceil(float64(b.X2)+margin*w)), int(math.Ceil(float64(b.Y2)+margin*h)))
}
