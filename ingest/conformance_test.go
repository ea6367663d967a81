package ingest_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/ingest/rtsptest"
	"github.com/vigil-video/vigil/ingest/sourcetest"
)

// testPattern writes a seconds-long 320x240 test pattern at fps with ffmpeg; it skips the test
// when ffmpeg is missing.
func testPattern(t *testing.T, seconds, fps int) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	path := filepath.Join(t.TempDir(), "pattern.mp4")
	out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate="+strconv.Itoa(fps),
		"-t", strconv.Itoa(seconds), "-pix_fmt", "yuv420p", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return path
}

// TestSourceConformance: every kind of source Open returns passes the ingest.Source suite.
func TestSourceConformance(t *testing.T) {
	video := testPattern(t, 2, 10) // 20 frames
	file := func(opts ingest.OpenOptions) func(ctx context.Context, t *testing.T) (ingest.Source, error) {
		return func(ctx context.Context, t *testing.T) (ingest.Source, error) { return ingest.Open(ctx, video, opts) }
	}
	t.Run("File", func(t *testing.T) {
		sourcetest.Run(t, sourcetest.Spec{Open: file(ingest.OpenOptions{}), Frames: 20, Width: 320, Height: 240})
	})
	t.Run("FileLooped", func(t *testing.T) {
		sourcetest.Run(t, sourcetest.Spec{Open: file(ingest.OpenOptions{Loop: true}), Width: 320, Height: 240})
	})
	t.Run("FileRealtime", func(t *testing.T) {
		sourcetest.Run(t, sourcetest.Spec{Open: file(ingest.OpenOptions{Realtime: true}), Frames: 20, Width: 320, Height: 240})
	})
	t.Run("RTSP", func(t *testing.T) {
		srv := rtsptest.New(t, rtsptest.ClockOptions(320, 240, 25))
		sourcetest.Run(t, sourcetest.Spec{Live: true, Width: 320, Height: 240,
			Open: func(ctx context.Context, t *testing.T) (ingest.Source, error) {
				return ingest.Open(ctx, srv.URL, ingest.OpenOptions{})
			}})
	})
}
