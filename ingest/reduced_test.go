package ingest

import (
	"context"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/vision"
)

// TestReducedFrames: a 720p stream's frames that request no heads are published at half size
// (Scale 2, the frame's size still 1280x720); with FullFrames every frame is full size. A frame
// asked to carry heads, or narrower than frame.ReduceFromWidth, is never reduced.
func TestReducedFrames(t *testing.T) {
	path := x264Clip(t, "1280x720", 10, 1)
	nc, conn := startNATS(t)
	sub := observeFrames(t, conn("observer"))
	role := &Role{Conn: nc, Streams: []StreamConfig{
		{Name: "reduced", Source: path, FPS: 10},
		{Name: "full", Source: path, FPS: 10, FullFrames: true},
	}}
	for i := range role.Streams {
		role.Streams[i].SetDefaults()
	}
	if err := role.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for seen["reduced"]+seen["full"] < 20 {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("after %v frames: %v", seen, err)
		}
		f, err := frame.FromMsg(m)
		if err != nil {
			t.Fatal(err)
		}
		seen[f.Stream]++
		img, err := vision.Decode(f.Data, 0)
		if err != nil {
			t.Fatal(err)
		}
		iw, ih := img.Cols(), img.Rows()
		img.Close()
		wantScale, ww, wh := 2, 640, 360
		if f.Stream == "full" {
			wantScale, ww, wh = 0, 1280, 720
		}
		if f.Width != 1280 || f.Height != 720 || f.Scale != wantScale || iw != ww || ih != wh {
			t.Fatalf("%s frame %d: %dx%d at scale %d, image %dx%d; want 1280x720 at scale %d, image %dx%d",
				f.Stream, f.Seq, f.Width, f.Height, f.Scale, iw, ih, wantScale, ww, wh)
		}
	}

	m := gocv.NewMatWithSize(720, 1280, gocv.MatTypeCV8UC3)
	defer m.Close()
	small := gocv.NewMatWithSize(540, 960, gocv.MatTypeCV8UC3)
	defer small.Close()
	t1 := tuning{MaxWidth: 1280, MaxHeight: 720, JPEGQuality: 80}
	for _, c := range []struct {
		name   string
		m      gocv.Mat
		reduce bool
		scale  int
	}{{"heads requested", m, false, 1}, {"no heads", m, true, 2}, {"narrower than 1280", small, true, 1}} {
		_, w, h, scale, err := encodeFrame(c.m, t1, c.reduce)
		if err != nil || scale != c.scale || w != c.m.Cols() || h != c.m.Rows() {
			t.Errorf("%s: %dx%d at scale %d (%v), want %dx%d at scale %d", c.name, w, h, scale, err, c.m.Cols(), c.m.Rows(), c.scale)
		}
	}
}
