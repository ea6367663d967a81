// Package sourcetest is the conformance suite every ingest.Source passes, after the contract on
// ingest.Source: Read returns decoded 8-bit BGR frames of the source's size with a media time
// that never goes back; a finite source gives each of its frames once and then
// ErrEndOfStream; Read returns when its context ends; Live says what the source is; Close
// releases everything (the test binary's Mat check, testenv.Main with -tags matprofile, then
// finds no Mat left open). Only tests import it.
package sourcetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/ingest"
)

// Spec describes one kind of source and what it is known to deliver.
type Spec struct {
	// Open opens a fresh source for the test t (what it starts ends with t).
	Open func(ctx context.Context, t *testing.T) (ingest.Source, error)
	// Live is what the source's Live must report.
	Live bool
	// Frames is a finite source's number of frames; 0 for a source that does not end by itself
	// (a camera, a stream, a looped file).
	Frames int
	// Width and Height are the decoded frames' size.
	Width, Height int
}

// readTimeout bounds one Read in the suite (a live source's first frame included).
const readTimeout = 30 * time.Second

// Run runs the suite, each check on a freshly opened source.
func Run(t *testing.T, spec Spec) {
	t.Run("LiveAsDeclared", func(t *testing.T) {
		src := open(t, spec)
		if src.Live() != spec.Live {
			t.Fatalf("Live() = %v, want %v", src.Live(), spec.Live)
		}
		closeSource(t, src)
	})
	t.Run("FramesAreBGROfTheSourceSize", func(t *testing.T) { testFrames(t, spec) })
	t.Run("FiniteSourceEnds", func(t *testing.T) {
		if spec.Frames == 0 {
			t.Skip("the source does not end by itself")
		}
		testEnds(t, spec)
	})
	t.Run("ReadReturnsWhenContextEnds", func(t *testing.T) { testEndedContext(t, spec) })
}

func open(t *testing.T, spec Spec) ingest.Source {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	src, err := spec.Open(ctx, t)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return src
}

func closeSource(t *testing.T, src ingest.Source) {
	t.Helper()
	if err := src.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func read(t *testing.T, src ingest.Source) (ingest.RawFrame, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	return src.Read(ctx)
}

func testFrames(t *testing.T, spec Spec) {
	src := open(t, spec)
	defer closeSource(t, src)
	var last time.Duration
	for i := range 5 {
		f, err := read(t, src)
		if err != nil {
			t.Fatalf("Read %d: %v", i, err)
		}
		mat, media, captured := f.Mat, f.Media, f.Captured
		size, channels, typ := mat.Size(), mat.Channels(), mat.Type()
		mat.Close()
		if len(size) != 2 || size[1] != spec.Width || size[0] != spec.Height {
			t.Fatalf("frame %d is %v, want %dx%d", i, size, spec.Width, spec.Height)
		}
		if channels != 3 || typ != gocv.MatTypeCV8UC3 {
			t.Fatalf("frame %d: %d channels, type %v; want 8-bit BGR", i, channels, typ)
		}
		if media < last {
			t.Fatalf("frame %d: media time %s after %s: it went back", i, media, last)
		}
		if captured.IsZero() {
			t.Fatalf("frame %d has no capture time", i)
		}
		last = media
	}
}

func testEnds(t *testing.T, spec Spec) {
	src := open(t, spec)
	defer closeSource(t, src)
	n := 0
	for {
		f, err := read(t, src)
		if errors.Is(err, ingest.ErrEndOfStream) {
			break
		}
		if err != nil {
			t.Fatalf("Read after %d frames: %v", n, err)
		}
		f.Mat.Close()
		n++
		if n > spec.Frames {
			t.Fatalf("more than the %d frames the source has", spec.Frames)
		}
	}
	if n != spec.Frames {
		t.Fatalf("%d frames before ErrEndOfStream, want %d", n, spec.Frames)
	}
}

func testEndedContext(t *testing.T, spec Spec) {
	src := open(t, spec)
	defer closeSource(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A frame already decoded may still come back; a blocked Read would hang the test here.
	if f, err := src.Read(ctx); err == nil {
		f.Mat.Close()
	}
}
