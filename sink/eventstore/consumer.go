package eventstore

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"sync"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/privacy"
)

// Snapshotter cuts the face snapshot an event's crop references (snapshot.Ring implements it).
type Snapshotter interface {
	Snapshot(ctx context.Context, c event.Crop) ([]byte, error)
}

// Consumer reads track events from NATS (vigil.events.<stream>.<kind>) and hands each, with its
// face snapshot when Snapshots can cut one, to every EventSink, one event at a time in arrival
// order.
//
// With JetStream set it reads from bus.EventsStream through the durable consumer Durable and
// acknowledges an event only after every sink took it; an event a sink failed is redelivered
// after RetryDelay (to every sink again: sinks deduplicate, see EventSink). A consumer that
// stops resumes where it stopped. Without JetStream it subscribes with core NATS and sees only
// what is published while it runs; a failed event is logged and counted.
//
// Snapshots come from frames still held when the event arrives: a consumer catching up on old
// events stores them without snapshots (counted in Stats.SnapshotMisses).
//
// A sink that fails holds up the others: give a webhook its own Consumer (own Durable). Run
// does not close the sinks (one Store may serve a sink role and a Consumer); the caller does.
//
// Fill the exported fields, then call Run.
type Consumer struct {
	// Conn is the NATS connection. Required.
	Conn *nats.Conn
	// Sinks receive every event. At least one is required.
	Sinks []EventSink
	// Snapshots cuts snapshots. Default nil: events go without.
	Snapshots Snapshotter
	// Privacy blurs the snapshots of the faces it covers (privacy.BlurUnknown: events without
	// identity; privacy.BlurAll: every event) before any sink sees them, irreversibly. Default
	// privacy.Off.
	Privacy privacy.Mode
	// SnapshotTimeout bounds cutting one snapshot. Default 2s.
	SnapshotTimeout time.Duration
	// Streams limits the consumer to these streams' events. Default: every stream.
	Streams []string
	// JetStream, when set, selects durable delivery from bus.EventsStream (which must exist:
	// bus.EnsureStreams).
	JetStream jetstream.JetStream
	// Durable names the JetStream consumer. Default "vigil-events".
	Durable string
	// DeliverNew makes a newly created durable consumer start with events stored from now on
	// instead of every stored one. An existing consumer keeps its position.
	DeliverNew bool
	// AckWait is how long a delivered, unacknowledged event waits before redelivery. Default 30s.
	AckWait time.Duration
	// Buffer bounds the events waiting: the core subscription's channel, or the events pulled
	// ahead from JetStream (also the consumer's MaxAckPending). Default 256.
	Buffer int
	// RetryDelay is how long an event a sink failed waits before redelivery (JetStream). Default 1s.
	RetryDelay time.Duration
	// Log receives failures, at most one line a second. Default slog.Default().
	Log *slog.Logger

	readyOnce sync.Once
	ready     chan struct{}
	mu        sync.Mutex
	stats     ConsumerStats
	lastWarn  time.Time
}

// ConsumerStats counts what a Consumer did.
type ConsumerStats struct {
	// Events counts events every sink took; Failed deliveries a sink failed (each redelivered
	// with JetStream); Invalid messages that are not events (dropped).
	Events, Failed, Invalid uint64
	// Snapshots counts events that got a snapshot; SnapshotMisses those whose frame was not
	// held or did not crop.
	Snapshots, SnapshotMisses uint64
}

// Ready is closed once Run has subscribed (core) or created its consumer (JetStream).
func (c *Consumer) Ready() <-chan struct{} {
	c.readyOnce.Do(func() { c.ready = make(chan struct{}) })
	return c.ready
}

func (c *Consumer) markReady() {
	c.Ready()
	close(c.ready)
}

// Stats returns the counters.
func (c *Consumer) Stats() ConsumerStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

func (c *Consumer) setDefaults() {
	if c.SnapshotTimeout <= 0 {
		c.SnapshotTimeout = 2 * time.Second
	}
	if c.Durable == "" {
		c.Durable = "vigil-events"
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.Buffer <= 0 {
		c.Buffer = 256
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// subjects returns the event subjects to read.
func (c *Consumer) subjects() ([]string, error) {
	if len(c.Streams) == 0 {
		return []string{event.EventsPrefix + ".>"}, nil
	}
	var out []string
	for _, s := range c.Streams {
		subj, err := bus.Subject(event.EventsPrefix, s)
		if err != nil {
			return nil, fmt.Errorf("eventstore consumer: %w", err)
		}
		out = append(out, subj+".>")
	}
	return out, nil
}

// Run consumes events until ctx ends, then finishes the event in hand and returns nil (with
// JetStream, events pulled but not handled are redelivered to the next consumer; with core
// NATS, those already received are handled first).
func (c *Consumer) Run(ctx context.Context) error {
	if c.Conn == nil || len(c.Sinks) == 0 {
		return errors.New("eventstore consumer: Conn and at least one sink are required")
	}
	c.setDefaults()
	subjects, err := c.subjects()
	if err != nil {
		return err
	}
	if c.JetStream != nil {
		return c.runDurable(ctx, subjects)
	}
	return c.runCore(ctx, subjects)
}

func (c *Consumer) runCore(ctx context.Context, subjects []string) error {
	ch := make(chan *nats.Msg, c.Buffer)
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	for _, subj := range subjects {
		s, err := c.Conn.ChanSubscribe(subj, ch)
		if err != nil {
			return fmt.Errorf("eventstore consumer: subscribe %s: %w", subj, err)
		}
		subs = append(subs, s)
	}
	if err := c.Conn.Flush(); err != nil {
		return fmt.Errorf("eventstore consumer: %w", err)
	}
	c.markReady()
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case m := <-ch:
					_ = c.handle(ctx, m.Data)
				default:
					return nil
				}
			}
		case m := <-ch:
			_ = c.handle(ctx, m.Data)
		}
	}
}

