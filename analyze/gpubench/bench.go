package gpubench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-video/vigil/pkg/cputime"
)

// Model is what the runner needs of a model session; *onnx.Session
// satisfies it.
type Model interface {
	// Run runs n samples of input and returns the outputs.
	Run(ctx context.Context, n int, input []float32) ([][]float32, error)
	// InputShape is one sample's input shape.
	InputShape() []int64
	// Close releases the session and the memory its runs kept.
	Close() error
}

// Opener opens the session of a model by manifest name. Run opens each
// model when it comes to it and closes it once measured, so that at most
// one model's memory is held at a time.
type Opener func(name string) (Model, error)

// DefaultBatches are the batch sizes the benchmark measures by default.
var DefaultBatches = []int{1, 8, 32, 128, 256}

// Detector is the manifest name of the per-frame model; Embedder the one
// the embedding throughput is measured on.
const (
	Detector = "fr_detect"
	Embedder = "fr_feature"
)

// FaceModels are the per-face models in the order the analyzer runs them:
// landmarks, then the heads (embedding, age, gender, emotion, liveness,
// pose). "All heads per face" is their sum.
var FaceModels = []string{"fr_landmark", "fr_feature", "fr_age", "fr_gender", "fr_expression", "fr_liveness", "fr_pose"}

// Config configures Run. The zero value measures DefaultBatches with at
// least 3 timed runs and 1 s per model and batch.
type Config struct {
	// Batches are the batch sizes; default DefaultBatches.
	Batches []int
	// MinRounds is the fewest timed runs per model and batch (default 3);
	// MaxRounds the most (default 100).
	MinRounds, MaxRounds int
	// MinTime is how long to keep timing a model and batch once MinRounds
	// ran (default 1s).
	MinTime time.Duration
	// Memory, when set, is read before the first model opens and after
	// each model's largest batch, while its session is still open (GPU
	// memory used, or resident memory on the CPU); nil skips it.
	Memory func(ctx context.Context) (Memory, error)
	// Progress, when set, receives one line per model and batch measured.
	Progress io.Writer
}

// Memory is one memory reading.
type Memory struct {
	// What says what was read, e.g. "GPU 0 memory used (nvidia-smi)".
	What string
	// UsedMiB and TotalMiB are the reading and the capacity (0 if unknown).
	UsedMiB, TotalMiB float64
}

// Timing is the outcome for one model at one batch size.
type Timing struct {
	Model  string
	Batch  int
	Rounds int
	// Median is the median wall time of one Run of Batch samples.
	Median time.Duration
	// First is the first (warm-up) run, which includes one-time costs such
	// as cuDNN's algorithm search for a new shape.
	First time.Duration
	// CPU is the median CPU time of the calling thread during one Run, 0
	// when unknown. With one intra-op thread onnxruntime computes on the
	// calling thread, so on the CPU provider this is the compute time
	// without the waits a busy, shared machine adds to Median.
	CPU time.Duration
}

// PerSample is the median time per sample.
func (t Timing) PerSample() time.Duration { return t.Median / time.Duration(t.Batch) }

// Throughput is samples per second.
func (t Timing) Throughput() float64 { return float64(t.Batch) / t.Median.Seconds() }

// Report is what Run measured.
type Report struct {
	Timings []Timing
	// Memory holds one reading before the first model opened ("baseline")
	// and one after each model's batches with its session open, keyed by
	// model name.
	Memory map[string]Memory
	// FacesPerFrame is the recording's faces per frame, used for the
	// frames/s estimate.
	FacesPerFrame float64
}

// Timing returns the timing of model at batch, or false.
func (r *Report) Timing(model string, batch int) (Timing, bool) {
	for _, t := range r.Timings {
		if t.Model == model && t.Batch == batch {
			return t, true
		}
	}
	return Timing{}, false
}

// tile returns n samples made of the set's samples repeated in order.
func tile(s Set, n int) []float32 {
	size, have := s.SampleSize(), s.N()
	out := make([]float32, n*size)
	for i := range n {
		j := i % have
		copy(out[i*size:(i+1)*size], s.Data[j*size:(j+1)*size])
	}
	return out
}

