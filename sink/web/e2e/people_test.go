package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/analyze/faceapi"
	"github.com/vigil-video/vigil/analyze/faceengine"
	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/analyze/track"
	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/sink/eventstore"
	"github.com/vigil-video/vigil/sink/eventstore/sqlite"
	"github.com/vigil-video/vigil/sink/unknowns"
)

// engineEmbedder is search by photo's embedder over the real face engine.
type engineEmbedder struct{ eng *faceengine.Engine }

func (e engineEmbedder) EmbedFace(ctx context.Context, img []byte) ([]float32, error) {
	an, err := e.eng.Analyze(ctx, img, faceapi.Options{Embeddings: true})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", eventstore.ErrInvalid, err)
	}
	for _, v := range an.Embeddings {
		if len(v) > 0 {
			return v, nil
		}
	}
	return nil, eventstore.ErrNoFace
}

// TestPeopleTabAndPhotoSearch: in a real browser, the People tab lists an unknown person (a
// track of Obama that ended without identity, embedded by the real models) and its name box
// enrols it into the gallery in one step; dropping another photo of him on the Events tab lists
// his sighting.
func TestPeopleTabAndPhotoSearch(t *testing.T) {
	data := testenv.TestData(t)
	ctx := context.Background()
	var unk *unknowns.Store
	p := startPipeline(t, func(p *pipeline, srv *httpapi.Server) {
		st := &eventstore.Store{Log: quiet}
		if err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "events.db"), st); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		eng, err := faceengine.New(faceengine.Config{Models: p.ms.Get})
		if err != nil {
			t.Fatal(err)
		}
		(&eventstore.SearchAPI{Store: st, Faces: engineEmbedder{eng}, MinSimilarity: track.DefaultThreshold}).Mount(srv)
		js, err := jetstream.New(p.conn("unknowns"))
		if err != nil {
			t.Fatal(err)
		}
		if unk, err = unknowns.Open(ctx, js, unknowns.Config{Threshold: track.DefaultThreshold, Log: quiet}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(unk.Close)
		(&unknowns.API{Store: unk, Snapshot: st.TrackSnapshot, Relabel: st.RelabelUnknown,
			Enroll: func(ctx context.Context, name string, embs [][]float32) (string, error) {
				photos := make([]gallery.NewPhoto, len(embs))
				for i, e := range embs {
					photos[i] = gallery.NewPhoto{Embedding: e}
				}
				ident, err := p.store.Create(ctx, name, photos)
				if errors.Is(err, gallery.ErrExists) {
					return "", fmt.Errorf("%w: %w", unknowns.ErrExists, err)
				}
				return ident.ID, err
			}}).Mount(srv)
		// A track of Obama that ended without identity.
		img, err := os.ReadFile(filepath.Join(data, "faces", "Barack_Obama", "obama.jpg"))
		if err != nil {
			t.Fatal(err)
		}
		emb, err := engineEmbedder{eng}.EmbedFace(ctx, img)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Now().UTC()
		ev := event.Event{Schema: event.EventSchema, Kind: event.KindLeft, Stream: "lobby", TrackID: "obama-1", Seq: 1, CapturedAt: at, At: at,
			FirstSeen: at.Add(-time.Second), LastSeen: at, Frames: 5, Reason: event.ReasonLost, Embedding: emb}
		if _, err := st.StoreEvent(ctx, ev, nil); err != nil {
			t.Fatal(err)
		}
		if err := (&unknowns.Sink{Store: unk, OnAssign: st.SetUnknown}).WriteEvent(ctx, ev, nil); err != nil {
			t.Fatal(err)
		}
	})
	page := browser(t, p.url)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	// Events tab: drop another photo of him; his sighting appears, as an unknown to name.
	if err := page.Click(cctx, `#tabs button[data-tab="events"]`); err != nil {
		t.Fatal(err)
	}
	if err := page.WaitFor(cctx, `!document.getElementById("search-drop").hidden`, 20*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if err := page.SetInputFiles(cctx, "#search-drop input[type=file]", []string{filepath.Join(data, "faces", "Barack_Obama", "obama2.jpg")}); err != nil {
		t.Fatal(err)
	}
	var text string
	if err := page.WaitFor(cctx, `(() => { const li = document.querySelector("#search-results li.sighting");
		return li && li.textContent.includes("lobby") && li.querySelector("button") ? li.textContent : ""; })()`, time.Minute, &text); err != nil {
		t.Fatalf("no sighting listed: %v (status %q)", err, evalText(cctx, page, "search-status"))
	}

	// "Name this person" opens the People tab on him; enrolling names him.
	if err := page.Click(cctx, "#search-results li.sighting button"); err != nil {
		t.Fatal(err)
	}
	if err := page.WaitFor(cctx, `document.querySelectorAll("#people-grid .person").length === 1`, 20*time.Second, nil); err != nil {
		t.Fatalf("People tab: %v (status %q)", err, evalText(cctx, page, "people-status"))
	}
	if err := page.Eval(cctx, `(() => { const f = document.querySelector("#people-grid .person form");
		f.querySelector("input").value = "Barack Obama"; f.requestSubmit(); return true; })()`, nil); err != nil {
		t.Fatal(err)
	}
	if err := page.WaitFor(cctx, `document.querySelector("#people-grid .person span") && document.querySelector("#people-grid .person span").textContent.includes("enrolled")`,
		20*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if ident, err := p.store.Get(ctx, "barack-obama"); err != nil || len(ident.Photos) != 1 {
		t.Fatalf("gallery after enrolment: %+v, %v", ident, err)
	}
	if len(unk.List()) != 0 {
		t.Errorf("the enrolled unknown is still listed: %+v", unk.List())
	}
}

func evalText(ctx context.Context, page interface {
	Eval(context.Context, string, any) error
}, id string) string {
	var s string
	_ = page.Eval(ctx, `document.getElementById("`+id+`").textContent`, &s)
	return s
}
