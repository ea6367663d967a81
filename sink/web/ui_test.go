package web

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/pkg/result"
)

// TestEventsAndTracksInBrowser drives the page in a real Chromium: the favicon is served; a click
// on an event opens it (snapshot, track, stream, time); its track button, and a track id in the
// faces table, open the Events tab filtered to that track.
func TestEventsAndTracksInBrowser(t *testing.T) {
	jpg, w, h := photo(t, "faces/Barack_Obama/obama2.jpg")
	f := newFixture(t, Config{})
	res, err := http.Get(f.url + "/favicon.ico")
	if err != nil {
		t.Fatal(err)
	}
	icon, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/svg+xml" || !strings.Contains(string(icon), "<svg") {
		t.Fatalf("favicon: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}

	f.publishFrame(t, "hall", 10, jpg, w, h) // the frame the events' snapshots are cut from
	f.flush(t)
	r := resultFor("hall", 11, w, h, "Barack Obama")
	r.Faces[0].TrackID = "k2-7"
	f.keepLive(t, jpg, w, h, r)
	now := time.Now().UTC()
	ev := func(kind, track string) event.Event {
		return event.Event{Schema: event.EventSchema, Kind: kind, Stream: "hall", TrackID: track, Seq: 10, CapturedAt: now, At: now,
			Crop: trackCrop("hall", 10, w, h), FirstSeen: now.Add(-2 * time.Second), LastSeen: now, Frames: 12}
	}
	f.publishEvent(t, ev(event.KindAppeared, "k2-7"))
	recog := ev(event.KindRecognized, "k2-7")
	recog.Identity = &result.Identity{Name: "Barack Obama", Similarity: 0.81}
	f.publishEvent(t, recog)
	f.publishEvent(t, ev(event.KindAppeared, "k2-9"))
	f.flush(t)

	page := openPage(t, f.url+PagePath)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var icons int
	if err := page.Eval(ctx, `document.querySelectorAll('link[rel="icon"][href="/favicon.ico"]').length`, &icons); err != nil || icons != 1 {
		t.Fatalf("icon links: %d %v", icons, err)
	}
	// Click the recognition in the live view's event list.
	if err := page.WaitFor(ctx, `document.querySelector('#live-events li[data-kind="face.recognized"]')`, 30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if err := page.Click(ctx, `#live-events li[data-kind="face.recognized"]`); err != nil {
		t.Fatal(err)
	}
	var dlg struct {
		Open                       bool
		Title, Track, Stream, Time string
		Seen                       string
		SnapWidth                  int
	}
	if err := page.WaitFor(ctx, `(() => { const d = document.getElementById("event-dialog"), img = document.getElementById("evd-snap");
		const f = (k) => d.querySelector('dd[data-field="' + k + '"]').textContent;
		return d.open && img.complete && img.naturalWidth > 0 && {Open: d.open, Title: document.getElementById("evd-title").textContent,
			Track: f("track"), Stream: f("stream"), Time: f("time"), Seen: f("seen"), SnapWidth: img.naturalWidth}; })()`, 20*time.Second, &dlg); err != nil {
		t.Fatal(err)
	}
	shot(t, page, "event-dialog.png")
	if dlg.Title != "recognized: Barack Obama (0.81)" || dlg.Track != "k2-7" || dlg.Stream != "hall" || dlg.Time == "–" || dlg.Seen != "2.0 s, 12 frames" {
		t.Fatalf("event dialog %+v", dlg)
	}
	// Its track: the Events tab lists that track's events only.
	if err := page.Click(ctx, "#evd-track"); err != nil {
		t.Fatal(err)
	}
	var tracks []string
	if err := page.WaitFor(ctx, `(() => { const rows = [...document.querySelectorAll("#ev-table tbody tr")];
		return document.body.dataset.tab === "events" && !document.getElementById("event-dialog").open && rows.length > 0 &&
			!document.getElementById("ev-track").hidden && rows.map((r) => r.dataset.track); })()`, 10*time.Second, &tracks); err != nil {
		t.Fatal(err)
	}
	if len(tracks) != 2 || tracks[0] != "k2-7" || tracks[1] != "k2-7" {
		t.Fatalf("events of track k2-7: %q", tracks)
	}
	shot(t, page, "events-of-track.png")
	// A track id in the live view's faces table links there too; clearing the filter shows all.
	if err := page.Click(ctx, `#ev-track-clear`); err != nil {
		t.Fatal(err)
	}
	if err := page.WaitFor(ctx, `document.querySelectorAll("#ev-table tbody tr").length === 3`, 10*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if err := page.Click(ctx, `#tabs button[data-tab="live"]`); err != nil {
		t.Fatal(err)
	}
	if err := page.Click(ctx, `#faces a.track[data-track-link="k2-7"]`); err != nil {
		t.Fatal(err)
	}
	if err := page.WaitFor(ctx, `document.body.dataset.tab === "events" && document.body.dataset.track === "k2-7" &&
		document.querySelectorAll("#ev-table tbody tr").length === 2`, 10*time.Second, nil); err != nil {
		t.Fatal(err)
	}
}
