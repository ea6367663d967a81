package eventstore_test

import (
	"bytes"
	"context"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/bus/bustest"
	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/privacy"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/sink/eventstore"
	"github.com/vigil-video/vigil/sink/eventstore/eventstoretest"
	"github.com/vigil-video/vigil/sink/eventstore/snapshot"
)

// lapVar is the variance of the grey-level Laplacian of img (its detail).
func lapVar(t *testing.T, jpg []byte) float64 {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(jpg))
	if err != nil {
		t.Fatal(err)
	}
	r := img.Bounds()
	g := func(x, y int) float64 {
		cr, cg, cb, _ := img.At(x, y).RGBA()
		return 0.299*float64(cr>>8) + 0.587*float64(cg>>8) + 0.114*float64(cb>>8)
	}
	var s, s2, n float64
	for y := r.Min.Y + 1; y < r.Max.Y-1; y++ {
		for x := r.Min.X + 1; x < r.Max.X-1; x++ {
			l := g(x-1, y) + g(x+1, y) + g(x, y-1) + g(x, y+1) - 4*g(x, y)
			s, s2, n = s+l, s2+l*l, n+1
		}
	}
	return s2/n - (s/n)*(s/n)
}

// TestConsumerPrivacy: with privacy blur-unknown the stored snapshot of a real face without
// identity loses most of its detail (Laplacian variance), while an identified face's keeps it;
// blur-all blurs both.
func TestConsumerPrivacy(t *testing.T) {
	data := testenv.TestData(t)
	photo, err := os.ReadFile(filepath.Join(data, "faces", "John_Salley", "000179_02159509.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(photo))
	if err != nil {
		t.Fatal(err)
	}
	srv := bustest.StartServer(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	ring := &snapshot.Ring{Conn: nc}
	if err := ring.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	at := time.Date(2026, 11, 22, 0, 5, 14, 0, time.UTC)
	f := frame.Frame{Stream: "lobby", Seq: 55, Captured: at, Width: cfg.Width, Height: cfg.Height, Encoding: frame.EncodingJPEG, Data: photo}
	m, _ := f.Msg("vigil.frames.lobby")
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the frame in the ring", func() bool { return ring.Stats().Frames == 1 })
	// The face of the LFW-style photo sits in its middle.
	box := result.Box{X1: float32(cfg.Width) * 0.3, Y1: float32(cfg.Height) * 0.3, X2: float32(cfg.Width) * 0.7, Y2: float32(cfg.Height) * 0.75}
	ev := func(track string, identified bool) event.Event {
		e := eventstoretest.Event("lobby", track, event.KindRecognized, at)
		e.Crop = event.Crop{Stream: "lobby", Seq: 55, CapturedAt: at, Box: box, Width: cfg.Width, Height: cfg.Height}
		if !identified {
			e.Identity = nil
		}
		return e
	}
	detail := map[string]float64{}
	for _, mode := range []privacy.Mode{privacy.Off, privacy.BlurUnknown, privacy.BlurAll} {
		st := openStore(t, nil)
		c := &eventstore.Consumer{Conn: nc, Sinks: []eventstore.EventSink{st}, Snapshots: ring, Privacy: mode}
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(cctx) }()
		<-c.Ready()
		publishEvent(t, nil, nc, ev("unknown", false))
		publishEvent(t, nil, nc, ev("known", true))
		testenv.Eventually(t, 20*time.Second, "two events stored", func() bool { return st.Stats().Events == 2 })
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		evs, _ := st.Events(ctx, eventstore.EventFilter{})
		for _, e := range evs {
			snap, err := st.Snapshot(ctx, e.ID)
			if err != nil {
				t.Fatalf("%s: snapshot of %s: %v", mode, e.TrackID, err)
			}
			detail[string(mode)+"/"+e.TrackID] = lapVar(t, snap)
		}
	}
	t.Logf("Laplacian variance of the snapshots: %v", detail)
	sharp := detail["off/unknown"]
	for k, blurred := range map[string]bool{"off/known": false, "blur-unknown/unknown": true, "blur-unknown/known": false,
		"blur-all/unknown": true, "blur-all/known": true} {
		v := detail[k]
		if blurred && v > 0.05*sharp {
			t.Errorf("%s: %.1f of %.1f detail kept, want under 5%%", k, v, sharp)
		}
		if !blurred && v < 0.5*sharp {
			t.Errorf("%s: %.1f of %.1f detail kept, want the face as it was", k, v, sharp)
		}
	}
}