// Run measures every model of names (manifest names) at every batch size
// on the recording's inputs for that model, tiled to the batch size.
// Models are opened with open and measured one after the other, the
// detector first, each batch first once untimed; each is closed before
// the next opens. A model without recorded inputs, or whose input shape
// differs from the recording's, is an error.
func Run(ctx context.Context, rec *Recording, names []string, open Opener, cfg Config) (*Report, error) {
	if len(cfg.Batches) == 0 {
		cfg.Batches = DefaultBatches
	}
	if cfg.MinRounds <= 0 {
		cfg.MinRounds = 3
	}
	if cfg.MaxRounds < cfg.MinRounds {
		cfg.MaxRounds = max(100, cfg.MinRounds)
	}
	if cfg.MinTime <= 0 {
		cfg.MinTime = time.Second
	}
	for _, b := range cfg.Batches {
		if b < 1 {
			return nil, fmt.Errorf("gpubench: batch size %d", b)
		}
	}
	rep := &Report{Memory: map[string]Memory{}}
	if rec.Frames > 0 {
		rep.FacesPerFrame = float64(rec.Faces) / float64(rec.Frames)
	}
	if cfg.Memory != nil {
		m, err := cfg.Memory(ctx)
		if err != nil {
			return nil, err
		}
		rep.Memory["baseline"] = m
	}
	names = slices.Clone(names)
	slices.SortStableFunc(names, func(a, b string) int { return modelOrder(a) - modelOrder(b) })
	for _, name := range names {
		set, ok := rec.Set(name)
		if !ok || set.N() == 0 {
			return nil, fmt.Errorf("gpubench: the recording has no inputs for %s (record again with vigil-gpurecord)", name)
		}
		m, err := open(name)
		if err != nil {
			return nil, err
		}
		err = runModel(ctx, rep, name, set, m, cfg)
		if cerr := m.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("gpubench: close %s: %w", name, cerr)
		}
		if err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// runModel measures one open model at every batch size, then reads memory.
func runModel(ctx context.Context, rep *Report, name string, set Set, m Model, cfg Config) error {
	if !slices.Equal(set.Shape, m.InputShape()) {
		return fmt.Errorf("gpubench: %s takes %v, the recording holds %v", name, m.InputShape(), set.Shape)
	}
	for _, b := range cfg.Batches {
		t, err := measure(ctx, name, m, tile(set, b), b, cfg)
		if err != nil {
			return err
		}
		rep.Timings = append(rep.Timings, t)
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "%s batch %d: %d runs, median %.3f ms (%.1f samples/s), first %.1f ms\n", name, b, t.Rounds,
				ms(t.Median), t.Throughput(), ms(t.First))
		}
	}
	if cfg.Memory != nil {
		mem, err := cfg.Memory(ctx)
		if err != nil {
			return err
		}
		rep.Memory[name] = mem
	}
	return nil
}

// modelOrder sorts the detector first, then FaceModels' order, then the rest.
func modelOrder(name string) int {
	if name == Detector {
		return -1
	}
	if i := slices.Index(FaceModels, name); i >= 0 {
		return i
	}
	return len(FaceModels)
}

