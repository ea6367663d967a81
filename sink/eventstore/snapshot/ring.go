package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
)

// Defaults of the Ring fields.
const (
	DefaultMaxFrames  = 64
	DefaultMaxBytes   = 16 << 20
	DefaultMaxStreams = 256
	DefaultMaxCrops   = 2
)

// ErrNoFrame is wrapped by Snapshot's error when the referenced frame is not (or no longer) held.
var ErrNoFrame = errors.New("snapshot: frame not held")

// Ring keeps the latest frames of every stream and cuts snapshots from them. Frames come from
// NATS (Start subscribes to vigil.frames.<stream> without a queue group: it sees every frame) or
// from Put. Per stream it holds at most MaxFrames frames and MaxBytes of payload (always at
// least the newest frame), and it holds at most MaxStreams streams (a new stream evicts the one
// idle longest). Frames are ephemeral: when the consumer is slow the NATS client drops frames
// (slow consumer), never queues them without bound.
//
// Fill the exported fields, then Start (or only Receive or Put); Close when done. Safe for concurrent use.
type Ring struct {
	// Conn is the NATS connection Start subscribes with. Required for Start.
	Conn *nats.Conn
	// Streams limits the ring to these streams. Default: every stream.
	Streams []string
	// MaxFrames bounds the frames held per stream. Default 64 (about 13 s at 5 frames/s: an
	// event's crop references one of the track's recent frames).
	MaxFrames int
	// MaxBytes bounds the payload bytes held per stream. Default 16 MiB.
	MaxBytes int64
	// MaxStreams bounds the streams held. Default 256.
	MaxStreams int
	// MaxCrops bounds the crops cut at once (each decodes a frame). Default 2.
	MaxCrops int
	// Crop cuts a snapshot out of a frame. Default: Crop with Options{}.
	Crop func(frame.Frame, event.Crop) ([]byte, error)
	// Log receives subscription errors. Default slog.Default().
	Log *slog.Logger

	once    sync.Once
	slots   chan struct{}
	mu      sync.Mutex
	streams map[string]*stream
	tick    uint64 // increases with every frame put, to find the idlest stream
	subs    []*nats.Subscription
	stats   Stats
}

type stream struct {
	frames []frame.Frame // oldest first
	bytes  int64
	last   uint64
}

// Stats counts what a Ring did.
type Stats struct {
	// Frames counts frames put; Invalid the frame messages that did not parse.
	Frames, Invalid uint64
	// Hits and Misses count Snapshot calls that found, or did not find, their frame;
	// CropErrors those whose frame did not crop.
	Hits, Misses, CropErrors uint64
	// Streams and Held are the streams and frames held now.
	Streams, Held int
}

func (r *Ring) init() {
	r.once.Do(func() {
		if r.MaxFrames <= 0 {
			r.MaxFrames = DefaultMaxFrames
		}
		if r.MaxBytes <= 0 {
			r.MaxBytes = DefaultMaxBytes
		}
		if r.MaxStreams <= 0 {
			r.MaxStreams = DefaultMaxStreams
		}
		if r.MaxCrops <= 0 {
			r.MaxCrops = DefaultMaxCrops
		}
		if r.Crop == nil {
			r.Crop = func(f frame.Frame, c event.Crop) ([]byte, error) { return Crop(f, c, Options{}) }
		}
		if r.Log == nil {
			r.Log = slog.Default()
		}
		r.slots = make(chan struct{}, r.MaxCrops)
		r.streams = map[string]*stream{}
	})
}

