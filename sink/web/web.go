// Package web is Vigil's browser UI and the small HTTP API behind it: a live view per stream
// (the analysed frames with face boxes, names, track ids and attributes drawn client-side on a
// canvas), a stream list, the face gallery (enroll by drag and drop, rename, delete, recent
// recognitions with face crops), custom classifiers and the events feed. The pages are plain
// HTML, CSS and JavaScript embedded in the binary: no CDN, no build step; they work offline.
//
// Data flow. The UI subscribes (core NATS, no queue group; the frames may come from a
// bus.FrameFeed the process shares instead, Config.Frames) to
//
//	vigil.frames.<stream>   JPEG frames: kept in a small ring per stream, keyed by Vigil-Seq
//	vigil.results.<stream>  results (enriched by the track role): matched to their frame by seq
//	vigil.drops.<stream>    drops: counted per stream and reason
//	vigil.eos.<stream>      end of a finite stream
//	vigil.events.>          track events: kept in a bounded ring with a face snapshot each
//
// through one channel, so one goroutine sees them in the order the server delivered them. When a
// result arrives and its frame is in the ring, the pair goes to every browser watching that
// stream (GET /v1/ui/live/{stream}, a binary stream of length-prefixed records; see live.go).
// Each browser has a small bounded queue: a slow browser gets older frames dropped, counted per
// stream, never an unbounded backlog.
//
// The browser code talks to the other components' routes when they are mounted on the same
// server and hides what is absent (a 404): /v1/identities (analyze/faceapi), /v1/classifiers and
// /v1/classifier-projects (analyze/classify/api), /publish/{stream} (ingest/webrtc), /v1/streams
// (ingest/streams) and /v1/events (sink/eventstore). What it needs from this package is under
// /v1/ui/ (see Mount).
//
// The package is pure Go (no cgo).
package web

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/privacy"
)

// Config configures the UI. Zero fields take the defaults their comments give.
type Config struct {
	// Conn is the NATS connection the UI subscribes on. Required.
	Conn *nats.Conn
	// Frames, when set, brings the UI its frames instead of a subscription of its own to
	// vigil.frames.*: a process whose parts share one frame subscription (vigil run) passes
	// it; New adds the UI to it, and the feed's owner runs and stops it. Frames go through
	// the same intake as the other messages. Default nil: the UI subscribes itself.
	Frames *bus.FrameFeed
	// ResultsPrefix is where the results to show are read: bus.ResultsPrefix by default (the
	// track role's enriched results, with track ids and identities, or the analyzers' results
	// when tracking is off).
	ResultsPrefix string
	// EventsPrefix is where track events are read. Default event.EventsPrefix.
	EventsPrefix string

	// RingFrames is how many recent frames are kept per stream for matching results and cutting
	// face crops. Default 64 (13 s at 5 frames/s).
	RingFrames int
	// RingBytes bounds the bytes of the frames kept per stream; the oldest go first. Default 8 MiB.
	RingBytes int64
	// TotalBytes bounds the bytes of the frames kept for all streams together: beyond it the
	// stream holding the most gives up its oldest frame (each keeps at least its newest).
	// Default 128 MiB.
	TotalBytes int64
	// MaxStreams bounds the streams the UI keeps state for; beyond it the stream idle the longest
	// (and not watched) is forgotten. Default 64.
	MaxStreams int
	// Events is how many recent events are kept (all streams together), each with its face
	// snapshot. Default 1000.
	Events int
	// ViewerQueue is how many frames may wait for one browser; when full, the oldest is dropped
	// and counted. Default 4.
	ViewerQueue int
	// MaxViewers bounds the live streams open at once (all browsers together); more get 503.
	// Default 64.
	MaxViewers int
	// Intake bounds the NATS messages waiting for the UI's goroutine; beyond it the NATS client
	// drops them and counts them (GET /v1/ui/stats intake_dropped). Default 512.
	Intake int
	// CropWorkers bounds the face crops cut at once (JPEG decode + encode); requests beyond wait
	// up to 2 s, then get 503. Default 2.
	CropWorkers int
	// MaxFramePixels bounds the frames the UI decodes for crops. Default 4096x4096.
	MaxFramePixels int
	// WriteTimeout is how long a write to a browser may block before the live stream is
	// closed (the browser reconnects). Default 10s.
	WriteTimeout time.Duration

	// Store and Gallery, when set, enable POST /v1/ui/identities/{id}/rename (the face API has no
	// rename: the UI re-creates the identity under the new name with the same embeddings and
	// deletes the old one). Gallery, when also set, takes the change at once instead of through
	// its KV watcher. Optional.
	Store   *gallery.Store
	Gallery *gallery.Gallery

	// Privacy blurs faces, irreversibly (pkg/privacy), in every image the UI serves: the live
	// view's frames, face crops and event snapshots. privacy.BlurUnknown blurs the faces without
	// identity, privacy.BlurAll every face, as the frame's result gives them; a frame whose
	// result has not come is not served at all. Blurring costs a JPEG decode and encode per
	// frame sent (pure Go, ~70-80 ms for 1024x559 on one loaded core): one goroutine does it
	// for the live view, the latest frame of each stream, so a stream's live view may skip
	// frames (counted as viewer drops) but the intake never waits. Default privacy.Off.
	Privacy privacy.Mode
	// BlurFrame blurs regions of a JPEG or PNG frame with privacy.Blur and returns it as a JPEG
	// at quality (under Privacy). Default: Go's image packages (~70-80 ms for 1024x559 on one
	// loaded core); a process with cgo passes a faster one (vigil run: libjpeg-turbo's).
	BlurFrame func(data []byte, regions []image.Rectangle, quality int) ([]byte, error)

	// Log receives the UI's logs (never per frame). Default slog.Default().
	Log *slog.Logger

	// now is the clock; tests may replace it. Default time.Now.
	now func() time.Time
}

