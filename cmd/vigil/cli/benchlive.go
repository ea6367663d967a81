package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/result"
)

// liveFlags configure vigil bench live.
type liveFlags struct {
	video     string
	streams   int
	fps       float64
	duration  time.Duration
	warmup    time.Duration
	analyzers int
	capacity  bool
	maxStream int
	p99       time.Duration
	deps      string
	extra     string
	profile   string
}

// benchLiveCmd runs vigil run in this process on N looped copies of a clip in real time and
// measures what users of a live system see: results and drops per stream, capture→result
// latency, CPU per analysed frame by stage; optionally the most streams it serves within a
// latency bound without drops.
func benchLiveCmd(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("bench live", "Runs --streams copies of --video, each looped in real time and sampled at --fps, through every\n"+
		"role of vigil run (one process, embedded NATS) for --duration after --warmup, and prints per-stream\n"+
		"results and drops, capture→result latency percentiles, CPU-ms per analysed frame by stage and the\n"+
		"ratio of measured CPU to their sum. --capacity searches the most streams at --fps with p99 within\n"+
		"--max-p99 and no drops. --analyzers K adds K-1 `vigil analyze` processes (each pinned to a core\n"+
		"when taskset exists) beside the analyzer inside vigil run, all on one NATS server.")
	var f liveFlags
	var lf logFlags
	lf.register(fs)
	fs.StringVar(&f.video, "video", DemoVideo, "clip each stream plays, looped in real time")
	fs.IntVar(&f.streams, "streams", 8, "streams (copies of the clip)")
	fs.Float64Var(&f.fps, "fps", 5, "frames per second analysed per stream")
	fs.DurationVar(&f.duration, "duration", 20*time.Second, "measured time per run")
	fs.DurationVar(&f.warmup, "warmup", 3*time.Second, "time after the first result before measuring")
	fs.IntVar(&f.analyzers, "analyzers", 1, "analyzer processes: the one inside vigil run plus K-1 `vigil analyze` processes")
	fs.BoolVar(&f.capacity, "capacity", false, "search the most streams served with p99 <= --max-p99 and no drops (--streams is the first guess)")
	fs.IntVar(&f.maxStream, "max-streams", 32, "upper bound of the capacity search")
	fs.DurationVar(&f.p99, "max-p99", 150*time.Millisecond, "latency bound of the capacity search")
	fs.StringVar(&f.deps, "deps", models.DefaultDepsDir(), "directory \"make setup\" filled with onnxruntime and the models")
	fs.StringVar(&f.profile, "cpuprofile", "", "write a Go CPU profile of the measured window to this file (go tool pprof)")
	fs.StringVar(&f.extra, "run-args", "", "further vigil run flags, space-separated (for example \"--heads default\" for the every-frame mode)")
	if err := parse(fs, env, args); err != nil {
		return err
	}
	if f.streams < 1 || f.fps <= 0 || f.duration <= 0 || f.analyzers < 1 {
		return errors.New("bench live: --streams, --fps, --duration and --analyzers must be positive")
	}
	if _, err := os.Stat(f.video); err != nil {
		return fmt.Errorf("bench live: --video: %w", err)
	}
	out := env.Stdout
	costs, err := measureStageCosts(ctx, f.video, f.deps, f.fps, 30)
	if err != nil {
		return fmt.Errorf("bench live: stage costs: %w", err)
	}
	if !f.capacity {
		rep, err := liveRun(ctx, env, f, f.streams)
		if err != nil {
			return err
		}
		rep.print(out, costs)
		return nil
	}
	// Capacity: grow while runs pass, then bisect between the last pass and the first failure.
	pass, fail := 0, f.maxStream+1
	n := f.streams
	for pass+1 < fail {
		rep, err := liveRun(ctx, env, f, n)
		if err != nil {
			return err
		}
		ok := rep.passes(f.p99)
		fmt.Fprintf(out, "capacity: %2d streams x %g fps: p99 %s, drops %d, %.1f frames/s delivered, %.1f analysed: %s\n", n, f.fps,
			rep.percentile(0.99).Round(time.Millisecond), rep.totalDrops(), rep.deliveredPerSecond(), rep.analysedPerSecond(), map[bool]string{true: "pass", false: "fail"}[ok])
		if ok {
			pass = n
		} else {
			fail = n
		}
		if fail > f.maxStream {
			n = min(2*n, f.maxStream)
			if n == pass {
				break
			}
		} else {
			n = (pass + fail) / 2
		}
	}
	fmt.Fprintf(out, "capacity: %d streams x %g fps with p99 <= %s and no drops\n", pass, f.fps, f.p99)
	return nil
}

