package ingest

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/ingest/streams"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// fileSpec is a looping file stream paced at the video's own 25 fps.
func fileSpec(t *testing.T, name string, fps float64, maxW, maxH int) streams.Spec {
	return streams.Spec{Name: name, Source: faceVideo(t), Enabled: true, FPS: fps, MaxWidth: maxW, MaxHeight: maxH, Loop: true, Realtime: true}
}

// TestManagerHTTP drives a real manager through the HTTP API with a real file stream: frames
// appear on NATS when it is added; a new max size and fps apply in place; disabling stops the
// frames, enabling resumes them; deleting stops the runner and joins its goroutines; bad
// requests get JSON 4xx answers and disturb nothing (a second stream keeps publishing).
func TestManagerHTTP(t *testing.T) {
	testenv.NeedsTestData(t)
	e := startManager(t, t.TempDir(), nil)
	if r := httpCall(t, "POST", e.url, specJSON(t, fileSpec(t, "other", 5, 160, 120))); r.status != http.StatusCreated {
		t.Fatalf("create other: %v", r)
	}
	otherFrames := e.frames(t, "other")
	next(t, otherFrames, 30*time.Second)
	const baseGoroutines = 2 // other's supervisor and runner
	wantStreamGoroutines(t, baseGoroutines, "with one stream running")
	otherAlive := func(what string) {
		t.Helper()
		n := e.mgr.Stats()["other"].Published
		testenv.Eventually(t, 30*time.Second, "the other stream to keep publishing after "+what, func() bool {
			return e.mgr.Stats()["other"].Published >= n+2
		})
	}

	// Add: frames appear, in sequence, within the size.
	frames := e.frames(t, "cam")
	r := httpCall(t, "POST", e.url, specJSON(t, fileSpec(t, "cam", 5, 320, 240)), "Content-Type", "application/json")
	if r.status != http.StatusCreated || r.json["runs_here"] != true {
		t.Fatalf("create: %v", r)
	}
	if st := r.json["state"]; st != streams.StateConnecting && st != streams.StateLive {
		t.Fatalf("state after create: %v", r)
	}
	for i := uint64(1); i <= 3; i++ {
		f := next(t, frames, 30*time.Second)
		if f.Seq != i || f.Width > 320 || f.Height > 240 || f.Stream != "cam" {
			t.Fatalf("frame %d: seq %d %dx%d", i, f.Seq, f.Width, f.Height)
		}
	}
	if r := httpCall(t, "GET", e.url+"/cam", nil); r.status != 200 || r.json["state"] != streams.StateLive || r.stats()["published"].(float64) < 3 {
		t.Fatalf("get: %v", r)
	}

	// Bad requests: clear JSON errors, nothing else disturbed.
	long := strings.Repeat("x", 10240)
	for _, c := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "", `{"name":"a.>","source":"push"}`, 400, "invalid_stream_name"},
		{"GET", "/a.%3E", ``, 400, "invalid_stream_name"},
		{"PUT", "/" + long, `{"source":"push"}`, 400, "invalid_stream_name"},
		{"POST", "", `{"name":"bad","source":"rtsp://"}`, 400, "invalid_request"},
		{"POST", "", `{"name":"bad","source":"rtsp://host:99999/x"}`, 400, "invalid_request"},
		{"POST", "", `{"name":"bad","source":"gopher://host/x"}`, 400, "invalid_request"},
		{"POST", "", `{"name":"bad","source":"device:-1"}`, 400, "invalid_request"},
		{"POST", "", `{"name":"bad",`, 400, "invalid_request"},
		{"POST", "", `{"name":"cam","source":"push"}`, 409, "stream_exists"},
		{"GET", "/nope", ``, 404, "stream_not_found"},
		{"PATCH", "/nope", `{"fps":1}`, 404, "stream_not_found"},
		{"PATCH", "/cam", `{"fps":-3}`, 400, "invalid_request"},
		{"PATCH", "/cam", `{"source":"ftp://x/y"}`, 400, "invalid_request"},
		{"DELETE", "/nope", ``, 404, "stream_not_found"},
	} {
		r := httpCall(t, c.method, e.url+c.path, []byte(c.body))
		if r.status != c.status || r.code() != c.code {
			t.Errorf("%s %.30s %.50s: %v, want %d %s", c.method, c.path, c.body, r, c.status, c.code)
		}
	}
	if r := httpCall(t, "GET", e.url, nil); len(r.json["streams"].([]any)) != 2 {
		t.Fatalf("after the bad requests: %v", r)
	}
	otherAlive("the bad requests")

	// A smaller size applies to the next frames, without a restart (the sequence goes on).
	if r := httpCall(t, "PATCH", e.url+"/cam", []byte(`{"max_width":160,"max_height":120}`)); r.status != 200 || r.json["max_width"] != 160.0 {
		t.Fatalf("patch size: %v", r)
	}
	var f frame.Frame
	for i := 0; ; i++ {
		f = next(t, frames, 30*time.Second)
		if f.Width <= 160 && f.Height <= 120 {
			break
		}
		if i > 3 {
			t.Fatalf("frame %d after the patch is %dx%d", f.Seq, f.Width, f.Height)
		}
	}
	if f.Seq < 4 {
		t.Fatalf("the sequence restarted (seq %d): the size should change in place", f.Seq)
	}

	// A new fps applies in place: at 5 fps a 25 fps video publishes 1 frame in 5, at 12.5 fps 1 in 2.
	if got := ratio(t, e.mgr, "cam", 50); got < 0.15 || got > 0.26 {
		t.Fatalf("at 5 fps %.2f of the frames were published, want 0.2", got)
	}
	if r := httpCall(t, "PATCH", e.url+"/cam", []byte(`{"fps":12.5}`)); r.status != 200 || r.json["fps"] != 12.5 {
		t.Fatalf("patch fps: %v", r)
	}
	if got := ratio(t, e.mgr, "cam", 50); got < 0.4 || got > 0.6 {
		t.Fatalf("at 12.5 fps %.2f of the frames were published, want 0.5", got)
	}
	if r := httpCall(t, "GET", e.url+"/cam", nil); r.stats()["fps"].(float64) < 5 {
		t.Errorf("current fps after the change: %v", r)
	}

	// Disable: the runner stops before the answer; no frame follows.
	r = httpCall(t, "PATCH", e.url+"/cam", []byte(`{"enabled":false}`))
	if r.status != 200 || r.json["state"] != streams.StateDisabled || r.json["enabled"] != false {
		t.Fatalf("disable: %v", r)
	}
	stopped := e.mgr.Stats()["cam"].Published
	assertNoFramesAfter(t, e, "cam", frames, otherFrames)
	if got := e.mgr.Stats()["cam"].Published; got != stopped {
		t.Fatalf("%d frames published after disabling", got-stopped)
	}
	wantStreamGoroutines(t, baseGoroutines+1, "while cam is disabled (its idle supervisor, no runner)")

	// Enable: frames resume, a new runner numbering from 1.
	if r := httpCall(t, "PATCH", e.url+"/cam", []byte(`{"enabled":true}`)); r.status != 200 {
		t.Fatalf("enable: %v", r)
	}
	if f := next(t, frames, 30*time.Second); f.Seq != 1 || f.Width > 160 {
		t.Fatalf("first frame after enabling: seq %d, %dx%d", f.Seq, f.Width, f.Height)
	}

	// Delete: the runner is stopped and its goroutines joined before the answer.
	if r := httpCall(t, "DELETE", e.url+"/cam", nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %v", r)
	}
	if _, ok := e.mgr.Status("cam"); ok {
		t.Fatal("the manager still knows cam")
	}
	wantStreamGoroutines(t, baseGoroutines, "after the delete (other's only)")
	if r := httpCall(t, "GET", e.url+"/cam", nil); r.status != 404 {
		t.Fatalf("get after delete: %v", r)
	}
	assertNoFramesAfter(t, e, "cam", frames, otherFrames)
	otherAlive("the delete")
}

