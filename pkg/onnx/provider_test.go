package onnx

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/vigil-video/vigil/models"
	tm "github.com/vigil-video/vigil/pkg/onnx/internal/testmodel"
)

func TestParseDevice(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Device
		str  string
	}{
		{"", Device{}, "cpu"},
		{"cpu", Device{}, "cpu"},
		{" CPU ", Device{}, "cpu"},
		{"cuda", Device{Kind: DeviceCUDA}, "cuda:0"},
		{"cuda:0", Device{Kind: DeviceCUDA}, "cuda:0"},
		{"cuda:3", Device{Kind: DeviceCUDA, ID: 3}, "cuda:3"},
		{"auto", Device{Kind: DeviceAuto}, "auto:0"},
		{"auto:1", Device{Kind: DeviceAuto, ID: 1}, "auto:1"},
		{"cuda:0,mem-limit=8GiB", Device{Kind: DeviceCUDA, CUDA: CUDAOptions{MemLimit: 8 << 30}}, "cuda:0,mem-limit=8GiB"},
		{"cuda,mem-limit=1536MiB", Device{Kind: DeviceCUDA, CUDA: CUDAOptions{MemLimit: 1536 << 20}}, "cuda:0,mem-limit=1536MiB"},
		{"cuda,mem-limit=1000", Device{Kind: DeviceCUDA, CUDA: CUDAOptions{MemLimit: 1000}}, "cuda:0,mem-limit=1000"},
		{"auto:2, conv-search=HEURISTIC , mem-limit=4kib", Device{Kind: DeviceAuto, ID: 2, CUDA: CUDAOptions{MemLimit: 4 << 10, ConvAlgoSearch: ConvSearchHeuristic}},
			"auto:2,mem-limit=4KiB,conv-search=heuristic"},
		{"cuda,conv-search=default", Device{Kind: DeviceCUDA, CUDA: CUDAOptions{ConvAlgoSearch: ConvSearchDefault}}, "cuda:0,conv-search=default"},
	} {
		got, err := ParseDevice(tc.in)
		if err != nil {
			t.Errorf("ParseDevice(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want || got.String() != tc.str {
			t.Errorf("ParseDevice(%q) = %+v (%s), want %+v (%s)", tc.in, got, got, tc.want, tc.str)
		}
		if back, err := ParseDevice(got.String()); err != nil || back != got {
			t.Errorf("ParseDevice(%q) = %+v, %v: does not round-trip", got.String(), back, err)
		}
	}
	for _, in := range []string{"gpu", "cpu:0", "cpu,mem-limit=1GiB", "cuda:", "cuda:-1", "cuda:x", "cuda:99999999",
		"cuda,", "cuda,mem-limit", "cuda,mem-limit=", "cuda,mem-limit=0", "cuda,mem-limit=-5", "cuda,mem-limit=2TiB",
		"cuda,mem-limit=5000GiB", "cuda,conv-search=fast", "cuda,speed=11", "cuda,mem-limit=1,mem-limit=2", "auto:1:2"} {
		if d, err := ParseDevice(in); err == nil {
			t.Errorf("ParseDevice(%q) = %+v, want an error", in, d)
		} else if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "device ") {
			t.Errorf("ParseDevice(%q) error %q: want one line naming the device", in, err)
		}
	}
}

func FuzzParseDevice(f *testing.F) {
	for _, s := range []string{"", "cpu", "cuda", "cuda:1", "auto:0,mem-limit=8GiB,conv-search=heuristic", "cuda,mem-limit=123",
		"cuda:0,conv-search=default", "auto,,", "cuda:1,mem-limit=1TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDevice(s)
		if err != nil {
			return
		}
		if err := d.validate(); err != nil {
			t.Fatalf("ParseDevice(%q) = %+v, which validate refuses: %v", s, d, err)
		}
		back, err := ParseDevice(d.String())
		if err != nil || back != d {
			t.Fatalf("ParseDevice(%q) = %+v; its String %q parses to %+v, %v", s, d, d.String(), back, err)
		}
	})
}

// logBuffer returns a logger writing text lines into the returned buffer.
func logBuffer() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

// TestCUDAFallback asks the test library for CUDA. Nothing here can give
// CUDA (no GPU, and build/deps/lib holds the CPU package's onnxruntime,
// whose provider library is absent), so the real failure paths run: auto
// falls back to the CPU with a warning, strict fails with
// ErrCUDAUnavailable, and a broken model still reports the model's error.
func TestCUDAFallback(t *testing.T) {
	checkFallback(t, newRuntime(t))
}

// TestCUDAFallbackGPUBuild does the same with the pinned CUDA build of
// onnxruntime ("make setup-gpu", build/deps/gpu/lib) when it is present:
// there the provider library exists and loads its CUDA libraries, which
// this machine lacks, so the CUDA provider's own loading fails for real.
// On a GPU machine with the CUDA libraries on LD_LIBRARY_PATH the CUDA
// provider loads and this test is skipped: TestCUDASession covers it.
func TestCUDAFallbackGPUBuild(t *testing.T) {
	if gpuVisible() {
		t.Skip("a GPU is visible: the CUDA provider may load here; TestCUDASession covers this machine")
	}
	rt := gpuRuntime(t)
	if !strings.HasPrefix(rt.Version(), "1.29") {
		t.Errorf("pinned GPU onnxruntime reports version %q, want 1.29.x", rt.Version())
	}
	checkFallback(t, rt)
}

