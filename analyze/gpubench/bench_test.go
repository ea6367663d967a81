package gpubench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/onnx"
)

// depsDir returns $VIGIL_DEPS or build/deps of the module, or skips. (Not
// pkg/testenv: that links OpenCV, which this package's tests must not.)
func depsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(models.DepsEnv)
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				dir = filepath.Join(d, "build", "deps")
				break
			}
			if filepath.Dir(d) == d {
				t.Skip("go.mod not found")
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "models")); err != nil {
		t.Skipf("models not found under %s (run make setup): %v", dir, err)
	}
	return dir
}

// TestRunRealModels runs the benchmark on the CPU with the real detector and
// age model on synthetic inputs of the recorded shapes, at batches 1 and 3.
func TestRunRealModels(t *testing.T) {
	deps := depsDir(t)
	man, err := models.Load()
	if err != nil {
		t.Fatal(err)
	}
	lib, err := man.VerifyPath(deps, "onnxruntime")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := onnx.NewRuntime(lib)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	opened := map[string]int{}
	open := func(name string) (Model, error) {
		data, err := man.ReadVerified(deps, name)
		if err != nil {
			return nil, err
		}
		opened[name]++
		return rt.NewSession(name, data, onnx.SessionOptions{MaxBatch: 3})
	}
	names := []string{"fr_age", Detector}
	rec := &Recording{Frames: 2, Faces: 3, Sets: []Set{pixelSet(Detector, 2, 3, 240, 320), pixelSet("fr_age", 2, 3, 64, 64)}}
	var progress bytes.Buffer
	rep, err := Run(context.Background(), rec, names, open, Config{Batches: []int{1, 3}, MinRounds: 2, MaxRounds: 2, MinTime: time.Millisecond,
		Memory: ProcessMemory, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Timings) != 4 || rep.Timings[0].Model != Detector || rep.Timings[2].Model != "fr_age" || opened[Detector] != 1 || opened["fr_age"] != 1 {
		t.Fatalf("timings %+v, want the detector first, then fr_age, two batches each", rep.Timings)
	}
	for _, tm := range rep.Timings {
		if tm.Rounds != 2 || tm.Median <= 0 || tm.First <= 0 {
			t.Errorf("timing %+v", tm)
		}
	}
	if m := rep.Memory[Detector]; m.UsedMiB <= 0 || rep.Memory["baseline"].UsedMiB <= 0 {
		t.Errorf("memory readings %+v", rep.Memory)
	}
	sum := rep.Summaries()
	if len(sum) != 2 || sum[0].DetectFPS <= 0 || sum[0].EmbedFPS != 0 || sum[0].AllHeadsFPS != 0 {
		t.Errorf("summaries %+v", sum)
	}
	var out bytes.Buffer
	if err := rep.Write(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"fr_detect", "fr_age", "samples/s", "detect frames/s", "before the first model opened"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Count(progress.String(), "\n") != 4 {
		t.Errorf("progress %q, want 4 lines", progress.String())
	}
	t.Logf("\n%s", out.String())

	if _, err := Run(context.Background(), &Recording{}, names, open, Config{}); err == nil || !strings.Contains(err.Error(), "no inputs") {
		t.Errorf("Run without inputs: %v", err)
	}
	wrong := &Recording{Sets: []Set{pixelSet(Detector, 1, 3, 2, 2), pixelSet("fr_age", 1, 3, 64, 64)}}
	if _, err := Run(context.Background(), wrong, names, open, Config{}); err == nil || !strings.Contains(err.Error(), "takes") {
		t.Errorf("Run with the wrong shape: %v", err)
	}
	if _, err := Run(context.Background(), rec, names, open, Config{Batches: []int{0}}); err == nil {
		t.Error("Run with batch 0 succeeded")
	}
}

// TestSummaries checks the derived throughputs on known timings.
func TestSummaries(t *testing.T) {
	rep := &Report{FacesPerFrame: 2}
	rep.Timings = append(rep.Timings, Timing{Model: Detector, Batch: 4, Median: 40 * time.Millisecond}) // 10 ms/frame
	for _, m := range FaceModels {
		rep.Timings = append(rep.Timings, Timing{Model: m, Batch: 4, Median: 4 * time.Millisecond}) // 1 ms/face each
	}
	s := rep.Summaries()
	if len(s) != 1 {
		t.Fatalf("summaries %+v", s)
	}
	near := func(a, b float64) bool { return a > b*0.999 && a < b*1.001 }
	// 7 face models at 1 ms: 7 ms/face; a frame: 10 + 2*7 = 24 ms.
	if !near(s[0].DetectFPS, 100) || !near(s[0].EmbedFPS, 1000) || !near(s[0].AllHeadsFPS, 1000.0/7) || !near(s[0].PipelineFPS, 1000.0/24) {
		t.Errorf("summary %+v", s[0])
	}
}

func TestTile(t *testing.T) {
	s := Set{Model: "m", Shape: []int64{2}, Data: []float32{1, 2, 3, 4}}
	if got := tile(s, 3); !sameBits(got, []float32{1, 2, 3, 4, 1, 2}) {
		t.Errorf("tile = %v", got)
	}
}

func TestProcessMemory(t *testing.T) {
	m, err := ProcessMemory(context.Background())
	if err != nil || m.UsedMiB <= 0 || !strings.Contains(m.What, "VmRSS") {
		t.Errorf("ProcessMemory = %+v, %v", m, err)
	}
}

// TestGPUMemory reads GPU memory with nvidia-smi. No GPU exists on the
// development machines, so there it checks only that the absence is an
// error; the reading itself runs on a GPU machine.
func TestGPUMemory(t *testing.T) {
	m, err := GPUMemory(0)(context.Background())
	if !HaveNvidiaSMI(context.Background()) {
		if err == nil {
			t.Errorf("GPUMemory without nvidia-smi = %+v, want an error", m)
		}
		t.Skip("no nvidia-smi GPU here: the reading runs only on a GPU machine")
	}
	if err != nil || m.TotalMiB <= 0 {
		t.Errorf("GPUMemory = %+v, %v", m, err)
	}
}

func TestPythonORTLibrary(t *testing.T) {
	gpu := PythonORT{Version: "1.30.0", Providers: []string{"CUDAExecutionProvider", "CPUExecutionProvider"}, Capi: "/py/onnxruntime/capi",
		Files: []string{"libonnxruntime.so.1", "libonnxruntime.so.1.30.0", "libonnxruntime_providers_cuda.so", "libonnxruntime_providers_shared.so", "onnxruntime_pybind11_state.so"}}
	if lib, err := gpu.Library(); err != nil || lib != "/py/onnxruntime/capi/libonnxruntime.so.1.30.0" {
		t.Errorf("onnxruntime-gpu: %q, %v", lib, err)
	}
	cpu := gpu
	cpu.Providers = []string{"AzureExecutionProvider", "CPUExecutionProvider"}
	old := gpu
	old.Version = "1.20.1"
	noLib := gpu
	noLib.Files = []string{"libonnxruntime_providers_cuda.so", "libonnxruntime_providers_shared.so"}
	noCUDA := gpu
	noCUDA.Files = []string{"libonnxruntime.so.1.30.0", "libonnxruntime_providers_shared.so"}
	for name, p := range map[string]PythonORT{"cpu package": cpu, "too old": old, "no C library": noLib, "no provider": noCUDA} {
		if lib, err := p.Library(); err == nil {
			t.Errorf("%s: %q, want an error", name, lib)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	for v, want := range map[string]bool{"1.24.0": true, "1.29.1": true, "2.0": true, "1.23.2": false, "1": false, "x.y": false, "1.24rc1": true} {
		if versionAtLeast(v, 1, 24) != want {
			t.Errorf("versionAtLeast(%q, 1, 24) = %v", v, !want)
		}
	}
}

// TestDetectMachine finds CUDA libraries through LD_LIBRARY_PATH in
// directories made for the test (this machine has none of its own).
func TestDetectMachine(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for dir, libs := range map[string][]string{a: {"libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13"}, b: {"libcudnn.so.9", "libcublas.so.13"}} {
		for _, l := range libs {
			if err := os.WriteFile(filepath.Join(dir, l), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Setenv("LD_LIBRARY_PATH", a+":"+b)
	m := DetectMachine(context.Background(), "")
	if m.Libraries["libcublas.so.13"] != a || m.Libraries["libcudnn.so.9"] != b || m.Python != nil || m.PythonErr == nil {
		t.Errorf("machine %+v", m)
	}
	if got := strings.Join(m.LibraryPath(), ":"); got != a+":"+b {
		t.Errorf("LibraryPath = %s", got)
	}
	script := m.EnvScript()
	if !strings.Contains(script, "export LD_LIBRARY_PATH='"+a+":"+b+"'") || !strings.Contains(script, "libcurand.so.10") {
		t.Errorf("env script:\n%s", script)
	}
	if strings.Contains(strings.Join(m.Missing, " "), "libcudnn") {
		t.Errorf("missing %v", m.Missing)
	}
	if !HaveNvidiaSMI(context.Background()) && len(m.GPUs) != 0 {
		t.Errorf("GPUs %v without nvidia-smi", m.GPUs)
	}
}
