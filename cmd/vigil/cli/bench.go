package cli

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/onnx"
)

func benchCmd(ctx context.Context, env Env, args []string) error {
	if len(args) > 0 && args[0] == "live" {
		return benchLiveCmd(ctx, env, args[1:])
	}
	fs := newFlagSet("bench", "Measures, on this machine: each model's latency per sample at batch 1 and 8 (one onnxruntime\n"+
		"thread), and the analyzer's frames/s on a video with the default heads and with all heads, with the\n"+
		"share of time spent inside onnxruntime. `vigil bench live --help`: streams in real time through vigil run.")
	var (
		lf      logFlags
		deps    string
		video   string
		frames  int
		rounds  int
		workers int
		batch   int
	)
	lf.register(fs)
	fs.StringVar(&deps, "deps", models.DefaultDepsDir(), "directory \"make setup\" filled with onnxruntime and the models")
	fs.StringVar(&video, "video", DemoVideo, "video whose frames the throughput runs analyse")
	fs.IntVar(&frames, "frames", 60, "frames taken from the video (evenly spaced)")
	fs.IntVar(&rounds, "rounds", 20, "timed runs per model and batch size (median reported)")
	fs.IntVar(&workers, "workers", runtime.NumCPU(), "analyzer workers for the throughput runs")
	fs.IntVar(&batch, "batch", 4, "frames per batch in the throughput runs")
	if err := parse(fs, env, args); err != nil {
		return err
	}
	man, err := models.Load()
	if err != nil {
		return err
	}
	lib, err := man.VerifyPath(deps, "onnxruntime")
	if err != nil {
		return err
	}
	rt, err := onnx.NewRuntime(lib)
	if err != nil {
		return err
	}
	defer rt.Close()
	ms := analyze.NewModelSet(rt, man, deps, onnx.SessionOptions{IntraOpThreads: 1, MaxBatch: 64})
	defer ms.Close()
	out := env.Stdout
	fmt.Fprintf(out, "vigil %s bench: onnxruntime %s, %d CPUs, 1 intra-op thread per session\n\n", env.Version, rt.Version(), runtime.NumCPU())
	if err := benchModels(ctx, out, ms, rounds); err != nil {
		return err
	}
	mats, err := ingest.SampleFile(ctx, video, frames)
	if err != nil {
		return err
	}
	defer func() {
		for _, m := range mats {
			m.Close()
		}
	}()
	fmt.Fprintf(out, "\nAnalyzer on %d frames of %s (%dx%d), %d workers, batch %d:\n", len(mats), video, mats[0].Cols(), mats[0].Rows(), workers, batch)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "heads\tworkers\tframes/s\tms/frame/worker\tfaces/frame\tin onnxruntime\t")
	type run struct {
		name    string
		heads   []string
		workers int
		tiles   bool // --detect-tiles: the cost of finding small faces on streams
	}
	runs := []run{
		{"default", analyze.DefaultHeads, workers, false},
		{"all", analyze.AllHeads, workers, false},
		{"embed+age+gender", []string{analyze.HeadEmbedding, analyze.HeadAge, analyze.HeadGender}, 1, false},
		{"none", nil, workers, false},
		{"none --detect-tiles", nil, workers, true},
	}
	for _, r := range runs {
		timed := &analyze.TimedModels{Models: ms.Get}
		p, err := analyze.NewPipeline(analyze.PipelineConfig{Heads: r.heads, Tiles: tilesIf(r.tiles)}, timed.Get)
		if err != nil {
			return err
		}
		// One warm-up pass so first-run allocations are not timed.
		if _, err := analyze.MeasureThroughput(ctx, p, mats[:min(len(mats), 2*batch)], 1, batch, &timed.Inference); err != nil {
			return err
		}
		t, err := analyze.MeasureThroughput(ctx, p, mats, r.workers, batch, &timed.Inference)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.2f\t%.0f%%\t\n", r.name, r.workers, t.FPS(),
			float64(t.Busy.Microseconds())/1000/float64(t.Frames), float64(t.Faces)/float64(t.Frames), 100*t.InferenceShare())
	}
	return tw.Flush()
}

// benchModels prints each model's median latency per sample at batch 1 and 8.
func benchModels(ctx context.Context, out io.Writer, ms *analyze.ModelSet, rounds int) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\tinput\tms/sample batch 1\tms/sample batch 8\tbatch gain\t")
	names := []string{"fr_detect", "fr_landmark", "fr_feature", "fr_age", "fr_gender", "fr_expression", "fr_liveness", "fr_pose"}
	rng := rand.New(rand.NewSource(1))
	for _, name := range names {
		m, err := ms.Get(name)
		if err != nil {
			return err
		}
		shape := m.InputShape()
		size := 1
		dims := make([]string, len(shape))
		for i, d := range shape {
			size *= int(d)
			dims[i] = fmt.Sprint(d)
		}
		var per [2]float64
		for k, n := range []int{1, 8} {
			input := make([]float32, n*size)
			for i := range input {
				input[i] = rng.Float32()*2 - 1
			}
			times := make([]time.Duration, 0, rounds)
			for r := 0; r <= rounds; r++ {
				t0 := time.Now()
				if _, err := m.Run(ctx, n, input); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if r > 0 { // the first run warms up
					times = append(times, time.Since(t0))
				}
			}
			per[k] = medianMS(times) / float64(n)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%.2fx\t\n", name, strings.Join(dims, "x"), per[0], per[1], per[0]/per[1])
	}
	return tw.Flush()
}
