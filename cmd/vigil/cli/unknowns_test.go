package cli

import (
	"context"
	"image"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/analyze/track"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/sink/eventstore"
	"github.com/vigil-video/vigil/sink/unknowns"
)

// writeTwoPeopleClip writes an MJPEG clip at 5 fps: 3 s of photo a, 3 s of an empty frame
// (the first track ends), 3 s of photo b.
func writeTwoPeopleClip(t *testing.T, path, a, b string) {
	t.Helper()
	w, err := gocv.VideoWriterFile(path, "MJPG", 5, 640, 480, true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	frame := func(photo string) gocv.Mat {
		if photo == "" {
			return gocv.NewMatWithSize(480, 640, gocv.MatTypeCV8UC3)
		}
		img := gocv.IMRead(photo, gocv.IMReadColor)
		defer img.Close()
		// Fit inside 640x480 keeping the aspect ratio, centred on black.
		scale := min(640/float64(img.Cols()), 480/float64(img.Rows()))
		w, h := int(float64(img.Cols())*scale), int(float64(img.Rows())*scale)
		small := gocv.NewMat()
		defer small.Close()
		gocv.Resize(img, &small, image.Pt(w, h), 0, 0, gocv.InterpolationLinear)
		out := gocv.NewMatWithSize(480, 640, gocv.MatTypeCV8UC3)
		roi := out.Region(image.Rect((640-w)/2, (480-h)/2, (640-w)/2+w, (480-h)/2+h))
		defer roi.Close()
		small.CopyTo(&roi)
		return out
	}
	for _, p := range []string{a, "", b} {
		m := frame(p)
		for range 15 {
			if err := w.Write(m); err != nil {
				m.Close()
				t.Fatal(err)
			}
		}
		m.Close()
	}
}

// withStore runs f on the JetStream of a vigil run --store-dir while no run holds it.
func withStore(t *testing.T, dir string, f func(js jetstream.JetStream)) {
	t.Helper()
	ctx := context.Background()
	ns := &bus.EmbeddedServer{StoreDir: dir, Logger: slog.New(slog.DiscardHandler)}
	if err := ns.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	nc, err := bus.Connect(ctx, ns.ClientURL(), "test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	f(js)
}

// TestUnknownPeopleEndToEnd: vigil run (real NATS, OpenCV, models) on a clip of two people no
// one enrolled files them as two unknown people in the vigil_unknowns bucket, and the event
// store records each track's unknown_id. Enrolling one of them (what POST
// /v1/unknowns/{id}/enroll does) makes the next run name that person, while the next run's
// results and events of the other carry the unknown_id it was filed under.
func TestUnknownPeopleEndToEnd(t *testing.T) {
	data := testenv.TestData(t)
	dir := t.TempDir()
	clip := filepath.Join(dir, "two.avi")
	writeTwoPeopleClip(t, clip, filepath.Join(data, "faces", "Barack_Obama", "obama.jpg"), filepath.Join(data, "faces", "Joe_Biden", "biden.jpg"))
	store := filepath.Join(dir, "nats")
	db := filepath.Join(dir, "events.db")
	run := func(stream string) {
		t.Helper()
		code, _, stderr := vigil(t, nil, "run", "--once", "--nats-port", "0", "--store-dir", store, "--source", clip, "--stream", stream,
			"--events-db", db, "--quiet", "--heads", "embedding")
		if code != 0 {
			t.Fatalf("vigil run exited %d:\n%s", code, stderr)
		}
	}
	run("first")
	ctx := context.Background()
	var list []unknowns.Unknown
	withStore(t, store, func(js jetstream.JetStream) {
		st, err := unknowns.Open(ctx, js, unknowns.Config{Threshold: track.DefaultThreshold})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		list = st.List()
		if len(list) != 2 {
			hist := openHistory(t, db)
			evs, _ := hist.Events(ctx, eventstore.EventFilter{})
			for _, ev := range evs {
				t.Logf("event %s %s %s frames %d identity %v", ev.Kind, ev.TrackID, ev.Reason, ev.Frames, ev.Identity)
			}
			for _, u := range list {
				t.Logf("unknown %s: %d sightings, tracks %+v", u.ID, u.Sightings, u.Tracks)
			}
			t.Fatalf("%d unknowns after a clip of two people, want 2", len(list))
		}
		gs, err := gallery.OpenStore(ctx, js, gallery.StoreConfig{})
		if err != nil {
			t.Fatal(err)
		}
		// Enrol the unknown that holds the first track (Obama, the clip's first person).
		first, err := st.Get(ctx, list[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := enrollFromEmbeddings(gs)(ctx, "First Person", first.Exemplars()); err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(ctx, first.ID); err != nil {
			t.Fatal(err)
		}
	})
	hist := openHistory(t, db)
	found := 0
	for _, u := range list {
		sg, err := hist.SearchFaces(ctx, eventstore.FaceQuery{Vectors: [][]float32{u.Exemplars()[0]}, MinSimilarity: 0.99})
		if err == nil && len(sg) == 1 && sg[0].UnknownID == u.ID && sg[0].Stream == "first" {
			found++
		}
	}
	if found != 2 {
		t.Errorf("the event store recorded the unknown_id of %d of the 2 tracks", found)
	}
	_ = hist.Close()

	run("second")
	hist = openHistory(t, db)
	named, err := hist.Events(ctx, eventstore.EventFilter{Stream: "second", Kind: event.KindRecognized, Identity: "First Person"})
	if err != nil || len(named) != 1 {
		t.Fatalf("the second run named the enrolled person in %d events, want 1 (%v)", len(named), err)
	}
	all, _ := hist.Events(ctx, eventstore.EventFilter{Stream: "second", Kind: event.KindRecognized})
	if len(all) != 1 {
		t.Errorf("%d face.recognized in the second run, want only the enrolled person's", len(all))
	}
	_ = hist.Close()

	// The person still unknown: the second run's results and events name the unknown the first
	// run filed them under, and its face.left joins that unknown (no third one appears).
	other := list[1]
	withStore(t, store, func(js jetstream.JetStream) {
		var evs []event.Event
		for _, data := range captured(t, js, bus.EventsStream, "vigil.events.second.>") {
			ev, err := event.ParseEvent(data)
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev)
		}
		carried := map[string]bool{}
		for _, ev := range evs {
			t.Logf("second run: %s %s identity %v unknown_id %q", ev.Kind, ev.TrackID, ev.Identity, ev.UnknownID)
			if ev.Identity != nil && ev.UnknownID != "" {
				t.Errorf("%s of %s has identity %v and unknown_id %q", ev.Kind, ev.TrackID, ev.Identity, ev.UnknownID)
			}
			if ev.UnknownID == other.ID {
				carried[ev.Kind] = true
			} else if ev.UnknownID != "" {
				t.Errorf("%s of %s carries unknown_id %q, want %s or none", ev.Kind, ev.TrackID, ev.UnknownID, other.ID)
			}
		}
		if !carried[event.KindAppeared] || !carried[event.KindLeft] {
			t.Errorf("the unknown person's face.appeared and face.left carry unknown_id %s: %v", other.ID, carried)
		}
		withID, identified := 0, 0
		for _, data := range captured(t, js, bus.ResultsStream, "vigil.results.second") {
			r, err := result.ParseResult(data)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range r.Faces {
				switch {
				case f.Identity != nil && f.UnknownID != "":
					t.Errorf("result %d: a face with identity %v and unknown_id %q", r.Seq, f.Identity, f.UnknownID)
				case f.Identity != nil:
					identified++
				case f.UnknownID == other.ID:
					withID++
				}
			}
		}
		t.Logf("second run results: %d faces with unknown_id %s, %d identified", withID, other.ID, identified)
		if withID < 5 || identified < 5 {
			t.Errorf("%d result faces carry unknown_id %s and %d an identity: want the unknown person's and the enrolled one's faces", withID, other.ID, identified)
		}
		st, err := unknowns.Open(ctx, js, unknowns.Config{Threshold: track.DefaultThreshold})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if l := st.List(); len(l) != 1 || l[0].ID != other.ID || l[0].Sightings != 2 {
			t.Errorf("unknowns after the second run %+v, want %s with 2 sightings", l, other.ID)
		}
	})
}

// captured returns the data of every message on subject held in the JetStream stream.
func captured(t *testing.T, js jetstream.JetStream, stream, subject string) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for n := int(info.NumPending); len(out) < n; {
		batch, err := c.Fetch(n-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			out = append(out, m.Data())
			got++
		}
		if got == 0 {
			t.Fatalf("%s %s: %d of %d messages read", stream, subject, len(out), n)
		}
	}
	return out
}