func (c *Consumer) consumerConfig(subjects []string) jetstream.ConsumerConfig {
	deliver := jetstream.DeliverAllPolicy
	if c.DeliverNew {
		deliver = jetstream.DeliverNewPolicy
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       c.Durable,
		Description:   "Vigil events: track events, acknowledged once every event sink took them",
		DeliverPolicy: deliver,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: c.Buffer,
	}
	if len(c.Streams) > 0 {
		cfg.FilterSubjects = subjects
	}
	return cfg
}

func (c *Consumer) openConsumer(ctx context.Context, subjects []string) (jetstream.Consumer, error) {
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cons, err := c.JetStream.CreateOrUpdateConsumer(actx, bus.EventsStream, c.consumerConfig(subjects))
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			// An existing consumer whose immutable settings differ (deliver policy): keep it.
			if existing, gerr := c.JetStream.Consumer(actx, bus.EventsStream, c.Durable); gerr == nil {
				c.Log.Warn("eventstore consumer: keeping the existing consumer's settings", "durable", c.Durable, "reason", err)
				cons, err = existing, nil
			}
		}
		cancel()
		if err == nil {
			return cons, nil
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.Code < 500 && apiErr.Code != 0 && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("eventstore consumer: %s on %s: %w", c.Durable, bus.EventsStream, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("eventstore consumer: %s on %s: %w (last error: %w)", c.Durable, bus.EventsStream, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func (c *Consumer) runDurable(ctx context.Context, subjects []string) error {
	cons, err := c.openConsumer(ctx, subjects)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(c.Buffer))
	if err != nil {
		return fmt.Errorf("eventstore consumer: consume %s: %w", bus.EventsStream, err)
	}
	defer iter.Stop()
	c.markReady()
	for {
		msg, err := iter.Next(jetstream.NextContext(ctx))
		switch {
		case err == nil:
			c.deliver(ctx, msg)
		case ctx.Err() != nil:
			_ = c.Conn.Flush() // the acknowledgements
			return nil
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return fmt.Errorf("eventstore consumer: consumer stopped: %w", err)
		default:
			c.warn("eventstore consumer", "err", err)
		}
	}
}

// deliver handles one JetStream message and acknowledges it, or asks for redelivery.
func (c *Consumer) deliver(ctx context.Context, msg jetstream.Msg) {
	switch err := c.handle(ctx, msg.Data()); {
	case err == nil:
		if err := msg.Ack(); err != nil {
			c.warn("eventstore consumer: acknowledge", "err", err)
		}
	case errors.Is(err, event.ErrEvent):
		_ = msg.Term() // malformed: never deliverable
	default:
		_ = msg.NakWithDelay(c.RetryDelay)
	}
}

// handle parses one event, cuts its snapshot and hands it to every sink. It returns an error
// wrapping event.ErrEvent for a malformed document and another error when a sink failed.
func (c *Consumer) handle(ctx context.Context, data []byte) error {
	ev, err := event.ParseEvent(data)
	if err != nil {
		c.mu.Lock()
		c.stats.Invalid++
		c.mu.Unlock()
		c.warn("eventstore consumer: ignoring a malformed event", "err", err)
		return err
	}
	ctx = context.WithoutCancel(ctx) // finish the event in hand at shutdown
	var snap []byte
	if c.Snapshots != nil {
		sctx, cancel := context.WithTimeout(ctx, c.SnapshotTimeout)
		snap, err = c.Snapshots.Snapshot(sctx, ev.Crop)
		cancel()
		if err == nil && len(snap) > 0 && c.Privacy.Blurs(ev.Identity != nil) {
			if snap, err = privacy.BlurJPEG(snap, image.Rectangle{}, 85); err != nil {
				snap = nil // never store the unblurred face
			}
		}
		c.mu.Lock()
		if err != nil || len(snap) == 0 {
			c.stats.SnapshotMisses++
			snap = nil
		} else {
			c.stats.Snapshots++
		}
		c.mu.Unlock()
	}
	var errs []error
	for _, s := range c.Sinks {
		if err := s.WriteEvent(ctx, ev, snap); err != nil {
			errs = append(errs, err)
		}
	}
	c.mu.Lock()
	if len(errs) > 0 {
		c.stats.Failed++
	} else {
		c.stats.Events++
	}
	c.mu.Unlock()
	if len(errs) > 0 {
		err := errors.Join(errs...)
		c.warn("eventstore consumer: event sink failed", "stream", ev.Stream, "track", ev.TrackID, "kind", ev.Kind, "err", err)
		return err
	}
	return nil
}

// warn logs at most once a second.
func (c *Consumer) warn(msg string, args ...any) {
	c.mu.Lock()
	now := time.Now()
	ok := now.Sub(c.lastWarn) >= time.Second
	if ok {
		c.lastWarn = now
	}
	c.mu.Unlock()
	if ok {
		c.Log.Warn(msg, args...)
	}
}
