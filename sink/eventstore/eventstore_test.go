package eventstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/pkg/testenv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/bus/bustest"
	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/sink"
	"github.com/vigil-video/vigil/sink/eventstore"
	"github.com/vigil-video/vigil/sink/eventstore/eventstoretest"
	"github.com/vigil-video/vigil/sink/eventstore/snapshot"
	"github.com/vigil-video/vigil/sink/eventstore/sqlite"
	"github.com/vigil-video/vigil/sink/jsonl"
	"github.com/vigil-video/vigil/sink/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Every sink of this issue fits the contracts it is wired into.
var (
	_ sink.Sink              = (*eventstore.Store)(nil)
	_ eventstore.EventSink   = (*eventstore.Store)(nil)
	_ eventstore.EventSink   = (*webhook.Sink)(nil)
	_ eventstore.EventSink   = (*jsonl.Writer)(nil)
	_ eventstore.Snapshotter = (*snapshot.Ring)(nil)
)

func openStore(t *testing.T, st *eventstore.Store) *eventstore.Store {
	t.Helper()
	if st == nil {
		st = &eventstore.Store{}
	}
	if st.PruneInterval == 0 {
		st.PruneInterval = -1
	}
	if err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "events.db"), st); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestSplitStatements(t *testing.T) {
	got := eventstore.SplitStatements("-- comment\nCREATE TABLE a (x INT);\n\nCREATE INDEX i\n  ON a (x);\n  -- trailing\nSELECT 1")
	if len(got) != 3 || got[0] != "CREATE TABLE a (x INT)" || got[1] != "CREATE INDEX i\n  ON a (x)" || got[2] != "SELECT 1" {
		t.Fatalf("%q", got)
	}
}

