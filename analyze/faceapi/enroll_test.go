package faceapi

import (
	"strings"
	"testing"

	"github.com/vigil-video/vigil/pkg/result"
)

func face(x1, y1, x2, y2, score float32) result.Face {
	return result.Face{Box: result.Box{X1: x1, Y1: y1, X2: x2, Y2: y2}, Score: score}
}

// TestChooseFace: the face an enrollment photo enrolls, or the refusal.
func TestChooseFace(t *testing.T) {
	portrait := face(100, 100, 300, 340, 0.99) // 200x240
	for _, tc := range []struct {
		name   string
		faces  []result.Face
		box    *result.Box
		want   int
		chosen string
		code   string
		msg    []string
	}{
		{name: "none", code: "no_face", msg: []string{"photo 1 of 1", "no face found"}},
		{name: "one", faces: []result.Face{portrait}, want: 0, chosen: ChosenOnly},
		// The case: a letter on a sign scored 0.675 beside a portrait.
		{name: "false face, less certain", faces: []result.Face{portrait, face(400, 50, 520, 190, 0.675)}, want: 0, chosen: ChosenDominant},
		{name: "much smaller face", faces: []result.Face{portrait, face(400, 50, 480, 140, 0.98)}, want: 0, chosen: ChosenDominant},
		// Largest first, but the larger one is a weak detection and the smaller a sure one.
		{name: "large weak, small sure", faces: []result.Face{face(0, 0, 220, 240, 0.6), face(300, 0, 480, 220, 0.97)}, want: 1, chosen: ChosenDominant},
		{name: "two people", faces: []result.Face{portrait, face(400, 100, 580, 320, 0.95)}, code: "multiple_faces",
			msg: []string{"2 faces", "exactly one face", "100,100,300,340; 400,100,580,320", "box field"}},
		{name: "box picks the second", faces: []result.Face{portrait, face(400, 100, 580, 320, 0.95)},
			box: &result.Box{X1: 380, Y1: 60, X2: 600, Y2: 360}, want: 1, chosen: ChosenBox},
		{name: "tight box inside the face", faces: []result.Face{portrait, face(400, 100, 580, 320, 0.95)},
			box: &result.Box{X1: 130, Y1: 130, X2: 280, Y2: 300}, want: 0, chosen: ChosenBox},
		{name: "box on nothing", faces: []result.Face{portrait}, box: &result.Box{X1: 600, Y1: 600, X2: 700, Y2: 700},
			code: "no_face_in_box", msg: []string{"600,600,700,700", "100,100,300,340"}},
	} {
		i, chosen, err := chooseFace("photo 1 of 1", tc.faces, tc.box)
		if tc.code != "" {
			if err == nil || err.Code != tc.code || err.Status != 422 {
				t.Errorf("%s: got face %d (%s), err %v; want %s", tc.name, i, chosen, err, tc.code)
				continue
			}
			for _, m := range tc.msg {
				if !strings.Contains(err.Message, m) {
					t.Errorf("%s: message %q lacks %q", tc.name, err.Message, m)
				}
			}
			continue
		}
		if err != nil || i != tc.want || chosen != tc.chosen {
			t.Errorf("%s: got face %d (%s), err %v; want %d (%s)", tc.name, i, chosen, err, tc.want, tc.chosen)
		}
	}
}

// TestParseBoxes: one box for all photos, one per photo, and precise refusals.
func TestParseBoxes(t *testing.T) {
	b := func(x1, y1, x2, y2 float32) *result.Box { return &result.Box{X1: x1, Y1: y1, X2: x2, Y2: y2} }
	for _, tc := range []struct {
		in   string
		n    int
		want []*result.Box
		err  string
	}{
		{in: "", n: 2, want: []*result.Box{nil, nil}},
		{in: "1,2,30,40", n: 2, want: []*result.Box{b(1, 2, 30, 40), b(1, 2, 30, 40)}},
		{in: " 1.5, 2 ,30,40 ;; ", n: 3, want: []*result.Box{b(1.5, 2, 30, 40), nil, nil}},
		{in: ";0,0,9,9", n: 2, want: []*result.Box{nil, b(0, 0, 9, 9)}},
		{in: "1,2,3,4;5,6,7,8", n: 3, err: "2 boxes for 3 photos"},
		{in: "1,2,3", n: 1, err: "got 3 values"},
		{in: "1,2,x,4", n: 1, err: `"x" is not a pixel coordinate`},
		{in: "5,2,3,4", n: 1, err: "x1 < x2"},
		{in: "1,2,3,NaN", n: 1, err: "not a pixel coordinate"},
		{in: "1,2,3,1e9", n: 1, err: "not a pixel coordinate"},
	} {
		got, err := parseBoxes(tc.in, tc.n)
		if tc.err != "" {
			if err == nil || err.Status != 400 || err.Code != "invalid_field" || !strings.Contains(err.Message, tc.err) {
				t.Errorf("%q: err %v, want 400 invalid_field saying %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Fatalf("%q: %v, %v", tc.in, got, err)
		}
		for i := range got {
			if (got[i] == nil) != (tc.want[i] == nil) || got[i] != nil && *got[i] != *tc.want[i] {
				t.Errorf("%q: box %d = %v, want %v", tc.in, i, got[i], tc.want[i])
			}
		}
	}
}

// FuzzParseBoxes: any input gives boxes with x1 < x2, y1 < y2, or a 400.
func FuzzParseBoxes(f *testing.F) {
	for _, s := range []string{"", "1,2,30,40", " 1.5, 2 ,30,40 ;; ", ";0,0,9,9", "1,2,3", "5,2,3,4", "1,2,3,NaN", "-1e6,0,1e6,1"} {
		f.Add(s, uint8(2))
	}
	f.Fuzz(func(t *testing.T, s string, n uint8) {
		boxes, err := parseBoxes(s, int(n%8)+1)
		if err != nil {
			if err.Status != 400 {
				t.Fatalf("%q: status %d", s, err.Status)
			}
			return
		}
		for _, b := range boxes {
			if b != nil && (b.X1 >= b.X2 || b.Y1 >= b.Y2) {
				t.Fatalf("%q: box %+v", s, *b)
			}
		}
	})
}
