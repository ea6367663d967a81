package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/pkg/testenv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/result"
)

// TestLiveMatchesResultsToFrames publishes real JPEG frames and results on NATS and reads the
// live stream as a browser would: a frame record comes for each result whose frame is held,
// carrying that frame's exact bytes and the result without embeddings; a result whose frame is
// not held is counted, not sent.
func TestLiveMatchesResultsToFrames(t *testing.T) {
	f := newFixture(t, Config{})
	jpg, w, h := photo(t, "faces/Barack_Obama/obama.jpg")
	live := openLive(t, f.url+"/v1/ui/live/lobby")
	hello := live.next(t, "hello")
	if hello.meta["stream"] != "lobby" || hello.meta["queue"].(float64) != 4 {
		t.Fatalf("hello %s", hello.raw)
	}
	for seq := uint64(1); seq <= 5; seq++ {
		f.publishFrame(t, "lobby", seq, append([]byte(nil), jpg...), w, h)
	}
	before := unixMS(time.Now())
	for _, seq := range []uint64{2, 4, 99} {
		f.publishJSON(t, bus.ResultsPrefix, "lobby", resultFor("lobby", seq, w, h, "Barack Obama"))
	}
	f.flush(t)
	for _, want := range []float64{2, 4} {
		rec := live.next(t, "frame")
		if rec.meta["seq"].(float64) != want || !bytes.Equal(rec.image, jpg) || rec.meta["encoding"] != "jpeg" {
			t.Fatalf("frame record seq %v (want %v), %d image bytes (want %d)", rec.meta["seq"], want, len(rec.image), len(jpg))
		}
		var doc struct {
			RecvMS float64       `json:"recv_ms"`
			Result result.Result `json:"result"`
		}
		if err := json.Unmarshal(rec.raw, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.RecvMS < before || rec.sendMS < doc.RecvMS || len(doc.Result.Faces) != 1 || doc.Result.Faces[0].Embedding != nil ||
			doc.Result.Faces[0].Identity.Name != "Barack Obama" || doc.Result.Width != w {
			t.Fatalf("frame record %s (sent %.1f)", rec.raw, rec.sendMS)
		}
	}
	// Stats come every second; the one after the third result has counted it.
	stats := live.next(t, "stats")
	for i := 0; i < 5 && stats.meta["info"].(map[string]any)["results"].(float64) < 3; i++ {
		stats = live.next(t, "stats")
	}
	info := stats.meta["info"].(map[string]any)
	if info["results"].(float64) != 3 || info["frames"].(float64) != 5 || info["unmatched"].(float64) != 1 || info["state"] != "live" {
		t.Fatalf("stats %s", stats.raw)
	}
	s := f.streamInfo(t, "lobby")
	if s.Viewers != 1 || len(s.Names) != 1 || s.Faces != 1 || s.Width != w {
		t.Fatalf("stream info %+v", s)
	}
	// A browser that connects now gets the latest frame at once.
	late := openLive(t, f.url+"/v1/ui/live/lobby")
	if rec := late.next(t, "frame"); rec.meta["seq"].(float64) != 4 {
		t.Fatalf("latest frame on connect: %s", rec.raw)
	}
}

// TestSlowBrowserDropsFrames connects a browser that stops reading: its queue stays at
// ViewerQueue records, the oldest are dropped and counted, and once it reads again it gets the
// newest frame, with the stream's framing intact.
func TestSlowBrowserDropsFrames(t *testing.T) {
	f := newFixture(t, Config{ViewerQueue: 2})
	// 600 KB frames: a few dozen fill the sockets' buffers (a few MB on loopback) while the
	// browser does not read.
	jpg, w, h := photo(t, "faces/Barack_Obama/obama3.jpg")
	addr := strings.TrimPrefix(f.url, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /v1/ui/live/slow HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	testenv.Eventually(t, 20*time.Second, "the viewer", func() bool { return f.streamInfo(t, "slow").Viewers == 1 })
	const n = 60
	for seq := uint64(1); seq <= n; seq++ {
		f.publishFrame(t, "slow", seq, jpg, w, h)
		f.publishJSON(t, bus.ResultsPrefix, "slow", resultFor("slow", seq, w, h, ""))
		f.flush(t)
	}
	t0 := time.Now()
	testenv.Eventually(t, 20*time.Second, "every result", func() bool { return f.streamInfo(t, "slow").Results == n })
	t.Logf("results after %v", time.Since(t0))
	s := f.streamInfo(t, "slow")
	t.Logf("%d results, %d frames not sent to the slow browser", s.Results, s.ViewerDrops)
	if s.ViewerDrops == 0 || s.ViewerDrops >= n {
		t.Fatalf("viewer drops %d of %d", s.ViewerDrops, n)
	}
	// Read again: chunked HTTP, then records; the last frame is the newest.
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []float64
	for len(got) == 0 || got[len(got)-1] != n {
		rec, err := readRecord(res.Body)
		if err != nil {
			t.Fatalf("after %v (%v): %v", got, time.Since(t0), err)
		}
		if rec.meta["type"] == "frame" {
			got = append(got, rec.meta["seq"].(float64))
		}
	}
	if len(got) >= n {
		t.Fatalf("the slow browser got %d of %d frames: nothing was dropped", len(got), n)
	}
	t.Logf("the slow browser received frames %v", got)
}

// TestCrops cuts face crops out of a held frame, scaled to the reference size, and refuses
// what it cannot do with precise errors.
func TestCrops(t *testing.T) {
	f := newFixture(t, Config{RingFrames: 2})
	jpg, w, h := photo(t, "faces/Joe_Biden/biden.jpg")
	for seq := uint64(1); seq <= 3; seq++ {
		f.publishFrame(t, "door", seq, jpg, w, h)
	}
	f.flush(t)
	testenv.Eventually(t, 20*time.Second, "the frames", func() bool { return f.streamInfo(t, "door").Frames == 3 })
	get := func(path string) (int, []byte) {
		res, err := http.Get(f.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	box := fmt.Sprintf("%d,%d,%d,%d", w/4, h/4, w*3/4, h*3/4)
	code, b := get("/v1/ui/crops/door/3?box=" + box)
	if code != 200 {
		t.Fatalf("crop: %d %s", code, b)
	}
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if sz := img.Bounds().Size(); max(sz.X, sz.Y) != 160 {
		t.Fatalf("crop size %v, want the longer side 160", sz)
	}
	// The box in pixels of a half-size image, no margin, 64 px.
	code, b = get(fmt.Sprintf("/v1/ui/crops/door/2?box=0,0,%d,%d&w=%d&h=%d&pad=0&size=64", w/4, h/4, w/2, h/2))
	if code != 200 {
		t.Fatalf("scaled crop: %d %s", code, b)
	}
	if img, err = jpeg.Decode(bytes.NewReader(b)); err != nil || max(img.Bounds().Dx(), img.Bounds().Dy()) != 64 {
		t.Fatalf("scaled crop: %v %v", err, img.Bounds())
	}
	for _, tc := range []struct {
		path string
		code int
		err  string
	}{
		{"/v1/ui/crops/door/1?box=" + box, 404, "frame_gone"},               // left the ring of 2
		{"/v1/ui/crops/other/3?box=" + box, 404, "frame_gone"},              // unknown stream
		{"/v1/ui/crops/door/3?box=1,2,3", 400, "invalid_box"},               // 3 numbers
		{"/v1/ui/crops/door/3?box=5,5,1,1", 400, "invalid_box"},             // inverted
		{"/v1/ui/crops/door/3?box=NaN,0,1,1", 400, "invalid_box"},           // not a number
		{"/v1/ui/crops/door/3?box=-200,-200,-100,-100", 400, "invalid_box"}, // outside the frame
		{"/v1/ui/crops/door/3?box=" + box + "&size=4096", 400, "invalid_field"},
		{"/v1/ui/crops/door/3?box=" + box + "&w=100", 400, "invalid_field"},
		{"/v1/ui/crops/door/0?box=" + box, 400, "invalid_field"},
		{"/v1/ui/crops/bad.name/3?box=" + box, 400, "invalid_stream"},
	} {
		code, b := get(tc.path)
		if code != tc.code || !strings.Contains(string(b), `"`+tc.err+`"`) {
			t.Errorf("%s: %d %s, want %d %s", tc.path, code, b, tc.code, tc.err)
		}
	}
}

// TestEventsWithSnapshots: events arrive with a face snapshot cut from the frame they
// reference while it is held; the feed filters by stream, kind and id, and keeps the latest
// Events only.
func TestEventsWithSnapshots(t *testing.T) {
	f := newFixture(t, Config{Events: 3})
	jpg, w, h := photo(t, "faces/Barack_Obama/obama2.jpg")
	f.publishFrame(t, "hall", 10, jpg, w, h)
	f.flush(t)
	now := time.Now().UTC()
	ev := func(stream, kind string, seq uint64, trackID string) event.Event {
		return event.Event{Schema: event.EventSchema, Kind: kind, Stream: stream, TrackID: trackID, Seq: seq, CapturedAt: now, At: now,
			Crop: trackCrop(stream, seq, w, h), FirstSeen: now, LastSeen: now, Frames: 3}
	}
	f.publishEvent(t, ev("hall", event.KindAppeared, 10, "a-1"))
	recog := ev("hall", event.KindRecognized, 10, "a-1")
	recog.Identity = &result.Identity{Name: "Barack Obama", Similarity: 0.81}
	f.publishEvent(t, recog)
	f.publishEvent(t, ev("yard", event.KindAppeared, 4, "b-1")) // its frame was never seen
	f.flush(t)
	var list EventList
	testenv.Eventually(t, 20*time.Second, "3 events", func() bool { getJSON(t, f.url+"/v1/ui/events", &list); return len(list.Events) == 3 })
	if list.Events[0].Kind != event.KindAppeared || list.Events[1].Identity == nil || list.LastID != 3 {
		t.Fatalf("events %+v", list)
	}
	if list.Events[0].Snapshot == "" || list.Events[2].Snapshot != "" {
		t.Fatalf("snapshots %q %q: want one for the held frame, none for the other", list.Events[0].Snapshot, list.Events[2].Snapshot)
	}
	res, err := http.Get(f.url + list.Events[1].Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(res.Body)
	res.Body.Close()
	if err != nil || res.Header.Get("Content-Type") != "image/jpeg" || max(img.Bounds().Dx(), img.Bounds().Dy()) > snapshotSize {
		t.Fatalf("snapshot: %v %s", err, res.Header.Get("Content-Type"))
	}
	getJSON(t, f.url+"/v1/ui/events?stream=hall&kind=face.recognized", &list)
	if len(list.Events) != 1 || list.Events[0].Identity.Name != "Barack Obama" {
		t.Fatalf("filtered: %+v", list.Events)
	}
	getJSON(t, f.url+"/v1/ui/events?after=2", &list)
	if len(list.Events) != 1 || list.Events[0].Stream != "yard" {
		t.Fatalf("after 2: %+v", list.Events)
	}
	// The ring keeps 3: two more push the first two out.
	f.publishEvent(t, ev("hall", event.KindLeft, 10, "a-1"))
	f.publishEvent(t, ev("yard", event.KindLeft, 4, "b-1"))
	f.flush(t)
	testenv.Eventually(t, 20*time.Second, "5 events seen", func() bool { getJSON(t, f.url+"/v1/ui/events", &list); return list.LastID == 5 })
	if len(list.Events) != 3 || list.Events[0].ID != 3 {
		t.Fatalf("ring: %+v", list.Events)
	}
	if code := getJSON(t, f.url+"/v1/ui/events/1/snapshot", nil); code != 404 {
		t.Fatalf("snapshot of a forgotten event: %d", code)
	}
	for _, q := range []string{"?kind=face.smiled", "?stream=a.b", "?after=x", "?limit=0"} {
		if code := getJSON(t, f.url+"/v1/ui/events"+q, nil); code != 400 {
			t.Errorf("%s: %d, want 400", q, code)
		}
	}
}

func trackCrop(stream string, seq uint64, w, h int) event.Crop {
	return event.Crop{Stream: stream, Seq: seq, Box: result.Box{X1: float32(w) * 0.3, Y1: float32(h) * 0.2, X2: float32(w) * 0.7, Y2: float32(h) * 0.6},
		Width: w, Height: h}
}

// TestStreamStates follows a stream through its states: frames without results (waiting),
// results (live, with a rate), drops by reason, and its end.
func TestStreamStates(t *testing.T) {
	f := newFixture(t, Config{})
	jpg, w, h := photo(t, "faces/John_Salley/000179_02159509.jpg")
	f.publishFrame(t, "gate", 1, jpg, w, h)
	f.flush(t)
	testenv.Eventually(t, 20*time.Second, "waiting", func() bool { return f.streamInfo(t, "gate").State == "waiting" })
	for seq := uint64(2); seq <= 6; seq++ {
		f.publishFrame(t, "gate", seq, jpg, w, h)
		f.publishJSON(t, bus.ResultsPrefix, "gate", resultFor("gate", seq, w, h, ""))
	}
	f.publishJSON(t, bus.DropsPrefix, "gate", result.Drop{Schema: 1, Stream: "gate", Seq: 1, Reason: result.ReasonDeadline, At: time.Now()})
	f.publishJSON(t, bus.DropsPrefix, "gate", result.Drop{Schema: 1, Stream: "gate", Seq: 7, Reason: result.ReasonQueue, At: time.Now()})
	f.flush(t)
	testenv.Eventually(t, 20*time.Second, "live", func() bool { s := f.streamInfo(t, "gate"); return s.State == "live" && s.Drops == 2 })
	s := f.streamInfo(t, "gate")
	if s.Results != 5 || s.DropReasons["deadline"] != 1 || s.DropReasons["queue"] != 1 || s.FPS <= 0 {
		t.Fatalf("stream %+v", s)
	}
	f.publishJSON(t, bus.EOSPrefix, "gate", result.EndOfStream{Schema: 1, Stream: "gate", Frames: 7, At: time.Now()})
	f.flush(t)
	testenv.Eventually(t, 20*time.Second, "ended", func() bool { return f.streamInfo(t, "gate").State == "ended" })
	// Garbage is counted, not fatal.
	if err := f.pub.Publish(bus.ResultsPrefix+".gate", []byte("{")); err != nil {
		t.Fatal(err)
	}
	f.flush(t)
	testenv.Eventually(t, 20*time.Second, "the invalid message counted", func() bool { return f.ui.Stats().Invalid == 1 })
}

// TestMaxStreams: the UI keeps state for MaxStreams streams, forgetting the one idle the
// longest.
func TestMaxStreams(t *testing.T) {
	f := newFixture(t, Config{MaxStreams: 2})
	jpg, w, h := photo(t, "faces/John_Salley/000179_02159509.jpg")
	for i, s := range []string{"a", "b", "c"} {
		f.publishFrame(t, s, uint64(i+1), jpg, w, h)
		f.flush(t)
		testenv.Eventually(t, 20*time.Second, s, func() bool { return f.streamInfo(t, s).Frames == 1 })
	}
	if got := f.ui.Streams(); len(got) != 2 || got[0].Name != "b" || got[1].Name != "c" {
		t.Fatalf("streams %+v", got)
	}
}

// TestRename renames identities in a real gallery (JetStream KV): a new id moves the
// embeddings, a case change keeps the id, and errors carry the face API's codes.
func TestRename(t *testing.T) {
	ctx := context.Background()
	var store *gallery.Store
	var gal *gallery.Gallery
	f := newFixtureWith(t, func(nc *nats.Conn) Config {
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		if store, err = gallery.OpenStore(ctx, js, gallery.StoreConfig{}); err != nil {
			t.Fatal(err)
		}
		gal = gallery.Watch(store, gallery.WatchConfig{Log: quiet})
		t.Cleanup(gal.Close)
		if err := gal.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		return Config{Store: store, Gallery: gal}
	})
	base := f.url
	var cfg UIConfig
	if getJSON(t, base+"/v1/ui/config", &cfg); !cfg.Rename {
		t.Fatal("config: rename not offered with a store")
	}

	emb := func(i int) []float32 { v := make([]float32, 512); v[i] = 1; return v }
	if _, err := store.Create(ctx, "jane doe", []gallery.NewPhoto{{Embedding: emb(1), SHA256: "aa"}, {Embedding: emb(2)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Create(ctx, "Taken Name", []gallery.NewPhoto{{Embedding: emb(3)}}); err != nil {
		t.Fatal(err)
	}
	post := func(id, body string) (int, map[string]any) {
		res, err := http.Post(base+"/v1/ui/identities/"+id+"/rename", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out
	}
	if code, out := post("jane-doe", `{"name": "Jane Roe"}`); code != 200 || out["id"] != "jane-roe" || out["photos"].(float64) != 2 {
		t.Fatalf("rename: %d %v", code, out)
	}
	if _, err := store.Get(ctx, "jane-doe"); err == nil {
		t.Fatal("the old identity is still there")
	}
	moved, err := store.Get(ctx, "jane-roe")
	if err != nil || len(moved.Photos) != 2 || moved.Photos[0].Embedding[1] != 1 || moved.Photos[0].SHA256 != "aa" {
		t.Fatalf("renamed identity %+v: %v", moved, err)
	}
	if name, _, ok := gal.Match(emb(2)); !ok || name != "Jane Roe" {
		t.Fatalf("the gallery matches %q %v after the rename", name, ok)
	}
	if code, out := post("jane-roe", `{"name": "JANE ROE"}`); code != 200 || out["id"] != "jane-roe" || out["name"] != "JANE ROE" {
		t.Fatalf("same-id rename: %d %v", code, out)
	}
	for _, tc := range []struct {
		id, body string
		code     int
		err      string
	}{
		{"jane-roe", `{"name": "taken name"}`, 409, "identity_exists"},
		{"nobody", `{"name": "X"}`, 404, "identity_not_found"},
		{"jane-roe", `{"name": "a/b"}`, 400, "invalid_name"},
		{"jane-roe", `{"nom": "x"}`, 400, "invalid_json"},
	} {
		code, out := post(tc.id, tc.body)
		e, _ := out["error"].(map[string]any)
		if code != tc.code || e["code"] != tc.err {
			t.Errorf("%s %s: %d %v, want %d %s", tc.id, tc.body, code, out, tc.code, tc.err)
		}
	}
	if got, err := store.Get(ctx, "jane-roe"); err != nil || got.Name != "JANE ROE" {
		t.Fatalf("after failed renames: %+v %v", got, err)
	}
}

// TestPageWorksOffline checks the page and its assets: served from the binary, with a
// content security policy that allows nothing from elsewhere, and no outside URL in them.
func TestPageWorksOffline(t *testing.T) {
	f := newFixture(t, Config{})
	get := func(path string) (*http.Response, string) {
		res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(f.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	res, page := get("/")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("GET /: %d %v", res.StatusCode, res.Header)
	}
	outside := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	for _, asset := range []string{"/ui/app.js", "/ui/app.css", "/ui/people.js"} {
		if !strings.Contains(page, `"`+asset+`"`) {
			t.Errorf("the page does not load %s", asset)
		}
		res, body := get(asset)
		if res.StatusCode != 200 || len(body) < 1000 {
			t.Fatalf("%s: %d, %d bytes", asset, res.StatusCode, len(body))
		}
		if m := outside.FindString(body); m != "" {
			t.Errorf("%s refers to %q outside the server", asset, m)
		}
	}
	if m := outside.FindString(page); m != "" {
		t.Errorf("the page refers to %q outside the server", m)
	}
	if res, _ := get("/ui/"); res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/" {
		t.Fatalf("/ui/: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if res, _ := get("/ui/nothing.js"); res.StatusCode != 404 {
		t.Fatalf("/ui/nothing.js: %d", res.StatusCode)
	}
	var cfg UIConfig
	if getJSON(t, f.url+"/v1/ui/config", &cfg); cfg.Rename || cfg.RingFrames != 64 {
		t.Fatalf("config %+v", cfg)
	}
	doc := f.srv.OpenAPI()
	paths := doc["paths"].(map[string]any)
	for _, p := range []string{"/", "/v1/ui/live/{stream}", "/v1/ui/crops/{stream}/{seq}", "/v1/ui/events"} {
		if paths[p] == nil {
			t.Errorf("OpenAPI lacks %s", p)
		}
	}
	if paths["/v1/ui/identities/{id}/rename"] != nil {
		t.Error("OpenAPI describes rename without a gallery store")
	}
}

// TestLatencyReports: browsers' reports are summarised as percentiles; bad reports are refused.
func TestLatencyReports(t *testing.T) {
	f := newFixture(t, Config{})
	var samples []LatencySample
	for i := 1; i <= 100; i++ {
		samples = append(samples, LatencySample{Seq: uint64(i), TotalMS: float64(i), ServerMS: 0.5, ClientMS: float64(i) / 2})
	}
	body, _ := json.Marshal(LatencyReport{Stream: "x", Samples: samples, Superseded: 3})
	res, err := http.Post(f.url+"/v1/ui/latency", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 204 {
		t.Fatalf("report: %d", res.StatusCode)
	}
	var st Stats
	getJSON(t, f.url+"/v1/ui/stats", &st)
	if l := st.Latency; l.Samples != 100 || l.Total.P50 != 50 || l.Total.P95 != 95 || l.Total.Max != 100 || l.Client.P50 != 25 || l.Superseded != 3 {
		t.Fatalf("latency %+v", st.Latency)
	}
	for _, b := range []string{"{", `{"samples": [` + strings.Repeat(`{},`, 600) + `{}]}`} {
		res, err := http.Post(f.url+"/v1/ui/latency", "application/json", strings.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 400 {
			t.Errorf("bad report: %d", res.StatusCode)
		}
	}
	var clock map[string]float64
	getJSON(t, f.url+"/v1/ui/clock", &clock)
	if d := clock["server_ms"] - unixMS(time.Now()); d > 1000 || d < -1000 {
		t.Fatalf("clock %v", clock)
	}
}

// TestCloseEndsLiveStreams: Close returns at once with browsers connected, and their streams
// end; the viewer limit answers 503.
func TestCloseEndsLiveStreams(t *testing.T) {
	f := newFixture(t, Config{MaxViewers: 2})
	a := openLive(t, f.url+"/v1/ui/live/one")
	a.next(t, "hello")
	b := openLive(t, f.url+"/v1/ui/live/two")
	b.next(t, "hello")
	if code := getJSON(t, f.url+"/v1/ui/live/three", nil); code != 503 {
		t.Fatalf("third viewer: %d, want 503", code)
	}
	start := time.Now()
	f.ui.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v", d)
	}
	for _, l := range []*liveReader{a, b} {
		for {
			if _, err := readRecord(l.r); err != nil {
				break
			}
		}
	}
	if code := getJSON(t, f.url+"/v1/ui/live/one", nil); code != 503 {
		t.Fatalf("after Close: %d, want 503", code)
	}
}

func TestFrameRing(t *testing.T) {
	r := frameRing{maxFrames: 3, maxBytes: 10}
	for seq := uint64(1); seq <= 5; seq++ {
		r.put(storedFrame{seq: seq, data: make([]byte, 2)})
	}
	if _, ok := r.get(2); ok || r.len() != 3 {
		t.Fatalf("count bound: %d frames", r.len())
	}
	r.put(storedFrame{seq: 6, data: make([]byte, 8)}) // 2+2+8 > 10: two go
	if r.len() != 2 || r.bytes != 10 {
		t.Fatalf("byte bound: %d frames, %d bytes", r.len(), r.bytes)
	}
	r.put(storedFrame{seq: 7, data: make([]byte, 50)}) // larger than the bound: kept alone
	if f, ok := r.get(7); !ok || r.len() != 1 || len(f.data) != 50 {
		t.Fatalf("oversized frame: %d frames", r.len())
	}
	r.put(storedFrame{seq: 7, data: make([]byte, 1)}) // a restarted source: the newest wins
	if f, _ := r.get(7); len(f.data) != 1 {
		t.Fatal("get did not return the newest frame of a repeated seq")
	}
	if n := r.popOldest(); n != 0 || r.len() != 1 {
		t.Fatalf("popOldest of the only frame freed %d", n)
	}
	r.put(storedFrame{seq: 8, data: make([]byte, 3)})
	if n := r.popOldest(); n != 1 || r.len() != 1 || r.bytes != 3 {
		t.Fatalf("popOldest freed %d, %d frames and %d bytes left", n, r.len(), r.bytes)
	}
}

// TestTotalBytes: the frames of all streams together stay within TotalBytes, the stream holding
// the most giving up its oldest first.
func TestTotalBytes(t *testing.T) {
	jpg, w, h := photo(t, "faces/Joe_Biden/biden.jpg")
	f := newFixture(t, Config{TotalBytes: int64(len(jpg)) * 5})
	for seq := uint64(1); seq <= 4; seq++ {
		f.publishFrame(t, "a", seq, jpg, w, h)
		f.publishFrame(t, "b", seq, jpg, w, h)
	}
	f.publishFrame(t, "c", 1, jpg, w, h)
	f.flush(t)
	testenv.Eventually(t, 20*time.Second, "every frame", func() bool { return f.streamInfo(t, "c").Frames == 1 })
	f.ui.mu.Lock()
	defer f.ui.mu.Unlock()
	held, sum := f.ui.held, int64(0)
	for _, st := range f.ui.streams {
		sum += st.ring.bytes
	}
	if sum != held || held > int64(len(jpg))*5 || f.ui.streams["c"].ring.len() != 1 || f.ui.streams["a"].ring.len() != 2 {
		t.Fatalf("held %d (sum %d), bound %d; a %d, b %d, c %d frames", held, sum, len(jpg)*5,
			f.ui.streams["a"].ring.len(), f.ui.streams["b"].ring.len(), f.ui.streams["c"].ring.len())
	}
}

func TestRate(t *testing.T) {
	var r rate
	t0 := time.Unix(1000, 0)
	if r.perSecond(t0) != 0 {
		t.Fatal("empty rate")
	}
	for i := 0; i < 100; i++ { // 10 per second for 10 s
		r.add(t0.Add(time.Duration(i) * 100 * time.Millisecond))
	}
	last := t0.Add(9900 * time.Millisecond)
	if got := r.perSecond(last); got < 9.9 || got > 10.1 {
		t.Fatalf("steady rate %v, want 10", got)
	}
	if got := r.perSecond(last.Add(3 * time.Second)); got > 5 {
		t.Fatalf("rate 3 s after the stream stopped: %v", got)
	}
	if got := r.perSecond(last.Add(6 * time.Second)); got != 0 {
		t.Fatalf("rate 6 s after the stream stopped: %v", got)
	}
}

func FuzzParseBox(f *testing.F) {
	for _, s := range []string{"1,2,3,4", "0.5, 1.5, 10, 20", "1,2,3", "5,5,1,1", "NaN,0,1,1", "1e9,0,2e9,1", ",,,", "-1,-1,0,0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := parseBox(s)
		if err != nil {
			return
		}
		if !(b.X2 > b.X1 && b.Y2 > b.Y1) {
			t.Fatalf("%q gave %+v", s, b)
		}
	})
}

func FuzzReadRecord(f *testing.F) {
	good := []byte{0, 0, 0, 16, 0, 0, 0, 2, 0x42, 0x78, 0, 0, 0, 0, 0, 0}
	good = append(good, `{"type":"frame"}`...)
	f.Add(append(good, 0xff, 0xd8))
	f.Add([]byte{0, 0, 0, 2, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, '{', '}'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = readRecord(bytes.NewReader(b)) // must not panic or allocate without bound
	})
}

// TestNewChecksConfig: New refuses what it cannot work with, naming the field.
func TestNewChecksConfig(t *testing.T) {
	f := newFixture(t, Config{})
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Config.Conn is required"},
		{Config{Conn: f.pub, ResultsPrefix: "vigil.*"}, "Config.ResultsPrefix"},
		{Config{Conn: f.pub, EventsPrefix: "vigil..events"}, "Config.EventsPrefix"},
		{Config{Conn: f.pub, Gallery: &gallery.Gallery{}}, "needs Config.Store"},
	} {
		if ui, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			ui.Close()
			t.Errorf("New(%+v): %v, want an error about %s", tc.cfg, err, tc.want)
		}
	}
}
