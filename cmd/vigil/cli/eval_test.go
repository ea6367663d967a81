package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-video/vigil/analyze/eval"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestEvalFaces runs vigil eval faces with the real models on the shared labelled photos and
// holds the verification metrics to what was measured (accuracy and AUC 1.0; every photo yields
// a face).
func TestEvalFaces(t *testing.T) {
	dir := filepath.Join(testenv.TestData(t), "faces")
	code, stdout, stderr := vigil(t, nil, "eval", "faces", dir, "--json", "--log-level", "warn")
	if code != 0 {
		t.Fatalf("eval faces: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var r facesEval
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("eval faces --json: %v\n%s", err, stdout)
	}
	var table bytes.Buffer
	if err := printFacesTable(&table, r); err != nil {
		t.Fatal(err)
	}
	t.Logf("vigil eval faces %s:\n%s", dir, table.String())
	v := r.Verification
	if r.Photos < 2 || v.Samples != r.Photos || len(r.NoFace) != 0 || len(r.Failed) != 0 {
		t.Errorf("%d photos, %d embedded, no face in %v, failed %v: want a face in every photo", r.Photos, v.Samples, r.NoFace, r.Failed)
	}
	if v.Pairs != v.Samples*(v.Samples-1)/2 || v.Same+v.Different != v.Pairs || v.Same == 0 || v.Different == 0 {
		t.Errorf("pairs %d = %d same + %d different from %d photos", v.Pairs, v.Same, v.Different, v.Samples)
	}
	if v.Accuracy < 0.99 || v.AUC < 0.99 {
		t.Errorf("accuracy %.4f, AUC %.4f: want both >= 0.99 (measured 1.0)", v.Accuracy, v.AUC)
	}
	if len(v.TARs) != 2 || v.TARs[0].FAR != 1e-2 || v.TARs[1].FAR != 1e-3 {
		t.Fatalf("TARs: %+v", v.TARs)
	}
	for _, tar := range v.TARs {
		if enough := float64(v.Different)*tar.FAR >= 1; enough != (tar.Note == "") {
			t.Errorf("FAR %g over %d different-person pairs: note %q", tar.FAR, v.Different, tar.Note)
		}
	}
	if v.TARs[1].Note != "" && !strings.Contains(table.String(), "note: only") {
		t.Errorf("the table lacks the FAR 1e-3 note:\n%s", table.String())
	}
	for _, want := range []string{"accuracy", "ROC AUC", "TAR@FAR=1e-2", "TAR@FAR=1e-3", "lowest same-person", "highest different-person", "no face"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("the table lacks %q", want)
		}
	}
	if v.LowestSame.A == "" || v.HighestDifferent.A == "" || v.AtThreshold.Threshold != 0.46 {
		t.Errorf("closest pairs %+v %+v, at %+v", v.LowestSame, v.HighestDifferent, v.AtThreshold)
	}
}

