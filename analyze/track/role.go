package track

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/result"
)

// Role is the track role. It consumes the analyzers' full results on Input (default
// vigil.analyzed.<stream>), keeps one Tracker per stream (created on the stream's first result,
// evicted after IdleTimeout without results or once an ended stream is complete), and for every
// result, in sequence order, publishes:
//
//   - the enriched result on Output (default vigil.results.<stream>): track_id, identity (or,
//     with Unknowns, the unknown_id of a track without identity) and the track's carried
//     attributes on each face, embeddings removed unless KeepEmbeddings;
//   - the events it decided on vigil.events.<stream>.<kind>;
//   - when a track in it needs the scheduled heads, a HeadsRequest on vigil.control.heads.<stream>
//     (at most one outstanding per stream: the next goes out once a result shows the heads ran,
//     or after RequestTimeout, doubling while requests go unanswered).
//
// It also reads vigil.drops.<stream> (a dropped frame closes a sequence gap at once) and
// vigil.eos.<stream> (a finite stream is finished, face.left reason "end", once every frame up
// to the announced count has a result or a drop). All state is in one goroutine: Run's.
//
// State is per stream, so track roles shard by stream: give each instance its own Streams.
// Fill the exported fields, then call Run.
type Role struct {
	// Conn is the NATS connection. Required.
	Conn *nats.Conn
	// Streams limits the role to these streams. Default: every stream.
	Streams []string
	// Partitions, when above 1, shards streams over that many track roles: this one tracks only
	// the streams whose partition is Partition (0..Partitions-1). A stream's partition is the
	// 32-bit FNV-1a hash of its id modulo Partitions: the NATS server's {{partition(n,1)}}
	// subject-mapping function, so a server mapping or a JetStream subject transform can route
	// the same streams to the same instance. Default 0: every stream.
	Partition, Partitions int
	// Input is the subject prefix results are read from. Default AnalyzedPrefix.
	Input string
	// Output is the subject prefix enriched results are published on. Default bus.ResultsPrefix.
	// It must differ from Input.
	Output string
	// LateInput is the subject prefix late heads are read from (result.Face.PendingHeads): their
	// outputs join the tracks of the faces they ran on. Default bus.LateHeadsPrefix.
	LateInput string
	// Tracker configures each stream's Tracker, including the scheduled heads
	// (Tracker.Heads, Tracker.HeadsInterval; a negative interval sends no requests).
	Tracker TrackerConfig
	// Matcher identifies faces by embedding (the face gallery). Default nil: frames vote with
	// the identity the analyzer put on the face, if any.
	Matcher Matcher
	// Unknowns matches tracks without identity to the unknown people (an *unknown.Index over
	// the vigil_unknowns bucket): their faces and events then carry unknown_id. Default nil:
	// no unknown_id.
	Unknowns UnknownMatcher
	// KeepEmbeddings keeps each face's embedding in the published results. Default false.
	KeepEmbeddings bool
	// Publisher publishes the enriched results and the events, with message ids for
	// deduplication: "r.<stream>.<seq>.<capture ns>" for a result (the analyzer's scheme),
	// "e.<stream>.<track id>.<kind>" for an event (each happens once per track). A JetStream
	// publisher (bus.StreamPublisher) makes them durable; the role then waits for each
	// acknowledgement. Default: core NATS on Conn. Heads requests always go on Conn.
	Publisher Publisher
	// RequestTimeout is how long a heads request may go unanswered before the next. Default 2s.
	RequestTimeout time.Duration
	// OverloadHold is how long a stream counts as overloaded after one of its frames was
	// dropped for want of analyzer time (reasons superseded, queue, deadline; a recording's
	// frames never are). Default 2s.
	OverloadHold time.Duration
	// OverloadHeadsEvery bounds heads under overload: while a stream is overloaded, its next
	// heads request waits until this many of its results in a row carried no heads, so heads
	// run on at most about one frame in OverloadHeadsEvery+1. Without it overload
	// feeds on itself: fewer results per stream mean each track's schedule (new track, settle
	// samples, solo heads) falls on a larger share of them, each costing several times a
	// detection, and fewer results still. Identities then settle later, not never. Default 4;
	// negative: no bound.
	OverloadHeadsEvery int
	// ReorderWait bounds how long a result waits for a lower sequence number that has neither a
	// result nor a drop yet. Default 500ms.
	ReorderWait time.Duration
	// ReorderMax bounds the results held back per stream. Default 64.
	ReorderMax int
	// IdleTimeout ends a stream's tracks (face.left reason "idle") and forgets it after this long
	// without a result. Default 10s.
	IdleTimeout time.Duration
	// Buffer bounds the messages waiting for the role; beyond it the NATS client drops them and
	// reports a slow consumer. Default 4096.
	Buffer int
	// Log receives the role's logs. Default slog.Default().
	Log *slog.Logger

	pubCtx    context.Context
	readyOnce sync.Once
	ready     chan struct{}
	mu        sync.Mutex
	stats     Stats
	streams   map[string]*streamState
	// ended remembers the streams finished at their announced end, for IdleTimeout, so that
	// a result of theirs arriving after the end (skipped as a gap under load) is passed on as
	// late rather than starting a new tracker with new tracks.
	ended map[string]endedStream
}

