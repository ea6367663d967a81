package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestAttachedPublishesAndReplaces: an attached source is published under its stream name; a
// second source on the same stream replaces the first, which is closed; Close stops the rest.
func TestAttachedPublishesAndReplaces(t *testing.T) {
	testenv.NeedsTestData(t)
	nc, conn := startNATS(t)
	sub := observeFrames(t, conn("observer"))
	a := &Attached{Conn: nc, Defaults: StreamConfig{FPS: 30, MaxWidth: 320, MaxHeight: 240}}
	open := func() Source {
		src, err := Open(context.Background(), faceVideo(t), OpenOptions{Loop: true})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	if err := a.Attach("browser", open()); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f, err := frame.FromMsg(m)
	if err != nil || f.Stream != "browser" || f.Width > 320 {
		t.Fatalf("frame %+v, %v", f, err)
	}
	if err := a.Attach("browser", open()); err != nil { // replaces the first
		t.Fatal(err)
	}
	if err := a.Attach("a.>", open()); err == nil {
		t.Fatal("attached a source under an invalid stream name")
	}
	a.Close()
	if err := a.Attach("late", open()); err != ErrAttachedClosed {
		t.Fatalf("Attach after Close: %v", err)
	}
}
