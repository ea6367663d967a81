package webrtc

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/ingest/webrtc/whip"
)

// TestBrowserPublishes: a real headless Chromium opens /publish/cam-1 with a 640x360 recording
// of a face as its camera and publishes it with VP8, then with H.264 (Debian's Chromium offers
// both). Frames come out of the Source at the recording's size, the real face pipeline finds the
// face in them, and DELETE ends the Source with an end-of-stream error.
func TestBrowserPublishes(t *testing.T) {
	const w, h = 640, 360
	y4m := makeY4M(t, w, h, "3")
	faces := newFacePipeline(t)
	for _, codec := range []string{"VP8", "H264"} {
		t.Run(codec, func(t *testing.T) {
			hs := newHarness(t, whip.Config{})
			start := time.Now()
			b := startBrowser(t, hs.srv.URL()+"/publish/cam-1?codec="+strings.ToLower(codec), y4m)
			src := hs.source(t, b, 30*time.Second)
			defer src.Close()
			if src.Stream() != "cam-1" || !src.Live() {
				t.Fatalf("stream %q, live %v", src.Stream(), src.Live())
			}
			offered := time.Since(start)

			// Collect frames at the full size, a few apart so they show different moments.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var kept []gocv.Mat
			defer func() {
				for _, m := range kept {
					m.Close()
				}
			}()
			sizes := map[[2]int]int{}
			var first, full time.Duration
			for n := 0; len(kept) < 8; n++ {
				raw, err := src.Read(ctx)
				if err != nil {
					t.Fatalf("Read after %d frames (sizes %v): %v", n, sizes, err)
				}
				if first == 0 {
					first = time.Since(start)
				}
				if raw.Mat.Type() != gocv.MatTypeCV8UC3 {
					raw.Mat.Close()
					t.Fatalf("frame type %v, want 8-bit BGR", raw.Mat.Type())
				}
				sz := [2]int{raw.Mat.Cols(), raw.Mat.Rows()}
				sizes[sz]++
				if sz == [2]int{w, h} && full == 0 {
					full = time.Since(start)
				}
				if sz == [2]int{w, h} && sizes[sz]%5 == 1 {
					kept = append(kept, raw.Mat)
				} else {
					raw.Mat.Close()
				}
			}
			if got := src.Codec(); got != codec {
				t.Fatalf("negotiated %s, want %s", got, codec)
			}

			// The page shows the state; Chromium logs the page's console.
			b.waitOutput(t, "vigil-publish state: live ("+codec+" ", 10*time.Second)

			ff, err := faces.Analyze(ctx, kept)
			if err != nil {
				t.Fatal(err)
			}
			withFace := 0
			for _, f := range ff {
				if len(f.Faces) > 0 {
					withFace++
				}
			}
			if withFace < len(kept)/2 {
				t.Fatalf("faces found in %d of %d frames, want at least half", withFace, len(kept))
			}

			res, err := http.NewRequest(http.MethodDelete, hs.srv.URL()+"/whip/cam-1/"+src.SessionID(), nil)
			if err != nil {
				t.Fatal(err)
			}
			del, err := http.DefaultClient.Do(res)
			if err != nil {
				t.Fatal(err)
			}
			del.Body.Close()
			if del.StatusCode != http.StatusOK {
				t.Fatalf("DELETE: %s", del.Status)
			}
			deleted := time.Now()
			if err := readUntilError(t, src, 5*time.Second); !errors.Is(err, ingest.ErrEndOfStream) || !strings.Contains(err.Error(), "DELETE") {
				t.Fatalf("Read after DELETE = %v, want end of stream", err)
			}
			st := src.Stats()
			t.Logf("%s: offer %s, first frame %s, first %dx%d frame %s after Chromium started; faces in %d/%d frames; "+
				"sizes %v; Read ended %s after DELETE; stats %+v",
				codec, offered.Round(time.Millisecond), first.Round(time.Millisecond), w, h, full.Round(time.Millisecond),
				withFace, len(kept), sizes, time.Since(deleted).Round(time.Millisecond), st)
		})
	}
}

// readUntilError reads (and releases) frames until Read fails, within d.
func readUntilError(t *testing.T, src *Source, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		raw, err := src.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("Read still returning frames or blocking %s later", d)
			}
			return err
		}
		raw.Mat.Close()
	}
}

// TestBrowserKilled: killing Chromium (SIGKILL: no goodbye) ends the session within ~10 s
// through the ICE timeouts, and Read returns a publisher-lost error, not end of stream.
func TestBrowserKilled(t *testing.T) {
	hs := newHarness(t, whip.Config{})
	b := startBrowser(t, hs.srv.URL()+"/publish/cam-2", "")
	src := hs.source(t, b, 30*time.Second)
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := src.Read(ctx)
	if err != nil {
		t.Fatalf("first frame: %v", err)
	}
	raw.Mat.Close()
	b.kill()
	killed := time.Now()
	err = readUntilError(t, src, 15*time.Second)
	took := time.Since(killed)
	if !errors.Is(err, whip.ErrPeerLost) || errors.Is(err, ingest.ErrEndOfStream) {
		t.Fatalf("Read after the kill = %v, want publisher lost", err)
	}
	if took > 11*time.Second {
		t.Fatalf("noticed after %s, want within ~10 s", took)
	}
	t.Logf("Read failed %s after the kill: %v", took.Round(time.Millisecond), err)
}

// TestSlowReaderAndShutdown: a reader that falls behind gets the newest frame, not a backlog
// (the others are dropped and counted), and closing the Endpoint while a Read waits ends that
// Read with end of stream; the Source's Close afterwards is a no-op.
func TestSlowReaderAndShutdown(t *testing.T) {
	hs := newHarness(t, whip.Config{})
	b := startBrowser(t, hs.srv.URL()+"/publish/cam-3", "")
	src := hs.source(t, b, 30*time.Second)
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := src.Read(ctx)
	if err != nil {
		t.Fatalf("first frame: %v", err)
	}
	raw.Mat.Close()

	// Don't read while 10 frames are decoded; the next Read must return a fresh one.
	dropped := src.Stats().Dropped
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for src.Stats().Dropped < dropped+10 {
		select {
		case <-deadline.C:
			t.Fatalf("only %d frames dropped in 10 s", src.Stats().Dropped-dropped)
		case <-tick.C:
		}
	}
	raw, err = src.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw.Mat.Close()
	if age := time.Since(raw.Captured); age > 100*time.Millisecond {
		t.Fatalf("after falling behind, Read returned a frame %s old", age)
	}

	// Read in another goroutine while the endpoint shuts down.
	done := make(chan error, 1)
	go func() {
		for {
			raw, err := src.Read(ctx)
			if err != nil {
				done <- err
				return
			}
			raw.Mat.Close()
		}
	}()
	if err := hs.ep.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ingest.ErrEndOfStream) || !strings.Contains(err.Error(), "shutting down") {
			t.Fatalf("Read during shutdown = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still running 5 s after the endpoint closed")
	}
	if hs.ep.Sessions() != 0 {
		t.Fatalf("%d sessions after Close", hs.ep.Sessions())
	}
}
