package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-video/vigil/analyze/classify/dataset/datasettest"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestClassifiersCommands trains the clothing classifier from the shared photos with the CLI,
// then registers, lists, runs and deletes it against a real NATS server with JetStream.
func TestClassifiersCommands(t *testing.T) {
	data := filepath.Join(testenv.TestData(t), "classify_train")
	backbone := filepath.Join(testenv.TestData(t), "models", "mobilenetv2-12-int8.onnx")
	out := t.TempDir()

	code, stdout, stderr := vigil(t, nil, "classifiers", "train", "clothes", data, "--backbone", backbone, "--no-register", "--out", out)
	if code != 0 {
		t.Fatalf("train: exit %d\n%s\n%s", code, stdout, stderr)
	}
	t.Logf("vigil classifiers train:\n%s", stdout)
	for _, want := range []string{"validation accuracy", "5-fold cross-validation accuracy", "pants", "confusion"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if !strings.Contains(stderr, "features         [##############################] 120/120") {
		t.Errorf("no progress bar on stderr:\n%s", stderr)
	}
	for _, f := range []string{"clothes.onnx", "clothes.manifest.json", "clothes.report.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}

	ctx := context.Background()
	srv := &bus.EmbeddedServer{StoreDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	env := map[string]string{"VIGIL_NATS_URL": srv.ClientURL(), "VIGIL_LOG_LEVEL": "warn"}
	code, stdout, stderr = vigil(t, env, "classifiers", "register", filepath.Join(out, "clothes.manifest.json"), filepath.Join(out, "clothes.onnx"))
	if code != 0 || !strings.Contains(stdout, "registered clothes: 4 labels") {
		t.Fatalf("register: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, _ = vigil(t, env, "classifiers", "list")
	if code != 0 || !strings.Contains(stdout, "clothes") || !strings.Contains(stdout, "pants,shoes,shorts,t-shirt") {
		t.Errorf("list: exit %d\n%s", code, stdout)
	}
	shoe := filepath.Join(data, "shoes", "00f6e504-7c27-438e-a5d7-bc65e557bb2b.jpg")
	code, stdout, stderr = vigil(t, env, "classifiers", "classify", shoe, "--model", "clothes")
	if code != 0 {
		t.Fatalf("classify: exit %d\n%s", code, stderr)
	}
	var line struct {
		Result struct {
			Predictions []struct{ Label string } `json:"predictions"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(stdout), &line); err != nil || len(line.Result.Predictions) != 1 || line.Result.Predictions[0].Label != "shoes" {
		t.Errorf("classify: %s (%v)", stdout, err)
	}
	if code, stdout, _ = vigil(t, env, "classifiers", "delete", "clothes"); code != 0 || !strings.Contains(stdout, "deleted clothes") {
		t.Errorf("delete: exit %d %s", code, stdout)
	}
	if code, _, stderr = vigil(t, env, "classifiers", "delete", "clothes"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Errorf("delete twice: exit %d %s", code, stderr)
	}
}

func TestClassifiersCommandErrors(t *testing.T) {
	data := filepath.Join(testenv.TestData(t), "classify_train")
	slip := filepath.Join(t.TempDir(), "slip.zip")
	files := append(datasettest.Classes(t, 5, "a", "b"), datasettest.File{Name: "../../evil.jpg", Data: datasettest.JPEG(t, 8, 8, 1)})
	if err := os.WriteFile(slip, datasettest.ZIP(t, files...), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"classifiers"}, 2, "Usage: vigil classifiers"},
		{[]string{"classifiers", "frobnicate"}, 2, "unknown subcommand"},
		{[]string{"classifiers", "train", "clothes", data}, 2, "--backbone is required"},
		{[]string{"classifiers", "train", "clothes"}, 2, "want NAME DATA"},
		{[]string{"classifiers", "train", "Bad Name", data, "--backbone", "x.onnx"}, 1, "name \"Bad Name\""},
		{[]string{"classifiers", "train", "x", slip, "--backbone", "x.onnx"}, 1, "leaves the archive's folder"},
		{[]string{"classifiers", "train", "x", data, "--backbone", "/nonexistent.onnx", "--no-register"}, 1, "--backbone"},
		{[]string{"classifiers", "register", "only-one-arg"}, 2, "want MANIFEST MODEL"},
	} {
		code, stdout, stderr := vigil(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(stdout+stderr, tc.says) {
			t.Errorf("vigil %s: exit %d, want %d saying %q\n%s%s", strings.Join(tc.args, " "), code, tc.code, tc.says, stdout, stderr)
		}
	}
}
