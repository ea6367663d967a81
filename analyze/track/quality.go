package track

import (
	"math"

	"github.com/vigil-video/vigil/pkg/result"
)

// embeddingSide is the face size (pixels, shorter box side) from which a face counts as fully
// resolved: the embedding model's 112x112 input.
const embeddingSide = 112

// Quality scores how much one sighting of a face should count in an identity vote and in the
// choice of a crop, in 0..1: the detector's confidence (a proxy for sharpness: blurred faces
// score lower), times the face size relative to the embedding model's 112-pixel input (capped at
// 1), times how frontal the face is (Frontality). It is 0 for a degenerate box.
func Quality(f result.Face) float64 {
	w, h := float64(f.Box.X2-f.Box.X1), float64(f.Box.Y2-f.Box.Y1)
	if !(w > 0 && h > 0) {
		return 0
	}
	score := clamp(float64(f.Score), 0, 1)
	size := clamp(math.Min(w, h)/embeddingSide, 0.05, 1)
	return score * size * Frontality(f)
}

// Frontality estimates how frontal a face is, in 0.05..1 (1: facing the camera). With head pose
// it is (cos yaw · cos pitch)²; without it, the left-right symmetry of the 5 landmarks: where the
// nose tip sits between the eyes and between the mouth corners (0.5 of the way when frontal),
// squared. Roll does not count: alignment undoes it. With neither it is 0.5.
func Frontality(f result.Face) float64 {
	if p := f.Pose; p != nil {
		v := math.Cos(deg(p.Yaw)) * math.Cos(deg(p.Pitch))
		return clamp(v*v, 0.05, 1)
	}
	if len(f.Landmarks) == 5 {
		le, re, nose, ml, mr := f.Landmarks[0], f.Landmarks[1], f.Landmarks[2], f.Landmarks[3], f.Landmarks[4]
		var sum float64
		n := 0
		for _, pair := range [][2]result.Point{{le, re}, {ml, mr}} {
			span := float64(pair[1].X - pair[0].X)
			if math.Abs(span) < 1e-3 {
				continue
			}
			r := float64(nose.X-pair[0].X) / span
			sum += clamp(1-2*math.Abs(r-0.5), 0, 1)
			n++
		}
		if n > 0 {
			s := sum / float64(n)
			return clamp(s*s, 0.05, 1)
		}
	}
	return 0.5
}

func deg(d float32) float64 { return float64(d) * math.Pi / 180 }

func clamp(v, lo, hi float64) float64 {
	if math.IsNaN(v) {
		return lo
	}
	return math.Max(lo, math.Min(hi, v))
}

// iou is the intersection over union of two boxes; 0 when either is degenerate.
func iou(a, b result.Box) float64 {
	ix := math.Min(float64(a.X2), float64(b.X2)) - math.Max(float64(a.X1), float64(b.X1))
	iy := math.Min(float64(a.Y2), float64(b.Y2)) - math.Max(float64(a.Y1), float64(b.Y1))
	if ix <= 0 || iy <= 0 {
		return 0
	}
	inter := ix * iy
	union := area(a) + area(b) - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

func area(b result.Box) float64 {
	w, h := float64(b.X2-b.X1), float64(b.Y2-b.Y1)
	if w <= 0 || h <= 0 {
		return 0
	}
	return w * h
}

// cosine is the dot product of two L2-normalised embeddings; ok is false when they cannot be
// compared (absent or of different lengths).
func cosine(a, b []float32) (float64, bool) {
	if len(a) == 0 || len(a) != len(b) {
		return 0, false
	}
	var s float64
	for i, v := range a {
		s += float64(v) * float64(b[i])
	}
	return s, true
}

// normalize returns v scaled to unit length (v itself when it is all zeros).
func normalize(v []float64) []float32 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	out := make([]float32, len(v))
	if s == 0 {
		return out
	}
	inv := 1 / math.Sqrt(s)
	for i, x := range v {
		out[i] = float32(x * inv)
	}
	return out
}
