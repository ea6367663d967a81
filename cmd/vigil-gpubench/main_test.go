package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-video/vigil/analyze/gpubench"
	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/onnx"
)

// noPacker fails the test if setup tries to download anything.
type noPacker struct{ t *testing.T }

// Pack fails the test.
func (p noPacker) Pack(ctx context.Context, name, version, dir string) (string, error) {
	p.t.Errorf("unexpected npm pack %s@%s", name, version)
	return "", errors.New("no downloads in tests")
}

// depsDir returns $VIGIL_DEPS or the module's build/deps, or skips.
func depsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(models.DepsEnv)
	if dir == "" {
		dir = filepath.Join("..", "..", "build", "deps")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(abs, "models")); err != nil {
		t.Skipf("models not found under %s (run make setup): %v", abs, err)
	}
	return abs
}

// TestNoOpenCV keeps the benchmark binary free of OpenCV (and so of gocv):
// it must run on a machine with only the NVIDIA driver and CUDA libraries.
func TestNoOpenCV(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "gocv.io/") || strings.HasSuffix(p, "/pkg/vision") || strings.HasSuffix(p, "/ingest") {
			t.Errorf("vigil-gpubench depends on %s", p)
		}
	}
}

// writeInputs writes a small recording with the detector's and the age
// model's input shapes.
func writeInputs(t *testing.T) string {
	t.Helper()
	rec := &gpubench.Recording{Source: "test", Frames: 2, Faces: 2, Sets: []gpubench.Set{
		{Model: "fr_detect", Shape: []int64{3, 240, 320}, Data: make([]float32, 2*3*240*320)},
		{Model: "fr_age", Shape: []int64{3, 64, 64}, Data: make([]float32, 2*3*64*64)},
	}}
	path := filepath.Join(t.TempDir(), "in.tensors.gz")
	var buf bytes.Buffer
	if err := rec.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr, noPacker{t})
	return stdout.String(), stderr.String(), err
}

func TestBenchCPU(t *testing.T) {
	deps := depsDir(t)
	in := writeInputs(t)
	out, progress, err := runCmd(t, "run", "-inputs", in, "-deps", deps, "-device", "cpu", "-models", "fr_detect,fr_age",
		"-batches", "1,2", "-rounds", "1", "-min-time", "1ms")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"onnxruntime 1.24", "fr_detect      runs on cpu", "detect frames/s", "resident memory"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(progress, "batch") != 4 {
		t.Errorf("progress %q", progress)
	}
}

// TestBenchNoCUDA asks for CUDA where none is: strict fails, auto measures
// on the CPU and says so.
func TestBenchNoCUDA(t *testing.T) {
	deps := depsDir(t)
	in := writeInputs(t)
	args := []string{"-inputs", in, "-deps", deps, "-models", "fr_age", "-batches", "1", "-rounds", "1", "-min-time", "1ms"}
	if _, _, err := runCmd(t, append([]string{"run", "-device", "cuda:0"}, args...)...); !errors.Is(err, onnx.ErrCUDAUnavailable) {
		t.Errorf("-device cuda:0: %v, want ErrCUDAUnavailable", err)
	}
	out, warn, err := runCmd(t, append([]string{"-device", "auto"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "fr_age         runs on cpu") || !strings.Contains(out, "requested") {
		t.Errorf("auto output:\n%s", out)
	}
	if _, err := models.FindGPURuntime(deps); err == nil && !strings.Contains(warn, "CUDA unavailable") {
		t.Errorf("auto on the CUDA build logged %q, want the fallback warning", warn)
	}
}

func TestBenchErrors(t *testing.T) {
	deps := depsDir(t)
	for _, args := range [][]string{
		{"run", "-inputs", filepath.Join(t.TempDir(), "none"), "-deps", deps},
		{"run", "-batches", "0", "-deps", deps},
		{"run", "-device", "tpu", "-deps", deps},
		{"run", "-inputs", writeInputs(t), "-deps", deps, "-device", "cpu", "-models", "fr_pose", "-batches", "1"},
		{"frobnicate"},
		{"run", "extra"},
	} {
		if _, _, err := runCmd(t, args...); err == nil {
			t.Errorf("%v succeeded", args)
		} else {
			t.Logf("%v: %v", args, err)
		}
	}
}

// TestSetupPinned verifies an installed pinned set without fetching and
// writes env.sh; with no set and -fetch=false it says what to do.
func TestSetupPinned(t *testing.T) {
	deps := depsDir(t)
	empty := t.TempDir()
	if _, _, err := runCmd(t, "setup", "-deps", empty, "-python", "", "-fetch=false"); err == nil || !strings.Contains(err.Error(), "-fetch=false") {
		t.Errorf("setup without the set: %v", err)
	}
	if _, err := os.Stat(filepath.Join(deps, "gpu", "lib")); err != nil {
		t.Skipf("GPU set not installed (make setup-gpu): %v", err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "gpu"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(deps, "gpu", "lib"), filepath.Join(dir, "gpu", "lib")); err != nil {
		t.Fatal(err)
	}
	libs := t.TempDir()
	for _, l := range gpubench.CUDALibraries {
		if err := os.WriteFile(filepath.Join(libs, l), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("LD_LIBRARY_PATH", libs)
	out, _, err := runCmd(t, "setup", "-deps", dir, "-python", "", "-fetch=false")
	if err != nil {
		t.Fatal(err)
	}
	env, err := os.ReadFile(filepath.Join(dir, "gpu", "env.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "(pinned)") || !strings.Contains(string(env), "export LD_LIBRARY_PATH='"+libs+"'") {
		t.Errorf("setup output:\n%s\nenv.sh:\n%s", out, env)
	}
}

// TestSetupPrefersMachine gives setup a Python whose onnxruntime has the
// CUDA provider. onnxruntime-gpu cannot be installed on the development
// machines (no PyPI, no GPU), so the interpreter is a stand-in script that
// prints what onnxruntime-gpu's probe prints: a mock of that package, and
// only of it. Setup must then fetch nothing and record its library.
func TestSetupPrefersMachine(t *testing.T) {
	capi := t.TempDir()
	for _, f := range []string{"libonnxruntime.so.1.30.0", "libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"} {
		if err := os.WriteFile(filepath.Join(capi, f), []byte("stand-in"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	python := filepath.Join(t.TempDir(), "python")
	script := fmt.Sprintf("#!/bin/sh\ncase \"$2\" in *onnxruntime*) echo '{\"version\":\"1.30.0\",\"providers\":[\"CUDAExecutionProvider\",\"CPUExecutionProvider\"],\"capi\":\"%s\",\"files\":[\"libonnxruntime.so.1.30.0\",\"libonnxruntime_providers_cuda.so\",\"libonnxruntime_providers_shared.so\"]}';; esac\n", capi)
	if err := os.WriteFile(python, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out, _, err := runCmd(t, "setup", "-deps", dir, "-python", python)
	if err != nil {
		t.Fatal(err)
	}
	gr, err := models.FindGPURuntime(dir)
	if err != nil || gr.Source != models.GPUSourceMachine || gr.Library != filepath.Join(capi, "libonnxruntime.so.1.30.0") {
		t.Errorf("FindGPURuntime after setup = %+v, %v", gr, err)
	}
	if !strings.Contains(out, "using Python's onnxruntime 1.30.0") {
		t.Errorf("setup output:\n%s", out)
	}
}
