package cli

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-video/vigil/analyze/classify/store"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestBackboneCommands uploads MobileNetV2 as a backbone with the CLI against a real NATS server
// with JetStream, lists it with its digest, refuses a file that is not an ImageNet classifier,
// and deletes it.
func TestBackboneCommands(t *testing.T) {
	model := filepath.Join(testenv.TestData(t), "models", "mobilenetv2-12-int8.onnx")
	data, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	srv := &bus.EmbeddedServer{StoreDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	env := map[string]string{"VIGIL_NATS_URL": srv.ClientURL(), "VIGIL_LOG_LEVEL": "warn"}
	digest := store.Digest(data)
	code, stdout, stderr := vigil(t, env, "classifiers", "backbone", "add", model, "--name", "mobilenetv2")
	if code != 0 || !strings.Contains(stdout, "backbone mobilenetv2 stored") || !strings.Contains(stdout, digest) {
		t.Fatalf("add: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, _ = vigil(t, env, "classifiers", "backbone", "list")
	if code != 0 || !strings.Contains(stdout, "mobilenetv2") || !strings.Contains(stdout, digest) {
		t.Errorf("list: exit %d\n%s", code, stdout)
	}
	notModel := filepath.Join(t.TempDir(), "notes.onnx")
	if err := os.WriteFile(notModel, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr = vigil(t, env, "classifiers", "backbone", "add", notModel); code != 1 || !strings.Contains(stderr, "not an ONNX model") {
		t.Errorf("add a non-model: exit %d %s", code, stderr)
	}
	if code, stdout, _ = vigil(t, env, "classifiers", "backbone", "delete", "mobilenetv2"); code != 0 || !strings.Contains(stdout, "deleted") {
		t.Errorf("delete: exit %d %s", code, stdout)
	}
	if code, _, stderr = vigil(t, env, "classifiers", "backbone", "delete", "mobilenetv2"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Errorf("delete twice: exit %d %s", code, stderr)
	}
	if code, stdout, _ = vigil(t, nil, "classifiers", "backbone"); code != 2 || !strings.Contains(stdout, "Usage: vigil classifiers backbone") {
		t.Errorf("no subcommand: exit %d %s", code, stdout)
	}
}

func TestBackboneName(t *testing.T) {
	for in, want := range map[string]string{"/m/mobilenetv2-12-int8.onnx": "mobilenetv2-12-int8", "MobileNet V2 (fp16).onnx": "mobilenet-v2-fp16",
		"resnet_50.ONNX": "resnet_50", "__x.onnx": "x"} {
		if got := backboneName(in); got != want {
			t.Errorf("backboneName(%q) = %q, want %q", in, got, want)
		}
	}
}
