// Package eventstoretest is the conformance suite every event store backend passes: storage and
// round trips, idempotence, filters and paging, snapshots, result summaries, retention,
// concurrent writers and migrators, and schema versions. Only tests import it.
package eventstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"sync"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/sink/eventstore"
)

// Opener opens a Store over one test's database: it sets st.DB and st.Dialect and initialises
// st, whose other fields the suite sets first. It may be called several times (reopening).
type Opener func(ctx context.Context, st *eventstore.Store) error

// Backend makes empty databases.
type Backend struct {
	// NewDatabase creates an empty database for the test t and returns its Opener. It removes
	// the database when t ends.
	NewDatabase func(t *testing.T) Opener
}

// Clock is a manual clock for Store.Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 11, 22, 0, 5, 14, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// JPEG returns a small valid JPEG.
func JPEG(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, 8, 8)), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Event returns a complete event (every field set) of stream, track and kind, decided at
// captured.
func Event(stream, trackID, kind string, captured time.Time) event.Event {
	ev := event.Event{Schema: event.EventSchema, Kind: kind, Stream: stream, TrackID: trackID,
		Seq: 57, CapturedAt: captured, At: captured.Add(110 * time.Millisecond),
		Crop: event.Crop{Stream: stream, Seq: 55, CapturedAt: captured.Add(-400 * time.Millisecond),
			Box: result.Box{X1: 255, Y1: 5.75, X2: 405.5, Y2: 156.25}, Width: 596, Height: 336},
		FirstSeen: captured.Add(-time.Second), LastSeen: captured, Frames: 4}
	if kind != event.KindAppeared {
		ev.Identity = &result.Identity{Name: "Barack_Obama", Similarity: 0.84}
	}
	if kind == event.KindLeft {
		ev.Reason = event.ReasonLost
	}
	return ev
}

// Run runs the suite against b.
func Run(t *testing.T, b Backend) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, open func(st *eventstore.Store) *eventstore.Store, raw Opener)
	}{
		{"RoundTrip", testRoundTrip},
		{"Idempotent", testIdempotent},
		{"Filters", testFilters},
		{"Snapshots", testSnapshots},
		{"Results", testResults},
		{"Retention", testRetention},
		{"BackgroundPruning", testBackgroundPruning},
		{"Concurrent", testConcurrent},
		{"Migrations", testMigrations},
		{"Closed", testClosed},
		{"SearchFaces", testSearchFaces},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := b.NewDatabase(t)
			open := func(st *eventstore.Store) *eventstore.Store {
				t.Helper()
				if st.PruneInterval == 0 {
					st.PruneInterval = -1
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := raw(ctx, st); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = st.Close() })
				return st
			}
			tc.fn(t, open, raw)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func mustStore(t *testing.T, st *eventstore.Store, ev event.Event, snap []byte) int64 {
	t.Helper()
	id, err := st.StoreEvent(ctx(t), ev, snap)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func sameEvent(t *testing.T, got, want event.Event) {
	t.Helper()
	g, w := got, want
	if !g.CapturedAt.Equal(w.CapturedAt) || !g.At.Equal(w.At) || !g.FirstSeen.Equal(w.FirstSeen) ||
		!g.LastSeen.Equal(w.LastSeen) || !g.Crop.CapturedAt.Equal(w.Crop.CapturedAt) {
		t.Fatalf("times differ:\n got %+v\nwant %+v", g, w)
	}
	g.CapturedAt, g.At, g.FirstSeen, g.LastSeen, g.Crop.CapturedAt = w.CapturedAt, w.At, w.FirstSeen, w.LastSeen, w.Crop.CapturedAt
	if (g.Identity == nil) != (w.Identity == nil) || g.Identity != nil && *g.Identity != *w.Identity {
		t.Fatalf("identity %+v, want %+v", g.Identity, w.Identity)
	}
	g.Identity = w.Identity
	if fmt.Sprintf("%+v", g) != fmt.Sprintf("%+v", w) {
		t.Fatalf("event differs:\n got %+v\nwant %+v", g, w)
	}
}

// testRoundTrip: every field of an event comes back, with nanosecond times, and its snapshot.
func testRoundTrip(t *testing.T, open func(*eventstore.Store) *eventstore.Store, _ Opener) {
	clock := NewClock()
	st := open(&eventstore.Store{Now: clock.Now})
	captured := time.Date(2026, 11, 22, 0, 5, 14, 543868149, time.UTC)
	ev := Event("lobby", "mwr389h9-3", event.KindRecognized, captured)
	snap := JPEG(t)
	id := mustStore(t, st, ev, snap)
	got, err := st.Event(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	sameEvent(t, got.Event, ev)
	if got.ID != id || !got.HasSnapshot || !got.StoredAt.Equal(clock.Now()) {
		t.Fatalf("stored event %+v", got)
	}
	b, err := st.Snapshot(ctx(t), id)
	if err != nil || !bytes.Equal(b, snap) {
		t.Fatalf("snapshot: %d bytes, %v", len(b), err)
	}
	// An event without identity, reason or snapshot.
	ev2 := Event("lobby", "mwr389h9-4", event.KindAppeared, captured)
	id2 := mustStore(t, st, ev2, nil)
	got2, err := st.Event(ctx(t), id2)
	if err != nil {
		t.Fatal(err)
	}
	sameEvent(t, got2.Event, ev2)
	if got2.HasSnapshot || id2 <= id {
		t.Fatalf("second event %+v (id %d after %d)", got2, id2, id)
	}
	if _, err := st.Snapshot(ctx(t), id2); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("snapshot of an event without one: %v", err)
	}
	if _, err := st.Event(ctx(t), id2+100); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("missing event: %v", err)
	}
	for _, bad := range []event.Event{
		{Schema: 1, Kind: "face.sneezed", Stream: "a", TrackID: "t"},
		{Schema: 1, Kind: event.KindLeft, Stream: "a.b", TrackID: "t"},
		{Schema: 1, Kind: event.KindLeft, Stream: "a"},
	} {
		if _, err := st.StoreEvent(ctx(t), bad, nil); !errors.Is(err, eventstore.ErrInvalid) {
			t.Errorf("stored %+v: %v", bad, err)
		}
	}
}