// endedStream is what onResult needs of a stream finished at its end: a result numbered within
// its frames and captured before it ended is a straggler; one captured later starts it again.
type endedStream struct {
	frames uint64    // frames the end announced
	at     time.Time // when it ended
}

// Publisher publishes one document on subject; msgID identifies it for deduplication ("" for
// none) and may be ignored. bus.CorePublisher and *bus.StreamPublisher implement it.
type Publisher interface {
	Publish(ctx context.Context, subject string, data []byte, msgID string) error
}

// corePublisher publishes on a plain NATS connection, ignoring message ids.
type corePublisher struct{ nc *nats.Conn }

func (p corePublisher) Publish(_ context.Context, subject string, data []byte, _ string) error {
	return p.nc.Publish(subject, data)
}

// PartitionOf returns stream's partition among n (0 when n < 2): the 32-bit FNV-1a hash of the
// stream id modulo n, as the NATS server's {{partition(n,1)}} mapping computes it.
func PartitionOf(stream string, n int) int {
	if n < 2 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(stream))
	return int(h.Sum32() % uint32(n))
}

// Stats are the role's counters since Run started.
type Stats struct {
	// Results counts results published; Late those labelled only, having arrived after later
	// ones were tracked; LateHeads the late-heads documents folded into tracks; Invalid the
	// messages that did not parse.
	Results, Late, LateHeads, Invalid uint64
	// Events counts published events by kind.
	Events map[string]uint64
	// HeadsRequests counts heads requests published; HeadsDeferred the results whose tracks
	// needed heads the overload budget put off (OverloadHeadsEvery); PublishErrors the results
	// and events the Publisher failed to publish.
	HeadsRequests, HeadsDeferred, PublishErrors uint64
	// Streams is the number of streams with live state.
	Streams int
}

type streamState struct {
	tracker      *Tracker
	order        reorder
	lastActive   time.Time // wall clock of the last result
	lastCaptured time.Time // capture time of the last tracked result
	ended        bool      // the end-of-stream record arrived
	frames       uint64    // its frame count
	asked        bool      // a heads request is outstanding
	askedAt      time.Time
	askedHeads   []string // the heads it asked for
	unanswered   int
	withoutHeads int       // results in a row that carried no scheduled heads
	overloadAt   time.Time // wall clock of the latest drop for want of analyzer time
}

