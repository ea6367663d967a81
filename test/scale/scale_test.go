package scale

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// demoVideo is Debian's opencv-doc Megamind.avi (11.3 s, 720x528, one or two faces).
const demoVideo = "/usr/share/doc/opencv-doc/examples/data/Megamind.avi"

func requireVideo(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(demoVideo); err != nil {
		t.Fatalf("demo video missing: run \"make setup\" (apt package opencv-doc): %v", err)
	}
}

// pipelineConfig is the configuration every process of a test reads: the cluster, replicas 3,
// live (paced, not looping) streams, detection only on one worker per analyzer process.
func pipelineConfig(c *cluster, jsonl string, streams []string, source string, await bool) map[string]any {
	var list []map[string]any
	for _, s := range streams {
		list = append(list, map[string]any{"name": s, "source": source})
	}
	sinkCfg := map[string]any{"jsonl": jsonl, "jsonl_append": true, "quiet": true, "lost_after": "5s", "ack_wait": "5s"}
	if await {
		sinkCfg["await"] = streams
	}
	return map[string]any{
		"nats":      map[string]any{"url": c.url(), "user": "vigil"},
		"jetstream": map[string]any{"replicas": 3, "results": map[string]any{"max_age": "1h", "max_bytes": "256MiB"}},
		"ingest":    map[string]any{"streams": list, "fps": 5, "loop": false, "realtime": true},
		"analyze":   map[string]any{"heads": "none", "on_demand_heads": "none", "workers": 1, "deadline": "3s"},
		"sink":      sinkCfg,
	}
}

var summaryRE = regexp.MustCompile(`msg="stream summary" stream=(\S+) results=(\d+) faces=\d+ drops=(\d+)`)

// sinkSummary parses the sink's per-stream summary lines (results, drops including lost).
func sinkSummary(log string) map[string][2]int {
	out := map[string][2]int{}
	for _, m := range summaryRE.FindAllStringSubmatch(log, -1) {
		r, _ := strconv.Atoi(m[2])
		d, _ := strconv.Atoi(m[3])
		out[m[1]] = [2]int{r, d}
	}
	return out
}

