package ingest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestLatestSlowConsumer: over a file decoded as fast as possible, a consumer that takes a
// frame every 20 ms gets the newest each time; every other frame is closed by the reader and
// counted as replaced, and the file's end follows the last frame.
func TestLatestSlowConsumer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	file, err := Open(ctx, faceVideo(t), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := NewLatest(file)
	defer l.Close()
	if l.Live() {
		t.Error("a file read through Latest claims to be live")
	}
	pace := time.NewTicker(20 * time.Millisecond) // stands in for 20 ms of analysis per frame
	defer pace.Stop()
	delivered := 0
	var last time.Duration = -1
	for {
		f, err := l.Read(ctx)
		if errors.Is(err, ErrEndOfStream) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if f.Media <= last {
			t.Fatalf("frame at %v after %v: not the newest", f.Media, last)
		}
		last = f.Media
		f.Mat.Close()
		delivered++
		<-pace.C
	}
	st := l.Stats()
	t.Logf("delivered %d, %+v", delivered, st)
	if st.FramesRead < 100 || st.FramesReplaced == 0 || uint64(delivered)+st.FramesReplaced != st.FramesRead {
		t.Fatalf("delivered %d + replaced %d != read %d (or nothing replaced)", delivered, st.FramesReplaced, st.FramesRead)
	}
	if _, err := l.Read(ctx); !errors.Is(err, ErrEndOfStream) {
		t.Fatalf("Read after the end: %v", err)
	}
	if st.State != StateClosed {
		t.Fatalf("state after the end: %v", st.State)
	}
}

// TestLatestClose: closing while the reader runs stops and joins it, closes the inner source
// and the frame nobody took (TestMain fails on a leaked goroutine or Mat).
func TestLatestClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	file, err := Open(ctx, faceVideo(t), OpenOptions{Loop: true, Realtime: true})
	if err != nil {
		t.Fatal(err)
	}
	l := NewLatest(file)
	f, err := l.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.Mat.Close()
	testenv.Eventually(t, 5*time.Second, "a frame waiting", func() bool { return l.Stats().FramesRead >= 3 })
	if st := l.Stats(); st.State != StateLive {
		t.Fatalf("state %v while reading", st.State)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Read(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v, want ErrClosed", err)
	}
	if st := l.Stats(); st.State != StateClosed {
		t.Fatalf("state %v after Close", st.State)
	}
	// A Read waiting for a frame returns when its context ends.
	file2, err := Open(ctx, faceVideo(t), OpenOptions{Loop: true, Realtime: true})
	if err != nil {
		t.Fatal(err)
	}
	l2 := NewLatest(file2)
	defer l2.Close()
	short, cancelShort := context.WithCancel(ctx)
	cancelShort()
	if _, err := l2.Read(short); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with a canceled context: %v", err)
	}
}
