package ingest

import (
	"context"
	"testing"
	"time"
)

// TestLoopSourceTimeline: a file looped by reopening keeps one media timeline across the seam,
// one frame period apart (the capture's own rewind reports the first frame after it a whole
// clip ahead), and pacing it takes about its media time.
func TestLoopSourceTimeline(t *testing.T) {
	ctx := context.Background()
	open := func(ctx context.Context) (Source, error) { return Open(ctx, faceVideo(t), OpenOptions{}) }
	l := &loopSource{open: open}
	defer l.Close()
	var last time.Duration
	for i := 0; i < 240; i++ { // 115 frames a pass: two seams
		f, err := l.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f.Mat.Close()
		if d := f.Media - last; i > 0 && (d < 30*time.Millisecond || d > 100*time.Millisecond) {
			t.Fatalf("frame %d at %v, %v after the previous one (25 fps: 40 ms)", i, f.Media, d)
		}
		last = f.Media
	}
	if last < 9*time.Second || last > 10*time.Second {
		t.Fatalf("240 frames at 25 fps end at %v", last)
	}

	// Paced: 30 frames take about 1.2 s of wall time, and each is stamped when returned.
	p := &pacedSource{Source: &loopSource{open: open}}
	defer p.Close()
	start := time.Now()
	for i := 0; i < 30; i++ {
		f, err := p.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f.Mat.Close()
		if f.Captured.Before(start) {
			t.Fatal("a paced frame stamped before the start")
		}
	}
	if el := time.Since(start); el < 1100*time.Millisecond {
		t.Fatalf("30 paced frames at 25 fps took %v", el)
	}
}
