package scale

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// benchServer starts one natsnode with JetStream and user vigil on loopback.
func benchServer(t *testing.T, bin string) string {
	t.Helper()
	ports := freePorts(t, 2)
	p := start(t, "nats", nil, bin, "-a", "127.0.0.1", "-p", fmt.Sprint(ports[0]), "-m", fmt.Sprint(ports[1]),
		"-js", "-sd", t.TempDir(), "--user", "vigil", "--pass", natsPassword)
	url := fmt.Sprintf("nats://127.0.0.1:%d", ports[0])
	testenv.Eventually(t, 30*time.Second, "nats", func() bool {
		if p.exited() {
			t.Fatalf("nats exited: %s", p.logText())
		}
		nc, err := nats.Connect(url, nats.UserInfo("vigil", natsPassword))
		if err != nil {
			return false
		}
		nc.Close()
		return true
	})
	return url
}

// captureFrames runs the ingest role once over the demo video, as fast as it decodes, and keeps
// the frames it publishes (JPEG, real ingest output) for replaying.
func captureFrames(t *testing.T, bin binaries, url string, env []string) []frame.Frame {
	t.Helper()
	nc, err := nats.Connect(url, nats.UserInfo("vigil", natsPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ch := make(chan *nats.Msg, 1024)
	sub, err := nc.ChanSubscribe(bus.All(bus.FramesPrefix), ch)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	in := start(t, "ingest-capture", env, bin.vigil, "ingest", "--nats-url", url, "--nats-user", "vigil",
		"--source", demoVideo, "--stream", "cap", "--realtime=false", "--loop=false", "--jetstream=false")
	if err := in.wait(2 * time.Minute); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	_ = nc.Flush()
	var frames []frame.Frame
	for len(ch) > 0 {
		f, err := frame.FromMsg(<-ch)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
	}
	if len(frames) < 50 {
		t.Fatalf("captured %d frames", len(frames))
	}
	return frames
}

// pump replays captured frames as live streams: each frame gets a fresh sequence number and
// capture time (now), so results measure the pipeline from publication on (decode and JPEG
// encoding at ingest, ~8 ms per 720p frame, are not included).
type pump struct {
	nc     *nats.Conn
	frames []frame.Frame
	mu     sync.Mutex
	seq    map[string]uint64
	done   map[string]time.Time // stream/seq -> when its outcome reached the pump
	out    chan outcome
	subs   []*nats.Subscription
	// complete marks the frames as a recording's (frame.Frame.Complete): analyzers then queue
	// them instead of letting a newer frame of the stream supersede them (throughput runs keep
	// several frames of a stream in flight).
	complete bool
}

type outcome struct {
	res      *result.Result
	received time.Time
}

func newPump(t *testing.T, url string, frames []frame.Frame) *pump {
	t.Helper()
	nc, err := nats.Connect(url, nats.UserInfo("vigil", natsPassword))
	if err != nil {
		t.Fatal(err)
	}
	p := &pump{nc: nc, frames: frames, seq: map[string]uint64{}, out: make(chan outcome, 1<<16)}
	for _, prefix := range []string{bus.ResultsPrefix, bus.DropsPrefix} {
		sub, err := nc.Subscribe(bus.All(prefix), func(m *nats.Msg) {
			o := outcome{received: time.Now()}
			if strings.HasPrefix(m.Subject, bus.ResultsPrefix) {
				if r, err := result.ParseResult(m.Data); err == nil {
					o.res = &r
				}
			}
			p.out <- o
		})
		if err != nil {
			t.Fatal(err)
		}
		_ = sub.SetPendingLimits(-1, -1)
		p.subs = append(p.subs, sub)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range p.subs {
			_ = s.Unsubscribe()
		}
		nc.Close()
	})
	return p
}

// publish sends the next frame of stream, stamped now.
func (p *pump) publish(stream string) error {
	p.mu.Lock()
	p.seq[stream]++
	seq := p.seq[stream]
	p.mu.Unlock()
	f := p.frames[int(seq-1)%len(p.frames)]
	f.Stream, f.Seq, f.Captured, f.Complete = stream, seq, time.Now(), p.complete
	subj, err := bus.Subject(bus.FramesPrefix, stream)
	if err != nil {
		return err
	}
	msg, err := f.Msg(subj)
	if err != nil {
		return err
	}
	return p.nc.PublishMsg(msg)
}

// cpuSeconds returns the CPU time (user + system) processes have used.
func cpuSeconds(t *testing.T, procs []*proc) float64 {
	t.Helper()
	total := 0.0
	for _, p := range procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		// Fields after the command name (which ends at the last ')'): utime is the 12th, stime the 13th.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		var ut, st float64
		fmt.Sscan(f[11], &ut)
		fmt.Sscan(f[12], &st)
		total += (ut + st) / 100 // USER_HZ
	}
	return total
}