// TestScaleKillAnalyzer: a 3-node NATS cluster and ingest, two analyzers and a sink as separate
// processes on a recorded face video (two live streams). One analyzer is killed with SIGKILL
// mid-stream: the other carries on alone, every published frame ends with a result or a counted
// drop (frames the killed analyzer held are counted "lost" by the sink), no result is written
// twice, and the survivor drains on SIGTERM.
func TestScaleKillAnalyzer(t *testing.T) {
	requireVideo(t)
	deps := testenv.DepsDir(t)
	bin := build(t)
	c := startCluster(t, bin.natsnode, 3)
	dir := t.TempDir()
	jsonl := filepath.Join(dir, "results.jsonl")
	streams := []string{"cam-a", "cam-b"}
	conf := writeConfig(t, dir, pipelineConfig(c, jsonl, streams, demoVideo, true))
	env := []string{"VIGIL_NATS_PASSWORD=" + natsPassword, "VIGIL_DEPS=" + deps}

	sinkP := start(t, "sink", env, bin.vigil, "sink", "--config", conf)
	waitLog(t, sinkP, "sink consuming", time.Minute)
	ports := freePorts(t, 2)
	anA := start(t, "analyze-a", env, bin.vigil, "analyze", "--config", conf, "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", ports[0]))
	anB := start(t, "analyze-b", env, bin.vigil, "analyze", "--config", conf, "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	waitLog(t, anA, "analyzer ready", 2*time.Minute)
	waitLog(t, anB, "analyzer ready", 2*time.Minute)
	ingestP := start(t, "ingest", env, bin.vigil, "ingest", "--config", conf)

	metricsA := fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[0])
	testenv.Eventually(t, time.Minute, "analyzer A to analyse frames", func() bool {
		v, err := scrape(metricsA, "vigil_analyze_frames_analyzed_total")
		return err == nil && v >= 5
	})
	testenv.Eventually(t, time.Minute, "20 results in the sink", func() bool { return countLines(jsonl) >= 20 })
	// Freeze A first, as a hung analyzer would be: the server keeps handing it frames (its share
	// of the queue group) until it dies with them, so the kill certainly loses frames in flight.
	if err := anA.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := countLines(jsonl)
	testenv.Eventually(t, time.Minute, "the other analyzer to carry on while A is frozen", func() bool { return countLines(jsonl) >= frozen+8 })
	anA.kill()
	killedAt := time.Now().UTC()
	t.Logf("analyzer A frozen at %d results, killed with SIGKILL at %d", frozen, countLines(jsonl))

	if err := ingestP.wait(2 * time.Minute); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	if err := sinkP.wait(time.Minute); err != nil {
		t.Fatalf("sink (--await both streams): %v", err)
	}
	anB.stop(t, 30*time.Second)
	if !strings.Contains(anB.logText(), "analyzer summary") {
		t.Fatalf("analyzer B did not drain and report:\n%s", tail(anB.logText(), 2000))
	}

	nc := c.connect()
	defer nc.Close()
	st := readStored(t, nc)
	written := readJSONL(t, jsonl)
	seen := map[string]bool{}
	afterKill := map[string]int{}
	for _, r := range written {
		key := fmt.Sprintf("%s/%d", r.Stream, r.Seq)
		if seen[key] {
			t.Errorf("result %s written twice", key)
		}
		seen[key] = true
		if r.AnalyzedAt.After(killedAt.Add(time.Second)) {
			afterKill[r.Analyzer]++
		}
	}
	if len(afterKill) != 1 {
		t.Errorf("results after the kill came from %v, want only the surviving analyzer", afterKill)
	}
	summary := sinkSummary(sinkP.logText())
	totalLost := 0
	for _, s := range streams {
		frames := st.frames[s]
		results := len(st.results[s])
		drops := 0
		for _, n := range st.drops[s] {
			drops += n
		}
		for seq, n := range st.results[s] {
			if n != 1 {
				t.Errorf("%s seq %d stored %d times", s, seq, n)
			}
		}
		lost := int(frames) - results - drops
		totalLost += lost
		t.Logf("stream %s: %d frames published, %d results, %d drops %v, %d lost with the killed analyzer", s, frames, results, drops, st.drops[s], lost)
		if frames < 50 {
			t.Errorf("stream %s: %d frames, want the whole 11 s at 5 fps", s, frames)
		}
		if lost < 0 {
			t.Errorf("stream %s: more outcomes than frames", s)
		}
		// Lost frames are what the killed analyzer held: its queue (16) and batch (4) at most.
		if lost > 20 {
			t.Errorf("stream %s: %d frames lost, more than one analyzer can hold", s, lost)
		}
		if got := summary[s]; got[0] != results || got[0]+got[1] != int(frames) {
			t.Errorf("stream %s: sink summary results+drops %v, stored %d results of %d frames", s, got, results, frames)
		}
	}
	if totalLost == 0 {
		t.Errorf("no frame was lost with the frozen, killed analyzer: the test did not exercise the lost accounting")
	} else if !strings.Contains(sinkP.logText(), "frames lost") {
		t.Errorf("%d frames lost but the sink did not report them", totalLost)
	}
	stored := 0
	for _, m := range st.results {
		stored += len(m)
	}
	if len(written) != stored {
		t.Errorf("sink wrote %d results, JetStream stored %d", len(written), stored)
	}
}

// longVideo concatenates the demo video n times (stream copy) into dir.
func longVideo(t *testing.T, dir string, n int) string {
	t.Helper()
	out := filepath.Join(dir, "long.avi")
	cmd := exec.Command("ffmpeg", "-v", "error", "-stream_loop", strconv.Itoa(n-1), "-i", demoVideo, "-c", "copy", out)
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, o)
	}
	return out
}

// streamLeader returns the index of the node leading VIGIL_RESULTS.
func streamLeader(t *testing.T, c *cluster) int {
	t.Helper()
	nc := c.connect()
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, bus.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	info := s.CachedInfo()
	if info.Cluster == nil || nodeIndex(info.Cluster.Leader) < 0 {
		t.Fatalf("no leader for %s: %+v", bus.ResultsStream, info.Cluster)
	}
	return nodeIndex(info.Cluster.Leader)
}