// assertNoFramesAfter checks that stream publishes nothing more: markers published on the
// ingest's connection after the stop come after all of its frames, and while the other stream
// publishes three more frames after its marker (about 0.6 s), none of stream's arrives.
func assertNoFramesAfter(t *testing.T, e *mgrEnv, stream string, frames, other *nats.Subscription) {
	t.Helper()
	for _, sub := range []*nats.Subscription{frames, other} {
		if err := e.nc.Publish(sub.Subject, []byte("marker")); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []*nats.Subscription{frames, other} {
		for {
			m, err := sub.NextMsg(30 * time.Second)
			if err != nil {
				t.Fatalf("waiting for the marker on %s: %v", sub.Subject, err)
			}
			if string(m.Data) == "marker" {
				break
			}
		}
	}
	for i := 0; i < 3; i++ {
		next(t, other, 30*time.Second)
	}
	if n, _, _ := frames.Pending(); n != 0 {
		t.Fatalf("%d frames of %s after it was stopped", n, stream)
	}
}

// TestManagerNATS drives the manager through the NATS control subject: create, patch, get,
// disable, delete, and error replies that change nothing.
func TestManagerNATS(t *testing.T) {
	testenv.NeedsTestData(t)
	e := startManager(t, t.TempDir(), nil)
	ask := func(req any) streams.Reply {
		t.Helper()
		var b []byte
		switch v := req.(type) {
		case string:
			b = []byte(v)
		default:
			var err error
			if b, err = json.Marshal(v); err != nil {
				t.Fatal(err)
			}
		}
		m, err := e.obs.Request(streams.ControlSubject, b, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var r streams.Reply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatalf("reply %s: %v", m.Data, err)
		}
		return r
	}
	frames := e.frames(t, "gate")
	spec := fileSpec(t, "gate", 5, 320, 240)
	if r := ask(map[string]any{"op": "create", "stream": spec}); !r.OK || r.Stream.Name != "gate" || !r.Stream.RunsHere {
		t.Fatalf("create: %+v", r)
	}
	if f := next(t, frames, 30*time.Second); f.Seq != 1 {
		t.Fatalf("first frame seq %d", f.Seq)
	}
	if r := ask(`{"op":"patch","name":"gate","stream":{"max_width":100,"max_height":100}}`); !r.OK || r.Stream.MaxWidth != 100 {
		t.Fatalf("patch: %+v", r)
	}
	for i := 0; ; i++ {
		if f := next(t, frames, 30*time.Second); f.Width <= 100 {
			break
		} else if i > 3 {
			t.Fatalf("frame %dx%d after the patch", f.Width, f.Height)
		}
	}
	for body, code := range map[string]string{
		`{"op":"get","name":"a.>"}`:                                 "invalid_stream_name",
		`{"op":"get","name":"` + strings.Repeat("n", 10240) + `"}`:  "invalid_stream_name",
		`{"op":"patch","name":"nope","stream":{"fps":2}}`:           "stream_not_found",
		`{"op":"put","stream":{"name":"x","source":"rtsp://:80/"}}`: "invalid_request",
		`{"op":"create","stream":{"name":"gate","source":"push"}}`:  "stream_exists",
		`{"op":"delete","name":"gate","revision":1}`:                "revision_mismatch",
		`{"op":"unknown"}`: "invalid_request",
		`{{{`:              "invalid_request",
	} {
		if r := ask(body); r.OK || r.Error == nil || r.Error.Code != code {
			t.Errorf("%.50s: %+v, want %s", body, r, code)
		}
	}
	r := ask(`{"op":"get","name":"gate"}`)
	if !r.OK || r.Stream.State != streams.StateLive || r.Stream.Stats == nil || r.Stream.Stats.Published < 2 {
		t.Fatalf("get: %+v", r)
	}
	spec.Enabled = false
	if r := ask(map[string]any{"op": "put", "stream": spec, "revision": r.Stream.Revision}); !r.OK || r.Stream.State != streams.StateDisabled {
		t.Fatalf("disable by put: %+v", r)
	}
	if st, _ := e.mgr.Status("gate"); st.State != streams.StateDisabled {
		t.Fatalf("manager state %q after disabling", st.State)
	}
	if r := ask(`{"op":"list"}`); !r.OK || len(r.Streams) != 1 || r.Streams[0].Enabled {
		t.Fatalf("list: %+v", r)
	}
	if r := ask(`{"op":"delete","name":"gate"}`); !r.OK {
		t.Fatalf("delete: %+v", r)
	}
	wantStreamGoroutines(t, 0, "after the delete")
	if r := ask(`{"op":"list"}`); !r.OK || len(r.Streams) != 0 {
		t.Fatalf("list after delete: %+v", r)
	}
}

// TestManagerRestart: an ingest stopped and started again on the same JetStream store (the NATS
// server restarted too) resumes its streams from the bucket: the file stream publishes again,
// the push stream takes frames, the disabled one stays disabled.
func TestManagerRestart(t *testing.T) {
	testenv.NeedsTestData(t)
	dir := t.TempDir()
	e := startManager(t, dir, nil)
	push := streams.Spec{Name: "door", Source: streams.PushSource, Enabled: true, FPS: 240}
	off := fileSpec(t, "off", 5, 320, 240)
	off.Enabled = false
	for _, s := range []streams.Spec{fileSpec(t, "cam", 5, 320, 240), push, off} {
		if r := httpCall(t, "POST", e.url, specJSON(t, s)); r.status != http.StatusCreated {
			t.Fatalf("create %s: %v", s.Name, r)
		}
	}
	next(t, e.frames(t, "cam"), 30*time.Second)
	e.stop()
	wantStreamGoroutines(t, 0, "after stopping")

	e2 := startManager(t, dir, nil)
	frames := e2.frames(t, "cam")
	doors := e2.frames(t, "door")
	if f := next(t, frames, 30*time.Second); f.Seq != 1 {
		t.Fatalf("first frame after the restart: seq %d", f.Seq)
	}
	jpeg := testImage(t, "two_people.jpg")
	if r := httpCall(t, "POST", e2.url+"/door/frames", jpeg, "Content-Type", "image/jpeg"); r.status != http.StatusAccepted || r.json["seq"] != 1.0 {
		t.Fatalf("push after the restart: %v", r)
	}
	if f := next(t, doors, 30*time.Second); f.Seq != 1 {
		t.Fatalf("pushed frame seq %d", f.Seq)
	}
	r := httpCall(t, "GET", e2.url, nil)
	list, _ := r.json["streams"].([]any)
	if len(list) != 3 {
		t.Fatalf("after the restart: %v", r)
	}
	if st := list[2].(map[string]any); st["name"] != "off" || st["state"] != streams.StateDisabled {
		t.Fatalf("the disabled stream after the restart: %v", st)
	}
}

// TestManagerFailingSource: a stream whose source cannot be opened backs off and retries, says
// why, and disturbs no other stream; given a good source it runs at once.
func TestManagerFailingSource(t *testing.T) {
	testenv.NeedsTestData(t)
	e := startManager(t, t.TempDir(), nil)
	good := e.frames(t, "good")
	if r := httpCall(t, "POST", e.url, specJSON(t, fileSpec(t, "good", 5, 160, 120))); r.status != http.StatusCreated {
		t.Fatalf("create good: %v", r)
	}
	// A missing file is refused when the stream is created, not retried for ever.
	missing := streams.Spec{Name: "bad", Source: filepath.Join(filepath.Dir(faceVideo(t)), "no-such-clip.mp4"), Enabled: true}
	if r := httpCall(t, "POST", e.url, specJSON(t, missing)); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "no such file") {
		t.Fatalf("create a stream of a missing file: %v", r)
	}
	// A camera that does not answer backs off and retries, with the reason.
	if r := httpCall(t, "POST", e.url, []byte(`{"name":"bad","source":"rtsp://127.0.0.1:1/none"}`)); r.status != http.StatusCreated {
		t.Fatalf("create bad: %v", r)
	}
	testenv.Eventually(t, 30*time.Second, "two failed attempts", func() bool {
		st, _ := e.mgr.Status("bad")
		return st.Reconnects >= 2
	})
	r := httpCall(t, "GET", e.url+"/bad", nil)
	if st := r.json["state"]; st != streams.StateBackoff && st != streams.StateConnecting && st != streams.StateLive {
		t.Fatalf("bad stream: %v", r)
	}
	if !strings.Contains(r.json["error"].(string), "127.0.0.1:1") {
		t.Fatalf("bad stream's error: %v", r)
	}
	n := next(t, good, 30*time.Second).Seq
	if f := next(t, good, 30*time.Second); f.Seq != n+1 {
		t.Fatalf("the good stream skipped from %d to %d", n, f.Seq)
	}
	frames := e.frames(t, "bad")
	if r := httpCall(t, "PUT", e.url+"/bad", specJSON(t, fileSpec(t, "bad", 5, 160, 120))); r.status != 200 {
		t.Fatalf("fix the source: %v", r)
	}
	if f := next(t, frames, 30*time.Second); f.Seq != 1 {
		t.Fatalf("first frame of the repaired stream: seq %d", f.Seq)
	}
	if st, _ := e.mgr.Status("bad"); st.State != streams.StateLive {
		t.Fatalf("repaired stream is %q", st.State)
	}
}