// Start subscribes to the frames of Streams (or every stream) and returns once the server has
// confirmed the subscriptions. The NATS client's goroutine delivers the frames; Close
// unsubscribes.
func (r *Ring) Start(ctx context.Context) error {
	r.init()
	if r.Conn == nil {
		return errors.New("snapshot: no Conn")
	}
	subjects := []string{bus.All(bus.FramesPrefix)}
	if len(r.Streams) > 0 {
		subjects = subjects[:0]
		for _, s := range r.Streams {
			subj, err := bus.Subject(bus.FramesPrefix, s)
			if err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
			subjects = append(subjects, subj)
		}
	}
	var subs []*nats.Subscription
	for _, subj := range subjects {
		sub, err := r.Conn.Subscribe(subj, r.Receive)
		if err == nil {
			// Bound what waits for the callback: frames are dropped, never queued without bound.
			err = sub.SetPendingLimits(4*r.MaxFrames, int(min(4*r.MaxBytes, 1<<30)))
		}
		if err != nil {
			for _, s := range subs {
				_ = s.Unsubscribe()
			}
			return fmt.Errorf("snapshot: subscribe %s: %w", subj, err)
		}
		subs = append(subs, sub)
	}
	r.mu.Lock()
	r.subs = append(r.subs, subs...)
	r.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if err := r.Conn.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// Receive takes one frame message as Start's subscription does (a message that does not parse
// counts as Invalid): a process that shares one frame subscription among its parts
// (bus.FrameFeed) hands the ring its frames this way instead of calling Start.
func (r *Ring) Receive(m *nats.Msg) {
	f, err := frame.FromMsg(m)
	if err != nil {
		r.mu.Lock()
		r.stats.Invalid++
		r.mu.Unlock()
		return
	}
	r.Put(f)
}

// Put adds f as its stream's newest frame, evicting the oldest beyond the bounds. The ring keeps
// f.Data: the caller must not modify it afterwards. Frames of other streams than Streams are
// ignored.
func (r *Ring) Put(f frame.Frame) {
	r.init()
	if len(r.Streams) > 0 && !slices.Contains(r.Streams, f.Stream) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Frames++
	r.tick++
	st := r.streams[f.Stream]
	if st == nil {
		if len(r.streams) >= r.MaxStreams {
			r.evictIdlest()
		}
		st = &stream{}
		r.streams[f.Stream] = st
	}
	st.last = r.tick
	st.frames = append(st.frames, f)
	st.bytes += int64(len(f.Data))
	drop := 0
	for len(st.frames)-drop > 1 && (len(st.frames)-drop > r.MaxFrames || st.bytes > r.MaxBytes) {
		st.bytes -= int64(len(st.frames[drop].Data))
		drop++
	}
	if drop > 0 {
		n := copy(st.frames, st.frames[drop:])
		clear(st.frames[n:])
		st.frames = st.frames[:n]
	}
}

func (r *Ring) evictIdlest() {
	var name string
	var oldest uint64
	for k, st := range r.streams {
		if name == "" || st.last < oldest {
			name, oldest = k, st.last
		}
	}
	delete(r.streams, name)
}

// Frame returns the newest held frame of stream with sequence number seq and, unless captured
// is zero, that capture time (a restarted source starts its sequence numbers over).
func (r *Ring) Frame(stream string, seq uint64, captured int64) (frame.Frame, bool) {
	r.init()
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.streams[stream]
	if st == nil {
		return frame.Frame{}, false
	}
	for i := len(st.frames) - 1; i >= 0; i-- {
		f := st.frames[i]
		if f.Seq == seq && (captured == 0 || f.Captured.UnixNano() == captured) {
			return f, true
		}
	}
	return frame.Frame{}, false
}

// Snapshot cuts c out of the frame it references. It fails with ErrNoFrame when the frame is not
// held (it came before the ring's window, or never arrived), with the Crop function's error when
// the frame does not crop, and with ctx's error while waiting for a crop slot.
func (r *Ring) Snapshot(ctx context.Context, c event.Crop) ([]byte, error) {
	r.init()
	var captured int64
	if !c.CapturedAt.IsZero() {
		captured = c.CapturedAt.UnixNano()
	}
	f, ok := r.Frame(c.Stream, c.Seq, captured)
	r.mu.Lock()
	if ok {
		r.stats.Hits++
	} else {
		r.stats.Misses++
	}
	r.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: stream %s frame %d", ErrNoFrame, c.Stream, c.Seq)
	}
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("snapshot: %w", ctx.Err())
	}
	defer func() { <-r.slots }()
	img, err := r.Crop(f, c)
	if err != nil {
		r.mu.Lock()
		r.stats.CropErrors++
		r.mu.Unlock()
		return nil, err
	}
	return img, nil
}

// Stats returns the counters.
func (r *Ring) Stats() Stats {
	r.init()
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Streams = len(r.streams)
	for _, st := range r.streams {
		s.Held += len(st.frames)
	}
	return s
}

// Close unsubscribes. Frames held stay readable. Safe to call more than once.
func (r *Ring) Close() error {
	r.mu.Lock()
	subs := r.subs
	r.subs = nil
	r.mu.Unlock()
	var errs []error
	for _, s := range subs {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