func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// throughput keeps window frames in flight and returns outcomes per second over n frames
// (after warm frames) and the CPU cores the analyzers used meanwhile.
func (p *pump) throughput(t *testing.T, procs []*proc, window, warm, n int) (fps, cores float64) {
	t.Helper()
	p.complete = true
	defer func() { p.complete = false }()
	inFlight := 0
	got := 0
	var start time.Time
	var cpu0 float64
	for sent := 0; got < warm+n; {
		for inFlight < window && sent < warm+n {
			if err := p.publish(fmt.Sprintf("t%d", sent%8)); err != nil {
				t.Fatal(err)
			}
			sent++
			inFlight++
		}
		select {
		case o := <-p.out:
			if o.res == nil {
				t.Fatalf("a frame was dropped in a throughput run (deadline is off)")
			}
			inFlight--
			got++
			if got == warm {
				start = time.Now()
				cpu0 = cpuSeconds(t, procs)
			}
		case <-time.After(time.Minute):
			t.Fatalf("no result for a minute (%d of %d)", got, warm+n)
		}
	}
	wall := time.Since(start).Seconds()
	return float64(n) / wall, (cpuSeconds(t, procs) - cpu0) / wall
}

// analyzers starts n analyzer processes, the i-th pinned to CPU i with taskset, one worker and
// one onnxruntime thread each.
func startAnalyzers(t *testing.T, bin binaries, url string, env []string, n int, extra ...string) ([]*proc, []string) {
	t.Helper()
	var procs []*proc
	var metricsURLs []string
	ports := freePorts(t, n)
	for i := 0; i < n; i++ {
		args := append([]string{"-c", fmt.Sprint(i), bin.vigil, "analyze", "--nats-url", url, "--nats-user", "vigil",
			"--workers", "1", "--heads", "default", "--on-demand-heads", "none",
			"--metrics-addr", fmt.Sprintf("127.0.0.1:%d", ports[i])}, extra...)
		p := start(t, fmt.Sprintf("analyze-%d", i), env, "taskset", args...)
		procs = append(procs, p)
		metricsURLs = append(metricsURLs, fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[i]))
	}
	for _, p := range procs {
		waitLog(t, p, "analyzer ready", 3*time.Minute)
	}
	return procs, metricsURLs
}

func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

