// Package detect finds faces: the UltraFace-style 320x240 detector's post-processing (score
// threshold, top-k, non-maximum suppression, square boxes in frame pixels), the 68-point landmark
// model, the reduction of 68 points to 5, and the similarity alignment of a face onto the
// 112x112 template the embedding model was trained on.
//
// The geometry in this file is pure Go; the model runners in detector.go and landmarks.go use
// gocv and onnxruntime.
package detect

import (
	"image"
	"math"
	"sort"
)

// Point is a 2-D point in pixels.
type Point struct{ X, Y float32 }

// Box is an axis-aligned rectangle in pixels: (X1,Y1) top-left, (X2,Y2) bottom-right.
type Box struct{ X1, Y1, X2, Y2 float32 }

// W is the box width.
func (b Box) W() float32 { return b.X2 - b.X1 }

// H is the box height.
func (b Box) H() float32 { return b.Y2 - b.Y1 }

// Area is the box area, 0 for an empty box.
func (b Box) Area() float32 {
	if b.X2 <= b.X1 || b.Y2 <= b.Y1 {
		return 0
	}
	return b.W() * b.H()
}

// IoU is the intersection over union of a and b, 0 when either is empty.
func IoU(a, b Box) float32 {
	ix := min(a.X2, b.X2) - max(a.X1, b.X1)
	iy := min(a.Y2, b.Y2) - max(a.Y1, b.Y1)
	if ix <= 0 || iy <= 0 {
		return 0
	}
	inter := ix * iy
	u := a.Area() + b.Area() - inter
	if u <= 0 {
		return 0
	}
	return inter / u
}

// Containment is the share of a's area that lies inside b, 0 when a is empty.
func Containment(a, b Box) float32 {
	ix := min(a.X2, b.X2) - max(a.X1, b.X1)
	iy := min(a.Y2, b.Y2) - max(a.Y1, b.Y1)
	if ix <= 0 || iy <= 0 || a.Area() <= 0 {
		return 0
	}
	return ix * iy / a.Area()
}

// Detection is one face found by the detector.
type Detection struct {
	// Box is the face's square box in frame pixels (see Decode).
	Box Box
	// Score is the detector's face probability, 0..1.
	Score float32
	// Raw is the detector's own box before squaring, in frame pixels: its aspect ratio is one of
	// the face-quality gate's cues.
	Raw Box
}

// PostConfig holds the detector's post-processing settings. The zero value is not useful: start
// from DefaultPostConfig.
type PostConfig struct {
	// Threshold is the minimum face score kept. Default 0.65 (the reference library's value).
	Threshold float32
	// TopK bounds the candidates that enter NMS. Default 750.
	TopK int
	// NMSIoU suppresses a candidate overlapping a better one by more than this IoU. Default 0.4.
	NMSIoU float32
	// NMSContain suppresses a candidate when more than this share of its own area lies inside
	// a better one: the detector also fires on eyes and mouths inside a face, which IoU alone
	// keeps. Default 0.6.
	NMSContain float32
	// MinSize drops faces whose square side is below this many frame pixels. Default 0.
	MinSize float32
}

// DefaultPostConfig returns the reference library's post-processing settings.
func DefaultPostConfig() PostConfig {
	return PostConfig{Threshold: 0.65, TopK: 750, NMSIoU: 0.4, NMSContain: 0.6}
}

// Decode turns one image's raw detector outputs into faces in frame pixels. scores holds n
// (background, face) pairs and boxes n (x1,y1,x2,y2) quadruples normalised to 0..1; frameW and
// frameH give the original frame size. Boxes become squares whose side is the detected height
// (what the landmark and attribute models expect), centred on the detection and clipped to the
// frame. Faces come back sorted by score, best first. Inconsistent input lengths yield nil.
func Decode(scores, boxes []float32, frameW, frameH int, cfg PostConfig) []Detection {
	n := len(scores) / 2
	if n == 0 || len(boxes) != 4*n || len(scores) != 2*n || frameW <= 0 || frameH <= 0 {
		return nil
	}
	var cand []Detection
	fw, fh := float32(frameW), float32(frameH)
	for i := 0; i < n; i++ {
		s := scores[2*i+1]
		if !(s >= cfg.Threshold) { // also rejects NaN
			continue
		}
		b := Box{boxes[4*i] * fw, boxes[4*i+1] * fh, boxes[4*i+2] * fw, boxes[4*i+3] * fh}
		if !(b.Area() > 0) || math.IsInf(float64(b.Area()), 0) {
			continue
		}
		cand = append(cand, Detection{Box: b, Score: s})
	}
	sort.SliceStable(cand, func(i, j int) bool { return cand[i].Score > cand[j].Score })
	if cfg.TopK > 0 && len(cand) > cfg.TopK {
		cand = cand[:cfg.TopK]
	}
	kept := NMS(cand, cfg.NMSIoU, cfg.NMSContain)
	out := kept[:0]
	for _, d := range kept {
		d.Raw = d.Box
		d.Box = squareBox(d.Box, fw, fh)
		if d.Box.Area() <= 0 || d.Box.H() < cfg.MinSize {
			continue
		}
		out = append(out, d)
	}
	return out
}

// NMS keeps, from detections sorted best first, each one that overlaps no kept detection by
// more than iou, and has no more than contain of its own area inside a kept detection
// (contain <= 0 disables that test). The input slice is not modified.
func NMS(dets []Detection, iou, contain float32) []Detection {
	kept := make([]Detection, 0, len(dets))
	for _, d := range dets {
		ok := true
		for _, k := range kept {
			if IoU(d.Box, k.Box) > iou || contain > 0 && Containment(d.Box, k.Box) > contain {
				ok = false
				break
			}
		}
		if ok {
			kept = append(kept, d)
		}
	}
	return kept
}