// publishFailed counts a failed publish and logs the first and every 100th.
func (r *Role) publishFailed(subject string, err error) {
	r.mu.Lock()
	r.stats.PublishErrors++
	n := r.stats.PublishErrors
	r.mu.Unlock()
	if n == 1 || n%100 == 0 {
		r.Log.Warn("publish failed", "subject", subject, "failures", n, "err", err)
	}
}

// Ready is closed once Run has subscribed and the server has confirmed it.
func (r *Role) Ready() <-chan struct{} {
	r.readyOnce.Do(func() { r.ready = make(chan struct{}) })
	return r.ready
}

// Stats returns the role's counters.
func (r *Role) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Events = make(map[string]uint64, len(r.stats.Events))
	for k, v := range r.stats.Events {
		s.Events[k] = v
	}
	s.Streams = len(r.streams)
	return s
}

func (r *Role) setDefaults() {
	if r.Input == "" {
		r.Input = event.AnalyzedPrefix
	}
	if r.Output == "" {
		r.Output = bus.ResultsPrefix
	}
	if r.LateInput == "" {
		r.LateInput = bus.LateHeadsPrefix
	}
	if r.RequestTimeout <= 0 {
		r.RequestTimeout = 2 * time.Second
	}
	if r.OverloadHold <= 0 {
		r.OverloadHold = 2 * time.Second
	}
	if r.OverloadHeadsEvery == 0 {
		r.OverloadHeadsEvery = 4
	}
	if r.ReorderWait <= 0 {
		r.ReorderWait = 500 * time.Millisecond
	}
	if r.ReorderMax <= 0 {
		r.ReorderMax = 64
	}
	if r.IdleTimeout <= 0 {
		r.IdleTimeout = 10 * time.Second
	}
	if r.Buffer <= 0 {
		r.Buffer = 4096
	}
	if r.Log == nil {
		r.Log = slog.Default()
	}
	if r.Publisher == nil {
		r.Publisher = corePublisher{r.Conn}
	}
	r.Tracker.setDefaults()
}

// Run tracks until ctx ends. Then it takes what the server already sent, releases every held
// result, ends every track (face.left reason "shutdown"), flushes and returns.
func (r *Role) Run(ctx context.Context) error {
	if r.Conn == nil {
		return errors.New("track: Conn is required")
	}
	r.setDefaults()
	if r.Input == r.Output {
		return fmt.Errorf("track: input and output subjects are both %s.*", r.Input)
	}
	if err := r.Tracker.Validate(); err != nil {
		return err
	}
	if r.Partitions > 1 && (r.Partition < 0 || r.Partition >= r.Partitions) {
		return fmt.Errorf("track: partition %d outside 0..%d", r.Partition, r.Partitions-1)
	}
	r.pubCtx = context.WithoutCancel(ctx) // shutdown events still go out after ctx ends
	var subjects []string
	for _, prefix := range []string{r.Input, r.LateInput, bus.DropsPrefix, bus.EOSPrefix} {
		if len(r.Streams) == 0 {
			subjects = append(subjects, bus.All(prefix))
		}
		for _, s := range r.Streams {
			subj, err := bus.Subject(prefix, s)
			if err != nil {
				return fmt.Errorf("track: %w", err)
			}
			subjects = append(subjects, subj)
		}
	}
	r.mu.Lock()
	r.streams = map[string]*streamState{}
	r.ended = map[string]endedStream{}
	r.stats = Stats{Events: map[string]uint64{}}
	r.mu.Unlock()
	ch := make(chan *nats.Msg, r.Buffer)
	var subs []*nats.Subscription
	unsubscribe := func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
		subs = nil
	}
	defer unsubscribe()
	for _, subj := range subjects {
		s, err := r.Conn.ChanSubscribe(subj, ch)
		if err != nil {
			return fmt.Errorf("track: subscribe %s: %w", subj, err)
		}
		subs = append(subs, s)
	}
	if err := r.Conn.Flush(); err != nil {
		return fmt.Errorf("track: %w", err)
	}
	r.Ready()
	close(r.ready)
	r.Log.Info("track role ready", "input", r.Input+".*", "output", r.Output+".*", "heads", strings.Join(r.Tracker.Heads, ","),
		"heads_interval", r.Tracker.HeadsInterval, "threshold", fmt.Sprintf("%.3g", r.Tracker.Threshold), "matcher", r.Matcher != nil)

	tick := time.NewTicker(max(min(r.ReorderWait/2, 100*time.Millisecond), time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// Everything the server sent before this round trip is in ch afterwards.
			_ = r.Conn.Flush()
			unsubscribe()
			for len(ch) > 0 {
				r.handle(<-ch)
			}
			r.mu.Lock()
			names := make([]string, 0, len(r.streams))
			for name := range r.streams {
				names = append(names, name)
			}
			r.mu.Unlock()
			for _, name := range names {
				r.finish(name, event.ReasonShutdown)
			}
			if err := r.Conn.Flush(); err != nil {
				return fmt.Errorf("track: flush: %w", err)
			}
			return nil
		case m := <-ch:
			r.handle(m)
		case <-tick.C:
			r.housekeep(time.Now())
		}
	}
}