func (c *Config) setDefaults() {
	if c.ResultsPrefix == "" {
		c.ResultsPrefix = bus.ResultsPrefix
	}
	if c.EventsPrefix == "" {
		c.EventsPrefix = event.EventsPrefix
	}
	if c.RingFrames <= 0 {
		c.RingFrames = 64
	}
	if c.RingBytes <= 0 {
		c.RingBytes = 8 << 20
	}
	if c.TotalBytes <= 0 {
		c.TotalBytes = 128 << 20
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 64
	}
	if c.Events <= 0 {
		c.Events = 1000
	}
	if c.ViewerQueue <= 0 {
		c.ViewerQueue = 4
	}
	if c.MaxViewers <= 0 {
		c.MaxViewers = 64
	}
	if c.Intake <= 0 {
		c.Intake = 512
	}
	if c.CropWorkers <= 0 {
		c.CropWorkers = 2
	}
	if c.MaxFramePixels <= 0 {
		c.MaxFramePixels = 4096 * 4096
	}
	if c.BlurFrame == nil {
		c.BlurFrame = blurFrameGo
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
}

// UI is the running web UI: its NATS intake and state, and the HTTP handlers Mount adds. Create
// it with New; Close stops it. Its methods are safe for concurrent use.
type UI struct {
	cfg    Config
	log    *slog.Logger
	static fs.FS

	subs   []*nats.Subscription
	intake chan *nats.Msg
	// feedDropped counts the frames from Config.Frames dropped because the intake was full.
	feedDropped atomic.Uint64
	stop        chan struct{} // closed by Close: the intake loop and every live stream end
	wg          sync.WaitGroup
	once        sync.Once

	cropSlots chan struct{}
	blurWake  chan struct{} // wakes blurLoop (capacity 1)

	mu      sync.Mutex
	closed  bool
	streams map[string]*streamState
	events  eventRing
	viewers map[*viewer]struct{}
	lat     latencyStats
	invalid uint64                  // messages that did not parse
	held    int64                   // bytes of frames in every stream's ring
	pending map[string]*latestFrame // per stream, the latest frame waiting for blurLoop
	logged  time.Time
}

// New checks cfg, subscribes to the subjects the UI reads and starts its intake goroutine. Once
// it returns, every message published after is seen. Mount its routes on a server; Close it when
// done (before closing the server, so the live streams end at once).
func New(cfg Config) (*UI, error) {
	if cfg.Conn == nil {
		return nil, errors.New("web: Config.Conn is required")
	}
	if (cfg.Gallery != nil) && cfg.Store == nil {
		return nil, errors.New("web: Config.Gallery needs Config.Store")
	}
	if _, err := privacy.ParseMode(string(cfg.Privacy)); err != nil {
		return nil, fmt.Errorf("web: Config.Privacy: %w", err)
	}
	cfg.setDefaults()
	for _, p := range []struct{ name, prefix string }{{"ResultsPrefix", cfg.ResultsPrefix}, {"EventsPrefix", cfg.EventsPrefix}} {
		if !validPrefix(p.prefix) {
			return nil, fmt.Errorf("web: Config.%s %q: want NATS subject tokens without wildcards, e.g. vigil.results", p.name, p.prefix)
		}
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, fmt.Errorf("web: embedded assets: %w", err)
	}
	u := &UI{cfg: cfg, log: cfg.Log, static: static, intake: make(chan *nats.Msg, cfg.Intake), stop: make(chan struct{}),
		cropSlots: make(chan struct{}, cfg.CropWorkers), streams: map[string]*streamState{}, viewers: map[*viewer]struct{}{},
		events: newEventRing(cfg.Events), lat: newLatencyStats(2048), blurWake: make(chan struct{}, 1), pending: map[string]*latestFrame{}}
	subjects := []string{bus.All(cfg.ResultsPrefix), bus.All(bus.DropsPrefix), bus.All(bus.EOSPrefix), cfg.EventsPrefix + ".>"}
	if cfg.Frames == nil {
		subjects = append([]string{bus.All(bus.FramesPrefix)}, subjects...)
	}
	for _, subj := range subjects {
		sub, err := cfg.Conn.ChanSubscribe(subj, u.intake)
		if err != nil {
			u.unsubscribe()
			return nil, fmt.Errorf("web: subscribe %s: %w", subj, err)
		}
		u.subs = append(u.subs, sub)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cfg.Conn.FlushWithContext(ctx); err != nil {
		u.unsubscribe()
		return nil, fmt.Errorf("web: NATS flush: %w", err)
	}
	if cfg.Frames != nil {
		cfg.Frames.Add(u.receiveFrame)
	}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		u.run()
	}()
	if u.blurring() {
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			u.blurLoop()
		}()
	}
	return u, nil
}

