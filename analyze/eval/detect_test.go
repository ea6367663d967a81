package eval

import (
	"errors"
	"strings"
	"testing"
)

func TestParseExpectations(t *testing.T) {
	in := `# expected faces
---
two_people.jpg: 2
obama_and_biden.jpg: 2-4   # two clear faces, others partial
"no-faces.jpg": '0'
sub/photo#2.jpg: 1 - 3
odd:name.png:0
`
	got, err := ParseExpectations(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Range{"two_people.jpg": {2, 2}, "obama_and_biden.jpg": {2, 4}, "no-faces.jpg": {0, 0}, "sub/photo#2.jpg": {1, 3}, "odd:name.png": {0, 0}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v", k, got[k], v)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"a.jpg 2", "line 1"},
		{"a.jpg: 1\n\na.jpg: 2", `line 3: "a.jpg" given twice`},
		{"a.jpg: 4-2", "MIN <= MAX"},
		{"a.jpg: -1", "non-negative"},
		{"a.jpg: two", `"two"`},
		{": 2", "no image name"},
		{strings.Repeat("#", MaxExpectationsSize+1), "larger than"},
	} {
		if _, err := ParseExpectations(strings.NewReader(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseExpectations(%.40q) = %v, want an error with %q", c.in, err, c.want)
		}
	}
	if m, err := ParseExpectations(strings.NewReader("")); err != nil || len(m) != 0 {
		t.Errorf("empty: %v %v", m, err)
	}
}

func TestRange(t *testing.T) {
	r := Range{2, 4}
	if r.String() != "2-4" || (Range{1, 1}).String() != "1" || !r.Contains(2) || !r.Contains(4) || r.Contains(1) || r.Contains(5) {
		t.Errorf("Range %v", r)
	}
	if got, err := ParseRange(r.String()); err != nil || got != r {
		t.Errorf("round trip: %v %v", got, err)
	}
}

func TestDetection(t *testing.T) {
	counts := []Count{
		{Image: "two.jpg", Faces: 2},
		{Image: "group.jpg", Faces: 5},
		{Image: "extra.jpg", Faces: 1},
		{Image: "bad.jpg", Err: errors.New("not an image")},
	}
	expect := map[string]Range{"two.jpg": {2, 2}, "group.jpg": {2, 4}, "gone.jpg": {0, 0}, "bad.jpg": {1, 1}}
	rep := Detection(counts, expect)
	want := []struct {
		image  string
		status Status
	}{{"two.jpg", StatusOK}, {"group.jpg", StatusOutside}, {"extra.jpg", StatusUnchecked}, {"bad.jpg", StatusError}, {"gone.jpg", StatusMissing}}
	if len(rep.Images) != len(want) {
		t.Fatalf("rows: %+v", rep.Images)
	}
	for i, w := range want {
		if r := rep.Images[i]; r.Image != w.image || r.Status != w.status {
			t.Errorf("row %d = %+v, want %s %s", i, r, w.image, w.status)
		}
	}
	if rep.Checked != 4 || rep.Failed != 3 || rep.OK() {
		t.Errorf("checked %d, failed %d", rep.Checked, rep.Failed)
	}
	if rep.Images[3].Error != "not an image" || rep.Images[1].Expected == nil || *rep.Images[1].Expected != (Range{2, 4}) || rep.Images[2].Expected != nil {
		t.Errorf("rows: %+v", rep.Images)
	}
	// Faces on images expected to hold none are false faces; a missing negative is not counted.
	neg := Detection(append(counts, Count{Image: "dogs.jpg", Faces: 2}, Count{Image: "wall.jpg"}),
		map[string]Range{"dogs.jpg": {0, 0}, "wall.jpg": {0, 0}, "gone.jpg": {0, 0}, "two.jpg": {2, 2}})
	if neg.Negatives != 2 || neg.FalseFaces != 2 {
		t.Errorf("negatives %d with %d false faces, want 2 with 2", neg.Negatives, neg.FalseFaces)
	}
	// Without expectations only errors fail.
	if rep := Detection(counts[:3], nil); !rep.OK() || rep.Checked != 0 || len(rep.Images) != 3 {
		t.Errorf("no expectations: %+v", rep)
	}
}
