package cli

import (
	"context"
	"image"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/analyze/track"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/event"
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
// /v1/unknowns/{id}/enroll does) makes the next run name that person.
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
}
