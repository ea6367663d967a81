package e2e

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/analyze/analyzetest"
	"github.com/vigil-video/vigil/analyze/faceapi"
	"github.com/vigil-video/vigil/analyze/faceengine"
	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/analyze/track"
	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/ingest/streams"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/sink/eventstore"
	"github.com/vigil-video/vigil/sink/eventstore/snapshot"
	"github.com/vigil-video/vigil/sink/eventstore/sqlite"
	"github.com/vigil-video/vigil/sink/web"
	"github.com/vigil-video/vigil/sink/web/webtest"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

var quiet = slog.New(slog.DiscardHandler)

// trackedPrefix is where the track role publishes in these tests. The analyze role publishes on
// vigil.results (it has no option to publish on vigil.analyzed), so the track role reads
// vigil.results and writes here, and the UI reads here; in `vigil run` the track role writes
// vigil.results and the UI reads that (its default).
const trackedPrefix = "vigil.tracked"

// pipeline is Vigil on real parts, in this process: an embedded NATS server with JetStream, the
// analyzer with the real models, the track role matching against the gallery, ingest of the
// face video looping in real time, and one HTTP server with the face API (gallery included)
// and the web UI.
type pipeline struct {
	url   string
	ui    *web.UI
	srv   *httpapi.Server
	store *gallery.Store
	gal   *gallery.Gallery
	conn  func(name string) *nats.Conn
	ms    *analyze.ModelSet
	video string
}

// mount, when given, adds routes to the server before it starts (stream management, WHIP).
func startPipeline(t *testing.T, mount ...func(*pipeline, *httpapi.Server)) *pipeline {
	t.Helper()
	ctx := context.Background()
	p := &pipeline{video: filepath.Join(testenv.TestData(t), "video", "fer_test.mp4")}
	ns := &bus.EmbeddedServer{StoreDir: t.TempDir(), Logger: quiet}
	if err := ns.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	p.conn = func(name string) *nats.Conn {
		nc, err := bus.Connect(ctx, ns.ClientURL(), name, quiet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	p.ms = modelSet(t)

	// The gallery, shared by the face API (enrollment) and the track role (matching).
	js, err := jetstream.New(p.conn("gallery"))
	if err != nil {
		t.Fatal(err)
	}
	if p.store, err = gallery.OpenStore(ctx, js, gallery.StoreConfig{}); err != nil {
		t.Fatal(err)
	}
	p.gal = gallery.Watch(p.store, gallery.WatchConfig{Log: quiet})
	t.Cleanup(p.gal.Close)
	if err := p.gal.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}

	// The analyzer as `vigil run` runs it with tracking: cheap heads on every frame, the heavy
	// ones when the track role asks, embeddings kept for the track role.
	pl, err := analyze.NewPipeline(analyze.PipelineConfig{
		Heads:          []string{analyze.HeadEmbedding, analyze.HeadAge, analyze.HeadGender},
		OnDemand:       []string{analyze.HeadEmotion, analyze.HeadLiveness, analyze.HeadPose},
		KeepEmbeddings: true,
	}, p.ms.Get)
	if err != nil {
		t.Fatal(err)
	}
	an := &analyze.Role{Conn: p.conn("analyze"), Analyzer: pl, Workers: 2, MaxBatch: 4, MaxWait: 5 * time.Millisecond,
		Deadline: 2 * time.Second, Name: "e2e", Log: quiet}
	run(t, an.Run, an.Ready())
	tr := &track.Role{Conn: p.conn("track"), Input: bus.ResultsPrefix, Output: trackedPrefix, Matcher: p.gal, Log: quiet}
	run(t, tr.Run, tr.Ready())

	// The HTTP server: the face API and the UI.
	eng, err := faceengine.New(faceengine.Config{Models: p.ms.Get})
	if err != nil {
		t.Fatal(err)
	}
	p.srv = &httpapi.Server{Addr: "127.0.0.1:0", Log: quiet}
	if _, err := faceapi.Mount(p.srv, faceapi.Config{Engine: eng, Store: p.store, Gallery: p.gal, MaxConcurrent: 1, Log: quiet}); err != nil {
		t.Fatal(err)
	}
	if p.ui, err = web.New(web.Config{Conn: p.conn("web"), ResultsPrefix: trackedPrefix, Store: p.store, Gallery: p.gal, Log: quiet}); err != nil {
		t.Fatal(err)
	}
	p.ui.Mount(p.srv)
	for _, m := range mount {
		m(p, p.srv)
	}
	if err := p.srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.ui.Close() // first: it ends the live streams the server would otherwise wait for
		if err := p.srv.Close(); err != nil {
			t.Error(err)
		}
	})
	p.url = p.srv.URL()

	return p
}