// testIdempotent: a redelivered event is stored once; a snapshot arriving with the redelivery
// is added.
func testIdempotent(t *testing.T, open func(*eventstore.Store) *eventstore.Store, _ Opener) {
	st := open(&eventstore.Store{})
	ev := Event("lobby", "t1", event.KindAppeared, time.Unix(1795306514, 0))
	id := mustStore(t, st, ev, nil)
	if again := mustStore(t, st, ev, JPEG(t)); again != id {
		t.Fatalf("redelivery stored as %d, first as %d", again, id)
	}
	if third := mustStore(t, st, ev, nil); third != id {
		t.Fatal("third delivery got a new id")
	}
	if _, err := st.Snapshot(ctx(t), id); err != nil {
		t.Fatalf("snapshot added by the redelivery: %v", err)
	}
	evs, err := st.Events(ctx(t), eventstore.EventFilter{})
	if err != nil || len(evs) != 1 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	if s := st.Stats(); s.Events != 1 || s.Duplicates != 2 {
		t.Fatalf("stats %+v", s)
	}
	// The same track's other kinds are other events.
	mustStore(t, st, Event("lobby", "t1", event.KindLeft, time.Unix(1795306515, 0)), nil)
	if evs, _ := st.Events(ctx(t), eventstore.EventFilter{}); len(evs) != 2 {
		t.Fatalf("%d events after face.left", len(evs))
	}
}