// checkFallback runs the fallback and strict-failure checks on r.
func checkFallback(t *testing.T, r *Runtime) {
	t.Helper()
	model := tm.Tiny(tm.Raw)
	cpu := newSession(t, r, "tiny-cpu", model, SessionOptions{MaxBatch: 4})
	if p := cpu.Placement(); p.Provider != ProviderCPU || p.OnCUDA() || p.Fallback != nil || p.String() != "cpu" {
		t.Errorf("cpu session placement = %+v (%s)", p, p)
	}

	log, buf := logBuffer()
	auto := newSession(t, r, "tiny-auto", model, SessionOptions{MaxBatch: 4, Log: log,
		Device: Device{Kind: DeviceAuto, ID: 0, CUDA: CUDAOptions{MemLimit: 1 << 30, ConvAlgoSearch: ConvSearchHeuristic}}})
	p := auto.Placement()
	if p.Provider != ProviderCPU || p.OnCUDA() || !errors.Is(p.Fallback, ErrCUDAUnavailable) {
		t.Fatalf("auto session placement = %+v, want CPU with a fallback wrapping ErrCUDAUnavailable", p)
	}
	if p.Requested.Kind != DeviceAuto || !strings.HasPrefix(p.String(), "cpu (auto:0,mem-limit=1GiB,conv-search=heuristic requested: ") {
		t.Errorf("auto placement String = %q", p)
	}
	logged := buf.String()
	if strings.Count(logged, "\n") != 1 || !strings.Contains(logged, "level=WARN") || !strings.Contains(logged, "model=tiny-auto") ||
		!strings.Contains(logged, "provider="+ProviderCPU) || !strings.Contains(logged, "CUDA unavailable") {
		t.Errorf("auto session logged %q, want one warning naming the model and the CPU provider", logged)
	}
	t.Logf("fallback: %s", logged)

	// The fallen-back session computes what the CPU session does.
	input := randInput(5, 6, 6)
	want, err := cpu.Run(context.Background(), 6, input)
	if err != nil {
		t.Fatal(err)
	}
	got, err := auto.Run(context.Background(), 6, input)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if d := maxAbsDiff(t, got[i], want[i]); d != 0 {
			t.Errorf("output %d differs from the CPU session's by %g", i, d)
		}
	}

	before := len(r.sessions)
	log, buf = logBuffer()
	s, err := r.NewSession("tiny-strict", model, SessionOptions{Device: Device{Kind: DeviceCUDA, ID: 1}, Log: log})
	if err == nil {
		s.Close()
		t.Fatal("strict CUDA session succeeded without a GPU")
	}
	if !errors.Is(err, ErrCUDAUnavailable) || !strings.Contains(err.Error(), "session tiny-strict") || !strings.Contains(err.Error(), "cuda:1") {
		t.Errorf("strict CUDA error = %v, want ErrCUDAUnavailable naming the session and device", err)
	}
	if len(r.sessions) != before || buf.Len() != 0 {
		t.Errorf("failed strict session left %d sessions (was %d) and logged %q", len(r.sessions), before, buf.String())
	}
	t.Logf("strict: %v", err)

	// A model onnxruntime refuses on any provider reports that, not CUDA.
	broken := tm.Model(8, 13, tm.Graph(tm.Node("Identity", []string{"x"}, []string{"y"}),
		tm.Input(tm.ValueInfo("x", tm.Float, 1, 2)), tm.Output(tm.ValueInfo("z", tm.Float, 1, 2))))
	for _, kind := range []DeviceKind{DeviceCUDA, DeviceAuto} {
		s, err := r.NewSession("broken", broken, SessionOptions{Device: Device{Kind: kind}})
		if err == nil {
			s.Close()
			t.Fatalf("broken model loaded on %v", kind)
		}
		if errors.Is(err, ErrCUDAUnavailable) || !strings.Contains(err.Error(), "onnxruntime") {
			t.Errorf("broken model on kind %d: error %v, want onnxruntime's model error", kind, err)
		}
	}
}

func TestDeviceValidation(t *testing.T) {
	r := newRuntime(t)
	for _, d := range []Device{
		{Kind: DeviceCPU, ID: 1},
		{Kind: DeviceCPU, CUDA: CUDAOptions{MemLimit: 1}},
		{Kind: 7},
		{Kind: DeviceCUDA, ID: -1},
		{Kind: DeviceAuto, CUDA: CUDAOptions{MemLimit: -1}},
		{Kind: DeviceAuto, CUDA: CUDAOptions{ConvAlgoSearch: "fastest"}},
	} {
		s, err := r.NewSession("tiny", tm.Tiny(tm.Raw), SessionOptions{Device: d})
		if err == nil {
			s.Close()
			t.Errorf("NewSession with device %+v succeeded", d)
			continue
		}
		if !strings.Contains(err.Error(), "device: ") {
			t.Errorf("device %+v: error %v does not name the device", d, err)
		}
	}
}

