package cli

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestEvalAttributes runs vigil eval attributes with the real models on the shared labelled
// faces and checks the figures the pre-processing was tuned to (README, "Accuracy"); then that
// a labelled photo that is not there fails the run.
func TestEvalAttributes(t *testing.T) {
	dir := filepath.Join(testenv.TestData(t), "attributes")
	labels := filepath.Join(dir, "labels.csv")
	code, stdout, stderr := vigil(t, nil, "eval", "attributes", dir, "--labels", labels, "--json", "--log-level", "warn")
	if code != 0 {
		t.Fatalf("eval attributes: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var r attributesEval
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("eval attributes --json: %v\n%s", err, stdout)
	}
	var table bytes.Buffer
	if err := printAttributesTable(&table, r.AttributesReport); err != nil {
		t.Fatal(err)
	}
	t.Logf("vigil eval attributes %s --labels %s:\n%s", dir, labels, table.String())
	if len(r.Rows) != 30 || len(r.NoFace)+len(r.Missing)+len(r.Failed) != 0 || r.Gender.Total != 30 || r.Smile.Total != 23 {
		t.Fatalf("%d rows, %d gender and %d smile labels scored; no face %v, missing %v, failed %v",
			len(r.Rows), r.Gender.Total, r.Smile.Total, r.NoFace, r.Missing, r.Failed)
	}
	for what, s := range map[string]struct{ got, floor float64 }{
		"gender":           {r.Gender.Accuracy, minGenderAccuracy},
		"smile vs neutral": {r.Smile.Accuracy, minSmileAccuracy},
		"happy on smiles":  {r.Happy.Accuracy, minHappyRecall},
	} {
		if s.got < s.floor {
			t.Errorf("%s accuracy %.3f, below the %.3f measured (see README, Accuracy)", what, s.got, s.floor)
		}
	}
	for _, row := range r.Rows {
		// The score is the probability of the label shown: male above the 0.6 threshold, so a
		// female label's score (one minus the male score) is at least 0.4.
		if lo := map[string]float64{"male": 0.6, "female": 0.4}[row.Gender]; row.Gender != "" && (row.Score < lo || row.Score > 1) {
			t.Errorf("%s: gender %s score %.3f: want the label's probability, %.1f..1", row.Image, row.Gender, row.Score, lo)
		}
	}

	tmp := t.TempDir()
	copyFile(t, filepath.Join(dir, "faceapi_happy.jpg"), filepath.Join(tmp, "happy.jpg"))
	csv := writeFile(t, "labels.csv", "file,gender,expression\nhappy.jpg,female,smile\ngone.jpg,male,neutral\n")
	code, stdout, stderr = vigil(t, nil, "eval", "attributes", tmp, "--labels", csv, "--log-level", "warn")
	if code != 1 || !strings.Contains(stderr, "1 of 2 labelled photos are missing") || !tableHas(stdout, "gone.jpg - male - neutral - no such image") {
		t.Fatalf("eval attributes with a missing photo: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// The floors TestEvalAttributes holds the shared labelled faces to: what the shipped
// pre-processing measured, less nothing (the models are deterministic).
const (
	minGenderAccuracy = 0.86
	minSmileAccuracy  = 0.95
	minHappyRecall    = 0.9
)
