package streams

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestHTTPAPI exercises every route against a registry on a MemoryStore: the codes, the bodies,
// the errors, and what reaches the runner.
func TestHTTPAPI(t *testing.T) {
	e := startRegistry(t, &Registry{PushMaxBytes: 1 << 20, PushMaxPixels: 4000 * 3000}, true)
	base := e.url + "/v1/streams"

	// Create.
	r := call(t, "POST", base, []byte(`{"name":"lobby","source":"rtsp://admin:secret@192.0.2.1/stream","fps":2}`), "Content-Type", "application/json")
	if r.status != http.StatusCreated || r.header.Get("Location") != "/v1/streams/lobby" || r.json["state"] != StateLive || r.json["revision"] == nil {
		t.Fatalf("create: %v", r)
	}
	if s, ok := e.runner.spec("lobby"); !ok || s.FPS != 2 || s.Source != "rtsp://admin:secret@192.0.2.1/stream" || s.MaxWidth != DefaultMaxWidth {
		t.Fatalf("runner got %+v", s)
	}
	if strings.Contains(string(r.body), "secret") {
		t.Fatalf("the password came back: %s", r.body)
	}
	etag := r.header.Get("ETag")
	if r := call(t, "POST", base, []byte(`{"name":"lobby","source":"push"}`)); r.status != http.StatusConflict || r.code() != "stream_exists" {
		t.Fatalf("create twice: %v", r)
	}

	// Get, list.
	if r := call(t, "GET", base+"/lobby", nil); r.status != 200 || r.header.Get("ETag") != etag || r.json["source"] != "rtsp://admin:xxxxx@192.0.2.1/stream" {
		t.Fatalf("get: %v", r)
	}
	call(t, "PUT", base+"/door", []byte(`{"source":"push"}`))
	r = call(t, "GET", base, nil)
	list, _ := r.json["streams"].([]any)
	if r.status != 200 || len(list) != 2 || list[0].(map[string]any)["name"] != "door" {
		t.Fatalf("list: %v", r)
	}

	// Patch: only the fields given change; the password the client saw redacted stays.
	r = call(t, "PATCH", base+"/lobby", []byte(`{"fps":10,"max_width":320}`), "If-Match", etag)
	if r.status != 200 || r.json["fps"] != 10.0 || r.json["max_width"] != 320.0 {
		t.Fatalf("patch: %v", r)
	}
	if r := call(t, "PATCH", base+"/lobby", []byte(`{"fps":1}`), "If-Match", etag); r.status != http.StatusPreconditionFailed || r.code() != "revision_mismatch" {
		t.Fatalf("patch with a stale If-Match: %v", r)
	}
	// PUT what GET showed (redacted) keeps the stored password.
	got := call(t, "GET", base+"/lobby", nil)
	var st Status
	if err := json.Unmarshal(got.body, &st); err != nil {
		t.Fatal(err)
	}
	st.Spec.FPS = 3
	if r := call(t, "PUT", base+"/lobby", mustJSON(t, st.Spec), "If-Match", got.header.Get("ETag")); r.status != 200 {
		t.Fatalf("put back: %v", r)
	}
	if s, _ := e.runner.spec("lobby"); s.Source != "rtsp://admin:secret@192.0.2.1/stream" || s.FPS != 3 || s.MaxWidth != 320 {
		t.Fatalf("after PUT of the redacted form, the runner has %+v", s)
	}

	// Disable, delete.
	if r := call(t, "PATCH", base+"/lobby", []byte(`{"enabled":false}`)); r.status != 200 || r.json["state"] != StateDisabled {
		t.Fatalf("disable: %v", r)
	}
	if r := call(t, "DELETE", base+"/lobby", nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %v", r)
	}
	if _, ok := e.runner.spec("lobby"); ok {
		t.Fatal("the runner still has the deleted stream")
	}
	if r := call(t, "GET", base+"/lobby", nil); r.status != 404 || r.code() != "stream_not_found" {
		t.Fatalf("get after delete: %v", r)
	}

	// Errors: JSON, 4xx, and nothing disturbed.
	long := strings.Repeat("x", 10240)
	for _, c := range []struct {
		method, path, body string
		headers            []string
		status             int
		code               string
	}{
		{"GET", "/a.%3E", "", nil, 400, "invalid_stream_name"},
		{"GET", "/" + long, "", nil, 400, "invalid_stream_name"},
		{"PUT", "/a.%3E", `{"source":"push"}`, nil, 400, "invalid_stream_name"},
		{"POST", "", `{"name":"a.>","source":"push"}`, nil, 400, "invalid_stream_name"},
		{"POST", "", `{"name":"` + long + `","source":"push"}`, nil, 400, "invalid_stream_name"},
		{"POST", "", `{"name":"x","source":"gopher://h/x"}`, nil, 400, "invalid_request"},
		{"POST", "", `{"name":"x","source":""}`, nil, 400, "invalid_request"},
		{"POST", "", `{"name":"x","source":"push","fps":-1}`, nil, 400, "invalid_request"},
		{"POST", "", `{"name":"x","source":"push","bogus":1}`, nil, 400, "invalid_request"},
		{"POST", "", `{"name":"x",`, nil, 400, "invalid_request"},
		{"POST", "", ``, nil, 400, "invalid_request"},
		{"POST", "", `name: x`, []string{"Content-Type", "application/yaml"}, 415, CodeMediaType},
		{"PUT", "/x", `{"name":"y","source":"push"}`, nil, 400, "invalid_request"},
		{"PUT", "/x", `{"source":"push"}`, []string{"If-Match", "soon"}, 400, "invalid_request"},
		{"PATCH", "/nope", `{"fps":1}`, nil, 404, "stream_not_found"},
		{"PATCH", "/door", `{"name":"other"}`, nil, 400, "invalid_request"},
		{"PATCH", "/door", `{"jpeg_quality":101}`, nil, 400, "invalid_request"},
		{"DELETE", "/nope", "", nil, 404, "stream_not_found"},
		{"DELETE", "/door", "", []string{"If-Match", `"999"`}, 412, "revision_mismatch"},
		{"POST", "", strings.Repeat(" ", MaxBodyBytes+10), nil, 413, "body_too_large"},
	} {
		r := call(t, c.method, base+c.path, []byte(c.body), c.headers...)
		if r.status != c.status || r.code() != c.code || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %.40s %.40s: %v, want %d %s", c.method, c.path, c.body, r, c.status, c.code)
		}
		if len(r.body) > 2000 {
			t.Errorf("%s %.40s: an error body of %d bytes", c.method, c.path, len(r.body))
		}
	}
	if names := e.runner.names(); !slices.Equal(names, []string{"door"}) {
		t.Fatalf("after the bad requests the runner runs %v, want [door]", names)
	}

	// The OpenAPI document describes the routes.
	r = call(t, "GET", e.url+"/openapi.json", nil)
	paths, _ := r.json["paths"].(map[string]any)
	for _, p := range []string{"/v1/streams", "/v1/streams/{stream}", "/v1/streams/{stream}/frames"} {
		if paths[p] == nil {
			t.Errorf("OpenAPI lacks %s", p)
		}
	}
}

