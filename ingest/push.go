package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/ingest/streams"
	"github.com/vigil-video/vigil/pkg/admit"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/vision"
)

// pushRunner publishes the images clients push on one stream through the same path as a
// source's frames: sampled to the stream's fps (by capture time), decoded within a pixel bound,
// scaled down, JPEG-encoded and published on vigil.frames.<stream> with the next sequence number
// (from 1), carrying the on-demand heads the track stage asked for.
//
// One image is processed at a time, in arrival order; at most queue more wait, and beyond that
// push fails with streams.ErrBusy, so a client pushing faster than images encode is told to slow
// down rather than queued without bound.
type pushRunner struct {
	name      string
	subject   string
	nc        *nats.Conn
	log       *slog.Logger
	obs       *streamObs
	maxPixels int
	slots     chan struct{} // admission: one being processed plus the queue
	gate      *admit.Gate   // the decodes of every push stream together; nil: none
	heads     *event.HeadsInbox
	tune      atomic.Pointer[tuning]
	// fullFrames publishes every image at full size (StreamConfig.FullFrames).
	fullFrames bool

	mu      sync.Mutex // held while an image is processed: orders sequence numbers
	closed  bool
	seq     uint64
	fps     float64
	sampler *Sampler
	epoch   time.Time
	started bool
}

// newPushRunner subscribes to the stream's head requests; close releases it.
func newPushRunner(nc *nats.Conn, name string, t tuning, obs *streamObs, maxPixels, queue int, log *slog.Logger) (*pushRunner, error) {
	subject, err := bus.Subject(bus.FramesPrefix, name)
	if err != nil {
		return nil, err
	}
	heads, err := event.SubscribeHeads(nc, name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	p := &pushRunner{name: name, subject: subject, nc: nc, log: log, obs: obs, maxPixels: maxPixels,
		slots: make(chan struct{}, 1+queue), heads: heads, fps: t.FPS, sampler: NewSampler(t.FPS)}
	p.tune.Store(&t)
	return p, nil
}

// push publishes one image captured at captured, or samples it out.
func (p *pushRunner) push(ctx context.Context, data []byte, captured time.Time) (streams.PushResult, error) {
	select {
	case p.slots <- struct{}{}:
	default:
		p.obs.drop(dropBusy)
		return streams.PushResult{}, fmt.Errorf("%w: stream %s has %d images in progress; slow down", streams.ErrBusy, p.name, cap(p.slots))
	}
	defer func() { <-p.slots }()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return streams.PushResult{}, fmt.Errorf("%w: push stream %s stopped", streams.ErrNotFound, p.name)
	}
	if err := ctx.Err(); err != nil {
		return streams.PushResult{}, err
	}
	t := *p.tune.Load()
	if t.FPS != p.fps {
		p.fps, p.sampler = t.FPS, NewSampler(t.FPS)
	}
	if !p.started {
		p.epoch, p.started = captured, true
	}
	before := *p.sampler
	if !p.sampler.Keep(captured.Sub(p.epoch)) {
		p.obs.drop(dropSampled)
		return streams.PushResult{Reason: DropSampled}, nil
	}
	if p.gate != nil {
		pixels := int64(1) // a header that does not parse: Decode refuses it
		if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil {
			pixels = int64(cfg.Width) * int64(cfg.Height)
		}
		release, err := p.gate.Acquire(ctx, pixels)
		if err != nil {
			*p.sampler = before
			p.obs.drop(dropBusy)
			return streams.PushResult{}, fmt.Errorf("stream %s: %w", p.name, err)
		}
		defer release()
	}
	start := time.Now()
	m, err := vision.Decode(data, p.maxPixels)
	if err != nil {
		*p.sampler = before // an image that does not decode takes no slot from the next one
		p.obs.drop(dropInvalid)
		if errors.Is(err, vision.ErrImage) {
			return streams.PushResult{}, fmt.Errorf("%w: %s", streams.ErrImage, err.Error())
		}
		return streams.PushResult{}, fmt.Errorf("%w: %w", streams.ErrImage, err)
	}
	defer m.Close()
	p.obs.decodeTime(time.Since(start))
	p.obs.decodedFrame(m.Cols(), m.Rows())
	heads := p.heads.Take()
	jpeg, w, h, scale, err := encodeFrame(m, t, !p.fullFrames && len(heads) == 0)
	if err != nil {
		p.obs.drop(dropEncode)
		return streams.PushResult{}, fmt.Errorf("stream %s: %w", p.name, err)
	}
	f := frame.Frame{Stream: p.name, Seq: p.seq + 1, Captured: captured, Width: w, Height: h, Scale: scale,
		Encoding: frame.EncodingJPEG, Data: jpeg, Heads: heads}
	msg, err := f.Msg(p.subject)
	if err != nil {
		p.obs.drop(dropEncode)
		return streams.PushResult{}, fmt.Errorf("stream %s: %w", p.name, err)
	}
	if err := p.nc.PublishMsg(msg); err != nil {
		p.obs.drop(dropPublish)
		return streams.PushResult{}, fmt.Errorf("stream %s: publish frame: %w", p.name, err)
	}
	p.seq++
	p.obs.publishedFrame(f.Width, f.Height, captured)
	return streams.PushResult{Published: true, Seq: f.Seq, Width: f.Width, Height: f.Height}, nil
}

// close waits for the image in progress, refuses later ones and unsubscribes.
func (p *pushRunner) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.heads.Close()
}