// testFilters: every filter field, ordering and paging.
func testFilters(t *testing.T, open func(*eventstore.Store) *eventstore.Store, _ Opener) {
	st := open(&eventstore.Store{})
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var ids []int64
	for i := 0; i < 12; i++ {
		stream := []string{"lobby", "door"}[i%2]
		kind := []string{event.KindAppeared, event.KindRecognized, event.KindLeft}[i%3]
		ev := Event(stream, fmt.Sprintf("t%d", i), kind, base.Add(time.Duration(i)*time.Minute))
		if i == 4 {
			ev.Identity = &result.Identity{Name: "Ada_Lovelace", Similarity: 0.9}
		}
		ids = append(ids, mustStore(t, st, ev, nil))
	}
	count := func(f eventstore.EventFilter) []int64 {
		t.Helper()
		evs, err := st.Events(ctx(t), f)
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		var out []int64
		for _, e := range evs {
			out = append(out, e.ID)
		}
		return out
	}
	all := count(eventstore.EventFilter{})
	if len(all) != 12 || all[0] != ids[11] || all[11] != ids[0] {
		t.Fatalf("all events newest first: %v (stored %v)", all, ids)
	}
	for name, tc := range map[string]struct {
		f    eventstore.EventFilter
		want int
	}{
		"stream":     {eventstore.EventFilter{Stream: "door"}, 6},
		"kind":       {eventstore.EventFilter{Kind: event.KindLeft}, 4},
		"identity":   {eventstore.EventFilter{Identity: "Ada_Lovelace"}, 1},
		"identified": {eventstore.EventFilter{Identified: true}, 8},
		"track":      {eventstore.EventFilter{TrackID: "t7"}, 1},
		"since":      {eventstore.EventFilter{Since: base.Add(10 * time.Minute)}, 2},
		"until":      {eventstore.EventFilter{Until: base.Add(3 * time.Minute)}, 3},
		"window":     {eventstore.EventFilter{Since: base.Add(2 * time.Minute), Until: base.Add(5 * time.Minute)}, 3},
		"combined":   {eventstore.EventFilter{Stream: "lobby", Kind: event.KindAppeared}, 2},
		"limit":      {eventstore.EventFilter{Limit: 5}, 5},
		"none":       {eventstore.EventFilter{Stream: "attic"}, 0},
	} {
		if got := count(tc.f); len(got) != tc.want {
			t.Errorf("%s: %d events, want %d", name, len(got), tc.want)
		}
	}
	// Paging with Before walks every event once.
	var paged []int64
	before := int64(0)
	for {
		page := count(eventstore.EventFilter{Limit: 5, Before: before})
		paged = append(paged, page...)
		if len(page) < 5 {
			break
		}
		before = page[len(page)-1]
	}
	if fmt.Sprint(paged) != fmt.Sprint(all) {
		t.Fatalf("paged %v, want %v", paged, all)
	}
	for _, bad := range []eventstore.EventFilter{{Stream: "a b"}, {Kind: "x"}, {Limit: -1}, {Limit: eventstore.MaxLimit + 1},
		{Since: base, Until: base}} {
		if _, err := st.Events(ctx(t), bad); !errors.Is(err, eventstore.ErrInvalid) {
			t.Errorf("filter %+v: %v", bad, err)
		}
	}
}