// receiveFrame puts a frame message from Config.Frames into the intake, as the UI's own
// subscription would; when the intake is full the frame is dropped and counted
// (intake_dropped).
func (u *UI) receiveFrame(m *nats.Msg) {
	select {
	case u.intake <- m:
	default:
		u.feedDropped.Add(1)
	}
}

// validPrefix accepts subject prefixes of non-empty tokens without wildcards or white space.
func validPrefix(p string) bool {
	if p == "" || strings.ContainsAny(p, "*> \t\r\n") {
		return false
	}
	for _, tok := range strings.Split(p, ".") {
		if tok == "" {
			return false
		}
	}
	return true
}

func (u *UI) unsubscribe() {
	for _, s := range u.subs {
		_ = s.Unsubscribe()
	}
}

// Close unsubscribes, ends every live stream (their handlers return at once) and waits for the
// UI's goroutines. Safe to call more than once, and on a nil *UI (a UI that is turned off).
func (u *UI) Close() {
	if u == nil {
		return
	}
	u.once.Do(func() {
		u.unsubscribe()
		u.mu.Lock()
		u.closed = true
		for v := range u.viewers {
			v.abort()
		}
		u.mu.Unlock()
		close(u.stop)
		u.wg.Wait()
	})
}

// run is the intake loop: every message the UI subscribed to, in delivery order.
func (u *UI) run() {
	for {
		select {
		case <-u.stop:
			return
		case m := <-u.intake:
			u.handle(m)
		}
	}
}

// intakeDropped sums the messages the NATS client dropped because the intake was full.
func (u *UI) intakeDropped() uint64 {
	n := u.feedDropped.Load()
	for _, s := range u.subs {
		if d, err := s.Dropped(); err == nil && d > 0 {
			n += uint64(d)
		}
	}
	return n
}