// withStreams runs ingest as `vigil run` will: an ingest.Manager runs the streams of a
// streams.Registry (in memory), which serves /v1/streams; seed are its initial streams.
func withStreams(t *testing.T, seed ...ingest.StreamConfig) func(*pipeline, *httpapi.Server) {
	return func(p *pipeline, srv *httpapi.Server) {
		m := &ingest.Manager{Conn: p.conn("ingest"), Log: quiet}
		if err := m.Initialize(); err != nil {
			t.Fatal(err)
		}
		reg := &streams.Registry{Runner: m, Log: quiet}
		for _, c := range seed {
			reg.Seed = append(reg.Seed, ingest.SpecOf(c))
		}
		reg.Mount(srv)
		if err := reg.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := reg.Close(); err != nil {
				t.Error(err)
			}
			if err := m.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}

// withEventStore runs the event history as `vigil run` does: an SQLite event store fed by a
// consumer of the track events, with snapshots cut from a ring of recent frames, and its
// history API (/v1/history/events) on the server.
func withEventStore(t *testing.T) func(*pipeline, *httpapi.Server) {
	return func(p *pipeline, srv *httpapi.Server) {
		ctx := context.Background()
		st := &eventstore.Store{Log: quiet}
		if err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "events.db"), st); err != nil {
			t.Fatal(err)
		}
		(&eventstore.API{Store: st}).Mount(srv)
		ring := &snapshot.Ring{Conn: p.conn("snapshots"), Log: quiet}
		if err := ring.Start(ctx); err != nil {
			t.Fatal(err)
		}
		c := &eventstore.Consumer{Conn: p.conn("events"), Sinks: []eventstore.EventSink{st}, Snapshots: ring, Log: quiet}
		t.Cleanup(func() {
			if err := ring.Close(); err != nil {
				t.Error(err)
			}
			if err := st.Close(); err != nil {
				t.Error(err)
			}
		})
		run(t, c.Run, c.Ready())
	}
}

// startIngest runs ingest of streams until the test ends.
func (p *pipeline) startIngest(t *testing.T, streams ...ingest.StreamConfig) {
	t.Helper()
	in := &ingest.Role{Conn: p.conn("ingest"), Streams: streams, Log: quiet}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("ingest: %v", err)
		}
	})
}

// longVideo writes the face video repeated loops times (ffmpeg, stream copy: no re-encoding,
// timestamps continuous) and returns its path. The tests read it in real time without Loop:
// ingest's Loop with Realtime stalls for one clip length at each rewind and then bursts (the
// first frame after the rewind reports position 0, and the fallback position uses the frame
// count since open), which a live view test would measure instead of the UI.
func longVideo(t *testing.T, loops int) string {
	t.Helper()
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatalf("ffmpeg not found (make setup installs it): %v", err)
	}
	out := filepath.Join(t.TempDir(), "fer_long.mp4")
	video := filepath.Join(testenv.TestData(t), "video", "fer_test.mp4")
	cmd := exec.Command(ffmpeg, "-v", "error", "-y", "-stream_loop", strconv.Itoa(loops-1), "-i", video, "-c", "copy", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, b)
	}
	return out
}

// modelSet loads the real models through the real onnxruntime.
func modelSet(t *testing.T) *analyze.ModelSet { return analyzetest.ModelSet(t) }

// run starts a role's Run and stops it (cancel, wait) when the test ends.
func run(t *testing.T, fn func(context.Context) error, ready <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
}

// browser starts a headless Chromium with a page on url; it is closed when the test ends, after
// logging the page's console if the test failed.
func browser(t *testing.T, url string, flags ...string) *webtest.Page {
	t.Helper()
	if _, err := webtest.FindChromium(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := webtest.Start(ctx, webtest.Options{UserDataDir: t.TempDir(), Width: 1500, Height: 1000, Flags: flags})
	if err != nil {
		t.Fatal(err)
	}
	page, err := b.NewPage(ctx)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var state any
			_ = page.Eval(ctx, `({canvas: {...document.getElementById("canvas").dataset}, stage: document.getElementById("stage-msg").textContent,
				stats: document.getElementById("view-stats").textContent, latency: document.getElementById("lat-text").textContent,
				identities: document.getElementById("identities").innerText, gallery: document.getElementById("gallery-msg").textContent,
				body: {...document.body.dataset}})`, &state)
			t.Logf("page state: %+v", state)
			t.Logf("page console:\n%s", strings.Join(page.Console(), "\n"))
			path := filepath.Join(t.TempDir(), "failure.png")
			if err := page.Screenshot(ctx, path); err == nil {
				t.Logf("screenshot of the failure: %s", path)
			}
		}
		b.Close()
	})
	if err := page.Navigate(ctx, url); err != nil {
		t.Fatal(err)
	}
	if err := page.WaitFor(ctx, `document.body.dataset.ready === "1"`, 30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	return page
}

// screenshotDir is $VIGIL_SCREENSHOTS (created) or a temporary directory.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("VIGIL_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func screenshot(t *testing.T, p *webtest.Page, dir, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path := filepath.Join(dir, name)
	if err := p.Screenshot(ctx, path); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
}

// videoFrame writes frame index of the face video as a JPEG to dir and returns its path: a
// photo of the woman in it, to enroll.
func videoFrame(t *testing.T, video string, index int, dir string) string {
	t.Helper()
	vc, err := gocv.VideoCaptureFile(video)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	m := gocv.NewMat()
	defer m.Close()
	for i := 0; i <= index; i++ {
		if !vc.Read(&m) || m.Empty() {
			t.Fatalf("%s has no frame %d", video, index)
		}
	}
	buf, err := gocv.IMEncode(gocv.JPEGFileExt, m)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	path := filepath.Join(dir, "speaker.jpg")
	if err := os.WriteFile(path, buf.GetBytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
