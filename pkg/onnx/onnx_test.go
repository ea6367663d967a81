package onnx

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/vigil-video/vigil/pkg/onnx/graph"
	tm "github.com/vigil-video/vigil/pkg/onnx/internal/testmodel"
)

// tolerance is the largest difference allowed between a batched run and
// per-sample runs of the original model.
const tolerance = 1e-5

// deps returns the directory with lib/ and models/, or skips the test.
func deps(t testing.TB) string {
	t.Helper()
	d, ok := tm.DepsDir()
	if !ok {
		t.Skip("onnxruntime and face models not found: set VIGIL_DEPS or run `make setup` to populate build/deps")
	}
	if _, err := os.Stat(libPath(d)); err != nil {
		t.Skipf("onnxruntime library not found (run `make setup`): %v", err)
	}
	return d
}

func libPath(deps string) string { return filepath.Join(deps, "lib", "libonnxruntime.so.1") }

// newRuntime opens a Runtime on the test library, closed at cleanup.
func newRuntime(t testing.TB) *Runtime {
	t.Helper()
	r, err := NewRuntime(libPath(deps(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

func readModel(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deps(t), "models", "fr_"+name+".onnx"))
	if err != nil {
		t.Skipf("model %s not found (run `make setup`): %v", name, err)
	}
	return b
}

func newSession(t testing.TB, r *Runtime, name string, model []byte, opts SessionOptions) *Session {
	t.Helper()
	s, err := r.NewSession(name, model, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// randInput returns n deterministic pseudo-random samples of size floats in
// [-1, 1).
func randInput(seed uint64, n, size int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 42))
	in := make([]float32, n*size)
	for i := range in {
		in[i] = rng.Float32()*2 - 1
	}
	return in
}

func maxAbsDiff(t *testing.T, got, want []float32) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("len %d, want %d", len(got), len(want))
	}
	d := 0.0
	for i := range got {
		if math.IsNaN(float64(got[i])) != math.IsNaN(float64(want[i])) {
			return math.Inf(1)
		}
		d = max(d, math.Abs(float64(got[i])-float64(want[i])))
	}
	return d
}

// referenceRun runs each sample alone through the original, unmodified
// model with onnxruntime directly, and returns the outputs concatenated in
// the layout Session.Run uses.
func referenceRun(t *testing.T, s *Session, model []byte, n int, input []float32) [][]float32 {
	t.Helper()
	so, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer so.Destroy()
	if err := so.SetIntraOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	ref, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{s.InputName()}, s.Outputs(), so)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Destroy()
	outs := make([][]float32, len(s.Outputs()))
	size := len(input) / n
	for i := range n {
		in, err := ort.NewTensor(batchShape(1, s.InputShape()), input[i*size:(i+1)*size])
		if err != nil {
			t.Fatal(err)
		}
		vals := make([]ort.Value, len(outs))
		if err := ref.Run([]ort.Value{in}, vals); err != nil {
			t.Fatal(err)
		}
		in.Destroy()
		for j, v := range vals {
			outs[j] = append(outs[j], v.(*ort.Tensor[float32]).GetData()...)
			v.Destroy()
		}
	}
	return outs
}

// TestModelsBatchEquivalence checks, for each face model, that batched runs
// (batch 8, batch 3, and batch 8 split into chunks of 3) equal running each
// sample alone through the original model.
func TestModelsBatchEquivalence(t *testing.T) {
	r := newRuntime(t)
	for _, name := range tm.ModelNames {
		t.Run(name, func(t *testing.T) {
			model := readModel(t, name)
			s16 := newSession(t, r, name, model, SessionOptions{})
			s3 := newSession(t, r, name, model, SessionOptions{MaxBatch: 3})
			const n = 8
			size := numel(s16.InputShape())
			input := randInput(uint64(len(name)), n, size)
			want := referenceRun(t, s16, model, n, input)

			var lines []string
			for _, tc := range []struct {
				label string
				s     *Session
				n     int
			}{{"batch8", s16, n}, {"batch3", s16, 3}, {"batch8/chunks3", s3, n}} {
				got, err := tc.s.Run(context.Background(), tc.n, input[:tc.n*size])
				if err != nil {
					t.Fatalf("%s: %v", tc.label, err)
				}
				worst := 0.0
				for i := range got {
					per := numel(s16.OutputShape(i))
					if len(got[i]) != tc.n*per {
						t.Fatalf("%s: output %d has %d floats, want %d", tc.label, i, len(got[i]), tc.n*per)
					}
					d := maxAbsDiff(t, got[i], want[i][:tc.n*per])
					if d > tolerance {
						t.Errorf("%s: output %q differs from batch-1 runs by %g > %g", tc.label, s16.Outputs()[i], d, tolerance)
					}
					worst = max(worst, d)
				}
				lines = append(lines, fmt.Sprintf("%s max|diff|=%.3g", tc.label, worst))
			}
			t.Logf("input %q %v, outputs %v: %s", s16.InputName(), s16.InputShape(), describeOutputs(s16), strings.Join(lines, ", "))
		})
	}
}