// TestScaleFailover (VIGIL_SCALE_TEST=1; make scale-test): three live streams of 34 s through
// a 3-node cluster with replicas 3. Mid-stream: kill -9 an analyzer; kill -9 the NATS node
// leading VIGIL_RESULTS (the pipeline continues on the other two; the node is restarted later
// and rejoins); kill -9 the sink and start a new one with the same durable consumer (it resumes
// where the first stopped). At the end every result JetStream acknowledged to an analyzer is in
// the sink's output, duplicates are at most the results the killed sink had written but not yet
// acknowledged, and every frame has a result, a drop or is counted lost.
func TestScaleFailover(t *testing.T) {
	if os.Getenv("VIGIL_SCALE_TEST") == "" {
		t.Skip("set VIGIL_SCALE_TEST=1 (make scale-test) for the failover test (~2 min)")
	}
	requireVideo(t)
	deps := testenv.DepsDir(t)
	bin := build(t)
	dir := t.TempDir()
	video := longVideo(t, dir, 3)
	c := startCluster(t, bin.natsnode, 3)
	jsonl := filepath.Join(dir, "results.jsonl")
	streams := []string{"s1", "s2", "s3"}
	conf := writeConfig(t, dir, pipelineConfig(c, jsonl, streams, video, false))
	env := []string{"VIGIL_NATS_PASSWORD=" + natsPassword, "VIGIL_DEPS=" + deps}

	sink1 := start(t, "sink-1", env, bin.vigil, "sink", "--config", conf)
	waitLog(t, sink1, "sink consuming", time.Minute)
	ports := freePorts(t, 2)
	anA := start(t, "analyze-a", env, bin.vigil, "analyze", "--config", conf)
	anB := start(t, "analyze-b", env, bin.vigil, "analyze", "--config", conf, "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", ports[0]))
	waitLog(t, anA, "analyzer ready", 2*time.Minute)
	waitLog(t, anB, "analyzer ready", 2*time.Minute)
	ingestP := start(t, "ingest", env, bin.vigil, "ingest", "--config", conf)
	metricsB := fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[0])

	testenv.Eventually(t, time.Minute, "30 results", func() bool { return countLines(jsonl) >= 30 })
	anA.kill()
	t.Logf("analyzer A killed at %d results", countLines(jsonl))

	testenv.Eventually(t, time.Minute, "60 results", func() bool { return countLines(jsonl) >= 60 })
	leader := streamLeader(t, c)
	c.nodes[leader].kill()
	t.Logf("NATS node n%d (VIGIL_RESULTS leader) killed at %d results", leader+1, countLines(jsonl))

	before := countLines(jsonl)
	testenv.Eventually(t, time.Minute, "results to keep coming on two nodes", func() bool { return countLines(jsonl) >= before+30 })
	sink1.kill()
	killedSinkLines := countLines(jsonl)
	t.Logf("sink killed at %d results", killedSinkLines)
	c.start(leader) // the node comes back and catches up
	sink2 := start(t, "sink-2", env, bin.vigil, "sink", "--config", conf)
	waitLog(t, sink2, "sink consuming", time.Minute)
	c.waitHealthy(leader)

	if err := ingestP.wait(3 * time.Minute); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	nc := c.connect()
	defer nc.Close()
	testenv.Eventually(t, time.Minute, "the analyzer to finish and the sink to catch up", func() bool {
		q, _ := scrape(metricsB, "vigil_analyze_queue_frames")
		return q == 0 && consumerCaughtUp(nc, "vigil-sink")
	})
	anB.stop(t, 30*time.Second)
	sink2.stop(t, 30*time.Second)
	if v, err := scrape(metricsB, "vigil_analyze_publish_errors_total"); err == nil && v != 0 {
		t.Errorf("analyzer B failed to publish %v results", v)
	}

	st := readStored(t, nc)
	written := readJSONL(t, jsonl)
	copies := map[string]int{}
	for _, r := range written {
		copies[fmt.Sprintf("%s/%d", r.Stream, r.Seq)]++
	}
	dups := 0
	for _, n := range copies {
		dups += n - 1
	}
	t.Logf("sink output: %d lines, %d distinct results, %d written twice (the killed sink's unacknowledged window)", len(written), len(copies), dups)
	if dups > 1024 { // sink.max_ack_pending
		t.Errorf("%d duplicates, more than the unacknowledged window", dups)
	}
	for _, s := range streams {
		frames := st.frames[s]
		drops := 0
		for _, n := range st.drops[s] {
			drops += n
		}
		missing := 0
		for seq, n := range st.results[s] {
			if n != 1 {
				t.Errorf("%s seq %d stored %d times", s, seq, n)
			}
			if copies[fmt.Sprintf("%s/%d", s, seq)] == 0 {
				missing++
			}
		}
		lost := int(frames) - len(st.results[s]) - drops
		t.Logf("stream %s: %d frames, %d results stored, %d drops %v, %d lost, %d stored results missing from the sink",
			s, frames, len(st.results[s]), drops, st.drops[s], lost, missing)
		if frames < 150 {
			t.Errorf("stream %s: %d frames, want the whole 34 s at 5 fps", s, frames)
		}
		if missing > 0 {
			t.Errorf("stream %s: %d acknowledged results never reached the sink", s, missing)
		}
		if lost < 0 || lost > 30 {
			t.Errorf("stream %s: %d frames lost (want only what the killed analyzer held)", s, lost)
		}
	}
}
