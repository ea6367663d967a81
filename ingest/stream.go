package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-video/vigil/pkg/event"
	"gocv.io/x/gocv"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/vision"
)

// StreamConfig describes one stream to ingest.
type StreamConfig struct {
	// Name is the stream id (validated by frame.ValidateStream); it names the NATS subjects.
	Name string `yaml:"name"`
	// Source is the file path or URL to read (see Open).
	Source string `yaml:"source"`
	// FPS is the analysis rate: frames per second of media time published. Default 5.
	FPS float64 `yaml:"fps"`
	// MaxWidth and MaxHeight bound the published image; larger frames are scaled down keeping
	// their aspect ratio. Default 1280x720.
	MaxWidth  int `yaml:"max_width"`
	MaxHeight int `yaml:"max_height"`
	// JPEGQuality is the encoding quality, 1..100. Default 80.
	JPEGQuality int `yaml:"jpeg_quality"`
	// Loop restarts a file source at its end. Default false.
	Loop bool `yaml:"loop"`
	// Realtime paces a file source at its own frame rate. Default false.
	Realtime bool `yaml:"realtime"`
	// Once reads a file to its end once, publishes an end-of-stream record and stops; frames are
	// published only as fast as analyzers return results (at most Window outstanding), so a
	// recording is analysed completely instead of being dropped by deadline. Default false.
	Once bool `yaml:"once"`
	// Window bounds the frames in flight (published, no result or drop yet) in Once mode.
	// Default 16: enough to keep a few analyzer workers busy.
	Window int `yaml:"window"`
	// FullFrames publishes every frame at its full (fitted) size. Default false: a frame that
	// carries no heads request and is at least frame.ReduceFromWidth wide is published at half
	// size (frame.Frame.Scale 2), what detection needs; frames that request heads stay full.
	// Set it when analyzers run heads on every frame (--heads other than on-demand) or need
	// full frames for another reason.
	FullFrames bool `yaml:"full_frames"`
}

// SetDefaults fills zero fields with their defaults.
func (c *StreamConfig) SetDefaults() {
	def := config.Default().Ingest
	if c.FPS == 0 {
		c.FPS = def.FPS
	}
	if c.MaxWidth == 0 {
		c.MaxWidth = def.MaxWidth
	}
	if c.MaxHeight == 0 {
		c.MaxHeight = def.MaxHeight
	}
	if c.JPEGQuality == 0 {
		c.JPEGQuality = def.JPEGQuality
	}
	if c.Window == 0 {
		c.Window = 16
	}
}

// Validate checks the configuration, including the stream name and the source's form (not its
// reachability).
func (c StreamConfig) Validate() error {
	if err := frame.ValidateStream(c.Name); err != nil {
		return fmt.Errorf("stream %q: %w", c.Name, err)
	}
	if _, _, err := Classify(c.Source); err != nil {
		return fmt.Errorf("stream %s: %w", c.Name, err)
	}
	switch {
	case c.FPS < 0 || c.FPS > 240:
		return fmt.Errorf("stream %s: fps %v outside 0..240", c.Name, c.FPS)
	case c.MaxWidth < 16 || c.MaxHeight < 16 || c.MaxWidth > frame.MaxDimension || c.MaxHeight > frame.MaxDimension:
		return fmt.Errorf("stream %s: max size %dx%d outside 16..%d", c.Name, c.MaxWidth, c.MaxHeight, frame.MaxDimension)
	case c.JPEGQuality < 1 || c.JPEGQuality > 100:
		return fmt.Errorf("stream %s: jpeg quality %d outside 1..100", c.Name, c.JPEGQuality)
	case c.Window < 1:
		return fmt.Errorf("stream %s: window %d < 1", c.Name, c.Window)
	}
	return nil
}

// StreamStats are a stream's counters since it started.
type StreamStats struct {
	Decoded, Published, Skipped, Errors uint64
}