// handle dispatches one message by subject.
func (r *Role) handle(m *nats.Msg) {
	now := time.Now()
	switch {
	case strings.HasPrefix(m.Subject, r.LateInput+"."):
		res, err := result.ParseResult(m.Data)
		if err != nil || m.Subject != r.LateInput+"."+res.Stream {
			r.invalid(m.Subject, err)
			return
		}
		if st := r.state(res.Stream, false); st != nil && r.owns(res.Stream) {
			st.tracker.late(&res) // the heads' outputs join the tracks their faces associate with
			r.mu.Lock()
			r.stats.LateHeads++
			r.mu.Unlock()
		}
	case strings.HasPrefix(m.Subject, r.Input+"."):
		res, err := result.ParseResult(m.Data)
		if err != nil || m.Subject != r.Input+"."+res.Stream {
			r.invalid(m.Subject, err)
			return
		}
		if !r.owns(res.Stream) {
			return
		}
		r.onResult(&res, now)
	case strings.HasPrefix(m.Subject, bus.DropsPrefix+"."):
		d, err := result.ParseDrop(m.Data)
		if err != nil {
			r.invalid(m.Subject, err)
			return
		}
		st := r.state(d.Stream, false)
		if st == nil || d.Seq == 0 || !r.owns(d.Stream) {
			return
		}
		st.lastActive = now
		noteDrop(st, d.Reason, now)
		r.track(d.Stream, st, st.order.drop(d.Seq, now))
	case strings.HasPrefix(m.Subject, bus.EOSPrefix+"."):
		e, err := result.ParseEndOfStream(m.Data)
		if err != nil {
			r.invalid(m.Subject, err)
			return
		}
		if !r.owns(e.Stream) {
			return
		}
		st := r.state(e.Stream, true)
		st.ended, st.frames, st.lastActive = true, e.Frames, now
		r.maybeComplete(e.Stream, st)
	}
}

// owns reports whether this instance tracks stream (see Partitions).
func (r *Role) owns(stream string) bool {
	return r.Partitions < 2 || PartitionOf(stream, r.Partitions) == r.Partition
}

func (r *Role) invalid(subject string, err error) {
	r.mu.Lock()
	r.stats.Invalid++
	first := r.stats.Invalid == 1
	r.mu.Unlock()
	if first {
		r.Log.Warn("ignoring invalid message (logged once)", "subject", subject, "err", err)
	}
}

// state returns stream's state, creating it when create is set.
func (r *Role) state(stream string, create bool) *streamState {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.streams[stream]
	if st == nil && create {
		st = &streamState{tracker: NewTracker(stream, r.Tracker, r.Matcher), lastActive: time.Now()}
		st.tracker.SetUnknowns(r.Unknowns)
		r.streams[stream] = st
	}
	return st
}

