package eval

import (
	"errors"
	"strings"
	"testing"
)

func TestParseLabels(t *testing.T) {
	in := "\ufefffile,gender,expression,basis,age\n" +
		"a.jpg,female,smile,visual_label,30\n" +
		"b.jpg, Male ,Neutral,\"gender:x;expression:y\",\n" +
		"c.jpg,male,unlabelled,,\n" +
		"d.jpg,,other,,7.5\n" +
		"e.jpg,f,happy,,\n"
	got, err := ParseLabels(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]AttributeLabel{
		"a.jpg": {Gender: "female", Expression: "smile", Age: 30},
		"b.jpg": {Gender: "male", Expression: "neutral", Age: -1},
		"c.jpg": {Gender: "male", Age: -1},
		"d.jpg": {Expression: "other", Age: 7.5},
		"e.jpg": {Gender: "female", Expression: "smile", Age: -1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %+v, want %+v", k, got[k], v)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"", "empty file"},
		{"name,gender\na,male\n", `no "file" column`},
		{"file,basis\na,x\n", "none of the columns"},
		{"file,gender\n", "no rows"},
		{"file,gender\na.jpg,robot\n", `line 2: gender "robot"`},
		{"file,expression\na.jpg,smirk\n", `line 2: expression "smirk"`},
		{"file,age\na.jpg,-3\n", `line 2: age "-3"`},
		{"file,age\na.jpg,old\n", `age "old"`},
		{"file,gender\na.jpg,male\na.jpg,female\n", `line 3: "a.jpg" given twice`},
		{"file,gender\n,male\n", "line 2: empty file name"},
		{"file,gender\na.jpg,male,extra\n", "wrong number of fields"},
		{"file,gender\n" + strings.Repeat("x", MaxLabelsSize), "larger than"},
	} {
		if _, err := ParseLabels(strings.NewReader(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%.40q: error %v, want one saying %q", c.in, err, c.want)
		}
	}
}

func TestAttributes(t *testing.T) {
	labels := map[string]AttributeLabel{
		"f_smile.jpg":   {Gender: "female", Expression: "smile", Age: 30},
		"m_neutral.jpg": {Gender: "male", Expression: "neutral", Age: 50},
		"m_other.jpg":   {Gender: "male", Expression: "other", Age: -1},
		"f_none.jpg":    {Gender: "female", Age: -1},
		"noface.jpg":    {Gender: "male", Expression: "smile", Age: -1},
		"broken.jpg":    {Gender: "male", Age: -1},
		"absent.jpg":    {Gender: "female", Age: -1},
	}
	preds := []AttributePrediction{
		{Image: "f_smile.jpg", Faces: 1, Gender: "female", GenderScore: 0.9, Emotion: "happy", Age: 34},
		{Image: "m_neutral.jpg", Faces: 2, Gender: "female", GenderScore: 0.7, Emotion: "sad", Age: 44},
		{Image: "m_other.jpg", Faces: 1, Gender: "male", Emotion: "happy", Age: -1},
		{Image: "f_none.jpg", Faces: 1, Gender: "female", Age: -1},
		{Image: "noface.jpg", Faces: 0, Age: -1},
		{Image: "broken.jpg", Err: errors.New("not an image")},
		{Image: "unlabelled.jpg", Faces: 1, Gender: "male"},
	}
	r := Attributes(preds, labels)
	check := func(what string, s Score, correct, total int) {
		t.Helper()
		if s.Correct != correct || s.Total != total {
			t.Errorf("%s: %v, want %d/%d", what, s, correct, total)
		}
	}
	// Gender: f_smile, m_other, f_none right; m_neutral wrong; noface, broken, absent count as wrong.
	check("gender", r.Gender, 3, 7)
	// Smile vs neutral: f_smile right, m_neutral right (sad is not happy), noface wrong.
	check("smile", r.Smile, 2, 3)
	check("happy", r.Happy, 1, 2)
	check("neutral", r.Neutral, 0, 1)
	check("not happy on other", r.NotHappy, 0, 1)
	if r.AgeN != 2 || r.AgeMAE != 5 {
		t.Errorf("age: MAE %v over %d, want 5 over 2", r.AgeMAE, r.AgeN)
	}
	if strings.Join(r.NoFace, ",") != "noface.jpg" || strings.Join(r.Failed, ",") != "broken.jpg" || strings.Join(r.Missing, ",") != "absent.jpg" {
		t.Errorf("no face %v, failed %v, missing %v", r.NoFace, r.Failed, r.Missing)
	}
	if len(r.Rows) != len(labels) {
		t.Fatalf("%d rows, want one per label (%d)", len(r.Rows), len(labels))
	}
	for _, row := range r.Rows {
		if row.Image == "m_neutral.jpg" && strings.Join(row.Mistakes, ",") != "gender" {
			t.Errorf("m_neutral mistakes %v, want gender", row.Mistakes)
		}
	}
	if got := r.Gender.String(); got != "0.429 (3/7)" {
		t.Errorf("score string %q", got)
	}
}

func FuzzParseLabels(f *testing.F) {
	f.Add("file,gender,expression,age\na.jpg,female,smile,30\n")
	f.Add("file,gender\na.jpg,male\na.jpg,female\n")
	f.Add("file,expression\n\"a,b.jpg\",unlabelled\n")
	f.Add("\ufefffile,age\nx,7.5\n")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseLabels(strings.NewReader(in))
		if err != nil {
			return
		}
		for name, l := range got {
			if name == "" || (l.Gender != "" && l.Gender != "female" && l.Gender != "male") ||
				(l.Expression != "" && l.Expression != "smile" && l.Expression != "neutral" && l.Expression != "other") ||
				(l.Age != -1 && (l.Age < 0 || l.Age > 150)) {
				t.Fatalf("%q: accepted label %q %+v", in, name, l)
			}
		}
	})
}
