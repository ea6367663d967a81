package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/result"
)

// ReasonLost is the drop reason the sink itself records, in StreamProgress.DropReasons, for
// frames of an ended stream that still had no result and no drop LostAfter after the stream's
// last outcome: an analyzer died holding them (kill -9, power loss), so nobody can announce them.
const ReasonLost = "lost"

// Role is the sink role: it reads every stream's results, drops and end-of-stream records and
// writes results to its Sinks. It tracks, per stream, how many frames have an outcome, so that
// with Await set it can tell when finite streams are complete.
//
// With JetStream set it reads them from the VIGIL_RESULTS stream through the durable consumer
// Durable and acknowledges each message only after every Sink took it, so a sink that stops
// (or dies) resumes where it stopped: nothing acknowledged is lost. Delivery is at least once: a
// result written but not yet acknowledged when the process died is written again by its
// successor (at most MaxAckPending of them); within one process redeliveries are recognised by
// their stream sequence and not written twice. Without JetStream it subscribes with core NATS and
// sees only what is published while it runs.
//
// Fill the exported fields, then call Run.
type Role struct {
	// Conn is the NATS connection. Required.
	Conn *nats.Conn
	// Sinks receive every result. At least one is required.
	Sinks []Sink
	// Await lists streams whose end Run waits for: Run returns once each has published its
	// end-of-stream record and every frame it announced has a result, a drop, or was counted lost.
	// Empty: run until ctx ends. Counts are this process's: a restarted sink starts from zero.
	Await []string
	// Buffer bounds the messages waiting to be written: the core subscriptions' channel, or the
	// messages pulled ahead from JetStream. Default 1024.
	Buffer int
	// JetStream, when set, selects durable delivery from bus.ResultsStream (which must exist:
	// bus.EnsureStreams).
	JetStream jetstream.JetStream
	// Durable names the consumer. Sinks sharing it share the work. Default
	// config.Default().Sink.Durable ("vigil-sink").
	Durable string
	// DeliverNew makes a newly created consumer start with messages stored from now on instead of
	// every stored one. An existing consumer keeps its position either way.
	DeliverNew bool
	// AckWait is how long a delivered, unacknowledged message waits before redelivery. Default
	// config.Default().Sink.AckWait (30s).
	AckWait time.Duration
	// MaxAckPending bounds the messages delivered but not acknowledged. Default
	// config.Default().Sink.MaxAckPending (1024).
	MaxAckPending int
	// LostAfter is how long after an ended stream's last outcome its frames still without one
	// are counted lost (ReasonLost). Default config.Default().Sink.LostAfter (15s); negative
	// disables it.
	LostAfter time.Duration
	// DrainTimeout bounds how long, once ctx ends, a JetStream sink keeps writing what the stream
	// holds before it stops (the rest waits in the stream for the next sink). Default 10s.
	DrainTimeout time.Duration
	// Log receives the role's logs. Default slog.Default().
	Log *slog.Logger

	mu        sync.Mutex
	streams   map[string]*StreamProgress
	active    map[string]time.Time // stream -> last outcome or end-of-stream record
	consumer  jetstream.Consumer
	readyOnce sync.Once
	ready     chan struct{}
	lastWarn  time.Time
}

// Ready is closed once Run has subscribed (core) or created its consumer (JetStream) and the
// server has confirmed it.
func (r *Role) Ready() <-chan struct{} {
	r.readyOnce.Do(func() { r.ready = make(chan struct{}) })
	return r.ready
}

// StreamProgress counts a stream's outcomes as seen by the sink.
type StreamProgress struct {
	Results, Drops, Faces uint64
	// DropReasons counts drops per reason, ReasonLost included.
	DropReasons map[string]uint64
	// Lost counts frames given up on (also in Drops and DropReasons[ReasonLost]).
	Lost uint64
	// Ended is true once the end-of-stream record arrived; Announced is its frame count.
	Ended     bool
	Announced uint64
	// EndError is the source's error when it ended abnormally.
	EndError string
	// WriteErrors counts results a sink failed to take (each is redelivered with JetStream).
	WriteErrors uint64
	// Redelivered counts messages JetStream delivered again that this process had already
	// written, acknowledged and skipped.
	Redelivered uint64
}

// Complete reports whether the stream ended and every announced frame has an outcome.
func (p StreamProgress) Complete() bool { return p.Ended && p.Results+p.Drops >= p.Announced }