// TestMigrationFiles: migration sets with gaps, bad names or nothing are refused.
func TestMigrationFiles(t *testing.T) {
	db, err := sqlite.OpenDB(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, files := range map[string]fstest.MapFS{
		"gap":      {"0001_a.sql": {Data: []byte("SELECT 1;")}, "0003_c.sql": {Data: []byte("SELECT 1;")}},
		"bad name": {"first.sql": {Data: []byte("SELECT 1;")}},
		"empty":    {},
		"bad sql":  {"0001_a.sql": {Data: []byte("CREATE NONSENSE;")}},
	} {
		d := sqlite.Dialect()
		d.Migrations = files
		st := &eventstore.Store{DB: db, Dialect: d, PruneInterval: -1}
		if err := st.Initialize(context.Background()); err == nil {
			t.Errorf("%s: migrations accepted", name)
		}
	}
}

func TestParseEventFilter(t *testing.T) {
	f, err := eventstore.ParseEventFilter(url.Values{"stream": {"lobby"}, "kind": {"face.left"}, "identified": {"true"},
		"since": {"2026-11-22T00:00:00Z"}, "until": {"1795306514"}, "before": {"9"}, "limit": {"5"}, "identity": {"Ada"}, "track_id": {"t-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if f.Stream != "lobby" || f.Kind != event.KindLeft || !f.Identified || f.Before != 9 || f.Limit != 5 ||
		!f.Until.Equal(time.Unix(1795306514, 0)) || f.Since.Year() != 2026 || f.Identity != "Ada" || f.TrackID != "t-1" {
		t.Fatalf("%+v", f)
	}
	for _, q := range []string{"stream=a.b", "kind=face", "limit=5000", "limit=x", "since=yesterday", "colour=red",
		"stream=a&stream=b", "identified=maybe", "since=1795306514&until=1795306514", "before=-1"} {
		v, _ := url.ParseQuery(q)
		if _, err := eventstore.ParseEventFilter(v); !errors.Is(err, eventstore.ErrQuery) {
			t.Errorf("%s: %v", q, err)
		}
	}
	if _, err := eventstore.ParseResultFilter(url.Values{"kind": {"face.left"}}); !errors.Is(err, eventstore.ErrQuery) {
		t.Error("result filter accepted kind")
	}
}

func FuzzParseEventFilter(f *testing.F) {
	for _, q := range []string{"stream=lobby&kind=face.left&limit=5", "since=2026-11-22T00:00:00Z&until=1795306514",
		"identified=1&before=10&identity=Ada", "track_id=x&limit=0", "%zz", "stream=a&stream=b"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		ef, err := eventstore.ParseEventFilter(q)
		if err != nil {
			if !errors.Is(err, eventstore.ErrQuery) {
				t.Fatalf("error %v does not wrap ErrQuery", err)
			}
			return
		}
		if err := ef.Validate(); err != nil {
			t.Fatalf("parsed filter %+v does not validate: %v", ef, err)
		}
		if _, err := eventstore.ParseResultFilter(q); err != nil && !errors.Is(err, eventstore.ErrQuery) {
			t.Fatal(err)
		}
	})
}

func getJSON(t *testing.T, u string, wantStatus int, into any) http.Header {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s: %d %s, want %d", u, resp.StatusCode, body, wantStatus)
	}
	if into != nil {
		if err := json.Unmarshal(body, into); err != nil {
			t.Fatalf("GET %s: %v: %s", u, err, body)
		}
	}
	return resp.Header
}

// TestAPI: the history routes on a real HTTP server over a real SQLite store.
func TestAPI(t *testing.T) {
	st := openStore(t, nil)
	snap := eventstoretest.JPEG(t)
	at := time.Date(2026, 11, 22, 0, 5, 14, 0, time.UTC)
	var ids []int64
	for i := 0; i < 3; i++ {
		ev := eventstoretest.Event("lobby", fmt.Sprintf("t%d", i), event.KindRecognized, at.Add(time.Duration(i)*time.Second))
		id, err := st.StoreEvent(context.Background(), ev, snap)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := st.Write(context.Background(), eventResult()); err != nil {
		t.Fatal(err)
	}
	srv := &httpapi.Server{Addr: "127.0.0.1:0"}
	(&eventstore.API{Store: st}).Mount(srv)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	base := srv.URL()

	var page eventstore.EventList
	getJSON(t, base+"/v1/history/events?limit=2&stream=lobby", http.StatusOK, &page)
	if len(page.Events) != 2 || page.Events[0].ID != ids[2] || page.NextBefore != ids[1] || !page.Events[0].HasSnapshot ||
		page.Events[0].Identity.Name != "Barack_Obama" || page.Events[0].Kind != event.KindRecognized {
		t.Fatalf("page %+v", page)
	}
	getJSON(t, fmt.Sprintf("%s/v1/history/events?limit=2&before=%d", base, page.NextBefore), http.StatusOK, &page)
	if len(page.Events) != 1 || page.NextBefore != 0 {
		t.Fatalf("last page %+v", page)
	}
	var one eventstore.StoredEvent
	getJSON(t, fmt.Sprintf("%s/v1/history/events/%d", base, ids[0]), http.StatusOK, &one)
	if one.TrackID != "t0" || one.Crop.Box.X2 != 405.5 {
		t.Fatalf("event %+v", one)
	}
	resp, err := http.Get(fmt.Sprintf("%s/v1/history/events/%d/snapshot", base, ids[0]))
	if err != nil {
		t.Fatal(err)
	}
	img, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" || !bytes.Equal(img, snap) {
		t.Fatalf("snapshot: %d %s, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(img))
	}
	var rs eventstore.ResultList
	getJSON(t, base+"/v1/history/results?identified=true", http.StatusOK, &rs)
	if len(rs.Results) != 1 || rs.Results[0].Identities[0] != "Ada" {
		t.Fatalf("results %+v", rs)
	}
	getJSON(t, base+"/v1/history/events?kind=face.sneezed", http.StatusBadRequest, nil)
	getJSON(t, base+"/v1/history/events/x", http.StatusBadRequest, nil)
	getJSON(t, base+"/v1/history/events/999", http.StatusNotFound, nil)
	getJSON(t, base+"/v1/history/events/999/snapshot", http.StatusNotFound, nil)
	var doc map[string]any
	getJSON(t, base+"/openapi.json", http.StatusOK, &doc)
	if _, ok := doc["paths"].(map[string]any)["/v1/history/events/{id}/snapshot"]; !ok {
		t.Fatal("OpenAPI document lacks the history routes")
	}
}

func eventResult() (r result.Result) {
	r = result.Result{Schema: 1, Stream: "lobby", Seq: 9, CapturedAt: time.Unix(1795306514, 0)}
	r.Faces = append(r.Faces, result.Face{Score: 0.9, Identity: &result.Identity{Name: "Ada", Similarity: 0.9}})
	return r
}

// picture is a JPEG frame with a red square at (100,60)-(180,140).
func picture(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 320, 240))
	for y := 0; y < 240; y++ {
		for x := 0; x < 320; x++ {
			c := color.RGBA{90, 90, 90, 255}
			if x >= 100 && x < 180 && y >= 60 && y < 140 {
				c = color.RGBA{220, 20, 20, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// flaky is an EventSink that fails its first n writes, and records what it took.
type flaky struct {
	mu    sync.Mutex
	fails int
	got   []event.Event
	snaps int
}

func (f *flaky) WriteEvent(_ context.Context, ev event.Event, snap []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return errors.New("flaky: not now")
	}
	f.got = append(f.got, ev)
	if len(snap) > 0 {
		f.snaps++
	}
	return nil
}

func (f *flaky) Close() error { return nil }

func (f *flaky) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.got) }

func publishEvent(t *testing.T, js jetstream.JetStream, nc *nats.Conn, ev event.Event) {
	t.Helper()
	subj, err := event.EventSubject(ev.Stream, ev.Kind)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ev)
	if js != nil {
		if _, err := js.Publish(context.Background(), subj, b); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := nc.Publish(subj, b); err != nil {
		t.Fatal(err)
	}
}

// TestConsumerJetStream: events from VIGIL_EVENTS reach the store with snapshots cut from the
// frames the ring holds, a webhook with the snapshot, and a flaky sink that gets them once it
// recovers (redelivery); malformed events are dropped; a restarted consumer resumes without
// storing anything twice.
func TestConsumerJetStream(t *testing.T) {
	srv := bustest.StartServer(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, bus.EventsStreamConfig(config.JetStream{Storage: "memory"})); err != nil {
		t.Fatal(err)
	}
	// Frames arrive over NATS into the ring, as in the sink process.
	ring := &snapshot.Ring{Conn: nc}
	if err := ring.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	captured := time.Date(2026, 11, 22, 0, 5, 14, 0, time.UTC)
	f := frame.Frame{Stream: "lobby", Seq: 55, Captured: captured, Width: 320, Height: 240, Encoding: frame.EncodingJPEG, Data: picture(t)}
	m, _ := f.Msg("vigil.frames.lobby")
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the frame in the ring", func() bool { return ring.Stats().Frames == 1 })

	var hookMu sync.Mutex
	var hooks []webhook.Payload
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := webhook.VerifyRequest(r, []byte("k"), 0, 0)
		if err == nil {
			var p webhook.Payload
			if p, err = webhook.ParsePayload(body); err == nil {
				hookMu.Lock()
				hooks = append(hooks, p)
				hookMu.Unlock()
			}
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	}))
	defer recv.Close()
	hook := &webhook.Sink{URL: recv.URL, Secret: []byte("k"), IncludeSnapshot: true}
	if err := hook.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer hook.Close()

	st := openStore(t, nil)
	fl := &flaky{fails: 2}
	run := func(sinks ...eventstore.EventSink) (*eventstore.Consumer, func()) {
		c := &eventstore.Consumer{Conn: nc, JetStream: js, Sinks: sinks, Snapshots: ring, RetryDelay: 10 * time.Millisecond}
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(cctx) }()
		select {
		case <-c.Ready():
		case err := <-done:
			t.Fatalf("Run: %v", err)
		}
		return c, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	c, stop := run(st, hook, fl)
	withFrame := eventstoretest.Event("lobby", "t1", event.KindAppeared, captured)
	withFrame.Crop = event.Crop{Stream: "lobby", Seq: 55, CapturedAt: captured, Box: resultBox(100, 60, 180, 140), Width: 320, Height: 240}
	noFrame := eventstoretest.Event("lobby", "t2", event.KindAppeared, captured) // crop seq 55 at another capture time
	publishEvent(t, js, nc, withFrame)
	publishEvent(t, js, nc, noFrame)
	if _, err := js.Publish(ctx, "vigil.events.lobby.face.appeared", []byte(`{"schema":7}`)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "both events everywhere", func() bool { return fl.count() == 2 })
	stop()
	s := c.Stats()
	if s.Events != 2 || s.Failed != 2 || s.Invalid != 1 || s.Snapshots < 1 || s.SnapshotMisses < 1 {
		t.Fatalf("consumer stats %+v", s)
	}
	evs, err := st.Events(ctx, eventstore.EventFilter{})
	if err != nil || len(evs) != 2 {
		t.Fatalf("%d stored events, %v", len(evs), err)
	}
	byTrack := map[string]eventstore.StoredEvent{}
	for _, e := range evs {
		byTrack[e.TrackID] = e
	}
	if !byTrack["t1"].HasSnapshot || byTrack["t2"].HasSnapshot {
		t.Fatalf("snapshots: t1 %v (frame held), t2 %v (frame not held)", byTrack["t1"].HasSnapshot, byTrack["t2"].HasSnapshot)
	}
	jpg, err := st.Snapshot(ctx, byTrack["t1"].ID)
	if err != nil {
		t.Fatal(err)
	}
	if img, err := jpeg.Decode(bytes.NewReader(jpg)); err != nil || img.Bounds().Dx() < 80 {
		t.Fatalf("snapshot: %v %v", err, img)
	}
	hookMu.Lock()
	n, withSnap := len(hooks), 0
	for _, p := range hooks {
		if len(p.Snapshot) > 0 {
			withSnap++
		}
	}
	hookMu.Unlock()
	if n < 2 || withSnap < 1 {
		t.Fatalf("webhook got %d events, %d with a snapshot", n, withSnap)
	}

	// A restarted consumer resumes after what was acknowledged: only the new event is handled.
	fl2 := &flaky{}
	c2, stop2 := run(st, fl2)
	publishEvent(t, js, nc, eventstoretest.Event("lobby", "t3", event.KindAppeared, captured))
	testenv.Eventually(t, 20*time.Second, "the new event", func() bool { return fl2.count() == 1 })
	stop2()
	if c2.Stats().Events != 1 {
		t.Fatalf("restarted consumer handled %+v", c2.Stats())
	}
	if s := st.Stats(); s.Events != 3 {
		t.Fatalf("store stats %+v", s)
	}
}

func resultBox(x1, y1, x2, y2 float32) result.Box { return result.Box{X1: x1, Y1: y1, X2: x2, Y2: y2} }

// TestConsumerCore: with core NATS the consumer sees what is published while it runs, and
// Streams limits it.
func TestConsumerCore(t *testing.T) {
	srv := bustest.StartServer(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fl := &flaky{}
	c := &eventstore.Consumer{Conn: nc, Sinks: []eventstore.EventSink{fl}, Streams: []string{"lobby"}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	<-c.Ready()
	at := time.Unix(1795306514, 0)
	publishEvent(t, nil, nc, eventstoretest.Event("door", "d1", event.KindAppeared, at))
	publishEvent(t, nil, nc, eventstoretest.Event("lobby", "l1", event.KindAppeared, at))
	publishEvent(t, nil, nc, eventstoretest.Event("lobby", "l1", event.KindLeft, at))
	testenv.Eventually(t, 20*time.Second, "two lobby events", func() bool { return fl.count() == 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, ev := range fl.got {
		if ev.Stream != "lobby" {
			t.Fatalf("event of stream %s outside Streams", ev.Stream)
		}
	}
	if err := (&eventstore.Consumer{Conn: nc}).Run(context.Background()); err == nil {
		t.Fatal("Run without sinks")
	}
}

// TestCollectors: every collector of this packages registers in one registry beside the
// others and exports its families.
func TestCollectors(t *testing.T) {
	st := openStore(t, nil)
	if _, err := st.StoreEvent(context.Background(), eventstoretest.Event("a", "t", event.KindAppeared, time.Now()), nil); err != nil {
		t.Fatal(err)
	}
	w := &jsonl.Writer{Path: filepath.Join(t.TempDir(), "r.jsonl")}
	if err := w.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	hook := &webhook.Sink{Name: "ops", URL: "http://127.0.0.1:1/hook"}
	if err := hook.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer hook.Close()
	c := &eventstore.Consumer{}
	ring := &snapshot.Ring{}
	reg := prometheus.NewRegistry()
	reg.MustRegister(st.Collector(), c.Collector(), ring.Collector(), jsonl.NewCollector(w), webhook.NewCollector(hook))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range fams {
		got[f.GetName()] = true
	}
	for _, name := range []string{"vigil_eventstore_events_total", "vigil_events_consumed_total", "vigil_snapshot_lookups_total",
		"vigil_jsonl_lines_total", "vigil_webhook_deliveries_total", "vigil_webhook_delivery_seconds"} {
		if !got[name] {
			t.Errorf("%s not exported", name)
		}
	}
	if st.Delivered() != 1 || w.Delivered() != 0 || hook.Delivered() != 0 {
		t.Fatal("Delivered")
	}
}
