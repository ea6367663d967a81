package e2e

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/ingest/webrtc"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/sink/web"
)

// TestUseMyCamera: "Use my camera" in a real Chromium whose camera is the face video (Chromium's
// fake capture device reading a y4m file) opens the WHIP publish page (/publish/{stream}, package
// ingest/webrtc) in the page, the browser publishes over WebRTC, the frames go through the
// analyzer and the track role, and the live view switches to that stream and draws the face
// found in the camera's picture. "Stop camera" ends the WHIP session.
//
// WHIP sources are not wired into ingest yet, so the test feeds them to NATS itself (camera
// below): sample to 5 frames/s, JPEG, publish on vigil.frames.<stream>.
func TestUseMyCamera(t *testing.T) {
	var cam *camera
	p := startPipeline(t, func(_ *pipeline, srv *httpapi.Server) {
		ep := &webrtc.Endpoint{Log: quiet, OnSource: func(s *webrtc.Source) error { return cam.add(s) }}
		if err := ep.Initialize(); err != nil {
			t.Fatal(err)
		}
		ep.Mount(srv)
		t.Cleanup(func() {
			if err := ep.Close(); err != nil {
				t.Error(err)
			}
		})
	})
	cam = newCamera(t, p.conn("camera"))
	shots := screenshotDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	page := browser(t, p.url+web.PagePath, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
		"--use-file-for-fake-video-capture="+y4m(t, p.video), "--allow-loopback-in-peer-connection",
		"--disable-features=WebRtcHideLocalIpsWithMdns")
	if err := page.WaitFor(ctx, `!document.getElementById("camera-box").hidden`, 10*time.Second, nil); err != nil {
		t.Fatal(err) // the page did not find the publish page
	}
	start := time.Now()
	if err := page.Click(ctx, "#camera-btn"); err != nil {
		t.Fatal(err)
	}
	var stream string
	if err := page.WaitFor(ctx, `document.body.dataset.camera`, 5*time.Second, &stream); err != nil {
		t.Fatal(err)
	}
	if err := page.WaitFor(ctx, `document.getElementById("camera-frame").contentDocument.getElementById("state").textContent === "live"`,
		60*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	var labels string
	if err := page.WaitFor(ctx, `(() => { const c = document.getElementById("canvas");
		return c.dataset.stream === "`+stream+`" && +c.dataset.drawn > 10 && /#\d+/.test(c.dataset.labels) && c.dataset.labels; })()`,
		90*time.Second, &labels); err != nil {
		t.Fatal(err)
	}
	t.Logf("camera stream %s analysed and drawn %v after the click; overlay labels %s", stream, time.Since(start).Round(10*time.Millisecond), labels)
	screenshot(t, page, shots, "camera.png")

	// Without an event store, the events tab shows the live feed the UI holds, with snapshots.
	if err := page.Click(ctx, `#tabs button[data-tab="events"]`); err != nil {
		t.Fatal(err)
	}
	if err := page.WaitFor(ctx, `document.body.dataset.history === "live" &&
		[...document.querySelectorAll('#ev-table tbody tr[data-kind="face.appeared"] img')].some((i) => i.complete && i.naturalWidth > 0)`,
		30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if err := page.Click(ctx, `#tabs button[data-tab="live"]`); err != nil {
		t.Fatal(err)
	}

	if err := page.Click(ctx, "#camera-stop"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the WHIP session to end", func() bool { return cam.ended() == 1 })
	if err := page.WaitFor(ctx, `!document.getElementById("camera-btn").hidden`, 5*time.Second, nil); err != nil {
		t.Fatal(err)
	}
}

// y4m converts the face video to the y4m file Chromium's fake camera reads (it loops it).
func y4m(t *testing.T, video string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "camera.y4m")
	if b, err := exec.Command("ffmpeg", "-v", "error", "-y", "-i", video, "-pix_fmt", "yuv420p", out).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, b)
	}
	return out
}

// camera publishes the frames of WHIP sources on NATS, as ingest will: one goroutine per
// source, sampled to 5 frames/s, JPEG-encoded. The test's cleanup stops them and waits.
type camera struct {
	nc     *nats.Conn
	ctx    context.Context
	wg     sync.WaitGroup
	mu     sync.Mutex
	endedN int
}

func newCamera(t *testing.T, nc *nats.Conn) *camera {
	ctx, cancel := context.WithCancel(context.Background())
	c := &camera{nc: nc, ctx: ctx}
	t.Cleanup(func() {
		cancel()
		c.wg.Wait()
	})
	return c
}

func (c *camera) ended() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endedN
}

func (c *camera) add(s *webrtc.Source) error {
	subj, err := bus.Subject(bus.FramesPrefix, s.Stream())
	if err != nil {
		return err
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer s.Close()
		sampler := ingest.NewSampler(5)
		var seq uint64
		for {
			raw, err := s.Read(c.ctx)
			if err != nil {
				if errors.Is(err, ingest.ErrEndOfStream) {
					c.mu.Lock()
					c.endedN++
					c.mu.Unlock()
				}
				return
			}
			if !sampler.Keep(raw.Media) {
				raw.Mat.Close()
				continue
			}
			buf, err := gocv.IMEncode(gocv.JPEGFileExt, raw.Mat)
			w, h := raw.Mat.Cols(), raw.Mat.Rows()
			raw.Mat.Close()
			if err != nil {
				continue
			}
			seq++
			m, err := frame.Frame{Stream: s.Stream(), Seq: seq, Captured: raw.Captured, Width: w, Height: h, Encoding: frame.EncodingJPEG,
				Data: append([]byte(nil), buf.GetBytes()...)}.Msg(subj)
			buf.Close()
			if err == nil {
				_ = c.nc.PublishMsg(m)
			}
		}
	}()
	return nil
}