// testSnapshots: snapshots that are not JPEGs or are too large are left out; the event is kept.
func testSnapshots(t *testing.T, open func(*eventstore.Store) *eventstore.Store, _ Opener) {
	snap := JPEG(t)
	st := open(&eventstore.Store{MaxSnapshotBytes: len(snap)})
	at := time.Unix(1795306514, 0)
	for i, b := range [][]byte{[]byte("GIF89a......"), append(append([]byte{}, snap...), 0)} {
		id := mustStore(t, st, Event("lobby", fmt.Sprintf("t%d", i), event.KindAppeared, at), b)
		if _, err := st.Snapshot(ctx(t), id); !errors.Is(err, eventstore.ErrNotFound) {
			t.Errorf("snapshot %d stored: %v", i, err)
		}
	}
	id := mustStore(t, st, Event("lobby", "ok", event.KindAppeared, at), snap)
	if got, err := st.Snapshot(ctx(t), id); err != nil || !bytes.Equal(got, snap) {
		t.Fatalf("snapshot at the limit: %v", err)
	}
	if s := st.Stats(); s.SnapshotsRefused != 2 || s.Snapshots != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func resultWith(stream string, seq uint64, names ...string) result.Result {
	r := result.Result{Schema: 1, Stream: stream, Seq: seq, CapturedAt: time.Unix(1795306514, int64(seq)).UTC(),
		AnalyzedAt: time.Unix(1795306515, 0).UTC(), LatencyMS: 560.75, Width: 596, Height: 336, Faces: []result.Face{}}
	for _, n := range names {
		f := result.Face{Score: 0.99}
		if n != "" {
			f.Identity = &result.Identity{Name: n, Similarity: 0.8}
		}
		r.Faces = append(r.Faces, f)
	}
	return r
}

// testResults: summaries are stored once, empty results skipped by default, filters work.
func testResults(t *testing.T, open func(*eventstore.Store) *eventstore.Store, _ Opener) {
	st := open(&eventstore.Store{})
	for _, r := range []result.Result{
		resultWith("lobby", 1, "Ada", "", "Ada", "Bob"),
		resultWith("lobby", 1, "Ada", "", "Ada", "Bob"), // redelivered
		resultWith("lobby", 2),                          // no face: skipped
		resultWith("lobby", 3, ""),
		resultWith("door", 1, "Cy"),
	} {
		if err := st.Write(ctx(t), r); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := st.Results(ctx(t), eventstore.ResultFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 {
		t.Fatalf("%d summaries, want 3: %+v", len(rs), rs)
	}
	first := rs[2]
	want := resultWith("lobby", 1)
	if first.Stream != "lobby" || first.Seq != 1 || first.Faces != 4 || first.Identified != 3 ||
		fmt.Sprint(first.Identities) != "[Ada Bob]" || !first.CapturedAt.Equal(want.CapturedAt) ||
		!first.AnalyzedAt.Equal(want.AnalyzedAt) || first.LatencyMS != 560.75 || first.Width != 596 {
		t.Fatalf("summary %+v", first)
	}
	if rs[1].Identities == nil || len(rs[1].Identities) != 0 {
		t.Fatalf("no identities should be an empty list: %+v", rs[1])
	}
	for name, tc := range map[string]struct {
		f    eventstore.ResultFilter
		want int
	}{
		"stream":     {eventstore.ResultFilter{Stream: "door"}, 1},
		"identified": {eventstore.ResultFilter{Identified: true}, 2},
		"limit":      {eventstore.ResultFilter{Limit: 1}, 1},
		"before":     {eventstore.ResultFilter{Before: rs[0].ID}, 2},
	} {
		got, err := st.Results(ctx(t), tc.f)
		if err != nil || len(got) != tc.want {
			t.Errorf("%s: %d summaries (%v), want %d", name, len(got), err, tc.want)
		}
	}
	empty := open(&eventstore.Store{EmptyResults: true})
	if err := empty.Write(ctx(t), resultWith("lobby", 2)); err != nil {
		t.Fatal(err)
	}
	if got, _ := empty.Results(ctx(t), eventstore.ResultFilter{Stream: "lobby"}); len(got) != 3 {
		t.Fatalf("EmptyResults: %d summaries", len(got))
	}
}

// testRetention: MaxAge, MaxEvents and MaxResults remove the oldest rows and their snapshots.
func testRetention(t *testing.T, open func(*eventstore.Store) *eventstore.Store, _ Opener) {
	clock := NewClock()
	st := open(&eventstore.Store{Now: clock.Now, MaxAge: time.Hour, MaxEvents: 5, MaxResults: 3})
	snap := JPEG(t)
	old := mustStore(t, st, Event("lobby", "old", event.KindAppeared, clock.Now()), snap)
	if err := st.Write(ctx(t), resultWith("lobby", 1, "")); err != nil {
		t.Fatal(err)
	}
	clock.Advance(59 * time.Minute)
	if p, err := st.Prune(ctx(t)); err != nil || p.Events != 0 {
		t.Fatalf("pruned %+v before MaxAge: %v", p, err)
	}
	clock.Advance(2 * time.Minute)
	var ids []int64
	for i := 0; i < 7; i++ {
		ids = append(ids, mustStore(t, st, Event("lobby", fmt.Sprintf("t%d", i), event.KindAppeared, clock.Now()), snap))
		if err := st.Write(ctx(t), resultWith("lobby", uint64(10+i), "")); err != nil {
			t.Fatal(err)
		}
	}
	p, err := st.Prune(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	// 1 by age, then 2 beyond MaxEvents; results: 1 by age, 4 beyond MaxResults.
	if p.Events != 3 || p.Results != 5 {
		t.Fatalf("pruned %+v, want 3 events and 5 results", p)
	}
	evs, _ := st.Events(ctx(t), eventstore.EventFilter{})
	if len(evs) != 5 || evs[4].ID != ids[2] {
		t.Fatalf("kept %d events, oldest %d (want %d)", len(evs), evs[len(evs)-1].ID, ids[2])
	}
	for _, id := range []int64{old, ids[0], ids[1]} {
		if _, err := st.Snapshot(ctx(t), id); !errors.Is(err, eventstore.ErrNotFound) {
			t.Errorf("snapshot of pruned event %d: %v", id, err)
		}
	}
	if _, err := st.Snapshot(ctx(t), ids[2]); err != nil {
		t.Errorf("snapshot of a kept event: %v", err)
	}
	if rs, _ := st.Results(ctx(t), eventstore.ResultFilter{}); len(rs) != 3 || rs[2].Seq != 14 {
		t.Fatalf("kept results %+v", rs)
	}
	if s := st.Stats(); s.PrunedEvents != 3 || s.PrunedResults != 5 {
		t.Fatalf("stats %+v", s)
	}
	if p, err := st.Prune(ctx(t)); err != nil || p != (eventstore.Pruned{}) {
		t.Fatalf("second prune %+v %v", p, err)
	}
}

// testBackgroundPruning: retention runs by itself every PruneInterval, and Close stops it.
func testBackgroundPruning(t *testing.T, open func(*eventstore.Store) *eventstore.Store, _ Opener) {
	clock := NewClock()
	st := open(&eventstore.Store{Now: clock.Now, MaxAge: time.Hour, PruneInterval: 5 * time.Millisecond})
	mustStore(t, st, Event("lobby", "t", event.KindAppeared, clock.Now()), nil)
	clock.Advance(2 * time.Hour)
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for st.Stats().PrunedEvents == 0 {
		if time.Now().After(deadline) {
			t.Fatal("background pruning did not run")
		}
		<-tick.C
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// testConcurrent: writers and readers at once, from several goroutines, all succeed.
func testConcurrent(t *testing.T, open func(*eventstore.Store) *eventstore.Store, _ Opener) {
	st := open(&eventstore.Store{})
	snap := JPEG(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				ev := Event("lobby", fmt.Sprintf("g%d-%d", g, i), event.KindAppeared, time.Unix(1795306514, int64(i)))
				if _, err := st.StoreEvent(context.Background(), ev, snap); err != nil {
					errs <- err
					return
				}
				if err := st.Write(context.Background(), resultWith(fmt.Sprintf("s%d", g), uint64(i+1), "")); err != nil {
					errs <- err
					return
				}
				if _, err := st.Events(context.Background(), eventstore.EventFilter{Limit: 10}); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 10; i++ {
			if _, err := st.Prune(context.Background()); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if evs, _ := st.Events(ctx(t), eventstore.EventFilter{Limit: eventstore.MaxLimit}); len(evs) != 100 {
		t.Fatalf("%d events stored, want 100", len(evs))
	}
}

// testMigrations: migrating twice, or from several stores at once, is harmless; a database
// with a newer schema is refused.
func testMigrations(t *testing.T, open func(*eventstore.Store) *eventstore.Store, raw Opener) {
	var wg sync.WaitGroup
	stores := make([]*eventstore.Store, 3)
	errs := make([]error, 3)
	for i := range stores {
		stores[i] = &eventstore.Store{PruneInterval: -1}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = raw(context.Background(), stores[i])
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent migration %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	st := open(&eventstore.Store{})
	v, err := st.SchemaVersion(ctx(t))
	if err != nil || v != 2 {
		t.Fatalf("schema version %d, %v (want 2)", v, err)
	}
	id := mustStore(t, st, Event("lobby", "t", event.KindAppeared, time.Unix(1795306514, 0)), nil)
	again := open(&eventstore.Store{})
	if _, err := again.Event(ctx(t), id); err != nil {
		t.Fatalf("data lost by migrating again: %v", err)
	}
	if _, err := st.DB.ExecContext(ctx(t), "INSERT INTO vigil_eventstore_migrations (version, name, applied_ns) VALUES (99, 'future', 0)"); err != nil {
		t.Fatal(err)
	}
	err = raw(ctx(t), &eventstore.Store{PruneInterval: -1})
	if err == nil {
		t.Fatal("a database with a newer schema was accepted")
	}
}

// testClosed: after Close every call fails with ErrClosed.
func testClosed(t *testing.T, open func(*eventstore.Store) *eventstore.Store, _ Opener) {
	st := open(&eventstore.Store{})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	c := context.Background()
	if _, err := st.StoreEvent(c, Event("a", "t", event.KindAppeared, time.Now()), nil); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("StoreEvent: %v", err)
	}
	if err := st.Write(c, resultWith("a", 1, "")); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("Write: %v", err)
	}
	if _, err := st.Events(c, eventstore.EventFilter{}); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("Events: %v", err)
	}
	if _, err := st.Snapshot(c, 1); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("Snapshot: %v", err)
	}
	if _, err := st.Prune(c); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("Prune: %v", err)
	}
}
