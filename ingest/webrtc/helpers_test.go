package webrtc

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/ingest/webrtc/whip"
	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// quietLog shows logs with -v only.
func quietLog() *slog.Logger {
	if testing.Verbose() {
		return slog.Default()
	}
	return slog.New(slog.DiscardHandler)
}

// harness is an Endpoint on a real HTTP server on loopback. Sources arrive on the channel; the
// test owns them, and the cleanup closes any left, then the server and the endpoint.
type harness struct {
	ep      *Endpoint
	srv     *httpapi.Server
	sources chan *Source
}

func newHarness(t testing.TB, cfg whip.Config, routes ...func(*httpapi.Server)) *harness {
	t.Helper()
	h := &harness{sources: make(chan *Source, 4)}
	h.ep = &Endpoint{WHIP: cfg, Log: quietLog(), OnSource: func(s *Source) error {
		select {
		case h.sources <- s:
			return nil
		default:
			return errors.New("test consumer is full")
		}
	}}
	if err := h.ep.Initialize(); err != nil {
		t.Fatal(err)
	}
	h.srv = &httpapi.Server{Addr: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler)}
	h.ep.Mount(h.srv)
	for _, r := range routes {
		r(h.srv)
	}
	if err := h.srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.drain()
		if err := h.srv.Close(); err != nil {
			t.Error(err)
		}
		if err := h.ep.Close(); err != nil {
			t.Error(err)
		}
		if n := h.ep.Sessions(); n != 0 {
			t.Errorf("%d sessions hold resources after Close", n)
		}
	})
	return h
}

// drain closes the sources the test did not take.
func (h *harness) drain() {
	for {
		select {
		case s := <-h.sources:
			s.Close()
		default:
			return
		}
	}
}

// source waits for the next publisher's Source.
func (h *harness) source(t testing.TB, b *browser, within time.Duration) *Source {
	t.Helper()
	select {
	case s := <-h.sources:
		return s
	case <-b.done:
		t.Fatalf("chromium exited before publishing: %v", b.waitErr)
	case <-time.After(within):
		t.Fatalf("no publisher within %s", within)
	}
	return nil
}

// chromiumPath returns the Chromium binary: $VIGIL_CHROMIUM, else /usr/bin/chromium. A missing
// browser fails the test: it is part of the setup (Debian package chromium), not optional.
func chromiumPath(t testing.TB) string {
	t.Helper()
	p := os.Getenv("VIGIL_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("Chromium not found at %s (apt-get install chromium, or set VIGIL_CHROMIUM): %v", p, err)
	}
	return p
}

// syncBuffer is a bytes.Buffer safe for the process's output copiers and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.b.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// browser is a headless Chromium in its own process group, killed (the whole group) by kill
// and by the test's cleanup.
type browser struct {
	cmd     *exec.Cmd
	cancel  context.CancelFunc
	out     *syncBuffer
	done    chan struct{} // closed when the process has exited
	waitErr error
}

// startBrowser opens url in a fresh headless Chromium that fakes a camera: the y4m file when
// given, else Chromium's own test pattern.
func startBrowser(t testing.TB, url, y4m string) *browser {
	t.Helper()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(),
		"--use-fake-device-for-media-stream=fps=30", "--use-fake-ui-for-media-stream",
		"--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
		"--enable-logging=stderr", "--v=0"}
	if y4m != "" {
		args = append(args, "--use-file-for-fake-video-capture="+y4m)
	}
	args = append(args, url)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, chromiumPath(t), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	b := &browser{cmd: cmd, cancel: cancel, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = b.out, b.out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start chromium: %v", err)
	}
	go func() {
		defer close(b.done)
		b.waitErr = cmd.Wait()
	}()
	t.Cleanup(func() {
		b.kill()
		if t.Failed() {
			t.Logf("chromium output (tail):\n%s", b.out.tail(6000))
		}
	})
	return b
}

// waitOutput polls Chromium's output (its log, with the page's console) for want.
func (b *browser) waitOutput(t testing.TB, want string, within time.Duration) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(b.out.tail(1<<20), want) {
		select {
		case <-deadline.C:
			t.Fatalf("Chromium did not log %q within %s", want, within)
		case <-tick.C:
		}
	}
}

// kill SIGKILLs Chromium's process group (no goodbye to any peer) and waits for it to exit.
func (b *browser) kill() {
	b.cancel()
	<-b.done
}

// makeY4M converts the first seconds of the shared test clip into a w x h y4m for Chromium's
// fake camera.
func makeY4M(t testing.TB, w, h int, seconds string) string {
	t.Helper()
	src := filepath.Join(testenv.TestData(t), "video", "fer_test.mp4")
	out := filepath.Join(t.TempDir(), "camera.y4m")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", src, "-t", seconds,
		"-pix_fmt", "yuv420p", "-vf", "scale="+strconv.Itoa(w)+":"+strconv.Itoa(h), "-y", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

// newFacePipeline loads the real face models through the real onnxruntime (as
// analyze/pipeline_test.go does) and builds the default pipeline.
func newFacePipeline(t testing.TB) *analyze.Pipeline {
	t.Helper()
	deps := testenv.DepsDir(t)
	rt, err := onnx.NewRuntime(filepath.Join(deps, "lib", "libonnxruntime.so.1"))
	if err != nil {
		t.Fatal(err)
	}
	man, err := models.Load()
	if err != nil {
		t.Fatal(err)
	}
	ms := analyze.NewModelSet(rt, man, deps, onnx.SessionOptions{})
	t.Cleanup(func() {
		if err := ms.Close(); err != nil {
			t.Error(err)
		}
		if err := rt.Close(); err != nil {
			t.Error(err)
		}
	})
	p, err := analyze.NewPipeline(analyze.PipelineConfig{}, ms.Get)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
