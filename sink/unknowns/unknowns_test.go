package unknowns_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/pkg/bus/bustest"
	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/sink/eventstore/eventstoretest"
	"github.com/vigil-video/vigil/sink/unknowns"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func jetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	srv := bustest.StartServer(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func open(t *testing.T, js jetstream.JetStream, cfg unknowns.Config) *unknowns.Store {
	t.Helper()
	if cfg.Threshold == 0 {
		cfg.Threshold = 0.45
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := unknowns.Open(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func left(stream, track string, person int, seed uint64) event.Event {
	at := time.Date(2026, 11, 22, 0, 5, 14, 0, time.UTC).Add(time.Duration(seed) * time.Minute)
	return event.Event{Schema: event.EventSchema, Kind: event.KindLeft, Stream: stream, TrackID: track, CapturedAt: at, At: at,
		FirstSeen: at.Add(-time.Second), LastSeen: at, Frames: 5, Reason: event.ReasonLost, Embedding: eventstoretest.Person(person, 0.6, seed)}
}

func call(t *testing.T, method, u, body string, want int) []byte {
	t.Helper()
	req, _ := http.NewRequest(method, u, bytes.NewBufferString(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s %s: %d %s, want %d", method, u, body, resp.StatusCode, b, want)
	}
	return b
}

// TestUnknowns: tracks of two people that end without identity become two unknowns, shared
// through the KV bucket (a second store sees them); the API lists, shows, merges, enrols into a
// real gallery (409 on a duplicate name) and deletes them, with precise 4xx for bad input;
// erasure removes the matching unknowns; unknowns expire after MaxAge.
func TestUnknowns(t *testing.T) {
	js := jetStream(t)
	st := open(t, js, unknowns.Config{})
	sink := &unknowns.Sink{Store: st}
	assigned := map[string]string{}
	sink.OnAssign = func(_ context.Context, stream, track, id string) error { assigned[stream+"/"+track] = id; return nil }
	ctx := context.Background()
	evs := []event.Event{left("lobby", "a", 0, 1), left("door", "b", 0, 2), left("lobby", "c", 0, 3), left("lobby", "d", 1, 4), left("door", "e", 1, 5)}
	for _, ev := range evs {
		if err := sink.WriteEvent(ctx, ev, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Not filed: recognised, without embedding, not a face.left; a redelivery changes nothing.
	named := left("lobby", "f", 2, 6)
	named.Identity = &result.Identity{Name: "Ada", Similarity: 0.9}
	bare := left("lobby", "g", 2, 7)
	bare.Embedding = nil
	appeared := left("lobby", "h", 2, 8)
	appeared.Kind = event.KindAppeared
	for _, ev := range []event.Event{named, bare, appeared, evs[0]} {
		if err := sink.WriteEvent(ctx, ev, nil); err != nil {
			t.Fatal(err)
		}
	}
	list := st.List()
	if len(list) != 2 || list[0].Sightings != 3 || list[1].Sightings != 2 {
		t.Fatalf("unknowns %+v, want two, of 3 and 2 sightings", list)
	}
	p0, p1 := list[0], list[1]
	if assigned["lobby/a"] != p0.ID || assigned["door/b"] != p0.ID || assigned["lobby/d"] != p1.ID || len(assigned) != 5 {
		t.Errorf("assignments %v", assigned)
	}
	if fmt.Sprint(p0.Streams) != "[door lobby]" || !p0.FirstSeen.Equal(evs[0].FirstSeen) || !p0.LastSeen.Equal(evs[2].LastSeen) {
		t.Errorf("unknown %+v", p0)
	}

	// Another process (store) on the bucket sees them and files person 1 with them.
	other := open(t, js, unknowns.Config{})
	if got := other.List(); len(got) != 2 {
		t.Fatalf("a second store sees %d unknowns", len(got))
	}
	id, err := other.Assign(ctx, unknowns.Sighting{Stream: "yard", TrackID: "x", Embedding: eventstoretest.Person(1, 0.6, 9)})
	if err != nil || id != p1.ID {
		t.Fatalf("second store filed person 1 under %s, %v (want %s)", id, err, p1.ID)
	}

	gs, err := gallery.OpenStore(ctx, js, gallery.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv := &httpapi.Server{Addr: "127.0.0.1:0"}
	(&unknowns.API{Store: st, Enroll: func(ctx context.Context, name string, embs [][]float32) (string, error) {
		photos := make([]gallery.NewPhoto, len(embs))
		for i, e := range embs {
			photos[i] = gallery.NewPhoto{Embedding: e}
		}
		ident, err := gs.Create(ctx, name, photos)
		if errors.Is(err, gallery.ErrExists) {
			return "", fmt.Errorf("%w: %w", unknowns.ErrExists, err)
		}
		return ident.ID, err
	}}).Mount(srv)
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	base := srv.URL() + "/v1/unknowns"

	var got unknowns.UnknownList
	if err := json.Unmarshal(call(t, "GET", base, "", 200), &got); err != nil || len(got.Unknowns) != 2 ||
		got.Unknowns[0].Sightings < got.Unknowns[1].Sightings || got.Unknowns[0].Tracks != nil {
		t.Fatalf("GET /v1/unknowns: %+v %v", got, err)
	}
	var one unknowns.Unknown
	testenv.Eventually(t, 10*time.Second, "the watcher sees the second store's sighting", func() bool {
		_ = json.Unmarshal(call(t, "GET", base+"/"+p1.ID, "", 200), &one)
		return one.Sightings == 3 && len(one.Tracks) == 3
	})
	call(t, "GET", base+"/u-0000000000000000", "", 404)
	call(t, "GET", base+"/nonsense", "", 404)
	call(t, "POST", base+"/"+p0.ID+"/merge", `{"into":"`+p0.ID+`"}`, 400)
	call(t, "POST", base+"/"+p0.ID+"/merge", `{"into":"u-0000000000000000"}`, 404)
	call(t, "POST", base+"/"+p0.ID+"/merge", `{"onto":"x"}`, 400)
	call(t, "POST", base+"/"+p0.ID+"/enroll", `{"name":""}`, 400)
	call(t, "POST", base+"/"+p0.ID+"/enroll", `not json`, 400)

	// Enrol person 0; enrolling person 1 under the same name is a conflict.
	var enrolled unknowns.EnrollResponse
	if err := json.Unmarshal(call(t, "POST", base+"/"+p0.ID+"/enroll", `{"name":"Ada Lovelace"}`, 201), &enrolled); err != nil ||
		enrolled.Identity != "ada-lovelace" || enrolled.Unknown != p0.ID {
		t.Fatalf("enroll: %+v %v", enrolled, err)
	}
	ident, err := gs.Get(ctx, "ada-lovelace")
	if err != nil || len(ident.Photos) != 3 {
		t.Fatalf("enrolled identity %+v, %v (want 3 photos: the exemplars)", ident, err)
	}
	call(t, "GET", base+"/"+p0.ID, "", 404)
	call(t, "POST", base+"/"+p1.ID+"/enroll", `{"name":"Ada Lovelace"}`, 409)

	// Merge a fresh unknown (person 2) into person 1, then delete the result.
	p2, err := st.Assign(ctx, unknowns.Sighting{Stream: "lobby", TrackID: "z", Embedding: eventstoretest.Person(2, 0.6, 10)})
	if err != nil || p2 == p1.ID {
		t.Fatalf("person 2: %s %v", p2, err)
	}
	var merged unknowns.Unknown
	if err := json.Unmarshal(call(t, "POST", base+"/"+p2+"/merge", `{"into":"`+p1.ID+`"}`, 200), &merged); err != nil ||
		merged.ID != p1.ID || merged.Sightings != 4 || len(merged.Tracks) != 4 {
		t.Fatalf("merge: %+v %v", merged, err)
	}
	call(t, "GET", base+"/"+p2, "", 404)
	call(t, "DELETE", base+"/"+p1.ID, "", 204)
	call(t, "DELETE", base+"/"+p1.ID, "", 404)

	// Erasure removes the unknowns that match a person's embeddings, no other.
	a, _ := st.Assign(ctx, unknowns.Sighting{Stream: "lobby", TrackID: "p3", Embedding: eventstoretest.Person(3, 0.6, 11)})
	b, _ := st.Assign(ctx, unknowns.Sighting{Stream: "lobby", TrackID: "p4", Embedding: eventstoretest.Person(4, 0.6, 12)})
	if n, err := st.EraseMatching(ctx, [][]float32{eventstoretest.Person(3, 0, 0)}); err != nil || n != 1 {
		t.Fatalf("erase matching: %d, %v", n, err)
	}
	if _, err := st.Get(ctx, a); !errors.Is(err, unknowns.ErrNotFound) {
		t.Errorf("erased unknown: %v", err)
	}
	if _, err := st.Get(ctx, b); err != nil {
		t.Errorf("other unknown: %v", err)
	}

	// Expiry: a bucket whose unknowns live one second.
	short := open(t, js, unknowns.Config{Bucket: "vigil_unknowns_short", MaxAge: time.Second})
	gone, err := short.Assign(ctx, unknowns.Sighting{Stream: "lobby", TrackID: "t", Embedding: eventstoretest.Person(5, 0.6, 13)})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "the unknown expires", func() bool {
		_, err := short.Get(ctx, gone)
		return errors.Is(err, unknowns.ErrNotFound)
	})
}

// TestAssignFollowsTheLiveUnknownID: a face.left that carries the unknown_id the track role
// matched live joins that unknown while it matches at the threshold, even when another one is
// nearer (what the events said is what the store files); an unknown_id that does not match, or
// names no unknown, is ignored.
func TestAssignFollowsTheLiveUnknownID(t *testing.T) {
	st := open(t, jetStream(t), unknowns.Config{})
	ctx := context.Background()
	axis := func(i int) []float32 { v := make([]float32, 512); v[i] = 1; return v }
	at := time.Date(2026, 11, 22, 0, 5, 14, 0, time.UTC)
	sg := func(track string, v []float32, hint string) unknowns.Sighting {
		return unknowns.Sighting{Stream: "lobby", TrackID: track, FirstSeen: at, LastSeen: at, Embedding: v, UnknownID: hint}
	}
	a, err := st.Assign(ctx, sg("a", axis(0), ""))
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Assign(ctx, sg("b", axis(1), ""))
	if err != nil || a == b {
		t.Fatalf("two orthogonal tracks: %q %q %v", a, b, err)
	}
	between := make([]float32, 512)
	between[0], between[1] = 0.6, 0.8 // 0.6 similar to a, 0.8 to b: both above 0.45
	for _, c := range []struct {
		track string
		v     []float32
		hint  string
		want  string
	}{
		{"d", between, "", b},                   // no unknown_id: the nearest
		{"e", between, "u-00000000000000ff", b}, // an unknown_id that names no unknown
		{"f", axis(1), a, b},                    // an unknown_id the track does not match
		{"g", between, a, a},                    // the live unknown_id, though b is nearer (0.95 against 0.6)
	} {
		got, err := st.Assign(ctx, sg(c.track, c.v, c.hint))
		if err != nil || got != c.want {
			t.Errorf("track %s with unknown_id %q: filed under %q (%v), want %q", c.track, c.hint, got, err, c.want)
		}
	}
}