// Progress returns a copy of every stream's progress.
func (r *Role) Progress() map[string]StreamProgress {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]StreamProgress, len(r.streams))
	for k, v := range r.streams {
		c := *v
		c.DropReasons = make(map[string]uint64, len(v.DropReasons))
		for rk, rv := range v.DropReasons {
			c.DropReasons[rk] = rv
		}
		out[k] = c
	}
	return out
}

// ConsumerInfo returns the durable consumer's state (pending and unacknowledged counts: the
// sink's lag), or an error before Run created it or without JetStream.
func (r *Role) ConsumerInfo(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	r.mu.Lock()
	c := r.consumer
	r.mu.Unlock()
	if c == nil {
		return nil, errors.New("sink: no JetStream consumer")
	}
	return c.Info(ctx)
}

func (r *Role) setDefaults() {
	if r.Buffer <= 0 {
		r.Buffer = 1024
	}
	def := config.Default().Sink
	if r.Durable == "" {
		r.Durable = def.Durable
	}
	if r.AckWait <= 0 {
		r.AckWait = def.AckWait
	}
	if r.MaxAckPending <= 0 {
		r.MaxAckPending = def.MaxAckPending
	}
	if r.DrainTimeout <= 0 {
		r.DrainTimeout = 10 * time.Second
	}
	if r.LostAfter == 0 {
		r.LostAfter = def.LostAfter
	}
	if r.Log == nil {
		r.Log = slog.Default()
	}
}

// Run writes results until ctx ends or, with Await set, until every awaited stream is complete.
// When ctx ends it writes what was already received (with JetStream: what the stream holds for
// its consumer, for up to DrainTimeout), acknowledges it and returns. It closes the Sinks before
// returning.
func (r *Role) Run(ctx context.Context) error {
	if r.Conn == nil || len(r.Sinks) == 0 {
		return errors.New("sink: Conn and at least one Sink are required")
	}
	r.setDefaults()
	r.mu.Lock()
	r.streams = map[string]*StreamProgress{}
	r.active = map[string]time.Time{}
	r.mu.Unlock()
	defer func() {
		for _, s := range r.Sinks {
			if err := s.Close(); err != nil {
				r.Log.Error("sink close", "err", err)
			}
		}
	}()
	if r.JetStream != nil {
		return r.runDurable(ctx)
	}
	return r.runCore(ctx)
}

func (r *Role) markReady() {
	r.readyOnce.Do(func() { r.ready = make(chan struct{}) })
	close(r.ready)
}

func (r *Role) runCore(ctx context.Context) error {
	ch := make(chan *nats.Msg, r.Buffer)
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	for _, prefix := range []string{bus.ResultsPrefix, bus.DropsPrefix, bus.EOSPrefix} {
		s, err := r.Conn.ChanSubscribe(bus.All(prefix), ch)
		if err != nil {
			return fmt.Errorf("sink: subscribe: %w", err)
		}
		subs = append(subs, s)
	}
	if err := r.Conn.Flush(); err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	r.markReady()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if r.done() {
			return nil
		}
		select {
		case <-ctx.Done():
			// Write what already arrived, then stop.
			for {
				select {
				case m := <-ch:
					_ = r.handle(ctx, m.Subject, m.Data)
				default:
					return nil
				}
			}
		case m := <-ch:
			_ = r.handle(ctx, m.Subject, m.Data)
		case now := <-tick.C:
			r.countLost(now)
		}
	}
}

// consumerConfig is the durable consumer the role reads through.
func (r *Role) consumerConfig() jetstream.ConsumerConfig {
	deliver := jetstream.DeliverAllPolicy
	if r.DeliverNew {
		deliver = jetstream.DeliverNewPolicy
	}
	return jetstream.ConsumerConfig{
		Durable:       r.Durable,
		Description:   "Vigil sink: results, drops and end-of-stream records, acknowledged once written",
		DeliverPolicy: deliver,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       r.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: r.MaxAckPending,
	}
}

