package analyze

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// outcomes collects results and drops from NATS, keyed by stream and sequence.
type outcomes struct {
	mu      sync.Mutex
	results map[uint64]result.Result
	drops   map[uint64]result.Drop
	subs    []*nats.Subscription
}

func collect(t *testing.T, nc *nats.Conn) *outcomes {
	t.Helper()
	o := &outcomes{results: map[uint64]result.Result{}, drops: map[uint64]result.Drop{}}
	s1, err := nc.Subscribe(bus.All(bus.ResultsPrefix), func(m *nats.Msg) {
		r, err := result.ParseResult(m.Data)
		if err != nil {
			t.Errorf("bad result: %v", err)
			return
		}
		o.mu.Lock()
		o.results[r.Seq] = r
		o.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := nc.Subscribe(bus.All(bus.DropsPrefix), func(m *nats.Msg) {
		d, err := result.ParseDrop(m.Data)
		if err != nil {
			t.Errorf("bad drop: %v", err)
			return
		}
		o.mu.Lock()
		o.drops[d.Seq] = d
		o.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	o.subs = []*nats.Subscription{s1, s2}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return o
}

func (o *outcomes) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.results) + len(o.drops)
}

type harness struct {
	nc     *nats.Conn
	role   *Role
	cancel context.CancelFunc
	done   chan error
}

func startRole(t *testing.T, configure func(*Role)) *harness {
	t.Helper()
	srv := &bus.EmbeddedServer{}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	conn := func(name string) *nats.Conn {
		nc, err := bus.Connect(context.Background(), srv.ClientURL(), name, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	p := newPipeline(t, newModelSet(t), []string{HeadEmbedding})
	role := &Role{Conn: conn("analyze"), Analyzer: p, Workers: 2, MaxBatch: 4, MaxWait: 5 * time.Millisecond, Name: "test"}
	if configure != nil {
		configure(role)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{nc: conn("client"), role: role, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- role.Run(ctx) }()
	t.Cleanup(func() { h.stop(t) })
	select {
	case <-role.Ready():
	case err := <-h.done:
		t.Fatalf("Run: %v", err)
	}
	return h
}

func (h *harness) stop(t *testing.T) {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	if err := <-h.done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func (h *harness) publish(t *testing.T, f frame.Frame) {
	t.Helper()
	subj, err := bus.Subject(bus.FramesPrefix, f.Stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.Msg(subj)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
}

func jpegOf(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestRoleResultsAndDrops(t *testing.T) {
	img := jpegOf(t, filepath.Join(testenv.TestData(t), "detect", "two_people.jpg"))
	h := startRole(t, func(r *Role) { r.Deadline = time.Second })
	o := collect(t, h.nc)
	now := time.Now()
	good := frame.Frame{Stream: "cam1", Seq: 1, Captured: now, Width: 1126, Height: 661, Encoding: frame.EncodingJPEG, Data: img,
		Complete: true} // every frame is analysed, none superseded: each gets its own outcome
	h.publish(t, good)
	corrupt := good
	corrupt.Seq, corrupt.Data = 2, img[:len(img)/3]
	h.publish(t, corrupt)
	notImage := good
	notImage.Seq, notImage.Data = 3, []byte("definitely not a jpeg")
	h.publish(t, notImage)
	stale := good
	stale.Seq, stale.Captured = 4, now.Add(-time.Minute)
	h.publish(t, stale)
	// A message with a valid stream but broken headers.
	bad := nats.NewMsg("vigil.frames.cam1")
	bad.Header.Set(frame.HeaderStream, "cam1")
	bad.Header.Set(frame.HeaderSeq, "zero")
	bad.Data = img
	if err := h.nc.PublishMsg(bad); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, "5 outcomes", func() bool { return o.count() == 5 })
	o.mu.Lock()
	defer o.mu.Unlock()
	r, ok := o.results[1]
	if !ok || len(r.Faces) != 2 || r.Analyzer != "test" || r.Width != 1126 {
		t.Fatalf("result for the good frame: %+v (present %v)", r, ok)
	}
	for seq, reason := range map[uint64]string{2: result.ReasonDecode, 3: result.ReasonDecode, 4: result.ReasonDeadline} {
		if d, ok := o.drops[seq]; !ok || d.Reason != reason {
			t.Errorf("seq %d: drop %+v, want reason %s", seq, d, reason)
		}
	}
	if d := o.drops[0]; d.Reason != result.ReasonDecode || !strings.Contains(d.Detail, frame.HeaderSeq) {
		t.Errorf("malformed headers: drop %+v, want a decode drop naming %s", d, frame.HeaderSeq)
	}
}

// TestRoleDrainsOnShutdown: frames taken before shutdown all get a result; none is lost.
func TestRoleDrainsOnShutdown(t *testing.T) {
	img := jpegOf(t, filepath.Join(testenv.TestData(t), "detect", "two_people.jpg"))
	h := startRole(t, nil)
	o := collect(t, h.nc)
	const n = 12
	for i := 1; i <= n; i++ {
		h.publish(t, frame.Frame{Stream: "cam2", Seq: uint64(i), Captured: time.Now(), Width: 1126, Height: 661, Encoding: frame.EncodingJPEG, Data: img,
			Complete: true}) // a recording: no frame supersedes another
	}
	if err := h.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, "all frames received", func() bool { return h.role.Stats().Received == n })
	h.stop(t) // cancel while most frames are still queued
	testenv.Eventually(t, 60*time.Second, "an outcome for every frame", func() bool { return o.count() == n })
	st := h.role.Stats()
	if st.Analyzed != n {
		t.Fatalf("analysed %d of %d frames taken before shutdown (drops %v)", st.Analyzed, n, st.Dropped)
	}
}

// TestRoleBoundedQueue: frames of more streams than the queue holds are dropped (reason
// "queue", counted and announced) instead of growing the queue.
func TestRoleBoundedQueue(t *testing.T) {
	img := jpegOf(t, filepath.Join(testenv.TestData(t), "detect", "obama_and_biden.jpg"))
	h := startRole(t, func(r *Role) { r.Workers, r.MaxBatch, r.QueueSize = 1, 1, 1 })
	o := collect(t, h.nc)
	const n = 30
	for i := 1; i <= n; i++ {
		h.publish(t, frame.Frame{Stream: fmt.Sprintf("cam%d", i), Seq: uint64(i), Captured: time.Now(), Width: 2000, Height: 1428, Encoding: frame.EncodingJPEG, Data: img})
	}
	accounted := func() uint64 {
		st := h.role.Stats()
		sum := st.Analyzed
		for _, d := range st.Dropped {
			sum += d
		}
		return sum
	}
	testenv.Eventually(t, 60*time.Second, "every frame analysed or counted as dropped", func() bool { return accounted() == n })
	st := h.role.Stats()
	if st.Dropped[result.ReasonQueue] == 0 {
		t.Fatalf("no queue drops with a queue of 1 and %d streams at once: %+v", n, st)
	}
	// Every frame the analyzer parsed has an announced outcome.
	testenv.Eventually(t, 60*time.Second, "announced outcomes", func() bool { return uint64(o.count()) == n-st.Dropped[ReasonSlowConsumer] })
	b, _ := json.Marshal(st)
	t.Logf("stats: %s", b)
}

// TestRoleNewestFrameUnderOverload offers 6 streams at 30 frames/s each to one worker (several
// times what it analyses) and checks newest-frame flow control: no stream's frames are analysed
// out of order, no frame is analysed while a newer frame of its stream was already waiting (the
// analysed seq is at least the newest the analyzer had received before it, minus one), every
// frame is analysed or dropped with a counted, announced reason (superseded for the replaced
// ones), the backlog never exceeds one frame per stream, and streams are served fairly.
func TestRoleNewestFrameUnderOverload(t *testing.T) {
	img := jpegOf(t, filepath.Join(testenv.TestData(t), "detect", "two_people.jpg"))
	h := startRole(t, func(r *Role) { r.Workers, r.MaxBatch = 1, 1 })
	const streams, perStream = 6, 60
	type key struct {
		stream string
		seq    uint64
	}
	var mu sync.Mutex
	analysed := map[string][]uint64{}
	dropped := map[key]string{}
	for _, sub := range []struct {
		prefix string
		fn     func([]byte)
	}{
		{bus.ResultsPrefix, func(b []byte) {
			r, err := result.ParseResult(b)
			if err == nil {
				mu.Lock()
				analysed[r.Stream] = append(analysed[r.Stream], r.Seq)
				mu.Unlock()
			}
		}},
		{bus.DropsPrefix, func(b []byte) {
			d, err := result.ParseDrop(b)
			if err == nil {
				mu.Lock()
				dropped[key{d.Stream, d.Seq}] = d.Reason
				mu.Unlock()
			}
		}},
	} {
		fn := sub.fn
		s, err := h.nc.Subscribe(bus.All(sub.prefix), func(m *nats.Msg) { fn(m.Data) })
		if err != nil {
			t.Fatal(err)
		}
		defer s.Unsubscribe()
	}
	if err := h.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	maxQueued := 0
	tick := time.NewTicker(time.Second / 30)
	defer tick.Stop()
	for seq := uint64(1); seq <= perStream; seq++ {
		<-tick.C
		for s := range streams {
			h.publish(t, frame.Frame{Stream: fmt.Sprintf("s%d", s), Seq: seq, Captured: time.Now(), Width: 1126, Height: 661,
				Encoding: frame.EncodingJPEG, Data: img})
		}
		maxQueued = max(maxQueued, h.role.Stats().Queued)
	}
	total := streams * perStream
	testenv.Eventually(t, 60*time.Second, "an outcome for every frame", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := len(dropped)
		for _, a := range analysed {
			n += len(a)
		}
		return n == total
	})
	st := h.role.Stats()
	mu.Lock()
	defer mu.Unlock()
	if maxQueued > streams {
		t.Fatalf("backlog reached %d frames for %d streams, want at most one per stream", maxQueued, streams)
	}
	if st.Dropped[result.ReasonSuperseded] == 0 || st.Dropped[result.ReasonQueue] != 0 || st.Dropped[result.ReasonDeadline] != 0 {
		t.Fatalf("drops %v: want superseded frames under overload, and nothing else", st.Dropped)
	}
	var sum uint64
	for _, n := range st.Dropped {
		sum += n
	}
	if sum+st.Analyzed != uint64(total) || int(sum) != len(dropped) {
		t.Fatalf("analysed %d + counted drops %d (announced %d), want %d frames accounted for", st.Analyzed, sum, len(dropped), total)
	}
	least, most := perStream, 0
	for s := range streams {
		seqs := analysed[fmt.Sprintf("s%d", s)]
		least, most = min(least, len(seqs)), max(most, len(seqs))
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Fatalf("stream s%d analysed seq %d after %d: a frame waited behind an older one", s, seqs[i], seqs[i-1])
			}
			// Every frame between two analysed ones was superseded: none was analysed while a
			// newer frame of its stream waited.
			for skipped := seqs[i-1] + 1; skipped < seqs[i]; skipped++ {
				if r := dropped[key{fmt.Sprintf("s%d", s), skipped}]; r != result.ReasonSuperseded {
					t.Fatalf("stream s%d seq %d between analysed %d and %d: drop %q, want superseded", s, skipped, seqs[i-1], seqs[i], r)
				}
			}
		}
	}
	// Served in turn: counts differ by one at most, give or take a frame a worker finished while
	// a stream's next frame was not yet there (at least 80% of the best-served on long runs).
	if most-least > max(1, most/5) {
		t.Fatalf("least-served stream got %d results, best-served %d: want them served in turn", least, most)
	}
	t.Logf("analysed %d of %d frames; per stream %d..%d; drops %v; max backlog %d", st.Analyzed, total, least, most, st.Dropped, maxQueued)
}

// onResults calls fn, holding mu, with every result document published under prefix.* until
// the test ends; the subscription is in place when it returns.
func (h *harness) onResults(t *testing.T, prefix string, mu *sync.Mutex, fn func(result.Result)) {
	t.Helper()
	sub, err := h.nc.Subscribe(bus.All(prefix), func(m *nats.Msg) {
		if r, err := result.ParseResult(m.Data); err == nil {
			mu.Lock()
			fn(r)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := h.nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestRoleHeadsFramesGoLast: in a batch, frames that request heads are analysed after the
// others, whose results are published first instead of waiting for those heads.
func TestRoleHeadsFramesGoLast(t *testing.T) {
	img := jpegOf(t, filepath.Join(testenv.TestData(t), "detect", "two_people.jpg"))
	h := startRole(t, func(r *Role) { r.Workers, r.MaxBatch, r.MaxWait = 1, 4, 500*time.Millisecond })
	var mu sync.Mutex
	var order []string
	h.onResults(t, bus.ResultsPrefix, &mu, func(r result.Result) { order = append(order, r.Stream) })
	for i, s := range []string{"heads", "a", "b", "c"} {
		f := frame.Frame{Stream: s, Seq: uint64(i + 1), Captured: time.Now(), Width: 1126, Height: 661, Encoding: frame.EncodingJPEG, Data: img}
		if s == "heads" {
			f.Heads = []string{HeadAge}
		}
		h.publish(t, f)
	}
	testenv.Eventually(t, 60*time.Second, "4 results", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 4 })
	mu.Lock()
	defer mu.Unlock()
	if order[3] != "heads" {
		t.Fatalf("results in order %v: the frame requesting heads should come last", order)
	}
	if st := h.role.Stats(); st.Batches[3] != 1 || st.Batches[1] != 1 {
		t.Fatalf("batches %v: want the four frames split into one of 3 and one of 1", st.Batches)
	}
}

// TestRoleLateHeads: a live frame's late head (emotion) runs after its result went out: the
// result lists it as pending and a late-heads document for the same seq follows with its output
// on the same faces. When LateQueue frames already wait, a frame's late heads are skipped
// (counted; nothing pending), and a recording's frame runs every head before its result.
func TestRoleLateHeads(t *testing.T) {
	img := jpegOf(t, filepath.Join(testenv.TestData(t), "detect", "two_people.jpg"))
	h := startRole(t, func(r *Role) {
		p, err := NewPipeline(PipelineConfig{OnDemand: []string{HeadEmotion}}, newModelSet(t).Get)
		if err != nil {
			t.Fatal(err)
		}
		r.Analyzer, r.Workers, r.MaxBatch, r.MaxWait, r.LateQueue = p, 1, 4, 500*time.Millisecond, 1
	})
	var mu sync.Mutex
	results, late := map[string]result.Result{}, map[string]result.Result{}
	h.onResults(t, bus.ResultsPrefix, &mu, func(r result.Result) { results[r.Stream] = r })
	h.onResults(t, bus.LateHeadsPrefix, &mu, func(r result.Result) { late[r.Stream] = r })
	for i, s := range []string{"s1", "s2", "s3", "rec"} {
		f := frame.Frame{Stream: s, Seq: uint64(i + 1), Captured: time.Now(), Width: 1126, Height: 661, Encoding: frame.EncodingJPEG, Data: img,
			Heads: []string{HeadEmotion}, Complete: s == "rec"}
		h.publish(t, f)
	}
	testenv.Eventually(t, 60*time.Second, "4 results and a late-heads document", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(results) == 4 && len(late) == 1
	})
	mu.Lock()
	defer mu.Unlock()
	var first string // the live frame whose late heads ran
	for s := range late {
		first = s
	}
	for s, r := range results {
		if len(r.Faces) != 2 {
			t.Fatalf("%s: %d faces, want 2", s, len(r.Faces))
		}
		for k, f := range r.Faces {
			switch {
			case s == "rec" && (f.Emotion == nil || f.PendingHeads != nil):
				t.Fatalf("recording face %d: emotion %v pending %v, want emotion in the result", k, f.Emotion, f.PendingHeads)
			case s == first && (f.Emotion != nil || !slices.Equal(f.PendingHeads, []string{HeadEmotion})):
				t.Fatalf("%s face %d: emotion %v pending %v, want emotion pending", s, k, f.Emotion, f.PendingHeads)
			case s != "rec" && s != first && (f.Emotion != nil || f.PendingHeads != nil):
				t.Fatalf("%s face %d: emotion %v pending %v, want neither (late queue full)", s, k, f.Emotion, f.PendingHeads)
			}
		}
	}
	l, r := late[first], results[first]
	if l.Seq != r.Seq || !l.CapturedAt.Equal(r.CapturedAt) || len(l.Faces) != len(r.Faces) {
		t.Fatalf("late heads %+v do not match result %+v", l, r)
	}
	for k, f := range l.Faces {
		if f.Box != r.Faces[k].Box || f.Emotion == nil || len(f.Emotion.Scores) != len(Emotions) {
			t.Fatalf("late face %d %+v, want result face %+v with emotion", k, f, r.Faces[k])
		}
	}
	if st := h.role.Stats(); st.Late != 1 || st.LateSkipped != 2 {
		t.Fatalf("late %d skipped %d, want 1 and 2", st.Late, st.LateSkipped)
	}
}
