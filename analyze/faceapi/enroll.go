package faceapi

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/vigil-video/vigil/pkg/result"
)

// How an enrollment photo's face was chosen (EnrolledFace.Chosen).
const (
	// ChosenOnly: the photo shows one face.
	ChosenOnly = "only"
	// ChosenDominant: the photo shows several faces and this one dominates: every other is much
	// smaller (DominantAreaRatio) or much less certain (DominantScoreMargin).
	ChosenDominant = "dominant"
	// ChosenBox: the face the request's box pointed at.
	ChosenBox = "box"
)

// DominantAreaRatio and DominantScoreMargin decide when a photo with several faces still
// enrolls its main face: every other face must cover at most DominantAreaRatio of its box area
// (half its side or less), or have a detector score at least DominantScoreMargin below its own.
// A letter or texture that the detector scores ~0.7 beside a portrait scored ~0.99 is both.
const (
	DominantAreaRatio   = 0.25
	DominantScoreMargin = 0.2
)

// EnrolledFace says which face of an enrollment photo was enrolled, and why.
type EnrolledFace struct {
	// Photo is the photo's id in the identity.
	Photo string `json:"photo"`
	// Box and Score are the enrolled face's box in the photo and its detector score.
	Box   result.Box `json:"box"`
	Score float32    `json:"score"`
	// FacesFound is the number of faces the detector found in the photo.
	FacesFound int `json:"faces_found"`
	// Chosen is ChosenOnly, ChosenDominant or ChosenBox.
	Chosen string `json:"chosen"`
}

// parseBoxes parses the optional box field of the enrollment routes for n photos: empty (no
// box), one box "x1,y1,x2,y2" in pixels of the photo for every photo, or n boxes separated by
// ";" (an empty entry leaves that photo without a box). The result has n entries, nil where
// there is no box.
func parseBoxes(s string, n int) ([]*result.Box, *Error) {
	out := make([]*result.Box, n)
	s = strings.TrimSpace(s)
	if s == "" {
		return out, nil
	}
	parts := strings.Split(s, ";")
	if len(parts) != 1 && len(parts) != n {
		return nil, errorf(http.StatusBadRequest, "invalid_field",
			"box: %d boxes for %d photos; give one box for every photo or one per photo, separated by ';'", len(parts), n)
	}
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		b, err := parseBox(p)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "invalid_field", "box %q: %v", p, err)
		}
		if len(parts) == 1 {
			for j := range out {
				out[j] = &b
			}
			break
		}
		out[i] = &b
	}
	return out, nil
}

// parseBox parses "x1,y1,x2,y2": finite pixel coordinates with x1 < x2 and y1 < y2.
func parseBox(s string) (result.Box, error) {
	f := strings.Split(s, ",")
	if len(f) != 4 {
		return result.Box{}, fmt.Errorf("want x1,y1,x2,y2 (4 numbers, pixels of the photo), got %d values", len(f))
	}
	var v [4]float32
	for i, x := range f {
		n, err := strconv.ParseFloat(strings.TrimSpace(x), 32)
		if err != nil || math.IsInf(n, 0) || math.IsNaN(n) || math.Abs(n) > 1e6 {
			return result.Box{}, fmt.Errorf("%q is not a pixel coordinate", strings.TrimSpace(x))
		}
		v[i] = float32(n)
	}
	if v[0] >= v[2] || v[1] >= v[3] {
		return result.Box{}, fmt.Errorf("want x1 < x2 and y1 < y2")
	}
	return result.Box{X1: v[0], Y1: v[1], X2: v[2], Y2: v[3]}, nil
}

func area(b result.Box) float64 {
	return math.Max(0, float64(b.X2-b.X1)) * math.Max(0, float64(b.Y2-b.Y1))
}

func intersection(a, b result.Box) float64 {
	return area(result.Box{X1: max(a.X1, b.X1), Y1: max(a.Y1, b.Y1), X2: min(a.X2, b.X2), Y2: min(a.Y2, b.Y2)})
}

// chooseFace picks the face of an enrollment photo to enroll: with a box, the face overlapping it
// most (at least half the face inside the box); without, the only face or the dominant one (see
// DominantAreaRatio). It returns the face's index and ChosenOnly, ChosenDominant or ChosenBox, or
// a 422 *Error (no_face, no_face_in_box, multiple_faces) naming the photo by what.
func chooseFace(what string, faces []result.Face, box *result.Box) (int, string, *Error) {
	if len(faces) == 0 {
		return -1, "", errorf(http.StatusUnprocessableEntity, "no_face",
			"%s: no face found; an enrollment photo must show exactly one face. Nothing was enrolled.", what)
	}
	if box != nil {
		best, bestIoU := -1, 0.0
		for i, f := range faces {
			in := intersection(f.Box, *box)
			if fa := area(f.Box); fa <= 0 || in < 0.5*fa {
				continue
			}
			if iou := in / (area(f.Box) + area(*box) - in); iou > bestIoU {
				best, bestIoU = i, iou
			}
		}
		if best < 0 {
			return -1, "", errorf(http.StatusUnprocessableEntity, "no_face_in_box",
				"%s: no face found in the box %s; the faces found are at %s (boxes x1,y1,x2,y2). Nothing was enrolled.",
				what, fmtBox(*box), fmtBoxes(faces))
		}
		return best, ChosenBox, nil
	}
	if len(faces) == 1 {
		return 0, ChosenOnly, nil
	}
	// Faces are largest first: the first face that dominates every other one wins.
	for i, f := range faces {
		if dominates(f, faces, i) {
			return i, ChosenDominant, nil
		}
	}
	return -1, "", errorf(http.StatusUnprocessableEntity, "multiple_faces",
		"%s: %d faces found at %s and none dominates; an enrollment photo must show exactly one face, or one much larger or "+
			"more certain than the others: crop it to the person, or send the person's face box in the box field. Nothing was enrolled.",
		what, len(faces), fmtBoxes(faces))
}

// dominates reports whether faces[i] is much larger or much more certain than every other face.
func dominates(f result.Face, faces []result.Face, i int) bool {
	fa := area(f.Box)
	for j, o := range faces {
		if j == i {
			continue
		}
		smaller := area(o.Box) <= DominantAreaRatio*fa
		lessCertain := o.Score <= f.Score-DominantScoreMargin
		if !smaller && !lessCertain {
			return false
		}
	}
	return true
}

func fmtBox(b result.Box) string {
	return fmt.Sprintf("%.0f,%.0f,%.0f,%.0f", b.X1, b.Y1, b.X2, b.Y2)
}

func fmtBoxes(faces []result.Face) string {
	const most = 8
	parts := make([]string, 0, min(len(faces), most))
	for i, f := range faces {
		if i == most {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmtBox(f.Box))
	}
	return strings.Join(parts, "; ")
}
