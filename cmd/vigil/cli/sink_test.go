package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/sink/eventstore"
	"github.com/vigil-video/vigil/sink/eventstore/sqlite"
	"github.com/vigil-video/vigil/sink/webhook"
)

// sinkBus is a real NATS server with JetStream, its streams created as a sink creates them, and
// a client connection that publishes like the pipeline's roles.
type sinkBus struct {
	url string
	nc  *nats.Conn
	js  jetstream.JetStream
}

func startSinkBus(t *testing.T) *sinkBus {
	t.Helper()
	ctx := context.Background()
	ns := &bus.EmbeddedServer{StoreDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}
	if err := ns.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	nc, err := bus.Connect(ctx, ns.ClientURL(), "test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := setupJetStream(ctx, nc, config.Default().JetStream, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &sinkBus{url: ns.ClientURL(), nc: nc, js: js}
}

// publish stores doc (JSON) on subject, waiting for JetStream's acknowledgement.
func (b *sinkBus) publish(t *testing.T, subject string, doc any) {
	t.Helper()
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.js.Publish(ctx, subject, data); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
}

// result publishes a result of stream with faces faces (named when name is set).
func (b *sinkBus) result(t *testing.T, stream string, seq uint64, faces int, name string) result.Result {
	t.Helper()
	// Whole seconds plus a fixed fraction: results of two-digit seqs encode to lines of one length.
	at := time.Date(2026, 11, 22, 0, 5, 14, 0, time.UTC).Add(time.Duration(seq)*time.Second + 123*time.Millisecond)
	r := result.Result{Schema: result.SchemaVersion, Stream: stream, Seq: seq, CapturedAt: at, AnalyzedAt: at.Add(40 * time.Millisecond),
		LatencyMS: 40, Width: 640, Height: 480, Faces: []result.Face{}}
	for i := range faces {
		f := result.Face{Box: result.Box{X1: 100, Y1: 80, X2: 180, Y2: 170}, Score: 0.9 - float32(i)/10}
		if name != "" {
			f.Identity = &result.Identity{Name: name, Similarity: 0.8}
		}
		r.Faces = append(r.Faces, f)
	}
	b.publish(t, bus.ResultsPrefix+"."+stream, r)
	return r
}

// event publishes a track event on vigil.events.<stream>.<kind>.
func (b *sinkBus) event(t *testing.T, stream, kind, trackID string, seq uint64) event.Event {
	t.Helper()
	at := time.Date(2026, 11, 22, 0, 5, 14, 0, time.UTC)
	ev := event.Event{Schema: event.EventSchema, Kind: kind, Stream: stream, TrackID: trackID, Seq: seq, CapturedAt: at, At: at.Add(time.Second),
		Crop:      event.Crop{Stream: stream, Seq: seq, CapturedAt: at, Box: result.Box{X1: 16, Y1: 12, X2: 48, Y2: 44}, Width: 64, Height: 48},
		FirstSeen: at, LastSeen: at, Frames: 3}
	subject, err := event.EventSubject(stream, kind)
	if err != nil {
		t.Fatal(err)
	}
	b.publish(t, subject, ev)
	return ev
}

// commandRun is a command running in-process.
type commandRun struct {
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan int
}

// startCommand runs vigil args in-process with env as its whole environment.
func startCommand(t *testing.T, env map[string]string, args ...string) *commandRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &commandRun{stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() {
		c.done <- Main(ctx, Env{Args: args, Stdout: io.Discard, Stderr: c.stderr, Version: "test", Getenv: func(k string) string { return env[k] }})
	}()
	t.Cleanup(func() {
		cancel()
		<-c.done
		c.done <- 0 // for a stop that comes later
	})
	return c
}

// stop interrupts the command (SIGTERM) and returns its exit code, failing after 30 s.
func (c *commandRun) stop(t *testing.T) int {
	t.Helper()
	c.cancel()
	select {
	case code := <-c.done:
		c.done <- code
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("the command did not stop:\n%s", c.stderr.String())
		return -1
	}
}

// logValue waits up to d for a JSON log line with msg and returns its key (the command runs
// with --log-json); it fails if the command exits first.
func (c *commandRun) logValue(t *testing.T, d time.Duration, msg, key string) string {
	t.Helper()
	var val string
	testenv.Eventually(t, d, "log "+msg, func() bool {
		select {
		case code := <-c.done:
			c.done <- code
			t.Fatalf("the command exited %d:\n%s", code, c.stderr.String())
		default:
		}
		val = findLog(c.stderr.String(), msg, key)
		return val != ""
	})
	return val
}

// findLog returns key's value in the last JSON log line whose msg is msg, "" if none.
func findLog(logs, msg, key string) string {
	val := ""
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var l map[string]any
		if json.Unmarshal(sc.Bytes(), &l) == nil && l["msg"] == msg {
			val = fmt.Sprint(l[key])
		}
	}
	return val
}