// TestScaleBenchmark (VIGIL_SCALE_BENCH=1; make scale-test) measures, on real processes:
// analysed frames/s with one analyzer process and with two, each pinned to its own core
// (taskset) with one worker and one onnxruntime thread, saturated by replayed Megamind frames
// (default heads); then capture-to-result latency and batch sizes with two analyzers under 8
// streams at 5 fps. It logs a report and writes it as JSON to $VIGIL_SCALE_REPORT when set.
func TestScaleBenchmark(t *testing.T) {
	if os.Getenv("VIGIL_SCALE_BENCH") == "" {
		t.Skip("set VIGIL_SCALE_BENCH=1 (make scale-test) for the scaling benchmark (~3 min)")
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("taskset (util-linux) not installed")
	}
	requireVideo(t)
	deps := testenv.DepsDir(t)
	bin := build(t)
	url := benchServer(t, bin.natsnode)
	env := []string{"VIGIL_NATS_PASSWORD=" + natsPassword, "VIGIL_DEPS=" + deps}
	frames := captureFrames(t, bin, url, env)
	report := map[string]any{"frames_captured": len(frames), "cpus": cpuCount()}

	// Throughput: 1 analyzer, then 2. The machine may be shared: the CPU the analyzers actually
	// got is measured too, so frames per analyzer CPU-second show whether scaling is linear.
	fps, cores := map[int]float64{}, map[int]float64{}
	report["load_average_before"] = loadAverage()
	for _, n := range []int{1, 2} {
		procs, _ := startAnalyzers(t, bin, url, env, n, "--deadline", "0")
		p := newPump(t, url, frames)
		fps[n], cores[n] = p.throughput(t, procs, 8*n, 20, 300)
		for _, pr := range procs {
			pr.stop(t, time.Minute)
		}
		t.Logf("%d analyzer process(es): %.1f analysed frames/s on %.2f cores (%.1f frames per CPU-second)", n, fps[n], cores[n], fps[n]/cores[n])
	}
	report["frames_per_s_1_analyzer"] = fps[1]
	report["frames_per_s_2_analyzers"] = fps[2]
	report["analyzer_cores_used_1"] = cores[1]
	report["analyzer_cores_used_2"] = cores[2]
	report["speedup"] = fps[2] / fps[1]
	report["frames_per_cpu_second_1"] = fps[1] / cores[1]
	report["frames_per_cpu_second_2"] = fps[2] / cores[2]
	report["load_average_after_throughput"] = loadAverage()
	t.Logf("speedup 2 vs 1 analyzer processes: %.2fx (target 1.8x); per CPU-second %.2fx", fps[2]/fps[1], (fps[2]/cores[2])/(fps[1]/cores[1]))

	// Latency and batch sizes: 8 streams at 5 fps on two analyzers for 30 s.
	procs, metricsURLs := startAnalyzers(t, bin, url, env, 2)
	p := newPump(t, url, frames)
	const streams, rate, seconds = 8, 5, 30
	cpu0, wall0 := cpuSeconds(t, procs), time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), seconds*time.Second)
	tick := time.NewTicker(time.Second / (streams * rate))
	sent := 0
	for ctx.Err() == nil {
		select {
		case <-tick.C:
			if err := p.publish(fmt.Sprintf("live%d", sent%streams)); err != nil {
				t.Fatal(err)
			}
			sent++
		case <-ctx.Done():
		}
	}
	tick.Stop()
	cancel()
	var analyzed, delivered []float64
	drops := 0
	for got := 0; got < sent; got++ {
		select {
		case o := <-p.out:
			if o.res == nil {
				drops++
				continue
			}
			analyzed = append(analyzed, o.res.LatencyMS)
			delivered = append(delivered, float64(o.received.Sub(o.res.CapturedAt).Microseconds())/1000)
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d outcomes", got, sent)
		}
	}
	report["analyzer_cores_used_live"] = (cpuSeconds(t, procs) - cpu0) / time.Since(wall0).Seconds()
	sort.Float64s(analyzed)
	sort.Float64s(delivered)
	var batchLines []string
	for _, u := range metricsURLs {
		lines, err := scrapeAll(u, "vigil_analyze_batch_size")
		if err != nil {
			t.Fatal(err)
		}
		batchLines = append(batchLines, lines...)
	}
	for _, pr := range procs {
		pr.stop(t, time.Minute)
	}
	report["live_frames"] = sent
	report["live_drops"] = drops
	report["latency_ms_capture_to_result_p50"] = percentile(analyzed, 0.5)
	report["latency_ms_capture_to_result_p99"] = percentile(analyzed, 0.99)
	report["latency_ms_capture_to_subscriber_p50"] = percentile(delivered, 0.5)
	report["latency_ms_capture_to_subscriber_p99"] = percentile(delivered, 0.99)
	report["batch_size_metrics"] = batchLines
	report["load_average_end"] = loadAverage()
	b, _ := json.MarshalIndent(report, "", "  ")
	t.Logf("report:\n%s", b)
	if path := os.Getenv("VIGIL_SCALE_REPORT"); path != "" {
		if err := os.WriteFile(filepath.Clean(path), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A measurement, not a gate: on a shared machine the analyzers may get less than their cores
	// (analyzer_cores_used_*), and then 40 frames/s is more than they can take.
	t.Logf("%d of %d live frames dropped (deadline 2s)", drops, sent)
}

func cpuCount() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "processor\t:")
}