// TestCUDASession is the successful CUDA path: every face model on CUDA
// device 0 gives the CPU's outputs. It needs an NVIDIA GPU, the pinned GPU
// onnxruntime set (make setup-gpu) and the CUDA 13 and cuDNN 9 libraries on
// LD_LIBRARY_PATH (source build/deps/gpu/env.sh), so it cannot run on the
// development machines, which have no GPU: there it is skipped, and only a
// GPU machine (docs/gpu.md says how) exercises it.
func TestCUDASession(t *testing.T) {
	if !gpuVisible() {
		t.Skip("no NVIDIA GPU here (nvidia-smi lists none): the successful CUDA path runs only on a GPU machine; see docs/gpu.md")
	}
	r := gpuRuntime(t)
	d, _ := tm.DepsDir()
	for _, name := range tm.ModelNames {
		t.Run(name, func(t *testing.T) {
			// Read directly: a GPU machine may carry the CUDA build alone,
			// without the CPU library readModel looks for.
			model, err := os.ReadFile(filepath.Join(d, "models", "fr_"+name+".onnx"))
			if err != nil {
				t.Skipf("model %s not found: %v", name, err)
			}
			log, buf := logBuffer()
			gpu := newSession(t, r, name, model, SessionOptions{MaxBatch: 32, Device: Device{Kind: DeviceCUDA}, Log: log})
			if p := gpu.Placement(); !p.OnCUDA() || p.DeviceID != 0 || p.String() != "cuda:0" {
				t.Fatalf("placement %+v, want cuda:0", p)
			}
			if !strings.Contains(buf.String(), "provider="+ProviderCUDA) {
				t.Errorf("log %q does not name the CUDA provider", buf.String())
			}
			cpu := newSession(t, r, name+"-cpu", model, SessionOptions{MaxBatch: 32})
			const n = 32
			input := randInput(9, n, numel(cpu.InputShape()))
			want, err := cpu.Run(context.Background(), n, input)
			if err != nil {
				t.Fatal(err)
			}
			got, err := gpu.Run(context.Background(), n, input)
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for i := range got {
				worst = max(worst, maxAbsDiff(t, got[i], want[i]))
			}
			// cuDNN may use TF32 tensor cores for float32 convolutions.
			if worst > 2e-2 {
				t.Errorf("CUDA outputs differ from the CPU's by %g", worst)
			}
			t.Logf("batch %d on cuda:0, max|diff| vs CPU %.3g", n, worst)
		})
	}
}

// gpuVisible reports whether nvidia-smi runs and lists a GPU.
func gpuVisible() bool {
	out, err := exec.Command("nvidia-smi", "-L").Output()
	return err == nil && bytes.Contains(out, []byte("GPU "))
}

// gpuRuntime opens a Runtime on the CUDA build of onnxruntime found by
// models.FindGPURuntime in the deps directory, or skips the test.
func gpuRuntime(t *testing.T) *Runtime {
	t.Helper()
	d, ok := tm.DepsDir()
	if !ok {
		t.Skip("no deps directory: run `make setup` and `make setup-gpu`")
	}
	gr, err := models.FindGPURuntime(d)
	if err != nil {
		if _, statErr := os.Stat(filepath.Join(d, "gpu")); statErr != nil {
			t.Skipf("GPU onnxruntime set not installed (run `make setup-gpu`): %v", err)
		}
		t.Fatal(err)
	}
	r, err := NewRuntime(gr.Library)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("GPU onnxruntime %s from %s (%s)", r.Version(), gr.Library, gr.Source)
	return r
}

func TestORTMessage(t *testing.T) {
	for in, want := range map[string]string{
		"/onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:1952 onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library x.so with error: y": "Failed to load library x.so with error: y",
		"CUDA execution provider is not enabled in this build.": "CUDA execution provider is not enabled in this build.",
		"a\nb  c":                "a b c",
		"[ONNXRuntimeError] : 1": "[ONNXRuntimeError] : 1",
	} {
		if got := ortMessage(errors.New(in)); got != want {
			t.Errorf("ortMessage(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSessionOptionsPointer checks the one assumption the legacy CUDA call
// makes about onnxruntime_go: that its SessionOptions holds the C pointer
// as its only field.
func TestSessionOptionsPointer(t *testing.T) {
	newRuntime(t)
	so, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	p, err := sessionOptionsPointer(so)
	if err != nil || p == nil {
		t.Fatalf("sessionOptionsPointer = %v, %v", p, err)
	}
	if err := so.Destroy(); err != nil {
		t.Fatal(err)
	}
	if env.legacy == nil || env.legacy.api == nil {
		t.Error("the runtime has no second handle on the library's OrtApi")
	}
}