// scrape returns the text of url (a /metrics page).
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// hookReceiver is a webhook receiver that verifies every delivery's signature with
// webhook.Verify and records the payloads; while hold is open it answers nothing.
type hookReceiver struct {
	t      *testing.T
	secret []byte
	srv    *httptest.Server
	hold   chan struct{}
	mu     sync.Mutex
	got    []webhook.Payload
}

func newHookReceiver(t *testing.T, secret []byte, held bool) *hookReceiver {
	rc := &hookReceiver{t: t, secret: secret, hold: make(chan struct{})}
	if !held {
		close(rc.hold)
	}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	t.Cleanup(rc.release) // before the server closes: a held request must not block Close
	return rc
}

func (rc *hookReceiver) release() {
	select {
	case <-rc.hold:
	default:
		close(rc.hold)
	}
}

func (rc *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	select {
	case <-rc.hold:
	case <-r.Context().Done():
		return
	}
	body, err := io.ReadAll(r.Body)
	if err == nil {
		err = webhook.Verify(rc.secret, r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, time.Now(), 0)
	}
	var p webhook.Payload
	if err == nil {
		p, err = webhook.ParsePayload(body)
	}
	if err == nil && r.Header.Get(webhook.HeaderDelivery) != p.Delivery {
		err = fmt.Errorf("delivery header %q for payload %q", r.Header.Get(webhook.HeaderDelivery), p.Delivery)
	}
	if err != nil {
		rc.t.Errorf("webhook receiver: %v", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	rc.mu.Lock()
	if !slices.ContainsFunc(rc.got, func(q webhook.Payload) bool { return q.Delivery == p.Delivery }) { // at least once: dedupe
		rc.got = append(rc.got, p)
	}
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// deliveries returns the delivery ids received, in order.
func (rc *hookReceiver) deliveries() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, p := range rc.got {
		out = append(out, p.Delivery)
	}
	return out
}

// TestSinkWebhooks runs vigil sink with two webhooks against a real NATS server with JetStream:
// results and events published there reach the receiver signed (checked with webhook.Verify) and
// filtered by stream and type, while the other receiver, which answers nothing, holds up neither
// the first nor the JSON-lines file: each webhook reads through durable consumers of its own.
// Once it answers, it gets everything too.
func TestSinkWebhooks(t *testing.T) {
	b := startSinkBus(t)
	secret := []byte("shared-secret-1")
	secretFile := filepath.Join(t.TempDir(), "hook.key")
	if err := os.WriteFile(secretFile, append(secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	live, held := newHookReceiver(t, secret, false), newHookReceiver(t, secret, true)

	// What the filters leave out comes first: once the receiver has what they keep, the rest has
	// been handled too (each webhook delivers a stream in order).
	b.result(t, "other", 1, 1, "")                    // --webhook-streams
	b.event(t, "other", event.KindAppeared, "o-1", 1) // --webhook-streams
	b.result(t, "lobby", 1, 0, "")                    // no face
	b.event(t, "lobby", event.KindLeft, "t-0", 1)     // --webhook-types
	r2 := b.result(t, "lobby", 2, 1, "Ada")
	r3 := b.result(t, "lobby", 3, 2, "")
	ev := b.event(t, "lobby", event.KindAppeared, "t-1", 3)
	// Results come in order; the event comes through its own consumer, at any point among them.
	want := []string{webhook.ResultDelivery(r2), webhook.ResultDelivery(r3), webhook.EventDelivery(ev)}
	check := func(who string, got []string) {
		t.Helper()
		results := slices.DeleteFunc(slices.Clone(got), func(d string) bool { return d == want[2] })
		if len(got) != len(want) || !slices.Equal(results, want[:2]) || !slices.Contains(got, want[2]) {
			t.Fatalf("%s receiver got %v, want %v (the event anywhere)", who, got, want)
		}
	}

	out := filepath.Join(t.TempDir(), "results.jsonl")
	run := startCommand(t, map[string]string{"VIGIL_WEBHOOK_SECRET_FILE": secretFile}, "sink", "--nats-url", b.url, "--quiet", "--jsonl", out, "--log-json",
		"--webhook", live.srv.URL+"/hook", "--webhook", held.srv.URL, "--webhook-types", "result,face.appeared",
		"--webhook-streams", "lobby", "--webhook-max-attempts", "3", "--webhook-timeout", "20s", "--metrics-addr", "127.0.0.1:0")
	metricsURL := run.logValue(t, 10*time.Second, "metrics", "url")
	testenv.Eventually(t, 10*time.Second, "the live webhook receives its documents", func() bool { return len(live.deliveries()) >= len(want) })
	check("live", live.deliveries())
	if got := held.deliveries(); len(got) != 0 {
		t.Fatalf("held receiver answered: %v", got)
	}
	testenv.Eventually(t, 5*time.Second, "the JSON-lines file has every result while a webhook is held", func() bool {
		data, _ := os.ReadFile(out)
		return bytes.Count(data, []byte("\n")) == 4
	})
	// Each webhook has its own consumers, on both streams.
	ctx := context.Background()
	for _, stream := range []string{bus.ResultsStream, bus.EventsStream} {
		for _, name := range []string{"vigil-sink-webhook-1", "vigil-sink-webhook-2"} {
			if _, err := b.js.Consumer(ctx, stream, name); err != nil {
				t.Errorf("consumer %s on %s: %v", name, stream, err)
			}
		}
	}
	for _, m := range []string{`vigil_webhook_deliveries_total{outcome="delivered",webhook="webhook-1"} 3`,
		`vigil_sink_delivered_total{sink="webhook-1"} 3`, `vigil_events_consumed_total{consumer="vigil-sink-webhook-1",outcome="ok"} 2`} {
		// The counters move once the receiver's answer is in, just after it recorded the payload.
		testenv.Eventually(t, 5*time.Second, "metric "+m, func() bool { return strings.Contains(scrape(t, metricsURL), m) })
	}

	held.release()
	testenv.Eventually(t, 10*time.Second, "the held webhook catches up", func() bool { return len(held.deliveries()) >= len(want) })
	check("held", held.deliveries())
	if code := run.stop(t); code != 0 {
		t.Fatalf("vigil sink exited %d:\n%s", code, run.stderr.String())
	}
	logs := run.stderr.String()
	// Filtered: the other stream's result, the faceless result, face.left (the other stream's
	// event never reaches the webhook's consumer).
	for _, kv := range [][2]string{{"delivered", "3"}, {"filtered", "3"}, {"rejected", "0"}} {
		if v := findLog(logs, "webhook summary", kv[0]); v != kv[1] {
			t.Errorf("webhook summary %s = %s, want %s\n%s", kv[0], v, kv[1], logs)
		}
	}
}

// TestSinkJSONLRotation: --jsonl-max-size rotates the file into NAME-<time>.jsonl files beside
// it, --jsonl-keep bounds how many are kept, and every line is a whole result, in order.
func TestSinkJSONLRotation(t *testing.T) {
	b := startSinkBus(t)
	const first, n = 10, 24 // two-digit seqs: every line has the same length
	var size int
	for seq := uint64(first); seq < first+n; seq++ {
		r := b.result(t, "lobby", seq, 1, "")
		line, _ := json.Marshal(r)
		size = len(line) + 1
	}
	b.publish(t, bus.EOSPrefix+".lobby", result.EndOfStream{Schema: result.SchemaVersion, Stream: "lobby", Frames: n, At: time.Now()})
	dir := t.TempDir()
	out := filepath.Join(dir, "results.jsonl")
	if err := os.WriteFile(out, []byte("left from an earlier run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	maxSize := 4 * size // four lines a file
	code, _, errOut := runCLI(t, nil, "sink", "--nats-url", b.url, "--quiet", "--jsonl", out, "--await", "lobby",
		"--jsonl-max-size", fmt.Sprint(maxSize), "--jsonl-keep", "2")
	if code != 0 {
		t.Fatalf("vigil sink exited %d:\n%s", code, errOut)
	}
	files, err := filepath.Glob(filepath.Join(dir, "results*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files) // rotated names sort by time; results.jsonl sorts last
	if len(files) != 3 || files[2] != out || !strings.HasPrefix(filepath.Base(files[0]), "results-") {
		t.Fatalf("files %v: want 2 rotated files and %s", files, out)
	}
	var seqs []uint64
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > maxSize {
			t.Errorf("%s has %d bytes, more than --jsonl-max-size %d", f, len(data), maxSize)
		}
		for _, r := range readResults(t, string(data)) {
			seqs = append(seqs, r.Seq)
		}
	}
	// 24 lines of four a file: the active file and two rotated ones hold the last 12.
	last := uint64(first + n - 1)
	if len(seqs) != 12 || seqs[0] != last-11 || !slices.IsSorted(seqs) || seqs[len(seqs)-1] != last {
		t.Fatalf("kept results %v, want %d..%d", seqs, last-11, last)
	}
}

// testJPEG returns a w x h JPEG.
func testJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(4 * x), uint8(5 * y), 128, 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// openHistory opens the SQLite history at path as vigil serve does (no retention of its own).
func openHistory(t *testing.T, path string) *eventstore.Store {
	t.Helper()
	st := &eventstore.Store{PruneInterval: -1, Log: slog.New(slog.DiscardHandler)}
	if err := sqlite.Open(context.Background(), path, st); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// holdFrame publishes the 64x48 JPEG data as frame 7 of stream lobby, the frame b.event's crop
// names, and waits until the snapshot ring of the vigil sink whose metrics are at metricsURL holds
// it (it must, before the event arrives).
func (b *sinkBus) holdFrame(t *testing.T, metricsURL string, data []byte) {
	t.Helper()
	f := frame.Frame{Stream: "lobby", Seq: 7, Captured: time.Date(2026, 11, 22, 0, 5, 14, 0, time.UTC), Width: 64, Height: 48,
		Encoding: frame.EncodingJPEG, Data: data}
	msg, err := f.Msg(bus.FramesPrefix + ".lobby")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the snapshot ring holds the frame", func() bool {
		return strings.Contains(scrape(t, metricsURL), "vigil_snapshot_frames_held 1")
	})
}

// TestSinkEventsDB: vigil sink --events-db stores the track events published on
// vigil.events.<stream>.face.appeared, with the face snapshot cut from the frame the event names
// (held by the snapshot ring from vigil.frames.<stream>), and a summary of each result with a face.
func TestSinkEventsDB(t *testing.T) {
	b := startSinkBus(t)
	db := filepath.Join(t.TempDir(), "events.db")
	run := startCommand(t, nil, "sink", "--nats-url", b.url, "--quiet", "--log-json", "--events-db", db, "--metrics-addr", "127.0.0.1:0")
	metricsURL := run.logValue(t, 10*time.Second, "metrics", "url")

	b.holdFrame(t, metricsURL, testJPEG(t, 64, 48))
	ev := b.event(t, "lobby", event.KindAppeared, "t-1", 7)
	b.result(t, "lobby", 7, 1, "Ada")
	b.result(t, "lobby", 8, 0, "") // no face: no summary

	st := openHistory(t, db)
	ctx := context.Background()
	var events []eventstore.StoredEvent
	var err error
	testenv.Eventually(t, 10*time.Second, "the event is stored", func() bool {
		events, err = st.Events(ctx, eventstore.EventFilter{Stream: "lobby"})
		return err == nil && len(events) == 1
	})
	got := events[0]
	if got.Kind != event.KindAppeared || got.TrackID != ev.TrackID || got.Seq != 7 || !got.HasSnapshot {
		t.Fatalf("stored event %+v", got)
	}
	snap, err := st.Snapshot(ctx, got.ID)
	if err != nil || !eventstore.IsJPEG(snap) {
		t.Fatalf("snapshot: %d bytes, %v", len(snap), err)
	}
	var results []eventstore.ResultSummary
	testenv.Eventually(t, 10*time.Second, "the result summary is stored", func() bool {
		results, err = st.Results(ctx, eventstore.ResultFilter{Stream: "lobby"})
		return err == nil && len(results) == 1
	})
	if r := results[0]; r.Seq != 7 || r.Faces != 1 || !slices.Equal(r.Identities, []string{"Ada"}) {
		t.Fatalf("result summary %+v", r)
	}
	for _, stream := range []string{bus.ResultsStream, bus.EventsStream} {
		if _, err := b.js.Consumer(ctx, stream, "vigil-sink-eventstore"); err != nil {
			t.Errorf("consumer vigil-sink-eventstore on %s: %v", stream, err)
		}
	}
	if code := run.stop(t); code != 0 {
		t.Fatalf("vigil sink exited %d:\n%s", code, run.stderr.String())
	}
	if v := findLog(run.stderr.String(), "event store summary", "snapshots"); v != "1" {
		t.Errorf("event store summary snapshots %q\n%s", v, run.stderr.String())
	}
}

// TestServeWebAndHistory: vigil serve mounts the web UI at / and, with --events-db, the event
// history vigil sink stores at /v1/history/events.
func TestServeWebAndHistory(t *testing.T) {
	b := startSinkBus(t)
	db := filepath.Join(t.TempDir(), "events.db")
	st := openHistory(t, db)
	at := time.Date(2026, 11, 22, 0, 5, 14, 0, time.UTC)
	ev := event.Event{Schema: event.EventSchema, Kind: event.KindRecognized, Stream: "lobby", TrackID: "t-9", Seq: 3, CapturedAt: at, At: at,
		Identity: &result.Identity{Name: "Ada", Similarity: 0.8}, FirstSeen: at, LastSeen: at, Frames: 4}
	if _, err := st.StoreEvent(context.Background(), ev, nil); err != nil {
		t.Fatal(err)
	}
	run := startCommand(t, map[string]string{"VIGIL_DEPS": testenv.DepsDir(t), "VIGIL_EVENTS_DB": db}, "serve",
		"--nats-url", b.url, "--http-addr", "127.0.0.1:0", "--log-json", "--api-keys", "k1")
	base := run.logValue(t, time.Minute, "face API listening", "url")
	if web := findLog(run.stderr.String(), "face API listening", "web"); web != base+"/" {
		t.Errorf("web URL %q", web)
	}

	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "/ui/app.js") {
		t.Fatalf("GET /: %d %.200s", resp.StatusCode, page)
	}

	req, _ := http.NewRequest(http.MethodGet, base+eventstore.PathEvents+"?stream=lobby", nil)
	if get(t, req.URL.String()) != http.StatusUnauthorized {
		t.Error("the history answered without the API key")
	}
	req.Header.Set("Authorization", "Bearer k1")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list eventstore.EventList
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(list.Events) != 1 || list.Events[0].TrackID != "t-9" ||
		list.Events[0].Identity == nil || list.Events[0].Identity.Name != "Ada" {
		t.Fatalf("GET %s: %d %+v %v", eventstore.PathEvents, resp.StatusCode, list, err)
	}
	if code := run.stop(t); code != 0 {
		t.Fatalf("vigil serve exited %d:\n%s", code, run.stderr.String())
	}
}

// TestSinkOutputFlags: the new sink flags reach the configuration (each from its flag, the
// file or VIGIL_*), the DSN's password never shows, and mistakes are refused with the key.
func TestSinkOutputFlags(t *testing.T) {
	file := writeFile(t, "vigil.yaml", "sink:\n  jsonl: /tmp/r.jsonl\n  jsonl_keep: 3\n  webhook:\n    urls: [https://a.example/hook]\n    types: [result]\n")
	code, out, errOut := runCLI(t, map[string]string{"VIGIL_EVENTS_DSN": "postgres://vigil:pg-pw-123@db:5432/vigil", "VIGIL_WEBHOOK_TIMEOUT": "2s"},
		"sink", "--config", file, "--jsonl-max-size", "64MiB", "--jsonl-max-age", "1h", "--webhook", "https://b.example/x",
		"--webhook", "http://c.example:8080/y", "--webhook-streams", "lobby,door", "--webhook-identified", "--webhook-max-attempts", "7",
		"--webhook-secret-file", "/run/secrets/hook", "--check-config")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "pg-pw-123") {
		t.Fatalf("--check-config shows the DSN's password:\n%s", out)
	}
	c := effective(t, out).Sink
	w := c.Webhook
	switch {
	case c.JSONLMaxSize != 64<<20 || c.JSONLMaxAge != time.Hour || c.JSONLKeep != 3:
		t.Errorf("jsonl %v %v %d", c.JSONLMaxSize, c.JSONLMaxAge, c.JSONLKeep)
	case !slices.Equal(w.URLs, []string{"https://b.example/x", "http://c.example:8080/y"}) || !slices.Equal(w.Types, []string{"result"}) ||
		!slices.Equal(w.Streams, []string{"lobby", "door"}):
		t.Errorf("webhook lists %+v", w)
	case !w.Identified || w.MaxAttempts != 7 || w.Timeout != 2*time.Second || w.SecretFile != "/run/secrets/hook":
		t.Errorf("webhook %+v", w)
	case !strings.HasPrefix(c.EventsDSN, "postgres://vigil:") || !strings.Contains(c.EventsDSN, "@db:5432/vigil"):
		t.Errorf("events_dsn %q", c.EventsDSN)
	}
	if !slices.Equal(config.WebhookTypes(), webhook.Types()) {
		t.Errorf("config.WebhookTypes %v, webhook.Types %v", config.WebhookTypes(), webhook.Types())
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--webhook", "ftp://x/y"}, "sink.webhook.urls[0]"},
		{[]string{"--webhook", "https://user:pw@x/y"}, "credentials"},
		{[]string{"--webhook", "https://x/y", "--webhook-types", "face.gone"}, "sink.webhook.types[0]"},
		{[]string{"--webhook-secret-file", "/k"}, "sink.webhook.secret_file: set without"},
		{[]string{"--jsonl-max-size", "1MiB"}, "sink.jsonl_max_size: set without sink.jsonl"},
		{[]string{"--jsonl", "/tmp/x", "--jsonl-keep", "0"}, "sink.jsonl_keep"},
		{[]string{"--events-db", "/tmp/e.db", "--events-dsn", "host=db"}, "sink.events_dsn: set together"},
		{[]string{"--quiet"}, "sink.quiet"},
		{[]string{"--durable", strings.Repeat("d", 60), "--webhook", "https://x/y"}, "too long for the webhooks' consumers"},
	} {
		code, _, errOut := runCLI(t, nil, append(append([]string{"sink"}, tc.args...), "--check-config")...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("sink %v: exit %d, want 1 with %q:\n%s", tc.args, code, tc.want, errOut)
		}
	}
	// --quiet is fine when a webhook or the event store takes the results.
	if code, _, errOut := runCLI(t, nil, "sink", "--quiet", "--events-db", "/tmp/e.db", "--check-config"); code != 0 {
		t.Errorf("--quiet --events-db: exit %d\n%s", code, errOut)
	}
	// A command that runs no webhook (registerWebhooks not called) refuses --quiet without
	// --jsonl. (vigil run never refuses it: TestRunPrint.)
	sf := sinkFlags{cfg: &config.Sink{Quiet: true, Webhook: config.Webhook{URLs: []string{"https://x/y"}}}}
	if _, err := sf.sinks(Env{}, nil); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("vigil run's sinks with --quiet only: %v", err)
	}
}

// TestSinkEventsDBPrivacy: vigil sink --privacy blur-all stores the event snapshot with the face
// blurred, as vigil run does: the fine detail of the frame (a one-pixel checkerboard) is gone
// from the snapshot it stores, where --privacy off keeps it.
func TestSinkEventsDBPrivacy(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 64, 48))
	for y := range 48 {
		for x := range 64 {
			img.SetGray(x, y, color.Gray{uint8(40 + 170*((x+y)%2))})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	detail := map[string]float64{}
	for _, mode := range []string{"off", "blur-all"} {
		b := startSinkBus(t)
		db := filepath.Join(t.TempDir(), "events.db")
		run := startCommand(t, nil, "sink", "--nats-url", b.url, "--quiet", "--log-json", "--events-db", db, "--metrics-addr", "127.0.0.1:0",
			"--privacy", mode)
		metricsURL := run.logValue(t, 10*time.Second, "metrics", "url")
		b.holdFrame(t, metricsURL, buf.Bytes())
		b.event(t, "lobby", event.KindAppeared, "t-1", 7)
		st := openHistory(t, db)
		ctx := context.Background()
		var events []eventstore.StoredEvent
		testenv.Eventually(t, 10*time.Second, "the event is stored", func() bool {
			var err error
			events, err = st.Events(ctx, eventstore.EventFilter{Stream: "lobby"})
			return err == nil && len(events) == 1 && events[0].HasSnapshot
		})
		snap, err := st.Snapshot(ctx, events[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		m, err := jpeg.Decode(bytes.NewReader(snap))
		if err != nil {
			t.Fatalf("%s: snapshot: %v", mode, err)
		}
		// Mean difference between horizontal neighbours over the middle of the snapshot (the face).
		r := m.Bounds()
		var sum, n float64
		for y := r.Min.Y + r.Dy()/4; y < r.Max.Y-r.Dy()/4; y++ {
			for x := r.Min.X + r.Dx()/4; x < r.Max.X-r.Dx()/4; x++ {
				a, _, _, _ := m.At(x, y).RGBA()
				c, _, _, _ := m.At(x+1, y).RGBA()
				sum += math.Abs(float64(a)-float64(c)) / 257
				n++
			}
		}
		detail[mode] = sum / n
		if code := run.stop(t); code != 0 {
			t.Fatalf("vigil sink --privacy %s exited %d:\n%s", mode, code, run.stderr.String())
		}
	}
	t.Logf("detail in the face: %v", detail)
	if detail["off"] < 40 || detail["blur-all"] > detail["off"]/10 {
		t.Fatalf("neighbour difference in the snapshot's face: %v; want the checkerboard kept with off, gone with blur-all", detail)
	}
}
