package webrtc

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/ingest/webrtc/whip"
	"github.com/vigil-video/vigil/pkg/httpapi"
)

// BenchmarkGlassToMat measures glass-to-Mat latency at 720p30 through the whole path: a real
// headless Chromium paints its wall clock into a 1280x720 canvas (testdata/clock.html) every
// animation frame and publishes the canvas over WHIP; each iteration reads one frame from the
// Source, decodes the painted time and subtracts it from the arrival time (both clocks are the
// same host's). Reported: latency p50/p99/max, frames per second, and the CPU this process spent
// per frame (pion, SRTP, pipe, GStreamer depacketise + decode + BGR conversion; not Chromium).
//
//	go test -tags matprofile -run '^$' -bench GlassToMat -benchtime 300x ./ingest/webrtc/
func BenchmarkGlassToMat(b *testing.B) {
	page, err := os.ReadFile(filepath.Join("testdata", "clock.html"))
	if err != nil {
		b.Fatal(err)
	}
	serve := func(srv *httpapi.Server) {
		srv.HandleFunc("GET /bench/clock/{stream}", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(page)
		})
	}
	for _, codec := range []string{"VP8", "H264"} {
		b.Run(codec, func(b *testing.B) {
			hs := newHarness(b, whip.Config{}, serve)
			start := time.Now()
			br := startBrowser(b, hs.srv.URL()+"/bench/clock/bench?codec="+codec, "")
			src := hs.source(b, br, 30*time.Second)
			defer src.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()

			// Warm up: wait for full-size frames, then let the rate settle for 2 s.
			var full time.Duration
			var warm time.Time
			for warm.IsZero() || time.Since(warm) < 2*time.Second {
				raw, err := src.Read(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if raw.Mat.Cols() == 1280 && raw.Mat.Rows() == 720 && warm.IsZero() {
					warm = time.Now()
					full = time.Since(start)
				}
				raw.Mat.Close()
			}
			if got := src.Codec(); got != codec {
				b.Fatalf("negotiated %s, want %s", got, codec)
			}

			var lat []float64
			unreadable, small := 0, 0
			cpu0, t0 := cpuTime(b), time.Now()
			frames0 := src.Stats().Frames
			for b.Loop() {
				raw, err := src.Read(ctx)
				if err != nil {
					b.Fatal(err)
				}
				arrived := time.Now()
				if raw.Mat.Cols() != 1280 || raw.Mat.Rows() != 720 {
					small++
				}
				if ms, ok := readClock(raw.Mat); ok {
					d := int32(uint32(arrived.UnixMilli()) - ms)
					lat = append(lat, float64(d))
				} else {
					unreadable++
				}
				raw.Mat.Close()
			}
			cpu, wall := cpuTime(b)-cpu0, time.Since(t0)
			frames := src.Stats().Frames - frames0
			if len(lat) < max(1, b.N/2) {
				b.Fatalf("the clock was readable in %d of %d frames", len(lat), b.N)
			}
			slices.Sort(lat)
			q := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(lat[len(lat)-1], "max-ms")
			b.ReportMetric(float64(frames)/wall.Seconds(), "frames/s")
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(frames), "cpu-ms/frame")
			st := src.Stats()
			b.Logf("%s: %d frames in %s, clock unreadable in %d, %d not 1280x720; first 1280x720 frame %s after start; stats %+v",
				codec, frames, wall.Round(time.Millisecond), unreadable, small, full.Round(time.Millisecond), st)
		})
	}
}

// readClock decodes the wall-clock milliseconds clock.html paints: bit i is the 40x40 block at
// x = 40i on the top row, its inverse below. A frame where any pair lacks contrast is refused.
func readClock(m gocv.Mat) (uint32, bool) {
	if m.Cols() != 1280 || m.Rows() < 80 {
		return 0, false
	}
	gray := func(row, col int) int {
		v := m.GetVecbAt(row, col)
		return (int(v[0]) + int(v[1]) + int(v[2])) / 3
	}
	var v uint32
	for i := range 32 {
		top, bottom := gray(20, 40*i+20), gray(60, 40*i+20)
		if d := top - bottom; d > -80 && d < 80 {
			return 0, false
		}
		v <<= 1
		if top > bottom {
			v |= 1
		}
	}
	return v, true
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