// squareBox makes b a square whose side is b's height, centred on b, clipped to the frame.
func squareBox(b Box, fw, fh float32) Box {
	side := b.H()
	cx, cy := (b.X1+b.X2)/2, (b.Y1+b.Y2)/2
	return Box{
		X1: max(0, cx-side/2),
		Y1: max(0, cy-side/2),
		X2: min(fw-1, cx+side/2),
		Y2: min(fh-1, cy+side/2),
	}
}

// ExpandedRect is the crop the attribute models take around a face: the box scaled by scale
// about its centre (the scale is capped so the crop fits the frame), shifted back inside the
// frame where it crosses an edge, and clipped. It follows the reference library's crop for the
// landmark (1.0), age and gender (1.4) and liveness (2.7) models. The result is empty only for
// an empty box or frame.
func ExpandedRect(b Box, frameW, frameH int, scale float32) image.Rectangle {
	w, h := b.W(), b.H()
	if w <= 0 || h <= 0 || frameW <= 1 || frameH <= 1 {
		return image.Rectangle{}
	}
	fw, fh := float32(frameW), float32(frameH)
	s := min(scale, (fh-1)/h, (fw-1)/w)
	nw, nh := w*s, h*s
	cx, cy := b.X1+w/2, b.Y1+h/2
	x1, y1, x2, y2 := cx-nw/2, cy-nh/2, cx+nw/2, cy+nh/2
	if x1 < 0 {
		x2 -= x1
		x1 = 0
	}
	if y1 < 0 {
		y2 -= y1
		y1 = 0
	}
	if x2 > fw-1 {
		x1 -= x2 - fw + 1
		x2 = fw - 1
	}
	if y2 > fh-1 {
		y1 -= y2 - fh + 1
		y2 = fh - 1
	}
	r := image.Rect(int(x1), int(y1), int(x2), int(y2)).Intersect(image.Rect(0, 0, frameW, frameH))
	return r
}

// MarginRect is b grown by frac of its size on every side and clipped to the frame (the pose
// model's crop uses frac 0.25).
func MarginRect(b Box, frameW, frameH int, frac float32) image.Rectangle {
	dx, dy := b.W()*frac, b.H()*frac
	r := image.Rect(int(b.X1-dx), int(b.Y1-dy), int(b.X2+dx), int(b.Y2+dy))
	return r.Intersect(image.Rect(0, 0, frameW, frameH))
}

// Landmarks5 reduces the 68-point layout (x0,y0,x1,y1,...) to the five points the alignment
// template uses: left eye centre, right eye centre, nose tip, left and right mouth corner. It
// returns false when pts does not hold 68 points.
func Landmarks5(pts []float32) ([5]Point, bool) {
	var out [5]Point
	if len(pts) != 136 {
		return out, false
	}
	p := func(i int) Point { return Point{pts[2*i], pts[2*i+1]} }
	avg := func(idx ...int) Point {
		var s Point
		for _, i := range idx {
			q := p(i)
			s.X += q.X
			s.Y += q.Y
		}
		n := float32(len(idx))
		return Point{s.X / n, s.Y / n}
	}
	out[0] = avg(37, 38, 40, 41) // left eye (image left)
	out[1] = avg(43, 44, 46, 47) // right eye
	out[2] = p(30)               // nose tip
	out[3] = avg(48, 60)         // left mouth corner
	out[4] = avg(54, 64)         // right mouth corner
	return out, true
}

// Template112 is the ArcFace reference position of the five landmarks in a 112x112 aligned face.
var Template112 = [5]Point{
	{38.2946, 51.6963},
	{73.5318, 51.5014},
	{56.0252, 71.7366},
	{41.5493, 92.3655},
	{70.7299, 92.2041},
}

// Affine is a 2x3 affine matrix mapping (x,y) to (A[0][0]x+A[0][1]y+A[0][2], A[1][0]x+A[1][1]y+A[1][2]).
type Affine [2][3]float64

// Apply maps p through the transform.
func (a Affine) Apply(p Point) Point {
	x, y := float64(p.X), float64(p.Y)
	return Point{float32(a[0][0]*x + a[0][1]*y + a[0][2]), float32(a[1][0]*x + a[1][1]*y + a[1][2])}
}

// Similarity returns the least-squares similarity transform (rotation, uniform scale,
// translation; Umeyama 1991) mapping src onto dst. It returns false for degenerate input (all
// source points coincide or a non-finite coordinate).
func Similarity(src, dst [5]Point) (Affine, bool) {
	var msx, msy, mdx, mdy float64
	for i := range src {
		msx += float64(src[i].X)
		msy += float64(src[i].Y)
		mdx += float64(dst[i].X)
		mdy += float64(dst[i].Y)
	}
	n := float64(len(src))
	msx, msy, mdx, mdy = msx/n, msy/n, mdx/n, mdy/n
	// For a similarity, the optimal parameters have a closed form in 2-D:
	// a = sum(sx*dx + sy*dy)/var, b = sum(sx*dy - sy*dx)/var with centred coordinates.
	var num1, num2, varS float64
	for i := range src {
		sx, sy := float64(src[i].X)-msx, float64(src[i].Y)-msy
		dx, dy := float64(dst[i].X)-mdx, float64(dst[i].Y)-mdy
		num1 += sx*dx + sy*dy
		num2 += sx*dy - sy*dx
		varS += sx*sx + sy*sy
	}
	if !(varS > 1e-9) || math.IsNaN(num1) || math.IsNaN(num2) || math.IsInf(varS, 0) {
		return Affine{}, false
	}
	a, b := num1/varS, num2/varS
	return Affine{
		{a, -b, mdx - (a*msx - b*msy)},
		{b, a, mdy - (b*msx + a*msy)},
	}, true
}