// liveReport is what one live run measured.
type liveReport struct {
	streams   int
	fps       float64
	window    time.Duration
	analyzers int
	results   map[string]int
	drops     map[string]map[string]int // stream -> reason -> count
	// headsLatencies are the capture->result latencies of the results with a face whose heads
	// ran on that very frame (or were left pending: late heads), the frames that cost more than
	// detection and landmarks; otherLatencies those of the rest.
	headsLatencies, otherLatencies []time.Duration
	// published counts the frames the sources delivered (on vigil.frames.*): fewer than
	// streams x fps when the clips could not be decoded in real time (paced files then play
	// slower: see ingest.DecodeSlots).
	published int
	// late is the capture-to-arrival time of each late-heads document (heads that ran after
	// their frame's result: result.Face.PendingHeads).
	late  []time.Duration
	faces int     // faces in the results
	cpu   float64 // CPU seconds of the process (and its analyzer children) in the window
	// models is the inference time of each model in the window, in seconds, from vigil run's
	// own metrics (modelSeconds; nil with external analyzers, whose models it does not see).
	models map[string]float64
	// modelsKind says what models measures: "CPU" (vigil_model_cpu_seconds_total) or "wall"
	// (the latency histograms' sums, where no CPU time is exported).
	modelsKind string
	// fullFrames is set when the run publishes every frame at full size (--full-frames, or
	// heads on every frame): no frame goes at reduced size.
	fullFrames bool
}

// fullFramesIn reports whether vigil run flags publish every frame at full size: --full-frames,
// or --heads with heads (the every-frame mode).
func fullFramesIn(args []string) bool {
	for i, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasValue && i+1 < len(args) {
			value = args[i+1]
		}
		switch {
		case name == "full-frames" && value != "false":
			return true
		case name == "heads" && value != "none":
			return true
		}
	}
	return false
}