// streamRunner reads one source and publishes its sampled frames.
type streamRunner struct {
	cfg  StreamConfig
	nc   *nats.Conn
	log  *slog.Logger
	open func(ctx context.Context) (Source, error)
	// decode bounds the decoding of file sources shared with the process's other streams.
	decode *DecodeSlots
	// tune, when set, overrides cfg's rate, size and quality while the runner runs (the
	// Manager changes them in place; see settings).
	tune atomic.Pointer[tuning]
	// obs receives per-frame events for status and metrics (the Manager's); nil for none.
	obs *streamObs
	// sampler keeps the stream's rate. run's goroutine replaces it when the rate changes;
	// sources call keep and wants from Read, a live source's from its reader goroutine: all
	// through samplerMu.
	samplerMu sync.Mutex
	sampler   *Sampler

	decoded, published, skipped, errs atomic.Uint64
}

func (r *streamRunner) stats() StreamStats {
	return StreamStats{Decoded: r.decoded.Load(), Published: r.published.Load(), Skipped: r.skipped.Load(), Errors: r.errs.Load()}
}

// run publishes frames until ctx ends, the source ends (Once or a non-looping file), or the
// source fails. A finite source's end is announced on vigil.eos.<stream>.
func (r *streamRunner) run(ctx context.Context) error {
	subject, err := bus.Subject(bus.FramesPrefix, r.cfg.Name)
	if err != nil {
		return err
	}
	var credits *creditWindow
	if r.cfg.Once {
		if credits, err = newCreditWindow(r.nc, r.cfg.Name, r.cfg.Window); err != nil {
			return err
		}
		defer credits.close()
	}
	// The track role asks for on-demand heads on vigil.control.heads.<stream>; the next frame
	// published carries them (Vigil-Heads).
	heads, err := event.SubscribeHeads(r.nc, r.cfg.Name)
	if err != nil {
		return fmt.Errorf("stream %s: %w", r.cfg.Name, err)
	}
	defer heads.Close()
	fps := r.settings().FPS
	r.setSampler(fps)
	src, err := r.open(ctx)
	if err != nil {
		return err
	}
	defer src.Close()
	var seq uint64
	for {
		raw, err := src.Read(ctx)
		if errors.Is(err, ErrEndOfStream) {
			r.log.Info("source ended", "stream", r.cfg.Name, "frames", seq)
			return r.endOfStream(ctx, seq, credits, "")
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.errs.Add(1)
			if !src.Live() {
				_ = r.endOfStream(ctx, seq, credits, err.Error())
			}
			return err
		}
		for range raw.Skipped { // decoded by the source, refused by keep before conversion
			r.decoded.Add(1)
			r.obs.decodedFrame(raw.Mat.Cols(), raw.Mat.Rows())
			r.skipped.Add(1)
			r.obs.drop(dropSampled)
		}
		r.decoded.Add(1)
		r.obs.decodedFrame(raw.Mat.Cols(), raw.Mat.Rows())
		if t := r.settings(); t.FPS != fps {
			fps = t.FPS
			r.setSampler(fps)
		}
		if !raw.Sampled && !r.keep(raw.Media) {
			raw.Mat.Close()
			r.skipped.Add(1)
			r.obs.drop(dropSampled)
			continue
		}
		if credits != nil {
			if err := credits.acquire(ctx, seq); err != nil {
				raw.Mat.Close()
				return nil // ctx ended
			}
		}
		seq++
		if err := r.publish(subject, seq, raw, heads.Take()); err != nil {
			r.errs.Add(1)
			return fmt.Errorf("stream %s: %w", r.cfg.Name, err)
		}
		r.published.Add(1)
	}
}

// keep is the stream's sampling decision for a frame at media time t, also for sources that
// sample before converting frames (OpenOptions.Sample).
func (r *streamRunner) keep(t time.Duration) bool {
	r.samplerMu.Lock()
	defer r.samplerMu.Unlock()
	return r.sampler.Keep(t)
}

// wants is the stream's sampler asked before a frame is decoded (OpenOptions.Wants).
func (r *streamRunner) wants(t, span time.Duration) bool {
	r.samplerMu.Lock()
	defer r.samplerMu.Unlock()
	return r.sampler.Wants(t, span)
}

// setSampler starts a new schedule at fps.
func (r *streamRunner) setSampler(fps float64) {
	r.samplerMu.Lock()
	defer r.samplerMu.Unlock()
	r.sampler = NewSampler(fps)
}

// sampling returns the OpenOptions that sample the stream's file frames before decoding and
// converting them. A paced file decodes on one thread, the cheapest per frame when many
// streams share the cores; a file read as fast as it goes lets FFmpeg use every core.
func (r *streamRunner) sampling(paced bool) OpenOptions {
	o := OpenOptions{Sample: r.keep, Wants: r.wants, Decode: r.decode}
	if paced {
		o.DecodeThreads = 1
	}
	return o
}