func (r *Role) openConsumer(ctx context.Context) (jetstream.Consumer, error) {
	var cons jetstream.Consumer
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := r.JetStream.CreateOrUpdateConsumer(actx, bus.ResultsStream, r.consumerConfig())
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			// An existing consumer whose immutable settings differ (deliver policy): keep it.
			if existing, gerr := r.JetStream.Consumer(actx, bus.ResultsStream, r.Durable); gerr == nil {
				r.Log.Warn("sink: keeping the existing consumer's settings", "durable", r.Durable, "reason", err)
				c, err = existing, nil
			}
		}
		cancel()
		if err == nil {
			cons = c
			break
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.Code < 500 && apiErr.Code != 0 {
			return nil, fmt.Errorf("sink: consumer %s on %s: %w", r.Durable, bus.ResultsStream, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("sink: consumer %s on %s: %w (last error: %v)", r.Durable, bus.ResultsStream, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
	return cons, nil
}

func (r *Role) runDurable(ctx context.Context) error {
	cons, err := r.openConsumer(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before the consumer opened: nothing was read, the durable resumes
		}
		return err
	}
	r.mu.Lock()
	r.consumer = cons
	r.mu.Unlock()
	iter, err := cons.Messages(jetstream.PullMaxMessages(min(r.Buffer, r.MaxAckPending)))
	if err != nil {
		return fmt.Errorf("sink: consume %s: %w", bus.ResultsStream, err)
	}
	defer iter.Stop()
	info := cons.CachedInfo()
	r.Log.Info("sink consuming", "stream", bus.ResultsStream, "durable", r.Durable,
		"pending", info.NumPending, "unacknowledged", info.NumAckPending)
	r.markReady()
	seen := newSeqSet(2*r.MaxAckPending + 1024)
	const (
		running = iota
		catchingUp
		draining
	)
	phase := running
	var phaseEnd time.Time
	startDrain := func(grace time.Duration) {
		iter.Drain() // deliver what was pulled, pull no more
		phase, phaseEnd = draining, time.Now().Add(grace)
	}
	lastCheck := time.Now()
	for {
		now := time.Now()
		switch {
		case phase == running && r.done():
			startDrain(5 * time.Second)
		case phase == running && ctx.Err() != nil:
			// Catch up with what the stream holds (the analyzers have drained into it), then stop.
			phase, phaseEnd = catchingUp, now.Add(r.DrainTimeout)
		case phase == catchingUp && now.After(phaseEnd):
			r.Log.Warn("sink: stopping before catching up; the rest stays in the stream for the next sink", "after", r.DrainTimeout)
			startDrain(5 * time.Second)
		case phase == draining && now.After(phaseEnd):
			iter.Stop() // what was not written is redelivered to the next sink
		}
		msg, err := iter.Next(jetstream.NextMaxWait(250 * time.Millisecond))
		if now := time.Now(); now.Sub(lastCheck) >= time.Second {
			r.countLost(now)
			lastCheck = now
		}
		switch {
		case err == nil:
			r.deliver(ctx, msg, seen)
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			ferr := r.Conn.Flush() // the acknowledgements
			if phase != draining {
				return fmt.Errorf("sink: consumer stopped: %w", err)
			}
			if ferr != nil {
				return fmt.Errorf("sink: flush acknowledgements: %w", ferr)
			}
			return nil
		case errors.Is(err, nats.ErrTimeout):
			if phase == catchingUp && r.caughtUp() {
				startDrain(5 * time.Second)
			}
		default:
			r.warn("sink: consumer", "err", err)
		}
	}
}

// caughtUp reports whether the consumer has nothing left to deliver and nothing unacknowledged.
func (r *Role) caughtUp() bool {
	if err := r.Conn.Flush(); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := r.ConsumerInfo(ctx)
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

// deliver handles one JetStream message and acknowledges it, or asks for redelivery when a
// sink failed.
func (r *Role) deliver(ctx context.Context, msg jetstream.Msg, seen *seqSet) {
	meta, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return
	}
	if meta.NumDelivered > 1 && seen.has(meta.Sequence.Stream) {
		r.mu.Lock()
		if stream := streamOf(msg.Data()); stream != "" {
			r.progress(stream).Redelivered++
		}
		r.mu.Unlock()
		_ = msg.Ack()
		return
	}
	switch err := r.handle(context.WithoutCancel(ctx), msg.Subject(), msg.Data()); {
	case err == nil:
		seen.add(meta.Sequence.Stream)
		if err := msg.Ack(); err != nil {
			r.warn("sink: acknowledge", "err", err)
		}
	case errors.Is(err, result.ErrSchema):
		_ = msg.Term() // malformed: never deliverable
	default:
		_ = msg.NakWithDelay(time.Second)
	}
}

// streamOf extracts a document's "stream" field, for accounting redeliveries.
func streamOf(data []byte) string {
	var doc struct {
		Stream string `json:"stream"`
	}
	if json.Unmarshal(data, &doc) != nil {
		return ""
	}
	return doc.Stream
}

// warn logs at most once a second.
func (r *Role) warn(msg string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	ok := now.Sub(r.lastWarn) >= time.Second
	if ok {
		r.lastWarn = now
	}
	r.mu.Unlock()
	if ok {
		r.Log.Warn(msg, args...)
	}
}

func (r *Role) progress(stream string) *StreamProgress {
	p := r.streams[stream]
	if p == nil {
		p = &StreamProgress{DropReasons: map[string]uint64{}}
		r.streams[stream] = p
	}
	return p
}

// handle processes one message by subject. It returns an error wrapping result.ErrSchema for a
// malformed document and another error when a Sink failed to take a result.
func (r *Role) handle(ctx context.Context, subject string, data []byte) error {
	switch {
	case strings.HasPrefix(subject, bus.ResultsPrefix+"."):
		res, err := result.ParseResult(data)
		if err != nil {
			r.warn("ignoring malformed result", "subject", subject, "err", err)
			return err
		}
		var errs []error
		for _, s := range r.Sinks {
			if err := s.Write(ctx, res); err != nil {
				errs = append(errs, err)
			}
		}
		r.mu.Lock()
		p := r.progress(res.Stream)
		if len(errs) > 0 {
			p.WriteErrors++
		} else {
			p.Results++
			p.Faces += uint64(len(res.Faces))
			r.active[res.Stream] = time.Now()
		}
		r.mu.Unlock()
		if len(errs) > 0 {
			err := errors.Join(errs...)
			r.warn("sink write", "stream", res.Stream, "seq", res.Seq, "err", err)
			return err
		}
	case strings.HasPrefix(subject, bus.DropsPrefix+"."):
		d, err := result.ParseDrop(data)
		if err != nil {
			r.warn("ignoring malformed drop", "subject", subject, "err", err)
			return err
		}
		r.mu.Lock()
		p := r.progress(d.Stream)
		p.Drops++
		p.DropReasons[d.Reason]++
		r.active[d.Stream] = time.Now()
		r.mu.Unlock()
	case strings.HasPrefix(subject, bus.EOSPrefix+"."):
		e, err := result.ParseEndOfStream(data)
		if err != nil {
			r.warn("ignoring malformed end of stream", "subject", subject, "err", err)
			return err
		}
		r.mu.Lock()
		p := r.progress(e.Stream)
		p.Ended, p.Announced, p.EndError = true, e.Frames, e.Error
		r.active[e.Stream] = time.Now()
		r.mu.Unlock()
	}
	return nil
}

// countLost gives up on the frames of ended streams that have had no outcome for LostAfter.
func (r *Role) countLost(now time.Time) {
	if r.LostAfter < 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, p := range r.streams {
		if !p.Ended || p.Complete() || now.Sub(r.active[name]) < r.LostAfter {
			continue
		}
		n := p.Announced - (p.Results + p.Drops)
		p.Lost += n
		p.Drops += n
		p.DropReasons[ReasonLost] += n
		r.Log.Warn("frames lost: no result or drop arrived", "stream", name, "frames", n, "after", r.LostAfter)
	}
}

// done reports whether Await is set and every awaited stream is complete.
func (r *Role) done() bool {
	if len(r.Await) == 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.Await {
		p := r.streams[s]
		if p == nil || !p.Complete() {
			return false
		}
	}
	return true
}

// seqSet remembers the last n stream sequences added.
type seqSet struct {
	set  map[uint64]struct{}
	ring []uint64
	next int
}

func newSeqSet(n int) *seqSet {
	return &seqSet{set: make(map[uint64]struct{}, n), ring: make([]uint64, n)}
}

func (s *seqSet) has(seq uint64) bool { _, ok := s.set[seq]; return ok }

func (s *seqSet) add(seq uint64) {
	if s.has(seq) {
		return
	}
	if old := s.ring[s.next]; old != 0 {
		delete(s.set, old)
	}
	s.ring[s.next] = seq
	s.set[seq] = struct{}{}
	s.next = (s.next + 1) % len(s.ring)
}
