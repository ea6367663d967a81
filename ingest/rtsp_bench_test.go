package ingest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-video/vigil/ingest/rtsptest"
)

// cpuTime returns the process's user+system CPU time so far (all threads: Go and OpenCV's).
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var benchLine = regexp.MustCompile(`bench: utime=([0-9.]+)s stime=([0-9.]+)s rtime=([0-9.]+)s`)

// parseFFmpegBench returns the CPU (user+system) and wall time of `ffmpeg -benchmark` output.
func parseFFmpegBench(out string) (cpu, wall time.Duration, err error) {
	m := benchLine.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, errors.New("no \"bench: utime=... stime=... rtime=...\" line in ffmpeg's output")
	}
	var secs [3]float64
	for i := range secs {
		if secs[i], err = strconv.ParseFloat(m[i+1], 64); err != nil || secs[i] > 1e6 {
			return 0, 0, fmt.Errorf("bad ffmpeg bench figure %q", m[i+1])
		}
	}
	return time.Duration((secs[0] + secs[1]) * float64(time.Second)), time.Duration(secs[2] * float64(time.Second)), nil
}

func TestParseFFmpegBench(t *testing.T) {
	cpu, wall, err := parseFFmpegBench("frame=  300 fps=0.0\nbench: utime=1.250s stime=0.050s rtime=0.700s\nbench: maxrss=75628kB\n")
	if err != nil || cpu != 1300*time.Millisecond || wall != 700*time.Millisecond {
		t.Fatalf("parseFFmpegBench = %v %v %v", cpu, wall, err)
	}
	for _, bad := range []string{"", "bench: utime=1s", "bench: utime=9e99s stime=0s rtime=0s"} {
		if _, _, err := parseFFmpegBench(bad); err == nil {
			t.Errorf("parseFFmpegBench(%q) accepted", bad)
		}
	}
}

func FuzzParseFFmpegBench(f *testing.F) {
	f.Add("bench: utime=1.250s stime=0.050s rtime=0.700s")
	f.Add("bench: utime=.s stime=0s rtime=0s")
	f.Fuzz(func(t *testing.T, out string) {
		cpu, wall, err := parseFFmpegBench(out)
		if err == nil && (cpu < 0 || wall < 0) {
			t.Fatalf("%q: negative times %v %v", out, cpu, wall)
		}
	})
}

// makeH264 encodes a 10 s 30 fps H.264 test pattern of the given size.
func makeH264(tb testing.TB, dir, size string) string {
	tb.Helper()
	path := filepath.Join(dir, size+".mp4")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
		"-i", "testsrc2=size="+size+":rate=30", "-t", "10", "-c:v", "libx264", "-pix_fmt", "yuv420p", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("ffmpeg: %v: %s", err, out)
	}
	return path
}

// BenchmarkDecodeFile measures ingest's CPU per frame decoding a 720p and a 1080p H.264 file
// (Open on a file: gocv's FFmpeg backend, BGR frames), against ffmpeg decoding the same file
// to BGR with 2 threads (OpenCV uses one thread per CPU; this machine has 2). Metrics:
// cpu-ms/frame (ours, whole process), ffmpeg-cpu-ms/frame, and their ratio.
func BenchmarkDecodeFile(b *testing.B) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		b.Skip("ffmpeg not installed")
	}
	dir := b.TempDir()
	for _, size := range []string{"1280x720", "1920x1080"} {
		file := makeH264(b, dir, size)
		out, err := exec.Command("ffmpeg", "-hide_banner", "-benchmark", "-threads", "2", "-i", file,
			"-pix_fmt", "bgr24", "-f", "null", "-").CombinedOutput()
		if err != nil {
			b.Fatalf("ffmpeg -benchmark: %v: %s", err, out)
		}
		ffCPU, _, err := parseFFmpegBench(string(out))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(size, func(b *testing.B) {
			ctx := context.Background()
			frames := 0
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for i := 0; i < b.N; i++ {
				src, err := Open(ctx, file, OpenOptions{})
				if err != nil {
					b.Fatal(err)
				}
				for {
					f, err := src.Read(ctx)
					if errors.Is(err, ErrEndOfStream) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					f.Mat.Close()
					frames++
				}
				src.Close()
			}
			cpu := cpuTime(b) - cpu0
			b.StopTimer()
			ours := float64(cpu) / float64(time.Millisecond) / float64(frames)
			theirs := float64(ffCPU) / float64(time.Millisecond) / float64(frames/b.N)
			b.ReportMetric(ours, "cpu-ms/frame")
			b.ReportMetric(theirs, "ffmpeg-cpu-ms/frame")
			b.ReportMetric(ours/theirs, "ratio")
			b.ReportMetric(float64(b.Elapsed())/float64(time.Millisecond)/float64(frames), "wall-ms/frame")
		})
	}
}

// BenchmarkRTSPLatency measures glass-to-Mat latency of a 720p30 RTSP stream: ffmpeg encodes
// (x264 ultrafast, zerolatency) frames stamped with the wall clock when they are handed to it
// and publishes them to the in-process RTSP server; the source decodes them and the stamp is
// read back from each Mat. Metrics: p50-ms, p99-ms, max-ms over b.N frames after a 1 s warm-up;
// use -benchtime=300x for 10 s of samples. Sub-benchmarks: the FFmpeg backend (Open's path,
// with the newest-frame reader) and the GStreamer pipeline.
func BenchmarkRTSPLatency(b *testing.B) {
	srv := rtsptest.New(b, rtsptest.ClockOptions(1280, 720, 30))
	for _, backend := range []Backend{BackendFFmpeg, BackendGStreamer} {
		b.Run(backend.String(), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			src, err := OpenLive(ctx, backend.String(), func(ctx context.Context) (Source, error) {
				return OpenNetwork(ctx, srv.URL, NetworkOptions{Backend: backend})
			}, Backoff{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer src.Close()
			for i := 0; i < 30; i++ { // warm-up: 1 s
				f, err := src.Read(ctx)
				if err != nil {
					b.Fatal(err)
				}
				f.Mat.Close()
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f, err := src.Read(ctx)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, frameAge(b, f, f.Captured))
				f.Mat.Close()
			}
			b.StopTimer()
			slices.Sort(lat)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-ms")
			b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
			st := src.Stats()
			b.ReportMetric(float64(st.FramesReplaced), "replaced")
		})
	}
}