// TestHTTPPush checks the push route's checks before the runner: stream kind and state, body
// size, content type, image header, pixel bound, capture time.
func TestHTTPPush(t *testing.T) {
	e := startRegistry(t, &Registry{Node: "edge-1", PushMaxBytes: 1 << 20, PushMaxPixels: 2000 * 2000}, true)
	base := e.url + "/v1/streams"
	for _, s := range []string{
		`{"name":"door","source":"push","node":"edge-1"}`,
		`{"name":"off","source":"push","node":"edge-1","enabled":false}`,
		`{"name":"far","source":"push","node":"edge-2"}`,
		`{"name":"cam","source":"rtsp://192.0.2.2/1","node":"edge-1"}`,
	} {
		if r := call(t, "POST", base, []byte(s)); r.status != http.StatusCreated {
			t.Fatalf("create %s: %v", s, r)
		}
	}
	if r := call(t, "GET", base+"/far", nil); r.json["state"] != StateElsewhere || r.json["runs_here"] != false {
		t.Fatalf("a stream of another node: %v", r)
	}
	if _, ok := e.runner.spec("far"); ok {
		t.Fatal("the runner was given another node's stream")
	}
	jpeg, err := os.ReadFile(filepath.Join(testData(t), "detect", "two_people.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	png, err := os.ReadFile(filepath.Join(testData(t), "detect", "obama_32bit.png"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		r := call(t, "POST", base+"/door/frames", jpeg, "Content-Type", "image/jpeg")
		if r.status != http.StatusAccepted || r.json["seq"] != float64(i) || r.json["published"] != true || r.json["stream"] != "door" {
			t.Fatalf("push %d: %v", i, r)
		}
	}
	big := append([]byte{0xff, 0xd8, 0xff}, bytes.Repeat([]byte{0}, 2<<20)...)
	now := strconv.FormatInt(time.Now().UnixNano(), 10)
	for _, c := range []struct {
		path    string
		body    []byte
		headers []string
		status  int
		code    string
	}{
		{"/nope/frames", jpeg, nil, 404, "stream_not_found"},
		{"/a.%3E/frames", jpeg, nil, 400, "invalid_stream_name"},
		{"/cam/frames", jpeg, nil, 409, CodeNotPush},
		{"/off/frames", jpeg, nil, 409, CodeDisabled},
		{"/far/frames", jpeg, nil, 409, CodeWrongNode},
		{"/door/frames", []byte("not an image at all"), nil, 400, "invalid_image"},
		{"/door/frames", jpeg[:100], nil, 400, "invalid_image"},
		{"/door/frames", nil, nil, 400, "invalid_image"},
		{"/door/frames", hugePNG(50000, 50000), nil, 413, "image_too_large"},
		{"/door/frames", big, nil, 413, "body_too_large"},
		{"/door/frames", jpeg, []string{"Content-Type", "text/plain"}, 415, CodeMediaType},
		{"/door/frames", png, []string{"Content-Type", "image/jpeg"}, 415, CodeMediaType},
		{"/door/frames", jpeg, []string{CapturedHeader, "yesterday"}, 400, "invalid_request"},
		{"/door/frames", jpeg, []string{CapturedHeader, "1"}, 400, "invalid_request"},
	} {
		r := call(t, "POST", base+c.path, c.body, c.headers...)
		if r.status != c.status || r.code() != c.code {
			t.Errorf("POST %s (%d bytes, %v): %v, want %d %s", c.path, len(c.body), c.headers, r, c.status, c.code)
		}
	}
	if r := call(t, "POST", base+"/door/frames", png, "Content-Type", "image/png", CapturedHeader, now); r.status != http.StatusAccepted || r.json["seq"] != 3.0 {
		t.Fatalf("push a PNG after the refusals: %v", r)
	}
}

// TestSharedBucket: two ingest nodes on one key-value bucket share the list; each runs its own
// streams; a stream moved from one node to the other stops on the first and starts on the
// second; a restarted registry resumes from the bucket; the streams file is authoritative for
// the streams it names.
func TestSharedBucket(t *testing.T) {
	_, conn := startJetStream(t, t.TempDir())
	a := startRegistry(t, &Registry{Store: openKV(t, conn("a")), Node: "edge-a", Seed: []Spec{{Name: "cam-a", Source: "rtsp://a/1", Enabled: true}}}, false)
	b := startRegistry(t, &Registry{Store: openKV(t, conn("b")), Node: "edge-b"}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The seed got edge-a as its node.
	if s, ok := a.runner.spec("cam-a"); !ok || s.Node != "edge-a" || !s.Enabled {
		t.Fatalf("seeded stream on a: %+v %v", s, ok)
	}
	// Created through b, assigned to a: a runs it, b only knows it.
	if _, err := b.reg.Create(ctx, Spec{Name: "cam-2", Source: "rtsp://192.0.2.3/2", Node: "edge-a", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "a to run cam-2", func() bool { _, ok := a.runner.spec("cam-2"); return ok })
	if st, err := b.reg.Get("cam-2"); err != nil || st.RunsHere || st.State != StateElsewhere {
		t.Fatalf("b's view of cam-2: %+v %v", st, err)
	}
	// Moved to b.
	if _, err := b.reg.Patch(ctx, "cam-2", Patch{Node: ptr("edge-b")}, 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.runner.spec("cam-2"); !ok {
		t.Fatal("b does not run cam-2 after the move")
	}
	testenv.Eventually(t, 10*time.Second, "a to stop cam-2", func() bool { _, ok := a.runner.spec("cam-2"); return !ok })

	// A change while a is down reaches it when it starts again; its seed is written again.
	if err := a.reg.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.reg.Patch(ctx, "cam-a", Patch{FPS: ptr(9.0)}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.reg.Create(ctx, Spec{Name: "cam-3", Source: "push", Node: "edge-a", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	a2 := startRegistry(t, &Registry{Store: openKV(t, conn("a2")), Node: "edge-a", Seed: []Spec{{Name: "cam-a", Source: "rtsp://a/1", Enabled: true}}}, false)
	if s, ok := a2.runner.spec("cam-a"); !ok || s.FPS != DefaultFPS {
		t.Fatalf("after restart cam-a is %+v: the file's configuration should win", s)
	}
	if _, ok := a2.runner.spec("cam-3"); !ok {
		t.Fatal("after restart a does not run cam-3, created while it was down")
	}
	testenv.Eventually(t, 10*time.Second, "b to see the file's fps again", func() bool {
		st, err := b.reg.Get("cam-a")
		return err == nil && st.FPS == DefaultFPS
	})

	// Concurrent patches without If-Match are both applied.
	done := make(chan error, 2)
	go func() { _, err := b.reg.Patch(ctx, "cam-3", Patch{MaxWidth: ptr(320)}, 0); done <- err }()
	go func() { _, err := a2.reg.Patch(ctx, "cam-3", Patch{JPEGQuality: ptr(60)}, 0); done <- err }()
	for i := 0; i < 2; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "both patches", func() bool {
		s, _ := a2.runner.spec("cam-3")
		return s.MaxWidth == 320 && s.JPEGQuality == 60
	})

	// Deleting through b stops it on a.
	if err := b.reg.Delete(ctx, "cam-3", 0); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "a to stop cam-3", func() bool { _, ok := a2.runner.spec("cam-3"); return !ok })
	if _, err := b.reg.Get("cam-3"); err == nil {
		t.Fatal("cam-3 is still listed")
	}
}

func ptr[T any](v T) *T { return &v }

// TestStoreErrors: a registry refuses bad configuration at Start, and a store it cannot reach.
func TestStoreErrors(t *testing.T) {
	ctx := context.Background()
	for name, reg := range map[string]*Registry{
		"no runner": {Runner: nil},
		"bad node":  {Runner: newFakeRunner(), Node: "a.b"},
		"bad seed":  {Runner: newFakeRunner(), Seed: []Spec{{Name: "x", Source: "gopher://x"}}},
		"dup seed":  {Runner: newFakeRunner(), Seed: []Spec{{Name: "x", Source: "push"}, {Name: "x", Source: "push"}}},
	} {
		if err := reg.Start(ctx); err == nil {
			t.Errorf("%s: started", name)
			_ = reg.Close()
		}
	}
	reg := &Registry{Runner: newFakeRunner(), Store: brokenStore{}, Log: quietLog()}
	if err := reg.Start(ctx); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("a store that fails: %v", err)
	}
	// A NATS server without JetStream: the bucket cannot be opened, and the error says why.
	_, conn := startJetStream(t, "")
	js, err := jetstream.New(conn("nojs"))
	if err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := OpenKV(tctx, js, "", 1); !errors.Is(err, bus.ErrNoJetStream) {
		t.Errorf("OpenKV without JetStream: %v", err)
	}
}

// brokenStore fails every call, as a store whose server is gone would.
type brokenStore struct{}

func (brokenStore) Get(context.Context, string) (Entry, error)   { return Entry{}, errUnreachable }
func (brokenStore) Create(context.Context, Spec) (uint64, error) { return 0, errUnreachable }
func (brokenStore) Put(context.Context, Spec, uint64) (uint64, error) {
	return 0, errUnreachable
}
func (brokenStore) Delete(context.Context, string, uint64) error { return errUnreachable }
func (brokenStore) Watch(context.Context, func(Change)) error    { return errUnreachable }

var errUnreachable = &Error{Status: 503, Code: CodeUnavailable, Message: "store unreachable"}

// TestNATSControl answers requests on the control subject over a real NATS server.
func TestNATSControl(t *testing.T) {
	_, conn := startJetStream(t, t.TempDir())
	nc := conn("ingest")
	kv := openKV(t, nc)
	kv.Sealer = newSealer(t)
	e := startRegistry(t, &Registry{Store: kv}, false)
	if err := e.reg.ServeNATS(nc); err != nil {
		t.Fatal(err)
	}
	client := conn("client")
	ask := func(body string) Reply {
		t.Helper()
		m, err := client.Request(ControlSubject, []byte(body), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var r Reply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatalf("reply %s: %v", m.Data, err)
		}
		return r
	}
	if r := ask(`{"op":"list"}`); !r.OK || r.Streams == nil || len(r.Streams) != 0 {
		t.Fatalf("list of nothing: %+v", r)
	}
	r := ask(`{"op":"create","stream":{"name":"gate","source":"rtsp://u:pw@192.0.2.4/1","fps":1}}`)
	if !r.OK || r.Stream == nil || r.Stream.Name != "gate" || r.Stream.Source != "rtsp://u:xxxxx@192.0.2.4/1" || r.Stream.State != StateLive {
		t.Fatalf("create: %+v", r)
	}
	rev := r.Stream.Revision
	if r := ask(`{"op":"patch","name":"gate","stream":{"fps":4},"revision":` + strconv.FormatUint(rev, 10) + `}`); !r.OK || r.Stream.FPS != 4 {
		t.Fatalf("patch: %+v", r)
	}
	if s, _ := e.runner.spec("gate"); s.FPS != 4 || s.Source != "rtsp://u:pw@192.0.2.4/1" {
		t.Fatalf("runner after patch: %+v", s)
	}
	if r := ask(`{"op":"put","stream":{"name":"gate","source":"rtsp://u:xxxxx@192.0.2.4/1","enabled":false}}`); !r.OK || r.Stream.State != StateDisabled || r.Stream.FPS != DefaultFPS {
		t.Fatalf("put: %+v", r)
	}
	if s, _ := e.runner.spec("gate"); s.Source != "rtsp://u:pw@192.0.2.4/1" || s.Enabled {
		t.Fatalf("runner after put: %+v", s)
	}
	if r := ask(`{"op":"get","name":"gate"}`); !r.OK || r.Stream.Enabled {
		t.Fatalf("get: %+v", r)
	}
	for body, code := range map[string]string{
		`garbage`:                    "invalid_request",
		`{"op":"explode"}`:           "invalid_request",
		`{"op":"get","name":"a.>"}`:  "invalid_stream_name",
		`{"op":"get","name":"nope"}`: "stream_not_found",
		`{"op":"create","stream":{"name":"gate","source":"push"}}`:          "stream_exists",
		`{"op":"patch","name":"gate","stream":{"fps":0.0001},"revision":1}`: "revision_mismatch",
		`{"op":"put","stream":{"name":"x","source":"ftp://x"}}`:             "invalid_request",
		`{"op":"delete","name":"nope"}`:                                     "stream_not_found",
		`{"op":"get","name":"` + strings.Repeat("y", 10240) + `"}`:          "invalid_stream_name",
	} {
		if r := ask(body); r.OK || r.Error == nil || r.Error.Code != code {
			t.Errorf("%.50s: %+v, want error %s", body, r, code)
		}
	}
	// A request without a reply subject is ignored; a huge one is answered with an error.
	if err := client.Publish(ControlSubject, []byte(`{"op":"delete","name":"gate"}`)); err != nil {
		t.Fatal(err)
	}
	if r := ask(`{"op":"list","pad":"` + strings.Repeat("z", MaxBodyBytes) + `"}`); r.OK || r.Error.Code != "invalid_request" {
		t.Fatalf("huge request: %+v", r)
	}
	if r := ask(`{"op":"list"}`); len(r.Streams) != 1 {
		t.Fatalf("a request without reply subject changed the list: %+v", r)
	}
	if r := ask(`{"op":"delete","name":"gate"}`); !r.OK {
		t.Fatalf("delete: %+v", r)
	}
	// The delete reaches the runner through the bucket's watch, soon after the answer.
	testenv.Eventually(t, 10*time.Second, "the deleted stream's runner to stop", func() bool { return len(e.runner.names()) == 0 })
	// Close stops answering.
	if err := e.reg.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Request(ControlSubject, []byte(`{"op":"list"}`), 500*time.Millisecond); err == nil {
		t.Fatal("a closed registry answered")
	} else if err != nats.ErrNoResponders && err != nats.ErrTimeout {
		t.Fatalf("request to a closed registry: %v", err)
	}
}

// slowRemoveRunner takes a while to stop a stream, as the Manager does when it joins a runner.
type slowRemoveRunner struct{ *fakeRunner }

func (s slowRemoveRunner) Remove(name string) {
	time.Sleep(20 * time.Millisecond)
	s.fakeRunner.Remove(name)
}

// TestDeleteWaitsForTheRunner: Delete returns only once the Runner has been told to remove the
// stream, however slowly it does so (a caller that deletes and then reads the metrics must not
// find the stream's series). Several rounds, because the watch may deliver the deletion before
// or after the store acknowledges it.
func TestDeleteWaitsForTheRunner(t *testing.T) {
	_, conn := startJetStream(t, t.TempDir())
	sr := slowRemoveRunner{newFakeRunner()}
	e := startRegistry(t, &Registry{Store: openKV(t, conn("a")), Runner: sr}, false)
	e.runner = sr.fakeRunner
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 10 {
		if _, err := e.reg.Create(ctx, Spec{Name: "cam", Source: "rtsp://192.0.2.3/1", Enabled: true}); err != nil {
			t.Fatal(err)
		}
		if err := e.reg.Delete(ctx, "cam", 0); err != nil {
			t.Fatal(err)
		}
		if _, ok := e.runner.spec("cam"); ok {
			t.Fatalf("round %d: Delete returned before the runner removed the stream", i)
		}
	}
}