// liveRun runs vigil run on n streams (plus f.analyzers-1 external analyzers) and measures it.
func liveRun(ctx context.Context, env Env, f liveFlags, n int) (*liveReport, error) {
	port, err := freeTCPPort()
	if err != nil {
		return nil, err
	}
	store, err := os.MkdirTemp("", "vigil-bench-live-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(store)
	metricsPort, err := freeTCPPort()
	if err != nil {
		return nil, err
	}
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	args := []string{"--nats-port", strconv.Itoa(port), "--store-dir", store, "--fps", strconv.FormatFloat(f.fps, 'g', -1, 64),
		"--deps", f.deps, "--web=false", "--http-addr", "127.0.0.1:0", "--log-level", "warn",
		"--metrics-addr", fmt.Sprintf("127.0.0.1:%d", metricsPort)}
	if f.analyzers > 1 {
		args = append(args, "--workers", "1")
	}
	for i := range n {
		args = append(args, "--source", f.video, "--stream", fmt.Sprintf("live%d", i+1))
	}
	args = append(args, strings.Fields(f.extra)...)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runEnv := env
	runEnv.Stdout = io.Discard
	done := make(chan error, 1)
	go func() { done <- runCmd(runCtx, runEnv, args) }()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	nc, err := connectWhenUp(ctx, url, done)
	if err != nil {
		stop()
		<-done
		return nil, err
	}
	defer nc.Close()
	var children []*exec.Cmd
	defer func() {
		for _, c := range children {
			_ = c.Process.Signal(os.Interrupt)
			_ = c.Wait()
		}
	}()
	for k := 1; k < f.analyzers; k++ {
		c, err := startAnalyzer(ctx, url, f.deps, k)
		if err != nil {
			return nil, err
		}
		children = append(children, c)
	}
	rep := &liveReport{streams: n, fps: f.fps, analyzers: f.analyzers, results: map[string]int{}, drops: map[string]map[string]int{},
		fullFrames: fullFramesIn(strings.Fields(f.extra))}
	var mu sync.Mutex
	measuring := false
	first := make(chan struct{})
	var firstOnce sync.Once
	subRes, err := nc.Subscribe(bus.All(bus.ResultsPrefix), func(m *nats.Msg) {
		now := time.Now()
		r, err := result.ParseResult(m.Data)
		if err != nil {
			return
		}
		firstOnce.Do(func() { close(first) })
		mu.Lock()
		defer mu.Unlock()
		if !measuring {
			return
		}
		rep.results[r.Stream]++
		rep.faces += len(r.Faces)
		into := &rep.otherLatencies
		if slices.ContainsFunc(r.Faces, func(fc result.Face) bool { return fc.HeadsSeq == r.Seq || len(fc.PendingHeads) > 0 }) {
			into = &rep.headsLatencies
		}
		*into = append(*into, now.Sub(r.CapturedAt))
	})
	if err != nil {
		return nil, err
	}
	defer subRes.Unsubscribe()
	subFrames, err := nc.Subscribe(bus.All(bus.FramesPrefix), func(*nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if measuring {
			rep.published++
		}
	})
	if err != nil {
		return nil, err
	}
	defer subFrames.Unsubscribe()
	subLate, err := nc.Subscribe(bus.All(bus.LateHeadsPrefix), func(m *nats.Msg) {
		now := time.Now()
		r, err := result.ParseResult(m.Data)
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if measuring {
			rep.late = append(rep.late, now.Sub(r.CapturedAt))
		}
	})
	if err != nil {
		return nil, err
	}
	defer subLate.Unsubscribe()
	subDrop, err := nc.Subscribe(bus.All(bus.DropsPrefix), func(m *nats.Msg) {
		d, err := result.ParseDrop(m.Data)
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !measuring {
			return
		}
		if rep.drops[d.Stream] == nil {
			rep.drops[d.Stream] = map[string]int{}
		}
		rep.drops[d.Stream][d.Reason]++
	})
	if err != nil {
		return nil, err
	}
	defer subDrop.Unsubscribe()
	select {
	case <-first:
	case err := <-done:
		return nil, fmt.Errorf("bench live: vigil run ended before its first result: %v", err)
	case <-time.After(2 * time.Minute):
		return nil, errors.New("bench live: no result within 2 minutes")
	}
	if err := sleepOrDone(ctx, f.warmup, done); err != nil {
		return nil, err
	}
	if f.profile != "" {
		pf, err := os.Create(f.profile)
		if err != nil {
			return nil, fmt.Errorf("bench live: --cpuprofile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return nil, fmt.Errorf("bench live: --cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	cpu0 := cpuSeconds()
	models0, _, modelsErr := modelSeconds(ctx, metricsURL)
	mu.Lock()
	measuring = true
	mu.Unlock()
	start := time.Now()
	if err := sleepOrDone(ctx, f.duration, done); err != nil {
		return nil, err
	}
	if f.profile != "" {
		pprof.StopCPUProfile()
	}
	mu.Lock()
	measuring = false
	rep.window = time.Since(start)
	mu.Unlock()
	rep.cpu = cpuSeconds() - cpu0
	if models1, kind, err := modelSeconds(ctx, metricsURL); err == nil && modelsErr == nil && f.analyzers == 1 {
		rep.models, rep.modelsKind = map[string]float64{}, kind
		for m, v := range models1 {
			rep.models[m] = v - models0[m]
		}
	}
	stop()
	if err := <-done; err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("bench live: vigil run: %w", err)
	}
	return rep, nil
}

// modelSeconds scrapes vigil run's metrics at url for the inference time of each model so far,
// in seconds: the calling threads' CPU time (vigil_model_cpu_seconds_total, kind "CPU") where
// exported, else the wall time of the invocations (vigil_model_latency_seconds' sums, "wall").
func modelSeconds(ctx context.Context, url string) (map[string]float64, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("bench live: metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("bench live: metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, "", fmt.Errorf("bench live: metrics: %w", err)
	}
	byModel := func(family string, value func(*dto.Metric) float64) map[string]float64 {
		out := map[string]float64{}
		if fam := families[family]; fam != nil {
			for _, m := range fam.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "model" {
						out[l.GetValue()] += value(m)
					}
				}
			}
		}
		return out
	}
	if cpu := byModel("vigil_model_cpu_seconds_total", func(m *dto.Metric) float64 { return m.GetCounter().GetValue() }); len(cpu) > 0 {
		return cpu, "CPU", nil
	}
	return byModel("vigil_model_latency_seconds", func(m *dto.Metric) float64 { return m.GetHistogram().GetSampleSum() }), "wall", nil
}

// startAnalyzer starts `vigil analyze` against url, pinned to core k mod NumCPU when taskset is
// installed.
func startAnalyzer(ctx context.Context, url, deps string, k int) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	argv := []string{self, "analyze", "--nats", url, "--workers", "1", "--deps", deps, "--log-level", "warn"}
	if ts, err := exec.LookPath("taskset"); err == nil {
		argv = append([]string{ts, "-c", strconv.Itoa(k % runtime.NumCPU())}, argv...)
	}
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("bench live: start analyzer: %w", err)
	}
	return c, nil
}