// TestManagerFileEnds: a file without loop publishes its frames, announces its end and stays
// ended until its configuration changes.
func TestManagerFileEnds(t *testing.T) {
	testenv.NeedsTestData(t)
	e := startManager(t, t.TempDir(), nil)
	eos, err := e.obs.SubscribeSync(bus.EOSPrefix + ".clip")
	if err != nil {
		t.Fatal(err)
	}
	spec := streams.Spec{Name: "clip", Source: faceVideo(t), Enabled: true, FPS: 10, MaxWidth: 160, MaxHeight: 120}
	if r := httpCall(t, "POST", e.url, specJSON(t, spec)); r.status != http.StatusCreated {
		t.Fatalf("create: %v", r)
	}
	if _, err := eos.NextMsg(30 * time.Second); err != nil {
		t.Fatalf("no end of stream: %v", err)
	}
	testenv.Eventually(t, 10*time.Second, "the ended state", func() bool {
		st, _ := e.mgr.Status("clip")
		return st.State == streams.StateEnded
	})
	published := e.mgr.Stats()["clip"].Published
	if published < 40 || published > 50 {
		t.Fatalf("published %d frames of a 4.6 s clip at 10 fps", published)
	}
	// A new configuration runs it again.
	if r := httpCall(t, "PATCH", e.url+"/clip", []byte(`{"fps":2}`)); r.status != 200 {
		t.Fatalf("patch: %v", r)
	}
	if _, err := eos.NextMsg(30 * time.Second); err != nil {
		t.Fatalf("no second end of stream: %v", err)
	}
	if got := e.mgr.Stats()["clip"].Published - published; got < 8 || got > 11 {
		t.Fatalf("second run at 2 fps published %d frames", got)
	}
}

// TestManagerClose: closing the manager stops every stream and joins every goroutine, and it
// refuses work afterwards.
func TestManagerClose(t *testing.T) {
	testenv.NeedsTestData(t)
	e := startManager(t, t.TempDir(), nil)
	for _, name := range []string{"a", "b", "c"} {
		if r := httpCall(t, "POST", e.url, specJSON(t, fileSpec(t, name, 5, 160, 120))); r.status != http.StatusCreated {
			t.Fatalf("create %s: %v", name, r)
		}
	}
	testenv.Eventually(t, 30*time.Second, "three streams publishing", func() bool {
		s := e.mgr.Stats()
		return s["a"].Published > 0 && s["b"].Published > 0 && s["c"].Published > 0
	})
	_ = e.reg.Close()
	if err := e.mgr.Close(); err != nil {
		t.Fatal(err)
	}
	wantStreamGoroutines(t, 0, "after Close")
	e.mgr.Apply(fileSpec(t, "late", 5, 160, 120))
	if _, ok := e.mgr.Status("late"); ok {
		t.Fatal("a closed manager took a stream")
	}
	if err := e.mgr.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := e.mgr.Settle(ctx, "a"); err != nil {
		t.Fatal(err)
	}
}
