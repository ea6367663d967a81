package track

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/pkg/testenv"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/result"
)

// natsConns starts an embedded NATS server and returns a dialer of named connections.
func natsConns(t *testing.T) func(name string) *nats.Conn {
	t.Helper()
	srv := &bus.EmbeddedServer{}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return func(name string) *nats.Conn {
		nc, err := bus.Connect(context.Background(), srv.ClientURL(), name, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
}

// collector gathers the track role's output: results and events.
type collector struct {
	mu      sync.Mutex
	results []result.Result
	events  []event.Event
	changed chan struct{}
}

func collect(t *testing.T, nc *nats.Conn, resultsPrefix string) *collector {
	t.Helper()
	c := &collector{changed: make(chan struct{}, 1)}
	notify := func() {
		select {
		case c.changed <- struct{}{}:
		default:
		}
	}
	s1, err := nc.Subscribe(bus.All(resultsPrefix), func(m *nats.Msg) {
		r, err := result.ParseResult(m.Data)
		if err != nil {
			t.Errorf("bad result: %v", err)
			return
		}
		c.mu.Lock()
		c.results = append(c.results, r)
		c.mu.Unlock()
		notify()
	})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := nc.Subscribe(event.EventsPrefix+".>", func(m *nats.Msg) {
		e, err := event.ParseEvent(m.Data)
		if err != nil {
			t.Errorf("bad event on %s: %v", m.Subject, err)
			return
		}
		if want, _ := event.EventSubject(e.Stream, e.Kind); m.Subject != want {
			t.Errorf("event %s on subject %s", e.Kind, m.Subject)
		}
		c.mu.Lock()
		c.events = append(c.events, e)
		c.mu.Unlock()
		notify()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s1.Unsubscribe(); _ = s2.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return c
}

// wait blocks until cond holds (checked after every message) or the timeout passes.
func (c *collector) wait(t *testing.T, timeout time.Duration, what string, cond func(results []result.Result, evs events) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok := cond(c.results, c.events)
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c.changed:
		case <-deadline.C:
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("timed out waiting for %s; have %d results, events %+v", what, len(c.results), c.events)
		}
	}
}

func startRole(t *testing.T, r *Role) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-r.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
}

func publishJSON(t *testing.T, nc *nats.Conn, subject string, doc any) {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(subject, b); err != nil {
		t.Fatal(err)
	}
}

// TestRoleReordersTracksAndEnds: results published out of order, with a drop and an end of
// stream, come out in order on vigil.results with one track id and no embeddings; the track
// appears and leaves once; one heads request reaches the stream's ingest inbox.
func TestRoleReordersTracksAndEnds(t *testing.T) {
	conn := natsConns(t)
	inbox, err := event.SubscribeHeads(conn("ingest"), "cam")
	if err != nil {
		t.Fatal(err)
	}
	defer inbox.Close()
	out := collect(t, conn("client"), bus.ResultsPrefix)
	role := &Role{Conn: conn("track"), ReorderWait: time.Minute, IdleTimeout: time.Minute, RequestTimeout: time.Minute}
	startRole(t, role)

	rng := rand.New(rand.NewPCG(1, 2))
	person := unit(rng)
	pub := conn("analyze")
	order := []uint64{2, 1, 4, 3, 5, 8, 7, 9, 10, 12, 11} // 6 is dropped
	for _, seq := range order {
		res := resultAt(seq, face(100+float32(seq)*4, 100, 100, near(rng, person, 0.3)))
		publishJSON(t, pub, event.AnalyzedPrefix+".cam", res)
		if seq == 8 {
			publishJSON(t, pub, bus.DropsPrefix+".cam", result.Drop{Schema: 1, Stream: "cam", Seq: 6, Reason: result.ReasonDeadline})
		}
	}
	publishJSON(t, pub, bus.EOSPrefix+".cam", result.EndOfStream{Schema: 1, Stream: "cam", Frames: 12})
	out.wait(t, 10*time.Second, "11 results and face.left", func(rs []result.Result, evs events) bool {
		return len(rs) == 11 && len(evs.of(event.KindLeft)) > 0
	})

	out.mu.Lock()
	var seqs []uint64
	for _, r := range out.results {
		seqs = append(seqs, r.Seq)
		if len(r.Faces) != 1 || r.Faces[0].TrackID == "" || r.Faces[0].TrackID != out.results[0].Faces[0].TrackID {
			t.Fatalf("seq %d: faces %+v, want one face on track %s", r.Seq, r.Faces, out.results[0].Faces[0].TrackID)
		}
		if r.Faces[0].Embedding != nil {
			t.Fatalf("seq %d: embedding published without KeepEmbeddings", r.Seq)
		}
	}
	if want := []uint64{1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12}; !equal(seqs, want) {
		t.Fatalf("results in order %v, want %v", seqs, want)
	}
	app, left := events(out.events).of(event.KindAppeared), events(out.events).of(event.KindLeft)
	if len(app) != 1 || len(left) != 1 || len(out.events) != 2 || left[0].Reason != event.ReasonEnd || left[0].Frames != 11 {
		t.Fatalf("events %+v, want one appeared and one left (end, 11 frames)", out.events)
	}
	if app[0].Crop.Stream != "cam" || app[0].Crop.Width != 640 || app[0].Crop.Seq == 0 {
		t.Fatalf("appeared crop %+v", app[0].Crop)
	}
	out.mu.Unlock()
	var got []string
	testenv.Eventually(t, 10*time.Second, "the heads request at ingest", func() bool { got = append(got, inbox.Take()...); return len(got) > 0 })
	// The results carry embeddings already: the new track asks for the other heads, emotion (a
	// solo head) on a frame of its own later.
	if want := []string{"age", "gender", "liveness", "pose"}; !slices.Equal(got, want) {
		t.Fatalf("ingest inbox has heads %v, want %v", got, want)
	}
	testenv.Eventually(t, 10*time.Second, "the role's counters", func() bool { return role.Stats().Events[event.KindLeft] == 1 })
	if s := role.Stats(); s.HeadsRequests != 1 || s.Results != 11 || s.Streams != 0 || s.Events[event.KindLeft] != 1 {
		t.Fatalf("stats %+v: want 1 heads request (one outstanding at a time), 11 results, the ended stream forgotten", s)
	}

	// A straggler of the ended stream (frame 6, dropped, then analysed after all) is passed on
	// untracked: no new tracker, track or event.
	publishJSON(t, pub, event.AnalyzedPrefix+".cam", resultAt(6, face(124, 100, 100, near(rng, person, 0.3))))
	testenv.Eventually(t, 10*time.Second, "the straggler", func() bool { return role.Stats().Late == 1 })
	out.wait(t, 10*time.Second, "the straggler's result", func(rs []result.Result, _ events) bool { return len(rs) == 12 })
	out.mu.Lock()
	straggler := out.results[11]
	n := len(out.events)
	out.mu.Unlock()
	if straggler.Seq != 6 || len(straggler.Faces) != 1 || straggler.Faces[0].TrackID != "" || n != 2 || role.Stats().Streams != 0 {
		t.Fatalf("straggler %+v, %d events, %d streams: want seq 6 untracked, no new events or stream", straggler, n, role.Stats().Streams)
	}
}

// TestRoleIdleStream: a stream that stops sending ends its tracks with reason "idle".
func TestRoleIdleStream(t *testing.T) {
	conn := natsConns(t)
	out := collect(t, conn("client"), bus.ResultsPrefix)
	role := &Role{Conn: conn("track"), IdleTimeout: 300 * time.Millisecond, Tracker: TrackerConfig{HeadsInterval: -1}}
	startRole(t, role)
	pub := conn("analyze")
	for seq := uint64(1); seq <= 3; seq++ {
		publishJSON(t, pub, event.AnalyzedPrefix+".lobby", onStream(resultAt(seq, face(50, 50, 80, nil)), "lobby"))
	}
	out.wait(t, 10*time.Second, "face.left after idle", func(_ []result.Result, evs events) bool { return len(evs.of(event.KindLeft)) == 1 })
	out.mu.Lock()
	defer out.mu.Unlock()
	if l := events(out.events).of(event.KindLeft)[0]; l.Reason != event.ReasonIdle || l.Stream != "lobby" || l.Frames != 3 {
		t.Fatalf("left %+v", l)
	}
	if role.Stats().HeadsRequests != 0 {
		t.Fatalf("heads requested with a negative interval")
	}
}

// TestRoleShutdownEndsTracks: stopping the role ends live tracks with reason "shutdown", and a
// result published just before is still tracked.
func TestRoleShutdownEndsTracks(t *testing.T) {
	conn := natsConns(t)
	out := collect(t, conn("client"), bus.ResultsPrefix)
	role := &Role{Conn: conn("track"), IdleTimeout: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- role.Run(ctx) }()
	<-role.Ready()
	pub := conn("analyze")
	for seq := uint64(1); seq <= 2; seq++ {
		publishJSON(t, pub, event.AnalyzedPrefix+".door", onStream(resultAt(seq, face(50, 50, 80, nil)), "door"))
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out.wait(t, 10*time.Second, "appeared and left", func(rs []result.Result, evs events) bool { return len(evs) == 2 && len(rs) == 2 })
	out.mu.Lock()
	defer out.mu.Unlock()
	if out.events[0].Kind != event.KindAppeared || out.events[1].Kind != event.KindLeft || out.events[1].Reason != event.ReasonShutdown {
		t.Fatalf("events %+v", out.events)
	}
}

func onStream(r *result.Result, stream string) *result.Result {
	r.Stream = stream
	return r
}

func TestHeadsInbox(t *testing.T) {
	conn := natsConns(t)
	inbox, err := event.SubscribeHeads(conn("ingest"), "cam")
	if err != nil {
		t.Fatal(err)
	}
	defer inbox.Close()
	pub := conn("track")
	send := func(doc string) {
		if err := pub.Publish(event.HeadsPrefix+".cam", []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	send(`{"schema":1,"stream":"cam","heads":["pose","liveness"]}`)
	send(`{"schema":1,"stream":"cam","heads":["emotion","pose"]}`)
	send(`{"schema":1,"stream":"other","heads":["age"]}`)   // another stream's
	send(`{"schema":1,"stream":"cam","heads":["Pose"]}`)    // not a valid head name
	send(`{"schema":2,"stream":"cam","heads":["emotion"]}`) // unknown schema
	send(`{"schema":1,"stream":"cam","heads":["a,b"]}`)     // would split the header
	send(`not json`)
	send(`{"schema":1,"stream":"cam","heads":["` + strings.Repeat("x", 33) + `"]}`)
	testenv.Eventually(t, 10*time.Second, "6 rejected requests", func() bool { return inbox.Rejected() == 6 })
	got := inbox.Take()
	slices.Sort(got)
	if want := []string{"emotion", "liveness", "pose"}; !slices.Equal(got, want) {
		t.Fatalf("Take = %v, want the union %v", got, want)
	}
	if again := inbox.Take(); again != nil {
		t.Fatalf("second Take = %v, want nil", again)
	}
	var nilInbox *event.HeadsInbox
	if nilInbox.Take() != nil || nilInbox.Rejected() != 0 {
		t.Fatal("nil inbox not empty")
	}
	nilInbox.Close()
}

// TestPartitionOfMatchesNATS checks PartitionOf against the NATS server's own
// {{partition(n,1)}} subject mapping.
func TestPartitionOfMatchesNATS(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	const n = 5
	if err := srv.GlobalAccount().AddMapping(event.AnalyzedPrefix+".*", "part.{{partition(5,1)}}.{{wildcard(1)}}"); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("part.*.*")
	if err != nil {
		t.Fatal(err)
	}
	streams := []string{"cam", "lobby", "door-1", "door-2", "A", "z_9", "parking", "entrance-north", "x", "fer"}
	for _, s := range streams {
		if err := nc.Publish(event.AnalyzedPrefix+"."+s, nil); err != nil {
			t.Fatal(err)
		}
	}
	for range streams {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		tok := strings.Split(m.Subject, ".")
		if want := strconv.Itoa(PartitionOf(tok[2], n)); tok[1] != want {
			t.Errorf("stream %s: NATS puts it in partition %s, PartitionOf says %s", tok[2], tok[1], want)
		}
	}
}

// TestRolePartitions: two track roles with Partitions 2 split the streams between them, so each
// result is republished exactly once.
func TestRolePartitions(t *testing.T) {
	conn := natsConns(t)
	out := collect(t, conn("client"), bus.ResultsPrefix)
	var roles []*Role
	for p := 0; p < 2; p++ {
		r := &Role{Conn: conn("track" + strconv.Itoa(p)), Partition: p, Partitions: 2, Tracker: TrackerConfig{HeadsInterval: -1}}
		startRole(t, r)
		roles = append(roles, r)
	}
	pub := conn("analyze")
	streams := []string{"cam", "lobby", "door-1", "door-2", "A", "parking"}
	for _, s := range streams {
		publishJSON(t, pub, event.AnalyzedPrefix+"."+s, onStream(resultAt(1, face(50, 50, 80, nil)), s))
	}
	out.wait(t, 10*time.Second, "one result per stream", func(rs []result.Result, _ events) bool { return len(rs) >= len(streams) })
	owned := [2]uint64{}
	for _, s := range streams {
		owned[PartitionOf(s, 2)]++
	}
	testenv.Eventually(t, 10*time.Second, "the roles' counters", func() bool {
		return roles[0].Stats().Results+roles[1].Stats().Results >= uint64(len(streams))
	})
	for p, r := range roles {
		if got := r.Stats().Results; got != owned[p] {
			t.Errorf("partition %d published %d results, want %d (its streams only)", p, got, owned[p])
		}
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	seen := map[string]int{}
	for _, r := range out.results {
		seen[r.Stream]++
	}
	for _, s := range streams {
		if seen[s] != 1 {
			t.Errorf("stream %s (partition %d): %d results, want 1", s, PartitionOf(s, 2), seen[s])
		}
	}
	if owned[0] == 0 || owned[1] == 0 {
		t.Fatal("the test streams all fall in one partition; pick others")
	}
}

// TestOverloadBoundsHeads: a closed loop (each heads request honoured on the stream's next
// frame) over one unknown face. Without overload drops (or with drops of another kind) heads
// run on consecutive frames (new track, then settle samples); while the stream's frames are
// being superseded (analyzers behind), heads run on at most one frame in OverloadHeadsEvery+1,
// with that many heads-free results between two, and the deferred requests are counted.
func TestOverloadBoundsHeads(t *testing.T) {
	conn := natsConns(t)
	run := func(dropReason string) (headsFrames []uint64, deferred uint64) {
		r := &Role{Conn: conn("track")}
		r.setDefaults()
		st := &streamState{tracker: NewTracker("cam", r.Tracker, nil)}
		rng := rand.New(rand.NewPCG(3, 4))
		person := unit(rng)
		var pending []string
		for seq := uint64(1); seq <= 30; seq++ {
			f := face(100, 100, 120, nil)
			if len(pending) > 0 {
				f = withHeads(f, pending, near(rng, person, 0.2), 30)
				headsFrames = append(headsFrames, seq)
			}
			res := resultAt(seq, f)
			noteDrop(st, dropReason, time.Now()) // the frame before it was dropped for that reason
			step := st.tracker.Update(res)
			asked := r.Stats().HeadsRequests
			r.scheduleHeads(res.Stream, st, step)
			pending = nil
			if r.Stats().HeadsRequests > asked {
				pending = step.HeadsNeeded
			}
		}
		return headsFrames, r.Stats().HeadsDeferred
	}
	fresh, deferred := run(result.ReasonDecode) // not for want of analyzer time
	if deferred != 0 || len(fresh) < 4 || fresh[1] != fresh[0]+1 {
		t.Fatalf("not overloaded: heads on frames %v (%d deferred), want them on consecutive frames from the new track and none deferred", fresh, deferred)
	}
	def := &Role{}
	def.setDefaults()
	every := def.OverloadHeadsEvery
	late, deferred := run(result.ReasonSuperseded)
	if len(late) == 0 || deferred == 0 || len(late) > 30/(every+1) {
		t.Fatalf("overloaded: heads on frames %v (%d deferred), want some, at most one in %d, and deferred requests counted", late, deferred, every+1)
	}
	for i := 1; i < len(late); i++ {
		if late[i]-late[i-1] <= uint64(every) {
			t.Fatalf("overloaded: heads on frames %v: fewer than %d heads-free results between two", late, every)
		}
	}
	t.Logf("heads on frames %v not overloaded, %v overloaded (%d requests deferred)", fresh, late, deferred)
}
