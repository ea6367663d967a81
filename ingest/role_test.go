package ingest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/analyze/analyzetest"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func startNATS(t *testing.T) (*nats.Conn, func(string) *nats.Conn) {
	t.Helper()
	srv := &bus.EmbeddedServer{}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	conn := func(name string) *nats.Conn {
		nc, err := bus.Connect(context.Background(), srv.ClientURL(), name, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	return conn("ingest"), conn
}

// startAnalyzer runs the real analyze role (detector and landmarks only) on the bus.
func startAnalyzer(t *testing.T, nc *nats.Conn) {
	t.Helper()
	ms := analyzetest.ModelSet(t)
	p, err := analyze.NewPipeline(analyze.PipelineConfig{}, ms.Get)
	if err != nil {
		t.Fatal(err)
	}
	role := &analyze.Role{Conn: nc, Analyzer: p, Workers: 2}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- role.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	<-role.Ready()
}

// observeFrames subscribes nc to every stream's frames, confirmed by the server.
func observeFrames(t *testing.T, nc *nats.Conn) *nats.Subscription {
	t.Helper()
	sub, err := nc.SubscribeSync(bus.All(bus.FramesPrefix))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

func faceVideo(t *testing.T) string {
	return filepath.Join(testenv.TestData(t), "video", "fer_test.mp4")
}

// TestOnceFileThroughAnalyzer: a recording read once is published completely, never more than
// Window frames ahead of the analyzer's results, and its end is announced with the frame count.
func TestOnceFileThroughAnalyzer(t *testing.T) {
	testenv.NeedsTestData(t)
	nc, conn := startNATS(t)
	startAnalyzer(t, conn("analyze"))
	obs := conn("observer")
	var mu sync.Mutex
	var published, outcomes, maxInFlight uint64
	var eos *result.EndOfStream
	sub, err := obs.Subscribe("vigil.>", func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.HasPrefix(m.Subject, bus.FramesPrefix+"."):
			published++
			maxInFlight = max(maxInFlight, published-outcomes)
		case strings.HasPrefix(m.Subject, bus.ResultsPrefix+"."), strings.HasPrefix(m.Subject, bus.DropsPrefix+"."):
			outcomes++
		case strings.HasPrefix(m.Subject, bus.EOSPrefix+"."):
			e, err := result.ParseEndOfStream(m.Data)
			if err != nil {
				t.Error(err)
			}
			eos = &e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := obs.Flush(); err != nil {
		t.Fatal(err)
	}
	role := &Role{Conn: nc, Streams: []StreamConfig{{Name: "fer", Source: faceVideo(t), Once: true, Window: 4}}}
	if err := role.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, "end of stream", func() bool { mu.Lock(); defer mu.Unlock(); return eos != nil })
	mu.Lock()
	defer mu.Unlock()
	st := role.Stats()["fer"]
	if eos.Frames != st.Published || st.Published < 20 || st.Published > 26 {
		t.Fatalf("end of stream announced %d frames, published %d (want about 23 for 4.6 s at 5 fps)", eos.Frames, st.Published)
	}
	if st.Decoded <= st.Published || st.Skipped != st.Decoded-st.Published {
		t.Fatalf("stats %+v: sampling did not skip frames", st)
	}
	if maxInFlight > 4+1 { // +1: the observer may see a frame before the outcome that freed its slot
		t.Fatalf("%d frames in flight, window is 4", maxInFlight)
	}
}

// TestLoopFile keeps publishing past the file's end with increasing sequence numbers, until
// cancelled.
func TestLoopFile(t *testing.T) {
	testenv.NeedsTestData(t)
	nc, conn := startNATS(t)
	frames := observeFrames(t, conn("observer"))
	// fer_test.mp4 has ~115 frames; at 30 fps of media time every frame is kept.
	role := &Role{Conn: nc, Streams: []StreamConfig{{Name: "loop", Source: faceVideo(t), Loop: true, FPS: 30, MaxWidth: 320, MaxHeight: 240}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- role.Run(ctx) }()
	var last uint64
	for last < 200 {
		m, err := frames.NextMsg(30 * time.Second)
		if err != nil {
			t.Fatalf("after seq %d: %v", last, err)
		}
		f, err := frame.FromMsg(m)
		if err != nil {
			t.Fatal(err)
		}
		if f.Seq != last+1 {
			t.Fatalf("seq %d after %d", f.Seq, last)
		}
		if f.Width > 320 || f.Height > 240 {
			t.Fatalf("frame %dx%d exceeds the 320x240 bound", f.Width, f.Height)
		}
		last = f.Seq
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
}

// TestRealtimePacing: a paced file is never published faster than its own clock.
func TestRealtimePacing(t *testing.T) {
	testenv.NeedsTestData(t)
	nc, _ := startNATS(t)
	start := time.Now()
	role := &Role{Conn: nc, Streams: []StreamConfig{{Name: "paced", Source: faceVideo(t), Realtime: true, FPS: 5}}}
	if err := role.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 4*time.Second {
		t.Fatalf("a 4.6 s clip paced in real time took %s", el)
	}
}

func TestStreamConfigValidate(t *testing.T) {
	base := StreamConfig{Name: "ok", Source: "/tmp/x.mp4"}
	base.SetDefaults()
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(*StreamConfig){
		"name":    func(c *StreamConfig) { c.Name = "a.>" },
		"long":    func(c *StreamConfig) { c.Name = strings.Repeat("x", 10240) },
		"scheme":  func(c *StreamConfig) { c.Source = "gopher://x" },
		"fps":     func(c *StreamConfig) { c.FPS = -1 },
		"size":    func(c *StreamConfig) { c.MaxWidth = 4 },
		"quality": func(c *StreamConfig) { c.JPEGQuality = 101 },
	}
	for name, mutate := range bad {
		c := base
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted %+v", name, c)
		}
	}
	// Two streams with one name are refused by the role before anything starts.
	nc, _ := startNATS(t)
	err := (&Role{Conn: nc, Streams: []StreamConfig{base, base}}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate stream: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	notVideo := filepath.Join(dir, "notes.mp4")
	if err := os.WriteFile(notVideo, []byte(strings.Repeat("text ", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	for spec, want := range map[string]string{
		"/nonexistent.mp4": "no such file",
		dir:                "directory",
		"ftp://h/x":        "unsupported URL scheme",
		notVideo:           "corrupt",
	} {
		src, err := Open(ctx, spec, OpenOptions{})
		if err == nil {
			// OpenCV may open garbage and fail on the first read instead.
			_, err = src.Read(ctx)
			src.Close()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q): %v, want an error mentioning %q", spec, err, want)
		}
	}
}

// TestLoopTimelineMonotonic: a looped file's media time keeps increasing across the rewind by
// about one frame period, so real-time pacing neither stalls nor bursts there.
func TestLoopTimelineMonotonic(t *testing.T) {
	src, err := Open(context.Background(), faceVideo(t), OpenOptions{Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var last time.Duration
	for i := 0; i < 300; i++ { // more than two passes of the ~115-frame clip
		raw, err := src.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		raw.Mat.Close()
		if i > 0 {
			step := raw.Media - last
			if step <= 0 || step > 200*time.Millisecond {
				t.Fatalf("frame %d: media time %s after %s (step %s)", i, raw.Media, last, step)
			}
		}
		last = raw.Media
	}
}

func TestSampleFile(t *testing.T) {
	mats, err := SampleFile(context.Background(), faceVideo(t), 10)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, m := range mats {
			m.Close()
		}
	}()
	if len(mats) != 10 || mats[0].Empty() {
		t.Fatalf("%d frames", len(mats))
	}
	if _, err := SampleFile(context.Background(), "/nonexistent.mp4", 3); err == nil {
		t.Fatal("sampled a missing file")
	}
}