// encodeFrame encodes m for publishing under t: fitted within its bounds and, when reduce is
// set and the fitted frame is at least frame.ReduceFromWidth wide, at half that size. It
// returns the JPEG, the frame's fitted size and the image's scale (frame.Frame.Scale).
func encodeFrame(m gocv.Mat, t tuning, reduce bool) ([]byte, int, int, int, error) {
	w, h := vision.FittedSize(m, t.MaxWidth, t.MaxHeight)
	scale := 1
	if reduce && w >= frame.ReduceFromWidth {
		scale = frame.ReducedScale
	}
	iw, ih := frame.ScaledSize(w, h, scale)
	data, err := vision.EncodeSized(m, iw, ih, t.JPEGQuality)
	return data, w, h, scale, err
}

func (r *streamRunner) publish(subject string, seq uint64, raw RawFrame, heads []string) error {
	defer raw.Mat.Close()
	t := r.settings()
	data, w, h, scale, err := encodeFrame(raw.Mat, t, !r.cfg.FullFrames && len(heads) == 0)
	if err != nil {
		r.obs.drop(dropEncode)
		return err
	}
	f := frame.Frame{Stream: r.cfg.Name, Seq: seq, Captured: raw.Captured, Width: w, Height: h, Scale: scale,
		Encoding: frame.EncodingJPEG, Data: data, Heads: heads, Complete: r.cfg.Once}
	msg, err := f.Msg(subject)
	if err != nil {
		r.obs.drop(dropEncode)
		return err
	}
	if err := r.nc.PublishMsg(msg); err != nil {
		r.obs.drop(dropPublish)
		return fmt.Errorf("publish frame: %w", err)
	}
	r.obs.publishedFrame(f.Width, f.Height, raw.Captured)
	return nil
}

func (r *streamRunner) endOfStream(ctx context.Context, frames uint64, credits *creditWindow, errText string) error {
	subject, err := bus.Subject(bus.EOSPrefix, r.cfg.Name)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(result.EndOfStream{Schema: result.SchemaVersion, Stream: r.cfg.Name, Frames: frames, At: time.Now().UTC(), Error: errText})
	if err := r.nc.Publish(subject, b); err != nil {
		return fmt.Errorf("stream %s: publish end of stream: %w", r.cfg.Name, err)
	}
	if err := r.nc.FlushTimeout(10 * time.Second); err != nil {
		return fmt.Errorf("stream %s: flush: %w", r.cfg.Name, err)
	}
	return nil
}

// creditWindow limits the frames in flight for a Once stream: it counts the results and drops
// analyzers publish for the stream and lets the publisher run at most window frames ahead.
type creditWindow struct {
	window uint64
	subs   []*nats.Subscription
	mu     sync.Mutex
	done   uint64
	wake   chan struct{}
}

func newCreditWindow(nc *nats.Conn, stream string, window int) (*creditWindow, error) {
	c := &creditWindow{window: uint64(window), wake: make(chan struct{}, 1)}
	for _, prefix := range []string{bus.ResultsPrefix, bus.DropsPrefix} {
		subj, err := bus.Subject(prefix, stream)
		if err != nil {
			return nil, err
		}
		sub, err := nc.Subscribe(subj, func(*nats.Msg) {
			c.mu.Lock()
			c.done++
			c.mu.Unlock()
			select {
			case c.wake <- struct{}{}:
			default:
			}
		})
		if err != nil {
			c.close()
			return nil, fmt.Errorf("stream %s: subscribe %s: %w", stream, subj, err)
		}
		c.subs = append(c.subs, sub)
	}
	if err := nc.Flush(); err != nil {
		c.close()
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	return c, nil
}

// acquire waits until fewer than window of the published frames lack an outcome.
func (c *creditWindow) acquire(ctx context.Context, published uint64) error {
	for {
		c.mu.Lock()
		inFlight := published - min(c.done, published)
		c.mu.Unlock()
		if inFlight < c.window {
			return nil
		}
		select {
		case <-c.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *creditWindow) close() {
	for _, s := range c.subs {
		_ = s.Unsubscribe()
	}
}
