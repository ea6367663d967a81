package detect

import (
	"context"
	"image"
	"math"

	"gocv.io/x/gocv"
)

// Flatness is the share of horizontally and vertically adjacent pixel pairs inside r whose
// colours differ by at most 2 levels in every channel: near 1 for flat illustrations (drawn
// faces, signs, logos), well below for photographed skin, which carries sensor noise and shading
// at any size. m is an 8-bit BGR frame; an empty or 1-pixel region gives 0.
func Flatness(m gocv.Mat, r image.Rectangle) float32 {
	r = r.Intersect(image.Rect(0, 0, m.Cols(), m.Rows()))
	if r.Dx() < 2 || r.Dy() < 2 || m.Type() != gocv.MatTypeCV8UC3 {
		return 0
	}
	roi := m.Region(r)
	c := roi.Clone()
	roi.Close()
	defer c.Close()
	px, err := c.DataPtrUint8()
	if err != nil {
		return 0
	}
	w, h := r.Dx(), r.Dy()
	flat, n := 0, 0
	near := func(a, b int) bool {
		for k := 0; k < 3; k++ {
			d := int(px[a+k]) - int(px[b+k])
			if d > 2 || d < -2 {
				return false
			}
		}
		return true
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := 3 * (y*w + x)
			if x+1 < w {
				n++
				if near(i, i+3) {
					flat++
				}
			}
			if y+1 < h {
				n++
				if near(i, i+3*w) {
					flat++
				}
			}
		}
	}
	return float32(flat) / float32(n)
}

// MirrorError is how far the landmark model's five points for a face move when the face is
// mirrored: the landmarks of the mirrored crop, mirrored back (left and right swapped), against
// the face's own, as the mean distance over the side of the face's box. A face gives nearly the
// same points both ways (about 0.01; 0.045 at most on the shared test photos); an animal, a
// letter or a texture that the detector took for a face does not (the cat in the test data:
// 0.047 at 147 px). pts are the face's five points (Landmarks5).
func (l *Landmarker) MirrorError(ctx context.Context, frame gocv.Mat, b Box, pts [5]Point) (float32, error) {
	r := ExpandedRect(b, frame.Cols(), frame.Rows(), 1.0)
	if r.Empty() {
		return 0, nil
	}
	roi := frame.Region(r)
	mirror := gocv.NewMat()
	gocv.Flip(roi, &mirror, 1)
	roi.Close()
	defer mirror.Close()
	lm, err := l.Landmarks(ctx, []FaceRef{{Frame: mirror, Box: Box{X2: float32(mirror.Cols()), Y2: float32(mirror.Rows())}}})
	if err != nil {
		return 0, err
	}
	pf, ok := Landmarks5(lm[0])
	if !ok {
		return 1, nil
	}
	w := float32(r.Dx())
	back := func(q Point) Point { return Point{X: float32(r.Min.X) + w - q.X, Y: q.Y + float32(r.Min.Y)} }
	mirrored := [5]Point{back(pf[1]), back(pf[0]), back(pf[2]), back(pf[4]), back(pf[3])}
	var sum float64
	for k := range pts {
		sum += math.Hypot(float64(pts[k].X-mirrored[k].X), float64(pts[k].Y-mirrored[k].Y))
	}
	side := float64(b.H())
	if side <= 0 {
		return 1, nil
	}
	return float32(sum / 5 / side), nil
}
