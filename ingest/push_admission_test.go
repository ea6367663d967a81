package ingest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-video/vigil/ingest/streams"
	"github.com/vigil-video/vigil/pkg/admit"
	"github.com/vigil-video/vigil/pkg/imageguard/guardtest"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// Pushes on every stream share one decode gate: with its room taken, a push is 503
// server_busy with Retry-After (never 500), counted as a busy drop, and takes no sequence
// number; once there is room it is published. Without the gate each of up to MaxStreams push
// streams decoded a 4096² image at once.
func TestPushSharesTheDecodeGate(t *testing.T) {
	testenv.NeedsTestData(t)
	gate := &admit.Gate{MaxConcurrent: 1, MaxWait: time.Millisecond}
	e := startManager(t, t.TempDir(), func(m *Manager, _ *streams.Registry) { m.PushGate = gate })
	for _, name := range []string{"a", "b"} {
		if r := httpCall(t, "PUT", e.url+"/"+name, []byte(`{"source":"push","fps":240}`)); r.status != http.StatusCreated {
			t.Fatalf("create %s: %v", name, r)
		}
	}
	img := testImage(t, "no-faces.jpg")
	hold, err := gate.Acquire(context.Background(), gate.MaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		r := httpCall(t, "POST", e.url+"/"+name+"/frames", img, "Content-Type", "image/jpeg")
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || r.code() != streams.CodeServerBusy {
			t.Fatalf("push to %s with the gate full: %v (Retry-After %q), want 503 server_busy with Retry-After", name, r, r.header.Get("Retry-After"))
		}
	}
	hold()
	r := httpCall(t, "POST", e.url+"/a/frames", img, "Content-Type", "image/jpeg")
	if r.status != http.StatusAccepted || r.json["seq"] != 1.0 {
		t.Fatalf("push once there is room: %v, want 202 with seq 1", r)
	}
	if s := gate.Stats(); s.Refused != 2 || s.Running != 0 {
		t.Fatalf("gate %+v", s)
	}
}

// A pushed PNG bomb (100x100 declared, 2 GiB of image data) is 400 invalid_image naming the
// cause, and uses no sequence number.
func TestPushRefusesPNGBomb(t *testing.T) {
	testenv.NeedsTestData(t)
	nc, _ := startNATS(t)
	p, err := newPushRunner(nc, "bomb", tuning{FPS: 240, MaxWidth: 64, MaxHeight: 64, JPEGQuality: 80}, &streamObs{}, 0, 1, testLog())
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	_, err = p.push(context.Background(), guardtest.BombPNG(100, 100, 2<<10), time.Now())
	if e := streams.AsError(err); e.Status != http.StatusBadRequest || !strings.Contains(e.Message, "inflates past") {
		t.Fatalf("push of a PNG bomb: %v, want 400 naming the inflated size", err)
	}
	res, err := p.push(context.Background(), testImage(t, "no-faces.jpg"), time.Now())
	if err != nil || res.Seq != 1 {
		t.Fatalf("the next push: %+v %v, want seq 1", res, err)
	}
}
