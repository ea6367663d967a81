package cli

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// parsedAnalyzeFlags registers the analyze flags and parses args.
func parsedAnalyzeFlags(t *testing.T, deps string, args ...string) *analyzeFlags {
	t.Helper()
	var f analyzeFlags
	fs := flag.NewFlagSet("analyze", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.register(fs)
	if err := fs.Parse(append([]string{"--deps", deps}, args...)); err != nil {
		t.Fatal(err)
	}
	return &f
}

// cpuOnlyDeps returns a deps directory with the CPU library and the models
// of deps but no GPU set, as on a machine where "make setup-gpu" never ran.
func cpuOnlyDeps(t *testing.T, deps string) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"lib", "models"} {
		abs, err := filepath.Abs(filepath.Join(deps, sub))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(abs, filepath.Join(dir, sub)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestDeviceFlag checks how --device picks the library, the device and the
// batching defaults. No GPU exists here, so "cuda" and "auto" meet a
// machine without CUDA for real.
func TestDeviceFlag(t *testing.T) {
	deps := testenv.DepsDir(t)
	man, err := models.Load()
	if err != nil {
		t.Fatal(err)
	}
	cpuLib, err := man.VerifyPath(deps, "onnxruntime")
	if err != nil {
		t.Fatal(err)
	}
	noGPU := cpuOnlyDeps(t, deps)

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	f := parsedAnalyzeFlags(t, noGPU)
	lib, dev, err := f.runtime(man, log)
	if err != nil || dev != (onnx.Device{}) || filepath.Base(lib) != filepath.Base(cpuLib) || f.maxBatch != 4 || f.maxWait != 10*time.Millisecond {
		t.Errorf("default device: %s, %+v, %v, batch %d/%v; want the CPU library, cpu, 4/10ms", lib, dev, err, f.maxBatch, f.maxWait)
	}

	f = parsedAnalyzeFlags(t, noGPU, "--device", "cuda:0")
	if _, _, err := f.runtime(man, log); !errors.Is(err, onnx.ErrCUDAUnavailable) || !strings.Contains(err.Error(), "make setup-gpu") {
		t.Errorf("--device cuda:0 without the GPU set: %v, want ErrCUDAUnavailable saying to run make setup-gpu", err)
	}

	logs.Reset()
	f = parsedAnalyzeFlags(t, noGPU, "--device", "auto")
	lib, dev, err = f.runtime(man, log)
	if err != nil || dev != (onnx.Device{}) || filepath.Base(lib) != filepath.Base(cpuLib) || f.maxBatch != 4 {
		t.Errorf("--device auto without the GPU set: %s, %+v, %v, batch %d; want the CPU library and device", lib, dev, err, f.maxBatch)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "no CUDA onnxruntime installed") {
		t.Errorf("--device auto without the GPU set logged %q, want a warning", logs.String())
	}

	f = parsedAnalyzeFlags(t, noGPU, "--device", "tpu:0")
	if _, _, err := f.runtime(man, log); err == nil || !strings.HasPrefix(err.Error(), "--device: ") {
		t.Errorf("--device tpu:0: %v, want a --device error", err)
	}

	if _, err := models.FindGPURuntime(deps); err != nil {
		t.Skipf("GPU set not installed (make setup-gpu): %v", err)
	}
	f = parsedAnalyzeFlags(t, deps, "--device", "auto:0,conv-search=heuristic")
	lib, dev, err = f.runtime(man, log)
	if err != nil || dev.Kind != onnx.DeviceAuto || dev.CUDA.ConvAlgoSearch != onnx.ConvSearchHeuristic ||
		!strings.HasSuffix(lib, filepath.Join("gpu", "lib", "libonnxruntime.so")) || f.maxBatch != gpuMaxBatch || f.maxWait != gpuMaxWait {
		t.Errorf("--device auto with the GPU set: %s, %+v, %v, batch %d/%v; want the GPU library and GPU batching", lib, dev, err, f.maxBatch, f.maxWait)
	}
	f = parsedAnalyzeFlags(t, deps, "--device", "cuda", "--max-batch", "16")
	if _, _, err := f.runtime(man, log); err != nil || f.maxBatch != 16 || f.maxWait != gpuMaxWait {
		t.Errorf("--device cuda --max-batch 16: %v, batch %d/%v; want 16 kept and the GPU wait", err, f.maxBatch, f.maxWait)
	}
}

// TestLoadAnalyzerAutoFallback loads the analyzer with --device auto on the
// CUDA build of onnxruntime. No GPU exists here, so every model falls
// back to the CPU for real: the models still load, each logs its
// placement, and the CPU batching defaults come back. The successful CUDA
// path needs a GPU (docs/gpu.md).
func TestLoadAnalyzerAutoFallback(t *testing.T) {
	deps := testenv.DepsDir(t)
	if _, err := models.FindGPURuntime(deps); err != nil {
		t.Skipf("GPU set not installed (make setup-gpu): %v", err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	f := parsedAnalyzeFlags(t, deps, "--device", "auto", "--heads", "embedding", "--on-demand-heads", "none")
	a, err := f.loadAnalyzer(log)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	m, err := a.models.Get("fr_feature")
	if err != nil {
		t.Fatal(err)
	}
	p := m.(*onnx.Session).Placement()
	if p.OnCUDA() || !errors.Is(p.Fallback, onnx.ErrCUDAUnavailable) || p.Requested.Kind != onnx.DeviceAuto {
		t.Errorf("fr_feature placement %+v, want a CPU fallback from auto", p)
	}
	if f.maxBatch != 4 || f.maxWait != 10*time.Millisecond {
		t.Errorf("batching %d/%v after falling back, want the CPU defaults 4/10ms", f.maxBatch, f.maxWait)
	}
	out := logs.String()
	for _, want := range []string{"CUDA onnxruntime", "CUDA unavailable: model runs on the CPU", "model=fr_detect", "model=fr_feature",
		"analyzer device", "detector=\"cpu (auto:0 requested:", "max-batch=4"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