func describeOutputs(s *Session) string {
	var parts []string
	for i, o := range s.Outputs() {
		parts = append(parts, fmt.Sprintf("%q%v", o, s.OutputShape(i)))
	}
	return strings.Join(parts, " ")
}

// TestTinyModel runs a hand-built model whose Reshape hard-codes the batch
// and checks values and output order.
func TestTinyModel(t *testing.T) {
	r := newRuntime(t)
	for _, enc := range []tm.Encoding{tm.Raw, tm.Packed, tm.Unpacked} {
		s := newSession(t, r, "tiny", tm.Tiny(enc), SessionOptions{MaxBatch: 2})
		if got := fmt.Sprint(s.InputShape(), s.Outputs(), s.OutputShape(0), s.OutputShape(1)); got != "[2 3] [flat neg] [6] [2 3]" {
			t.Fatalf("shapes = %s", got)
		}
		input := randInput(1, 5, 6)
		outs, err := s.Run(context.Background(), 5, input)
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range input {
			if outs[0][i] != max(x, 0) || outs[1][i] != -x {
				t.Fatalf("sample value %d: flat %v neg %v for x %v", i, outs[0][i], outs[1][i], x)
			}
		}
		if outs, err := s.Run(context.Background(), 0, nil); err != nil || len(outs) != 2 || len(outs[0]) != 0 {
			t.Errorf("Run(0) = %v, %v", outs, err)
		}
	}
}

func TestConcurrentRun(t *testing.T) {
	r := newRuntime(t)
	s := newSession(t, r, "age", readModel(t, "age"), SessionOptions{MaxBatch: 2})
	const n = 5
	input := randInput(7, n, numel(s.InputShape()))
	want, err := s.Run(context.Background(), n, input)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for range 3 {
				got, err := s.Run(context.Background(), n, input)
				if err != nil {
					t.Error(err)
					return
				}
				for i := range got {
					if d := maxAbsDiff(t, got[i], want[i]); d != 0 {
						t.Errorf("goroutine %d: output %d differs by %g", g, i, d)
					}
				}
			}
		})
	}
	wg.Wait()
}

