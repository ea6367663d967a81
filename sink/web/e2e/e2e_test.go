package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/sink/web"
)

// TestLiveViewAndEnrollment runs the whole pipeline on the face video (repeated, read in real
// time, 10 analysed frames per second), with a real Chromium on the page:
//
//   - live: ingest runs the streams of a stream registry (/v1/streams): the video, and a
//     stream whose file is missing, which the stream list shows with ingest's state and error;
//     the canvas shows the frames with the woman's box, track id and attributes (age,
//     gender, and once the track role's heads request ran, emotion and liveness); the stream
//     list shows the stream live; the page measures the latency from a result's arrival on the
//     server to its overlay drawn, and reports it to the server;
//   - enroll: three photos dropped on the gallery's drop zone (no face, two faces, a frame of the
//     woman) get the face API's per-photo verdicts, the woman is enrolled, and her name appears
//     on the live view (canvas labels and the faces table) and in the recognitions with a face
//     snapshot;
//   - events, rename, delete: the events tab lists her track's events with snapshots from the
//     event store's history API (SQLite); she is renamed and deleted through the gallery list.
func TestLiveViewAndEnrollment(t *testing.T) {
	video := longVideo(t, 60)
	p := startPipeline(t, withStreams(t, ingest.StreamConfig{Name: "fer", Source: video, FPS: 10, Realtime: true},
		ingest.StreamConfig{Name: "door", Source: filepath.Join(t.TempDir(), "missing.mp4"), FPS: 5}), withEventStore(t))
	shots := screenshotDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	page := browser(t, p.url+web.PagePath)

	t.Run("live", func(t *testing.T) {
		// The page picks the live stream by itself, and draws frames with overlays.
		var labels string
		if err := page.WaitFor(ctx, `+document.getElementById("canvas").dataset.drawn > 30 &&
			/#\d+/.test(document.getElementById("canvas").dataset.labels) && document.getElementById("canvas").dataset.labels`, 90*time.Second, &labels); err != nil {
			t.Fatal(err)
		}
		t.Logf("overlay labels: %s", labels)
		// Once the track role's heads request has run, the track carries emotion and liveness.
		if err := page.WaitFor(ctx, `/(live|SPOOF\?) \d\.\d\d/.test(document.getElementById("canvas").dataset.labels) &&
			/(angry|disgust|fear|happy|sad|surprise|neutral)/.test(document.getElementById("canvas").dataset.labels)`, 60*time.Second, nil); err != nil {
			t.Fatal(err)
		}
		var row struct {
			Track, Identity string
			Cells           []string
		}
		if err := page.Eval(ctx, `(() => { const r = document.querySelector("#faces tbody tr");
			return {Track: r.dataset.track, Identity: r.dataset.identity, Cells: [...r.cells].map((c) => c.textContent)}; })()`, &row); err != nil {
			t.Fatal(err)
		}
		if row.Track == "" || row.Identity != "" || row.Cells[1] != "unknown" {
			t.Fatalf("faces table row %+v: want a track, no identity yet", row)
		}
		var stream struct{ State, Meta string }
		if err := page.WaitFor(ctx, `(() => { const li = document.querySelector('#streams li[data-stream="fer"].selected');
			return li && li.dataset.state === "live" && {State: li.dataset.state, Meta: li.querySelector(".meta").textContent}; })()`, 10*time.Second, &stream); err != nil {
			t.Fatal(err)
		}
		t.Logf("stream list: fer %s", stream.Meta)
		// The stream that cannot run is listed from /v1/streams with ingest's state and error.
		var door string
		if err := page.WaitFor(ctx, `(() => { const li = document.querySelector('#streams li[data-stream="door"]');
			return li && li.dataset.state !== "waiting" && li.dataset.state + ": " + li.querySelector(".meta").textContent; })()`, 20*time.Second, &door); err != nil {
			t.Fatal(err)
		}
		t.Logf("stream list: door %s", door)
		// Let it run for 100 more frames, then read the latency the page measured.
		var drawn int
		if err := page.Eval(ctx, `+document.getElementById("canvas").dataset.drawn`, &drawn); err != nil {
			t.Fatal(err)
		}
		if err := page.WaitFor(ctx, fmt.Sprintf(`+document.getElementById("canvas").dataset.drawn >= %d`, drawn+100), 60*time.Second, nil); err != nil {
			t.Fatal(err)
		}
		var lat map[string]string
		if err := page.Eval(ctx, `({...document.getElementById("latency").dataset, text: document.getElementById("lat-text").textContent})`, &lat); err != nil {
			t.Fatal(err)
		}
		t.Logf("page: %s", lat["text"])
		screenshot(t, page, shots, "live.png")
		// The page reports its samples every 3 s; the server summarises them.
		var st web.Stats
		testenv.Eventually(t, 20*time.Second, "100 latency samples on the server", func() bool {
			getJSON(t, p.url+"/v1/ui/stats", &st)
			return st.Latency.Samples >= 100
		})
		l := st.Latency
		t.Logf("UI latency over %d frames, result on NATS -> overlay drawn: p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms; "+
			"server queueing p50 %.2f ms p95 %.2f ms; browser decode+draw p50 %.1f ms p95 %.1f ms; %d superseded",
			l.Samples, l.Total.P50, l.Total.P95, l.Total.P99, l.Total.Max, l.Server.P50, l.Server.P95, l.Client.P50, l.Client.P95, l.Superseded)
		// The total spans two clocks, the server's and the browser's, whose offset the page
		// estimates from the fastest of five round trips: that estimate may be off by up to half
		// such a round trip (10 ms was seen on a loaded machine), so a p50 just below zero is a
		// real measurement of a fast path, not a missing one.
		if l.Samples == 0 || l.Total.P50 < -50 || l.Total.P95 > 1000 || l.Total.P50 > 250 {
			t.Errorf("UI latency p50 %.1f ms, p95 %.1f ms: want p50 below 250 ms, p95 below 1 s", l.Total.P50, l.Total.P95)
		}
		s := streamInfo(t, p.url, "fer")
		t.Logf("stream fer: %s, %.1f fps analysed, %.1f fps in, %d drops %v, pipeline latency %.0f ms, %d frames not sent to the browser",
			s.State, s.FPS, s.FramesFPS, s.Drops, s.DropReasons, s.LatencyMS, s.ViewerDrops)
		if s.FPS < 5 {
			t.Errorf("analysed rate %.1f fps, want about 10", s.FPS)
		}
	})

	t.Run("enroll", func(t *testing.T) {
		td := testenv.TestData(t)
		speaker := videoFrame(t, p.video, 50, t.TempDir())
		files := []string{filepath.Join(td, "detect", "no-faces.jpg"), filepath.Join(td, "detect", "two_people.jpg"), speaker}
		if err := page.Click(ctx, `#tabs button[data-tab="gallery"]`); err != nil {
			t.Fatal(err)
		}
		if err := page.Eval(ctx, `document.getElementById("enroll-name").value = "Jane Doe"`, nil); err != nil {
			t.Fatal(err)
		}
		if err := page.DropFiles(ctx, "#drop", files); err != nil {
			t.Fatal(err)
		}
		if err := page.WaitFor(ctx, `document.querySelectorAll("#enroll-photos li").length === 3`, 10*time.Second, nil); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := page.Click(ctx, "#enroll-btn"); err != nil {
			t.Fatal(err)
		}
		if err := page.WaitFor(ctx, `document.getElementById("enroll-status").dataset.enrolled === "1"`, 60*time.Second, nil); err != nil {
			t.Fatal(err)
		}
		var verdicts map[string]struct{ State, Msg string }
		if err := page.Eval(ctx, `Object.fromEntries([...document.querySelectorAll("#enroll-photos li")].map((li) =>
			[li.dataset.file, {State: li.dataset.state, Msg: li.querySelector(".msg").textContent}]))`, &verdicts); err != nil {
			t.Fatal(err)
		}
		for file, v := range verdicts {
			t.Logf("photo %s: %s: %s", file, v.State, v.Msg)
		}
		if v := verdicts["no-faces.jpg"]; v.State != "err" || !strings.HasPrefix(v.Msg, "No face found") {
			t.Errorf("no-faces.jpg: %+v", v)
		}
		if v := verdicts["two_people.jpg"]; v.State != "err" || !strings.HasPrefix(v.Msg, "Several faces") || !strings.Contains(v.Msg, "2 faces found") {
			t.Errorf("two_people.jpg: %+v", v)
		}
		if v := verdicts["speaker.jpg"]; v.State != "ok" || v.Msg != "enrolled: one face found" {
			t.Errorf("speaker.jpg: %+v", v)
		}
		if err := page.WaitFor(ctx, `document.querySelector('#identities li[data-name="Jane Doe"]')`, 10*time.Second, nil); err != nil {
			t.Fatal(err)
		}
		screenshot(t, page, shots, "gallery-enrolled.png")

		// Her name on the live view: the track role's vote settles on the new identity.
		if err := page.Click(ctx, `#tabs button[data-tab="live"]`); err != nil {
			t.Fatal(err)
		}
		if err := page.WaitFor(ctx, `document.querySelector('#faces tr[data-identity="Jane Doe"]') &&
			document.getElementById("canvas").dataset.labels.includes("Jane Doe")`, 60*time.Second, nil); err != nil {
			t.Fatal(err)
		}
		t.Logf("the name appeared on the live view %v after the enroll click", time.Since(start).Round(10*time.Millisecond))
		var labels string
		if err := page.Eval(ctx, `document.getElementById("canvas").dataset.labels`, &labels); err != nil {
			t.Fatal(err)
		}
		t.Logf("overlay labels: %s", labels)
		screenshot(t, page, shots, "live-named.png")

		// The recognition, with her face cut from the frame the event references.
		if err := page.Click(ctx, `#tabs button[data-tab="gallery"]`); err != nil {
			t.Fatal(err)
		}
		if err := page.WaitFor(ctx, `(() => { const img = document.querySelector('#recognitions li[data-identity="Jane Doe"] img');
			return img && img.complete && img.naturalWidth > 0; })()`, 30*time.Second, nil); err != nil {
			t.Fatal(err)
		}
		screenshot(t, page, shots, "gallery-recognized.png")
	})

	t.Run("events", func(t *testing.T) {
		if err := page.Click(ctx, `#tabs button[data-tab="events"]`); err != nil {
			t.Fatal(err)
		}
		if err := page.Eval(ctx, `(() => { const s = document.getElementById("ev-stream"); s.value = "fer"; s.dispatchEvent(new Event("change")); })()`, nil); err != nil {
			t.Fatal(err)
		}
		var kinds []string
		if err := page.WaitFor(ctx, `(() => { const rows = [...document.querySelectorAll("#ev-table tbody tr")];
			const k = rows.map((r) => r.dataset.kind);
			return document.body.dataset.history === "store" && k.includes("face.appeared") && k.includes("face.recognized") && k; })()`,
			30*time.Second, &kinds); err != nil {
			t.Fatal(err)
		}
		if err := page.WaitFor(ctx, `[...document.querySelectorAll("#ev-table tbody img")].some((i) => i.complete && i.naturalWidth > 0)`, 20*time.Second, nil); err != nil {
			t.Fatal(err)
		}
		t.Logf("events of fer: %v", kinds)
		screenshot(t, page, shots, "events.png")
	})

	t.Run("rename and delete", func(t *testing.T) {
		if err := page.Click(ctx, `#tabs button[data-tab="gallery"]`); err != nil {
			t.Fatal(err)
		}
		if err := page.Click(ctx, `#identities li[data-name="Jane Doe"] button.rename`); err != nil {
			t.Fatal(err)
		}
		// Type the new name and save, in one step of the page's event loop (a refresh of the list
		// in between would otherwise replace the editor being typed into).
		if err := page.Eval(ctx, `(() => { const i = document.querySelector("#identities .rename-input"); i.value = "Jane Roe";
			i.dispatchEvent(new Event("input")); document.querySelector("#identities .rename-save").click(); })()`, nil); err != nil {
			t.Fatal(err)
		}
		if err := page.WaitFor(ctx, `document.querySelector('#identities li[data-name="Jane Roe"]') && !document.querySelector('#identities li[data-name="Jane Doe"]')`,
			20*time.Second, nil); err != nil {
			t.Fatal(err)
		}
		if id, err := p.store.Get(ctx, "jane-roe"); err != nil || len(id.Photos) != 1 {
			t.Fatalf("renamed identity: %+v %v", id, err)
		}
		// Delete asks for a second click.
		for i := 0; i < 2; i++ {
			if err := page.Click(ctx, `#identities li[data-name="Jane Roe"] button.delete`); err != nil {
				t.Fatal(err)
			}
		}
		if err := page.WaitFor(ctx, `!document.querySelector('#identities li[data-name="Jane Roe"]') && document.getElementById("gallery-msg").textContent`,
			20*time.Second, nil); err != nil {
			t.Fatal(err)
		}
		if list, err := p.store.List(ctx); err != nil || len(list) != 0 {
			t.Fatalf("gallery after delete: %+v %v", list, err)
		}
	})
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func streamInfo(t *testing.T, url, name string) web.StreamInfo {
	t.Helper()
	var out struct{ Streams []web.StreamInfo }
	getJSON(t, url+"/v1/ui/streams", &out)
	for _, s := range out.Streams {
		if s.Name == name {
			return s
		}
	}
	return web.StreamInfo{}
}