// measure times one model at one batch size.
func measure(ctx context.Context, name string, m Model, input []float32, b int, cfg Config) (Timing, error) {
	t := Timing{Model: name, Batch: b}
	start := time.Now()
	if _, err := m.Run(ctx, b, input); err != nil {
		return t, fmt.Errorf("gpubench: %s batch %d: %w", name, b, err)
	}
	t.First = time.Since(start)
	var times, cpu []time.Duration
	begin := time.Now()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for len(times) < cfg.MaxRounds && (len(times) < cfg.MinRounds || time.Since(begin) < cfg.MinTime) {
		if err := ctx.Err(); err != nil {
			return t, err
		}
		c0, errCPU := cputime.Thread()
		start := time.Now()
		if _, err := m.Run(ctx, b, input); err != nil {
			return t, fmt.Errorf("gpubench: %s batch %d: %w", name, b, err)
		}
		times = append(times, time.Since(start))
		if c1, err := cputime.Thread(); err == nil && errCPU == nil {
			cpu = append(cpu, c1-c0)
		}
	}
	slices.Sort(times)
	t.Rounds, t.Median = len(times), times[len(times)/2]
	if len(cpu) == len(times) {
		slices.Sort(cpu)
		t.CPU = cpu[len(cpu)/2]
	}
	return t, nil
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// Summary is the derived throughput at one batch size.
type Summary struct {
	Batch int
	// DetectFPS is frames/s through the detector; EmbedFPS faces/s
	// through the embedding model; AllHeadsFPS faces/s through every
	// per-face model (FaceModels) one after the other.
	DetectFPS, EmbedFPS, AllHeadsFPS float64
	// PipelineFPS estimates frames/s of detection plus all heads for the
	// recording's faces per frame (model time only: no decoding or
	// pre-processing).
	PipelineFPS float64
}

// Summaries derives, per batch size, the detect, embed and all-heads
// throughputs. A value is 0 when a model it needs was not measured.
func (r *Report) Summaries() []Summary {
	var out []Summary
	seen := map[int]bool{}
	for _, t := range r.Timings {
		if seen[t.Batch] {
			continue
		}
		seen[t.Batch] = true
		s := Summary{Batch: t.Batch}
		var det time.Duration
		if d, ok := r.Timing(Detector, t.Batch); ok {
			s.DetectFPS, det = d.Throughput(), d.PerSample()
		}
		if e, ok := r.Timing(Embedder, t.Batch); ok {
			s.EmbedFPS = e.Throughput()
		}
		var face time.Duration
		all := true
		for _, name := range FaceModels {
			ft, ok := r.Timing(name, t.Batch)
			if !ok {
				all = false
				break
			}
			face += ft.PerSample()
		}
		if all && face > 0 {
			s.AllHeadsFPS = 1 / face.Seconds()
			if det > 0 {
				perFrame := det + time.Duration(r.FacesPerFrame*float64(face))
				s.PipelineFPS = 1 / perFrame.Seconds()
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Summary) int { return a.Batch - b.Batch })
	return out
}

// Write prints the report: one table of every model at every batch size
// (ms per run, ms per sample, samples/s, gain over batch 1), one of the
// derived throughputs, and the memory readings.
func (r *Report) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\tbatch\truns\tms/run\tms/sample\tsamples/s\tvs batch 1\tfirst run ms\tthread CPU ms/sample\t")
	for _, t := range r.Timings {
		gain := ""
		if one, ok := r.Timing(t.Model, 1); ok {
			gain = fmt.Sprintf("%.2fx", one.PerSample().Seconds()/t.PerSample().Seconds())
		}
		cpu := "-"
		if t.CPU > 0 {
			cpu = fmt.Sprintf("%.4f", ms(t.CPU)/float64(t.Batch))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.3f\t%.4f\t%.1f\t%s\t%.1f\t%s\t\n", t.Model, t.Batch, t.Rounds, ms(t.Median), ms(t.PerSample()),
			t.Throughput(), gain, ms(t.First), cpu)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nThroughput (model time only; all heads = %s in sequence; pipeline = detect + %.2f faces/frame x all heads):\n",
		strings.Join(FaceModels, "+"), r.FacesPerFrame)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "batch\tdetect frames/s\tembed faces/s\tall heads faces/s\tpipeline frames/s\t")
	for _, s := range r.Summaries() {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t\n", s.Batch, rate(s.DetectFPS), rate(s.EmbedFPS), rate(s.AllHeadsFPS), rate(s.PipelineFPS))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Memory) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nMemory:")
	keys := []string{"baseline"}
	for _, t := range r.Timings {
		if !slices.Contains(keys, t.Model) {
			keys = append(keys, t.Model)
		}
	}
	for _, k := range keys {
		m, ok := r.Memory[k]
		if !ok {
			continue
		}
		label := k + " open, after its largest batch"
		if k == "baseline" {
			label = "before the first model opened"
		}
		total := ""
		if m.TotalMiB > 0 {
			total = fmt.Sprintf(" of %.0f MiB", m.TotalMiB)
		}
		fmt.Fprintf(w, "  %s: %.0f MiB%s (%s)\n", label, m.UsedMiB, total, m.What)
	}
	return nil
}

func rate(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

// errNoReading is returned by readers that find nothing to read.
var errNoReading = errors.New("no memory reading")
