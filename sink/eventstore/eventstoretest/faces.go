package eventstoretest

import (
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/sink/eventstore"
)

// Person returns a synthetic 512-d embedding of person p (people are unrelated directions);
// view > 0 adds that much noise (a different sighting of the same person: cosine ~1/(1+view²)).
func Person(p int, view float64, seed uint64) []float32 {
	base := rand.New(rand.NewPCG(uint64(p)+1, 7))
	noise := rand.New(rand.NewPCG(seed, 11))
	v := make([]float32, 512)
	var ss float64
	for i := range v {
		x := base.NormFloat64()/math.Sqrt(512) + view*noise.NormFloat64()/math.Sqrt(512)
		v[i] = float32(x)
		ss += x * x
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(ss))
	}
	return v
}

// testSearchFaces: face.left embeddings are found by a search by face, most similar first,
// with filters; a track's embedding searches; Erase removes a person's every trace; retention
// removes embeddings with their events.
func testSearchFaces(t *testing.T, open func(*eventstore.Store) *eventstore.Store, _ Opener) {
	clock := NewClock()
	st := open(&eventstore.Store{Now: clock.Now, MaxAge: time.Hour})
	t0 := clock.Now()
	snap := JPEG(t)
	left := func(stream, track string, at time.Time, emb []float32, named bool) int64 {
		ev := Event(stream, track, event.KindLeft, at)
		ev.Embedding = emb
		if !named {
			ev.Identity = nil
		}
		return mustStore(t, st, ev, nil)
	}
	// Track a (lobby): person 0, recognised, with snapshots; b (door, 10 minutes later): person
	// 0 not recognised; c: person 1; d: a face.left without embedding.
	mustStore(t, st, Event("lobby", "a", event.KindAppeared, t0), snap)
	recognized := mustStore(t, st, Event("lobby", "a", event.KindRecognized, t0), snap)
	a := left("lobby", "a", t0, Person(0, 0.6, 1), true)
	b := left("door", "b", t0.Add(10*time.Minute), Person(0, 0.6, 2), false)
	c := left("lobby", "c", t0, Person(1, 0.6, 3), false)
	left("lobby", "d", t0, nil, false)
	// A redelivered face.left stores nothing twice.
	if again := left("lobby", "a", t0, Person(0, 0.6, 1), true); again != a {
		t.Fatalf("redelivered face.left stored as %d, want %d", again, a)
	}

	query := eventstore.FaceQuery{Vectors: [][]float32{Person(0, 0.6, 99)}, MinSimilarity: 0.45}
	got, err := st.SearchFaces(ctx(t), query)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Similarity < got[1].Similarity {
		t.Fatalf("search for person 0: %+v, want tracks a and b, most similar first", got)
	}
	byTrack := map[string]eventstore.Sighting{}
	for _, sg := range got {
		byTrack[sg.TrackID] = sg
	}
	sa, sb := byTrack["a"], byTrack["b"]
	if sa.EventID != a || sa.Stream != "lobby" || sa.Identity != "Barack_Obama" || sa.Snapshot != "/v1/history/events/"+itoa(recognized)+"/snapshot" ||
		!sa.FirstSeen.Equal(t0.Add(-time.Second)) || !sa.LastSeen.Equal(t0) || sa.Similarity < 0.6 {
		t.Errorf("sighting of track a: %+v", sa)
	}
	if sb.EventID != b || sb.Stream != "door" || sb.Identity != "" || sb.Snapshot != "" {
		t.Errorf("sighting of track b: %+v", sb)
	}
	filtered := func(q eventstore.FaceQuery) []eventstore.Sighting {
		t.Helper()
		q.Vectors, q.MinSimilarity = query.Vectors, query.MinSimilarity
		out, err := st.SearchFaces(ctx(t), q)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := filtered(eventstore.FaceQuery{Stream: "door"}); len(out) != 1 || out[0].TrackID != "b" {
		t.Errorf("stream door: %+v", out)
	}
	if out := filtered(eventstore.FaceQuery{Since: t0.Add(time.Minute)}); len(out) != 1 || out[0].TrackID != "b" {
		t.Errorf("since: %+v", out)
	}
	if out := filtered(eventstore.FaceQuery{Until: t0.Add(time.Minute)}); len(out) != 1 || out[0].TrackID != "a" {
		t.Errorf("until: %+v", out)
	}
	if out := filtered(eventstore.FaceQuery{Limit: 1}); len(out) != 1 || out[0].TrackID != got[0].TrackID {
		t.Errorf("limit 1: %+v", out)
	}
	for _, bad := range []eventstore.FaceQuery{{}, {Vectors: query.Vectors, MinSimilarity: 2}, {Vectors: query.Vectors, Limit: -1},
		{Vectors: query.Vectors, Stream: "no/slash"}} {
		if _, err := st.SearchFaces(ctx(t), bad); !errors.Is(err, eventstore.ErrInvalid) {
			t.Errorf("query %+v: %v, want ErrInvalid", bad, err)
		}
	}

	// Every stored event of a track filed under an unknown person carries its id, and a
	// relabelled unknown moves with it.
	unknownOf := func(track string) []string {
		t.Helper()
		evs, err := st.Events(ctx(t), eventstore.EventFilter{TrackID: track})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range evs {
			ids = append(ids, e.UnknownID)
		}
		return ids
	}
	if err := st.SetUnknown(ctx(t), "door", "b", "u-door"); err != nil {
		t.Fatal(err)
	}
	if ids := unknownOf("b"); len(ids) != 1 || ids[0] != "u-door" {
		t.Errorf("events of track b filed under u-door: unknown ids %q", ids)
	}
	if ids := unknownOf("a"); len(ids) != 3 || ids[0] != "" {
		t.Errorf("events of track a (no unknown): unknown ids %q", ids)
	}
	if err := st.RelabelUnknown(ctx(t), "u-door", "u-merged"); err != nil {
		t.Fatal(err)
	}
	if ids := unknownOf("b"); len(ids) != 1 || ids[0] != "u-merged" {
		t.Errorf("after the merge: unknown ids %q, want u-merged", ids)
	}
	if err := st.RelabelUnknown(ctx(t), "u-merged", ""); err != nil {
		t.Fatal(err)
	}

	// A track's stored embedding searches for the others of the same person.
	emb, id, err := st.TrackEmbedding(ctx(t), "", "b")
	if err != nil || id != b {
		t.Fatalf("TrackEmbedding(b) = %d, %v", id, err)
	}
	if out, err := st.SearchFaces(ctx(t), eventstore.FaceQuery{Vectors: [][]float32{emb}, MinSimilarity: 0.45, ExcludeEvent: id}); err != nil ||
		len(out) != 1 || out[0].TrackID != "a" {
		t.Errorf("search by track b: %+v, %v (want track a)", out, err)
	}
	if _, _, err := st.TrackEmbedding(ctx(t), "", "d"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Errorf("TrackEmbedding of a track without embedding: %v", err)
	}
	if _, _, err := st.TrackEmbedding(ctx(t), "door", "a"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Errorf("TrackEmbedding of track a on the wrong stream: %v", err)
	}

	// Erasure: every track of person 0, by name (a) and by embedding (b), with its events,
	// snapshots and embeddings; the result summaries naming them, not those of a longer name.
	for i, names := range [][]string{{"Barack_Obama"}, {"Barack_Obama_Jr"}, {"x", "Barack_Obama"}} {
		if err := st.Write(ctx(t), resultWith("lobby", uint64(100+i), names...)); err != nil {
			t.Fatal(err)
		}
	}
	erased, err := st.Erase(ctx(t), eventstore.EraseRequest{Identity: "Barack_Obama", Vectors: [][]float32{Person(0, 0, 0)}, MinSimilarity: 0.45})
	if err != nil {
		t.Fatal(err)
	}
	if want := (eventstore.Erased{Tracks: 2, Events: 4, Snapshots: 2, Embeddings: 2, Results: 2}); erased != want {
		t.Errorf("erased %+v, want %+v", erased, want)
	}
	if out, err := st.SearchFaces(ctx(t), query); err != nil || len(out) != 0 {
		t.Errorf("search after erasure: %+v, %v (want nothing)", out, err)
	}
	evs, _ := st.Events(ctx(t), eventstore.EventFilter{})
	for _, ev := range evs {
		if ev.TrackID == "a" || ev.TrackID == "b" {
			t.Errorf("event %d of erased track %s kept", ev.ID, ev.TrackID)
		}
	}
	if len(evs) != 2 {
		t.Errorf("%d events kept, want tracks c and d's face.left", len(evs))
	}
	if rs, _ := st.Results(ctx(t), eventstore.ResultFilter{}); len(rs) != 1 || rs[0].Identities[0] != "Barack_Obama_Jr" {
		t.Errorf("result summaries kept: %+v", rs)
	}
	if _, err := st.Erase(ctx(t), eventstore.EraseRequest{}); !errors.Is(err, eventstore.ErrInvalid) {
		t.Errorf("empty erase: %v", err)
	}

	// Retention takes the embeddings with their events, for this store and a new one.
	person1 := eventstore.FaceQuery{Vectors: [][]float32{Person(1, 0.6, 98)}, MinSimilarity: 0.45}
	if out, _ := st.SearchFaces(ctx(t), person1); len(out) != 1 || out[0].EventID != c {
		t.Fatalf("person 1 before retention: %+v", out)
	}
	clock.Advance(2 * time.Hour)
	if _, err := st.Prune(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if out, err := st.SearchFaces(ctx(t), person1); err != nil || len(out) != 0 {
		t.Errorf("person 1 after retention: %+v, %v", out, err)
	}
	fresh := open(&eventstore.Store{})
	if out, err := fresh.SearchFaces(ctx(t), person1); err != nil || len(out) != 0 {
		t.Errorf("person 1 after retention, new store: %+v, %v", out, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
