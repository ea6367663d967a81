package analyze

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestRoleTrustsSubjectsNotHeaders: the subject is what NATS permissions guard, so a frame's
// stream is its subject's. A publisher allowed only vigil.frames.cam1 whose header claims cam2
// produces nothing on cam2: the frame is a counted drop announced on cam1. A capture time far in
// the future is refused; a slightly early one neither dodges the deadline nor gives a negative
// latency.
func TestRoleTrustsSubjectsNotHeaders(t *testing.T) {
	img := jpegOf(t, filepath.Join(testenv.TestData(t), "detect", "two_people.jpg"))
	h := startRole(t, func(r *Role) { r.Deadline = time.Second; r.MaxClockSkew = 5 * time.Second })
	results, err := h.nc.SubscribeSync(bus.ResultsPrefix + ".>")
	if err != nil {
		t.Fatal(err)
	}
	drops, err := h.nc.SubscribeSync(bus.DropsPrefix + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	base := frame.Frame{Stream: "cam2", Seq: 1, Captured: now, Width: 1126, Height: 661, Encoding: frame.EncodingJPEG, Data: img}
	spoofed, err := base.Msg("vigil.frames.cam2")
	if err != nil {
		t.Fatal(err)
	}
	spoofed.Subject = "vigil.frames.cam1" // the only subject this publisher may use
	if err := h.nc.PublishMsg(spoofed); err != nil {
		t.Fatal(err)
	}
	// No header at all: the subject names the stream.
	bare := base
	bare.Stream, bare.Seq = "cam3", 2
	m, err := bare.Msg("vigil.frames.cam3")
	if err != nil {
		t.Fatal(err)
	}
	m.Header.Del(frame.HeaderStream)
	if err := h.nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	future := base
	future.Stream, future.Seq, future.Captured = "cam1", 3, now.Add(time.Hour)
	h.publish(t, future)
	early := base
	early.Stream, early.Seq, early.Captured = "cam4", 4, now.Add(3*time.Second)
	h.publish(t, early)

	got := map[string]result.Drop{}
	for range 2 {
		msg, err := drops.NextMsg(60 * time.Second)
		if err != nil {
			t.Fatalf("drops: %v (have %v)", err, got)
		}
		d, err := result.ParseDrop(msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		got[msg.Subject+"/"+d.Reason] = d
	}
	if _, ok := got["vigil.drops.cam1/"+result.ReasonStreamMismatch]; !ok {
		t.Errorf("no stream_mismatch drop on cam1: %v", got)
	}
	if d, ok := got["vigil.drops.cam1/"+result.ReasonFutureCapture]; !ok || d.Seq != 3 {
		t.Errorf("no future_capture drop for seq 3 on cam1: %v", got)
	}
	seen := map[string]result.Result{}
	for range 2 {
		msg, err := results.NextMsg(60 * time.Second)
		if err != nil {
			t.Fatalf("results: %v (have %v)", err, seen)
		}
		r, err := result.ParseResult(msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		if r.Stream != msg.Subject[len(bus.ResultsPrefix)+1:] {
			t.Errorf("result on %s names stream %s", msg.Subject, r.Stream)
		}
		seen[r.Stream] = r
	}
	if r, ok := seen["cam3"]; !ok || r.Seq != 2 {
		t.Errorf("the frame without a stream header: %v", seen)
	}
	if r, ok := seen["cam4"]; !ok || r.LatencyMS < 0 {
		t.Errorf("the slightly early frame: %+v (present %v), want a result with latency >= 0", r, ok)
	}
	if _, ok := seen["cam2"]; ok {
		t.Error("a result reached cam2 through a header")
	}
	if msg, err := results.NextMsg(200 * time.Millisecond); err == nil {
		t.Errorf("unexpected result on %s", msg.Subject)
	}
	h.stop(t)
	if n := h.role.Stats().Dropped[result.ReasonStreamMismatch]; n != 1 {
		t.Errorf("stream_mismatch drops counted: %d, want 1", n)
	}
}