// TestEvalDetect runs vigil eval detect with the real models on the shared detection photos
// against the expectations in testdata (the test data's ground truth), then checks that a wrong
// or missing expectation fails the command and that without --expect it only counts.
func TestEvalDetect(t *testing.T) {
	dir := filepath.Join(testenv.TestData(t), "detect")
	expect := filepath.Join("testdata", "eval_detect_expect.yaml")
	code, stdout, stderr := vigil(t, nil, "eval", "detect", dir, "--expect", expect, "--json", "--log-level", "warn")
	if code != 0 {
		t.Fatalf("eval detect: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var r detectEval
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("eval detect --json: %v\n%s", err, stdout)
	}
	var table bytes.Buffer
	if err := printDetectTable(&table, r.DetectionReport); err != nil {
		t.Fatal(err)
	}
	t.Logf("vigil eval detect %s --expect %s:\n%s", dir, expect, table.String())
	found := map[string]int{}
	for _, row := range r.Images {
		found[row.Image] = row.Faces
		if row.Status != eval.StatusOK {
			t.Errorf("%s: %d faces, expected %v: %s %s", row.Image, row.Faces, row.Expected, row.Status, row.Error)
		}
	}
	if r.Checked != 11 || len(r.Images) != 11 || !r.OK() {
		t.Errorf("%d images, %d checked, %d failed: want 11, 11, 0", len(r.Images), r.Checked, r.Failed)
	}
	if r.Negatives != 3 || r.FalseFaces != 0 {
		t.Errorf("%d false faces on %d negatives, want none on 3 (no-faces, dogs, the cat)", r.FalseFaces, r.Negatives)
	}
	for _, none := range []string{"no-faces.jpg", "dogs.jpg", "cat_chelsea.png"} {
		if n, ok := found[none]; !ok || n != 0 {
			t.Errorf("%s: %d faces (listed %v), want 0", none, n, ok)
		}
	}

	// A folder with a subfolder, a non-image and a hidden image; a count outside its range and
	// an expected image that is not there fail the run.
	tmp := t.TempDir()
	for src, dst := range map[string]string{"two_people.jpg": "two_people.jpg", "dogs.jpg": "sub/dogs.jpg", "no-faces.jpg": ".hidden.jpg"} {
		copyFile(t, filepath.Join(dir, src), filepath.Join(tmp, dst))
	}
	writeAt(t, filepath.Join(tmp, "notes.txt"), "not an image")
	wrong := writeFile(t, "expect.yaml", "two_people.jpg: 3-4\nsub/dogs.jpg: 0\ngone.jpg: 1\n")
	code, stdout, stderr = vigil(t, nil, "eval", "detect", tmp, "--expect", wrong, "--log-level", "warn")
	if code != 1 || !strings.Contains(stderr, "2 of 3 images failed") {
		t.Fatalf("eval detect with wrong expectations: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"sub/dogs.jpg 0 0 ok", "two_people.jpg 2 3-4 outside", "gone.jpg - 1 missing: no such image"} {
		if !tableHas(stdout, want) {
			t.Errorf("table lacks the row %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stdout, "3 images, 3 checked: 2 FAILED") {
		t.Errorf("table lacks the summary:\n%s", stdout)
	}
	code, stdout, stderr = vigil(t, nil, "eval", "detect", tmp, "--log-level", "warn")
	if code != 0 || !tableHas(stdout, "two_people.jpg 2 - unchecked") || !strings.Contains(stdout, "2 images, none checked") {
		t.Fatalf("eval detect without --expect: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestEvalUsage: usage errors exit 2 before any model loads; bad inputs exit 1 with a message.
func TestEvalUsage(t *testing.T) {
	tmp := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"eval"}, 2, ""},
		{[]string{"eval", "--help"}, 0, ""},
		{[]string{"eval", "nope"}, 2, `unknown subcommand "nope"`},
		{[]string{"eval", "faces"}, 2, "want one DIR, got 0"},
		{[]string{"eval", "detect", "a", "b"}, 2, "want one DIR, got 2"},
		{[]string{"eval", "faces", filepath.Join(tmp, "none")}, 1, "no such file"},
		{[]string{"eval", "faces", tmp}, 1, "no JPEG or PNG photos"},
		{[]string{"eval", "faces", tmp, "--match-threshold", "2"}, 1, "within -1..1"},
		{[]string{"eval", "detect", tmp}, 1, "no JPEG or PNG images"},
		{[]string{"eval", "detect", tmp, "--expect", filepath.Join(tmp, "none.yaml")}, 1, "--expect"},
		{[]string{"eval", "attributes", tmp}, 2, "--labels FILE is required"},
		{[]string{"eval", "attributes", tmp, "--labels", filepath.Join(tmp, "none.csv")}, 1, "--labels"},
	} {
		code, stdout, stderr := vigil(t, nil, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("vigil %s: exit %d, want %d with %q\n%s%s", strings.Join(c.args, " "), code, c.code, c.want, stdout, stderr)
		}
	}
	writeAt(t, filepath.Join(tmp, "bad.yaml"), "x.jpg: many\n")
	if code, _, stderr := vigil(t, nil, "eval", "detect", tmp, "--expect", filepath.Join(tmp, "bad.yaml")); code != 1 || !strings.Contains(stderr, "line 1") {
		t.Errorf("malformed expectations: exit %d\n%s", code, stderr)
	}
	writeAt(t, filepath.Join(tmp, "bad.csv"), "file,gender\nx.jpg,robot\n")
	if code, _, stderr := vigil(t, nil, "eval", "attributes", tmp, "--labels", filepath.Join(tmp, "bad.csv")); code != 1 || !strings.Contains(stderr, `line 2: gender "robot"`) {
		t.Errorf("malformed labels: exit %d\n%s", code, stderr)
	}
	if farLabel(1e-2) != "1e-2" || farLabel(1e-3) != "1e-3" || farLabel(5e-4) != "5e-4" {
		t.Errorf("farLabel: %s %s %s", farLabel(1e-2), farLabel(1e-3), farLabel(5e-4))
	}
}

// tableHas reports whether a line of table has the white-space separated fields of row.
func tableHas(table, row string) bool {
	want := strings.Join(strings.Fields(row), " ")
	for _, line := range strings.Split(table, "\n") {
		if strings.Join(strings.Fields(line), " ") == want {
			return true
		}
	}
	return false
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeAt(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