func TestRunErrors(t *testing.T) {
	r := newRuntime(t)
	s := newSession(t, r, "tiny", tm.Tiny(tm.Raw), SessionOptions{})
	for _, tc := range []struct {
		n   int
		len int
	}{{1, 5}, {2, 6}, {1, 0}, {-1, 6}, {0, 6}} {
		if _, err := s.Run(context.Background(), tc.n, make([]float32, tc.len)); err == nil || !strings.Contains(err.Error(), "input has") {
			t.Errorf("Run(n=%d, %d floats) error = %v, want input length error", tc.n, tc.len, err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Run(ctx, 1, make([]float32, 6)); !errors.Is(err, context.Canceled) {
		t.Errorf("Run(cancelled) error = %v, want context.Canceled", err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(context.Background(), 1, make([]float32, 6)); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close error = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestRunCancelInsideChunk cancels a long single-chunk run and expects
// onnxruntime's terminate flag to stop it early.
func TestRunCancelInsideChunk(t *testing.T) {
	r := newRuntime(t)
	s := newSession(t, r, "expression", readModel(t, "expression"), SessionOptions{})
	const n = 16
	input := randInput(3, n, numel(s.InputShape()))
	start := time.Now()
	if _, err := s.Run(context.Background(), 1, input[:numel(s.InputShape())]); err != nil {
		t.Fatal(err)
	}
	perSample := time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), perSample/2)
	defer cancel()
	start = time.Now()
	_, err := s.Run(ctx, n, input)
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run error = %v, want context.DeadlineExceeded", err)
	}
	if elapsed > n/2*perSample {
		t.Errorf("cancelled run of %d samples took %v; one sample takes %v", n, elapsed, perSample)
	}
	t.Logf("cancelled after %v (one sample %v): %v", elapsed, perSample, err)
}

func TestNewSessionErrors(t *testing.T) {
	r := newRuntime(t)
	twoInputs := tm.Model(8, 13, tm.Graph(
		tm.Node("Add", []string{"a", "b"}, []string{"y"}),
		tm.Input(tm.ValueInfo("a", tm.Float, 1, 2)), tm.Input(tm.ValueInfo("b", tm.Float, 1, 2)),
		tm.Output(tm.ValueInfo("y", tm.Float, 1, 2))))
	external := tm.Model(8, 13, tm.Graph(
		tm.Node("Add", []string{"a", "w"}, []string{"y"}),
		tm.Initializer(tm.ExternalTensor("w", 2)),
		tm.Input(tm.ValueInfo("a", tm.Float, 1, 2)), tm.Output(tm.ValueInfo("y", tm.Float, 1, 2))))
	unary := func(in, out []byte) []byte {
		return tm.Model(8, 13, tm.Graph(tm.Node("Identity", []string{"x"}, []string{"y"}), tm.Input(in), tm.Output(out)))
	}
	for _, tc := range []struct {
		name    string
		model   []byte
		opts    SessionOptions
		wantErr error
		wantMsg string
	}{
		{name: "garbage", model: []byte("definitely not a model"), wantErr: graph.ErrMalformed},
		{name: "empty", model: nil, wantErr: graph.ErrNoGraph},
		{name: "truncated", model: tm.Tiny(tm.Raw)[:50], wantErr: graph.ErrMalformed},
		{name: "two inputs", model: twoInputs, wantMsg: "model has 2 inputs, want exactly 1"},
		{name: "external data", model: external, wantMsg: "external data"},
		{name: "int64 input", model: unary(tm.ValueInfo("x", tm.Int64, 1, 2), tm.ValueInfo("y", tm.Int64, 1, 2)), wantMsg: "want float32"},
		{name: "fixed batch 4", model: unary(tm.ValueInfo("x", tm.Float, 4, 2), tm.ValueInfo("y", tm.Float, 4, 2)), wantMsg: "fixed batch dimension 4"},
		{name: "symbolic sample dim", model: unary(tm.ValueInfo("x", tm.Float, 1, "w"), tm.ValueInfo("y", tm.Float, 1, "w")), wantMsg: "must be fixed"},
		{name: "huge sample", model: unary(tm.ValueInfo("x", tm.Float, 1, 1<<20, 1<<20), tm.ValueInfo("y", tm.Float, 1, 1<<20, 1<<20)), wantMsg: "not supported"},
		{name: "no outputs", model: tm.Model(8, 13, tm.Graph(tm.Input(tm.ValueInfo("x", tm.Float, 1)))), wantMsg: "no outputs"},
		{name: "invalid graph", model: unary(tm.ValueInfo("x", tm.Float, 1, 2), tm.ValueInfo("z", tm.Float, 1, 2)), wantMsg: "onnxruntime"},
		{name: "negative MaxBatch", model: tm.Tiny(tm.Raw), opts: SessionOptions{MaxBatch: -1}, wantMsg: "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := r.NewSession(tc.name, tc.model, tc.opts)
			if err == nil {
				s.Close()
				t.Fatal("NewSession succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), "session "+tc.name) {
				t.Errorf("error %q does not mention %q and the session name", err, tc.wantMsg)
			}
			t.Log(err)
		})
	}
}

func TestNewRuntimeErrors(t *testing.T) {
	notLib := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	if err := os.WriteFile(notLib, []byte("not a shared library"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(t.TempDir(), "missing.so"), notLib, "", t.TempDir()} {
		r, err := NewRuntime(path)
		if err == nil {
			r.Close()
			t.Fatalf("NewRuntime(%q) succeeded", path)
		}
		if msg := err.Error(); !strings.Contains(msg, "make setup") || strings.Contains(msg, "\n") {
			t.Errorf("NewRuntime(%q) error %q: want one line mentioning make setup", path, msg)
		}
		t.Log(err)
	}
}

// TestRuntimeSharing opens several Runtimes on the shared environment and
// closes them in turn.
func TestRuntimeSharing(t *testing.T) {
	lib := libPath(deps(t))
	r1, err := NewRuntime(lib)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := NewRuntime(lib)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Version() == "" {
		t.Error("empty version")
	}
	if _, err := NewRuntime(filepath.Join(t.TempDir(), "other.so")); err == nil || !strings.Contains(err.Error(), "already loaded") {
		t.Errorf("NewRuntime(other library) error = %v, want already loaded", err)
	}
	s1, err := r1.NewSession("tiny1", tm.Tiny(tm.Raw), SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := r2.NewSession("tiny2", tm.Tiny(tm.Raw), SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := make([]float32, 6)
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r2.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s2.Run(context.Background(), 1, in); !errors.Is(err, ErrClosed) {
		t.Errorf("Run on session of closed runtime: %v, want ErrClosed", err)
	}
	if _, err := r2.NewSession("late", tm.Tiny(tm.Raw), SessionOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("NewSession on closed runtime: %v, want ErrClosed", err)
	}
	if _, err := s1.Run(context.Background(), 1, in); err != nil {
		t.Errorf("Run after closing the other runtime: %v", err)
	}
	if err := s2.Close(); err != nil {
		t.Error(err)
	}
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	// The environment is gone; a new Runtime loads it again.
	r3, err := NewRuntime(lib)
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	s3, err := r3.NewSession("tiny3", tm.Tiny(tm.Raw), SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Run(context.Background(), 1, in); err != nil {
		t.Errorf("Run after reloading: %v", err)
	}
}

// BenchmarkModels measures each face model at batch 1 and batch 8 with one
// intra-op thread, reporting ms/sample.
func BenchmarkModels(b *testing.B) {
	r := newRuntime(b)
	for _, name := range tm.ModelNames {
		model := readModel(b, name)
		s := newSession(b, r, name, model, SessionOptions{})
		for _, n := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/batch%d", name, n), func(b *testing.B) {
				input := randInput(1, n, numel(s.InputShape()))
				if _, err := s.Run(context.Background(), n, input); err != nil { // warm up
					b.Fatal(err)
				}
				for b.Loop() {
					if _, err := s.Run(context.Background(), n, input); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N*n), "ms/sample")
			})
		}
	}
}