func (r *Role) onResult(res *result.Result, now time.Time) {
	r.mu.Lock()
	e, ended := r.ended[res.Stream]
	if ended && res.Seq <= e.frames && !res.CapturedAt.After(e.at) {
		r.stats.Late++
		r.mu.Unlock()
		r.publishResult(res) // a straggler of a finished stream: passed on untracked
		return
	}
	delete(r.ended, res.Stream)
	r.mu.Unlock()
	st := r.state(res.Stream, true)
	st.lastActive = now
	if res.Seq < st.order.expected() {
		if res.CapturedAt.After(st.lastCaptured) {
			// Lower sequence numbers captured later: the source started over.
			r.finish(res.Stream, event.ReasonRestart)
			st = r.state(res.Stream, true)
			st.lastActive = now
		} else {
			step := st.tracker.late(res) // labels it; heads that ran on it still count
			r.publishResult(res)
			r.scheduleHeads(res.Stream, st, step)
			r.mu.Lock()
			r.stats.Late++
			r.mu.Unlock()
			return
		}
	}
	r.track(res.Stream, st, st.order.add(res, now, r.ReorderMax))
}

// track runs the tracker over results released in order, publishes what they produce and
// finishes the stream if that completed it.
func (r *Role) track(stream string, st *streamState, ready []*result.Result) {
	r.process(stream, st, ready, true)
	r.maybeComplete(stream, st)
}

// process runs the tracker over results in order and publishes the results, their events and,
// when ask is set, heads requests.
func (r *Role) process(stream string, st *streamState, ready []*result.Result, ask bool) {
	for _, res := range ready {
		step := st.tracker.Update(res)
		st.lastCaptured = res.CapturedAt
		r.publishResult(res)
		for _, ev := range step.Events {
			r.publishEvent(ev)
		}
		if ask {
			r.scheduleHeads(res.Stream, st, step)
		}
	}
}

// answered reports whether a frame with fresh output of the heads fresh answers a request for
// asked: it carries all of them.
func answered(asked, fresh []string) bool {
	for _, h := range asked {
		if !slices.Contains(fresh, h) {
			return false
		}
	}
	return true
}

// noteDrop records a drop of st's stream that says its analyzers are behind.
func noteDrop(st *streamState, reason string, now time.Time) {
	switch reason {
	case result.ReasonSuperseded, result.ReasonQueue, result.ReasonDeadline:
		st.overloadAt = now
	}
}

// scheduleHeads sends a heads request when a track of stream needs one, none is
// outstanding and, under overload, the stream's heads budget allows (OverloadHeadsEvery).
func (r *Role) scheduleHeads(stream string, st *streamState, step Step) {
	if step.HeadsSeen() {
		st.withoutHeads = 0
		if answered(st.askedHeads, step.Fresh) {
			st.asked, st.unanswered = false, 0
		}
	} else {
		st.withoutHeads++
	}
	if len(step.HeadsFor) == 0 || r.Tracker.HeadsInterval < 0 {
		return
	}
	overloaded := !st.overloadAt.IsZero() && time.Since(st.overloadAt) < r.OverloadHold
	if overloaded && r.OverloadHeadsEvery > 0 && st.withoutHeads < r.OverloadHeadsEvery {
		r.mu.Lock()
		r.stats.HeadsDeferred++
		r.mu.Unlock()
		return
	}
	now := time.Now()
	if st.asked {
		if now.Sub(st.askedAt) < r.RequestTimeout<<min(st.unanswered, 4) {
			return
		}
		st.unanswered++
	}
	subj, err := event.HeadsSubject(stream)
	if err != nil {
		return
	}
	b, err := json.Marshal(event.HeadsRequest{Schema: event.EventSchema, Stream: stream, Heads: step.HeadsNeeded, Reason: step.HeadsReason,
		Tracks: step.HeadsFor, At: now.UTC()})
	if err != nil {
		return
	}
	if err := r.Conn.Publish(subj, b); err != nil {
		r.Log.Warn("publish heads request", "subject", subj, "err", err)
		return
	}
	st.asked, st.askedAt, st.askedHeads = true, now, step.HeadsNeeded
	r.mu.Lock()
	r.stats.HeadsRequests++
	r.mu.Unlock()
}