// cpuSeconds is the user+system CPU time of this process and its waited-for children.
func cpuSeconds() float64 {
	var total float64
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			total += float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
		}
	}
	return total
}

func connectWhenUp(ctx context.Context, url string, done <-chan error) (*nats.Conn, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		nc, err := nats.Connect(url, nats.Name("vigil-bench-live"))
		if err == nil {
			return nc, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("bench live: NATS at %s: %w", url, err)
		}
		if err := sleepOrDone(ctx, 100*time.Millisecond, done); err != nil {
			return nil, err
		}
	}
}

// sleepOrDone waits d, failing early when ctx ends or vigil run returned.
func sleepOrDone(ctx context.Context, d time.Duration, done <-chan error) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case err := <-done:
		return fmt.Errorf("bench live: vigil run ended early: %v", err)
	}
}

func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// percentile is the p-quantile of every result's latency.
func (r *liveReport) percentile(p float64) time.Duration {
	return percentileOf(append(slices.Clone(r.headsLatencies), r.otherLatencies...), p)
}

// percentileOf returns the p-quantile of ds (0 for none).
func percentileOf(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func (r *liveReport) totalDrops() int {
	n := 0
	for _, m := range r.drops {
		for _, c := range m {
			n += c
		}
	}
	return n
}

func (r *liveReport) analysed() int {
	n := 0
	for _, c := range r.results {
		n += c
	}
	return n
}

func (r *liveReport) analysedPerSecond() float64 { return float64(r.analysed()) / r.window.Seconds() }

// deliveredPerSecond is the frames the sources published per second.
func (r *liveReport) deliveredPerSecond() float64 { return float64(r.published) / r.window.Seconds() }

// kept reports whether the sources delivered at least 95% of what the clips hold in real time
// (decoding kept up).
func (r *liveReport) kept() bool { return r.deliveredPerSecond() >= 0.95*float64(r.streams)*r.fps }

// passes reports whether the run had no drops, p99 within bound, results for every stream, and
// sources that kept up with real time.
func (r *liveReport) passes(p99 time.Duration) bool {
	return r.totalDrops() == 0 && len(r.results) == r.streams && r.percentile(0.99) <= p99 && r.kept()
}

// print writes the run's report, with costs for the CPU split.
func (r *liveReport) print(w io.Writer, costs stageCosts) {
	fmt.Fprintf(w, "bench live: %d streams x %g fps for %s (%d analyzer processes, %d CPUs)\n", r.streams, r.fps, r.window.Round(time.Second), r.analyzers, runtime.NumCPU())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stream\tresults\tresults/s\tdrops\t")
	names := make([]string, 0, r.streams)
	for i := range r.streams {
		names = append(names, fmt.Sprintf("live%d", i+1))
	}
	least, most := -1, 0
	for _, s := range names {
		var reasons []string
		for reason, c := range r.drops[s] {
			reasons = append(reasons, fmt.Sprintf("%s=%d", reason, c))
		}
		sort.Strings(reasons)
		n := r.results[s]
		if least < 0 || n < least {
			least = n
		}
		most = max(most, n)
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%s\t\n", s, n, float64(n)/r.window.Seconds(), strings.Join(reasons, " "))
	}
	_ = tw.Flush()
	fair := 0.0
	if most > 0 {
		fair = float64(least) / float64(most)
	}
	a := r.analysed()
	fmt.Fprintf(w, "analysed %.1f frames/s (offered %.1f, delivered by the sources %.1f); drops %d; least-served stream %.0f%% of the best-served\n",
		r.analysedPerSecond(), float64(r.streams)*r.fps, r.deliveredPerSecond(), r.totalDrops(), 100*fair)
	if !r.kept() {
		fmt.Fprintf(w, "the sources fell behind real time: decoding the clips needs more CPU than the decode slots get (--decode-slots)\n")
	}
	fmt.Fprintf(w, "capture->result latency: p50 %s  p95 %s  p99 %s  (%d results)\n", r.percentile(0.5).Round(time.Millisecond),
		r.percentile(0.95).Round(time.Millisecond), r.percentile(0.99).Round(time.Millisecond), a)
	if len(r.headsLatencies) > 0 {
		fmt.Fprintf(w, "  of which frames that ran heads: p50 %s  p99 %s (%d); the others: p50 %s  p99 %s\n",
			percentileOf(r.headsLatencies, 0.5).Round(time.Millisecond), percentileOf(r.headsLatencies, 0.99).Round(time.Millisecond),
			len(r.headsLatencies), percentileOf(r.otherLatencies, 0.5).Round(time.Millisecond),
			percentileOf(r.otherLatencies, 0.99).Round(time.Millisecond))
	}
	if len(r.late) > 0 {
		fmt.Fprintf(w, "late heads (run after their frame's result): %d, capture->arrival p50 %s  p99 %s\n", len(r.late),
			percentileOf(r.late, 0.5).Round(time.Millisecond), percentileOf(r.late, 0.99).Round(time.Millisecond))
	}
	if a == 0 {
		return
	}
	// CPU per analysed frame, by stage: the stage costs measured on this clip, times how often
	// each ran per analysed frame.
	facesPer := float64(r.faces) / float64(a)
	headsPer := float64(len(r.headsLatencies)) / float64(a)
	type stage struct {
		name string
		ms   float64
	}
	// Frames that request no heads go at reduced size (unless every frame is full).
	reduced := 1 - headsPer
	if r.fullFrames || !costs.reducible {
		reduced = 0
	}
	stages := []stage{
		{fmt.Sprintf("video decode (%.1f source frames per kept frame)", costs.framesPerKept), costs.decode},
		{fmt.Sprintf("JPEG encode (ingest; %.0f%% of frames at half size)", 100*reduced), reduced*costs.encodeReduced + (1-reduced)*costs.encode},
		{"NATS (publish + deliver)", costs.nats},
		{"JPEG decode (analyzer)", reduced*costs.decodeReduced + (1-reduced)*costs.jpegDecode},
	}
	if len(r.models) > 0 {
		// What each model ran in the window, from the analyzer's own inference costs
		// (modelsKind): the heads that really ran, not an estimate.
		names := make([]string, 0, len(r.models))
		for m := range r.models {
			names = append(names, m)
		}
		sort.Strings(names)
		for _, m := range names {
			if r.models[m] > 0 {
				stages = append(stages, stage{m + " inference (" + r.modelsKind + ")", 1000 * r.models[m] / float64(a)})
			}
		}
		fmt.Fprintf(w, "heads ran on %.0f%% of the analysed frames (%.2f faces a frame)\n", 100*headsPer, facesPer)
	} else {
		stages = append(stages, stage{"detection + landmarks", costs.detect},
			stage{fmt.Sprintf("heads (%.0f%% of frames, %.2f faces/frame)", 100*headsPer, facesPer), costs.heads * headsPer * facesPer})
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stage\tCPU-ms per analysed frame\t")
	var sum float64
	for _, s := range stages {
		fmt.Fprintf(tw, "%s\t%.2f\t\n", s.name, s.ms)
		sum += s.ms
	}
	measured := 1000 * r.cpu / float64(a)
	fmt.Fprintf(tw, "sum of stages\t%.2f\t\n", sum)
	fmt.Fprintf(tw, "measured (process CPU / analysed frames)\t%.2f\t\n", measured)
	_ = tw.Flush()
	fmt.Fprintf(w, "measured CPU / sum of stage costs: %.2fx (the rest: tracking, JSON, JetStream, the web view, Go runtime)\n", measured/sum)
}