// maybeComplete finishes an ended stream once every announced frame is accounted for.
func (r *Role) maybeComplete(stream string, st *streamState) {
	if st.ended && (st.order.expected() > st.frames) {
		r.finish(stream, event.ReasonEnd)
	}
}

// housekeep skips sequence gaps that waited too long and finishes idle streams.
func (r *Role) housekeep(now time.Time) {
	r.mu.Lock()
	names := make([]string, 0, len(r.streams))
	for name := range r.streams {
		names = append(names, name)
	}
	r.mu.Unlock()
	r.mu.Lock()
	for name, e := range r.ended {
		if now.Sub(e.at) >= r.IdleTimeout {
			delete(r.ended, name)
		}
	}
	r.mu.Unlock()
	for _, name := range names {
		st := r.state(name, false)
		if st == nil {
			continue
		}
		if now.Sub(st.lastActive) >= r.IdleTimeout {
			r.finish(name, event.ReasonIdle)
			continue
		}
		if ready := st.order.expire(now, r.ReorderWait); len(ready) > 0 {
			r.track(name, st, ready)
		}
	}
}

// finish releases stream's held results, ends its tracks with reason and forgets it.
func (r *Role) finish(stream string, reason string) {
	st := r.state(stream, false)
	if st == nil {
		return
	}
	r.mu.Lock()
	delete(r.streams, stream) // before tracking the rest: maybeComplete must not recurse
	r.mu.Unlock()
	r.process(stream, st, st.order.flush(time.Now()), false)
	for _, ev := range st.tracker.Finish(reason) {
		r.publishEvent(ev)
	}
	if reason == event.ReasonEnd {
		r.mu.Lock()
		r.ended[stream] = endedStream{frames: st.frames, at: time.Now()}
		r.mu.Unlock()
	}
}

func (r *Role) publishResult(res *result.Result) {
	if res.Faces == nil {
		res.Faces = []result.Face{}
	}
	if !r.KeepEmbeddings {
		for i := range res.Faces {
			res.Faces[i].Embedding = nil
		}
	}
	subj, err := bus.Subject(r.Output, res.Stream)
	if err != nil {
		return
	}
	b, err := json.Marshal(res)
	if err != nil {
		r.Log.Error("encode result", "err", err)
		return
	}
	id := fmt.Sprintf("r.%s.%d.%d", res.Stream, res.Seq, res.CapturedAt.UnixNano())
	if err := r.Publisher.Publish(r.pubCtx, subj, b, id); err != nil {
		r.publishFailed(subj, err)
		return
	}
	r.mu.Lock()
	r.stats.Results++
	r.mu.Unlock()
}

func (r *Role) publishEvent(ev event.Event) {
	ev.At = time.Now().UTC()
	subj, err := event.EventSubject(ev.Stream, ev.Kind)
	if err != nil {
		return
	}
	b, err := json.Marshal(ev)
	if err != nil {
		r.Log.Error("encode event", "err", err)
		return
	}
	if err := r.Publisher.Publish(r.pubCtx, subj, b, "e."+ev.Stream+"."+ev.TrackID+"."+ev.Kind); err != nil {
		r.publishFailed(subj, err)
		return
	}
	r.mu.Lock()
	r.stats.Events[ev.Kind]++
	r.mu.Unlock()
	r.Log.Debug("track event", "kind", ev.Kind, "stream", ev.Stream, "track", ev.TrackID)
}
