package analyze

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/pkg/batch"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/heads"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/vision"
)

// Analyzer is the frame-analysis stage behind Role: it takes a batch of frames, with the
// on-demand heads each frame requests, and returns each frame's faces. *Pipeline implements it.
type Analyzer interface {
	AnalyzeWith(ctx context.Context, frames []gocv.Mat, requested [][]string) ([]FrameFaces, error)
}

// ScaledAnalyzer is an Analyzer that also takes frames decoded smaller than published
// (*Pipeline implements it): the Role then decodes JPEG frames that request no heads at half
// size (DCT scaling, about half the decode cost), since detection and landmarks do not need
// every pixel, and the analyzer reports their faces in published-frame pixels.
type ScaledAnalyzer interface {
	Analyzer
	AnalyzeScaled(ctx context.Context, frames []gocv.Mat, requested [][]string, scales []float32) ([]FrameFaces, error)
}

// StreamClassifier is a FrameClassifier that says whether any classifier runs on a stream: the
// Role decodes frames of streams without one at reduced size (see ScaledAnalyzer).
type StreamClassifier interface {
	Runs(stream string) bool
}

// Role is the analyze role: it joins the analyzers' queue group on vigil.frames.*, batches frames
// across streams (flush on MaxBatch or MaxWait, whichever first), runs the Analyzer and publishes a
// Result per frame on vigil.results.<stream>, or a Drop on vigil.drops.<stream> saying why not.
// Fill the exported fields, then call Run.
type Role struct {
	// Conn is the NATS connection. Required.
	Conn *nats.Conn
	// Analyzer runs the models. Required.
	Analyzer Analyzer
	// Workers is the number of batches analysed in parallel. Default: the number of CPUs.
	Workers int
	// MaxBatch is the most frames in one batch. Default config.Default().Analyze.MaxBatch (4).
	MaxBatch int
	// MaxWait is how long a batch waits for more frames after its first. Default
	// config.Default().Analyze.MaxWait (10ms).
	MaxWait time.Duration
	// QueueSize bounds the frames waiting for a worker. The queue holds at most one frame per
	// stream, the newest: a frame arriving while an older frame of its stream still waits takes
	// the older one's place in line, and the older is dropped (reason "superseded"), so no frame
	// waits behind an older frame of its stream and streams are served in turn. QueueSize is the
	// most streams with a waiting frame; a frame of a further stream is dropped (reason "queue").
	// Default max(64, 4 * MaxBatch * Workers).
	QueueSize int
	// Deadline drops frames older than this when a worker takes them (reason "deadline"), so a
	// backlog never builds. 0 disables it (batch analysis of recordings). Default 0; `vigil run`
	// sets 2s for live sources.
	Deadline time.Duration
	// MaxClockSkew is how far in the future a frame's capture time may lie (the ingest's clock
	// ahead of this one's); a frame captured later than that is dropped on receipt (reason
	// "future_capture"), and one within it counts as captured now for the deadline and latency.
	// Default DefaultMaxClockSkew.
	MaxClockSkew time.Duration
	// MaxPixels bounds decoded frame size. Default vision.DefaultMaxPixels.
	MaxPixels int
	// Name identifies this analyzer in results. Default the host name.
	Name string
	// Publisher publishes results and the drops workers decide (deadline, decode, inference),
	// each with a message id derived from the frame (stream, seq, capture time) so a republished
	// document is stored once. Set a *bus.StreamPublisher to have each result acknowledged by
	// JetStream before the frame counts as analysed. Drops decided while receiving (queue full,
	// malformed frame) go through it too, from a goroutine of their own so delivery never waits
	// (on Conn, unacknowledged, when more than max(1024, 4*QueueSize) of them are waiting).
	// Default: core NATS on Conn.
	Publisher bus.Publisher
	// ResultsPrefix is the subject prefix results are published under. Default
	// bus.ResultsPrefix; event.AnalyzedPrefix when a track stage enriches and republishes them.
	ResultsPrefix string
	// FullDecode decodes every frame at full size. Default false: with a ScaledAnalyzer, JPEG
	// frames at least 1280 pixels wide that request no heads, of streams no classifier runs on
	// (Classifiers nil, or a StreamClassifier that says so), are decoded at half size.
	FullDecode bool
	// Classifiers, when set, runs custom classifiers on every analysed frame; their outputs go
	// into the result's classifications. Default none.
	Classifiers FrameClassifier
	// LateHeads are on-demand heads that, requested on a live frame (not a recording's), run
	// after the frame's result is published: on one thread at low priority, so that the other
	// frames' results never wait for them. The result lists them in each face's PendingHeads and
	// their outputs follow on LatePrefix.<stream> (a Result for the same seq); the track role
	// folds them into its tracks. When LateQueue frames already wait for theirs, a frame's late
	// heads are skipped instead (counted in Stats.LateSkipped; the track role asks again).
	// Default heads.Costly() (emotion); an empty non-nil list runs every head with its frame.
	LateHeads []string
	// LatePrefix is the subject prefix late heads are published under. Default
	// bus.LateHeadsPrefix.
	LatePrefix string
	// LateQueue bounds the frames waiting for their late heads. Default 4.
	LateQueue int
	// Log receives the role's logs. Default slog.Default().
	Log *slog.Logger

	late, lateSkipped, lateFailed atomic.Uint64
	lh                            *lateHeads
	received, analyzed, faces     atomic.Uint64
	publishErrors                 atomic.Uint64
	busy                          atomic.Int64 // nanoseconds workers spent on batches
	dropped                       sync.Map     // reason -> *atomic.Uint64
	streamDrops                   sync.Map     // streamDrop -> *atomic.Uint64
	streams                       sync.Map     // stream -> struct{}: every stream a frame came from
	batches                       sync.Map     // batch size (frames handed to a worker) -> *atomic.Uint64
	queue                         *batch.Latest[string, job]
	intakeDrops                   chan intakeDrop // drops decided while receiving, for the drop publisher
	readyOnce                     sync.Once
	ready                         chan struct{}
	mu                            sync.Mutex
	sub                           *nats.Subscription
	slowDropped                   uint64 // frames the client dropped, as of Unsubscribe
}

// Ready is closed once Run has subscribed and the server has confirmed it: frames published
// after that reach this analyzer.
func (r *Role) Ready() <-chan struct{} {
	r.readyOnce.Do(func() { r.ready = make(chan struct{}) })
	return r.ready
}

// DefaultMaxClockSkew is Role.MaxClockSkew's default: 10 s.
const DefaultMaxClockSkew = 10 * time.Second

// ReasonSlowConsumer counts, in Stats, frames the NATS client dropped because the analyzer's
// pending buffer was full.
const ReasonSlowConsumer = "slow_consumer"

type job struct {
	f    frame.Frame
	recv time.Time
}

// captured is the frame's capture time for the deadline and latency: a time ahead of its
// receipt (clock skew within MaxClockSkew) counts as the receipt.
func (j job) captured() time.Time {
	if j.f.Captured.After(j.recv) {
		return j.recv
	}
	return j.f.Captured
}

// publishedSize is the size of the image f carries, m being its decode at 1/factor: the frame's
// declared size when it agrees with the decode (within DCT scaling's rounding), else the decode's
// size times factor. A frame never gets a size its pixels do not back.
func publishedSize(f frame.Frame, m gocv.Mat, factor int) [2]int {
	w, h := m.Cols()*factor, m.Rows()*factor
	if factor == 1 {
		return [2]int{w, h}
	}
	if abs(f.Width-w) < factor && abs(f.Height-h) < factor {
		return [2]int{f.Width, f.Height}
	}
	return [2]int{w, h}
}

func abs(x int) int { return max(x, -x) }

// mergeHeads decides between a stream's waiting frame (older) and a newer one: the newer is
// kept, carrying over the heads the older requested, so that a track's scheduled heads run on
// the stream's next analysed frame even under overload. But a frame published at reduced size
// (Scale above 1) cannot serve heads, which need the full image: when the older frame requests
// heads and is full-size while the newer is reduced, the older stays and the newer is dropped
// (the waiting frame is then one behind the newest).
func mergeHeads(older, newer job) (keep, drop job) {
	if len(older.f.Heads) == 0 {
		return newer, older
	}
	if newer.f.Scale > 1 && older.f.Scale <= 1 {
		older.f.Heads = frame.AddHeads(slices.Clone(older.f.Heads), newer.f.Heads)
		return older, newer
	}
	newer.f.Heads = frame.AddHeads(slices.Clone(newer.f.Heads), older.f.Heads)
	return newer, older
}

// intakeDrop is a drop decided in the subscription callback, waiting to be published.
type intakeDrop struct {
	f              frame.Frame
	reason, detail string
}

// Stats are the role's counters since Run started.
type Stats struct {
	Received, Analyzed, Faces uint64
	Dropped                   map[string]uint64
	// DroppedByStream counts the frames not analysed by stream, then reason: every stream the
	// role received a frame of is present, with an empty map before its first drop. Frames
	// whose stream is unknown (slow_consumer, an invalid subject) count only in Dropped.
	DroppedByStream map[string]map[string]uint64
	// Batches counts the batches workers took, by size (frames per batch, before deadline and
	// decode drops).
	Batches map[int]uint64
	// Busy is the time workers spent on batches, summed over workers: Busy over wall time over
	// Workers is the analyzer's utilisation.
	Busy time.Duration
	// Queued is the frames waiting for a worker now; Pending the frames the NATS client holds
	// for the subscription beyond that.
	Queued, Pending int
	// PublishErrors counts results and drops the Publisher failed to publish.
	PublishErrors uint64
	// Late counts the frames whose late heads ran and were published; LateSkipped those whose
	// late heads were skipped because LateQueue frames waited for theirs; LateFailed those whose
	// late heads failed.
	Late, LateSkipped, LateFailed uint64
}

// Stats returns the role's counters.
func (r *Role) Stats() Stats {
	s := Stats{Received: r.received.Load(), Analyzed: r.analyzed.Load(), Faces: r.faces.Load(), Dropped: map[string]uint64{},
		Batches: map[int]uint64{}, Busy: time.Duration(r.busy.Load()), PublishErrors: r.publishErrors.Load(),
		Late: r.late.Load(), LateSkipped: r.lateSkipped.Load(), LateFailed: r.lateFailed.Load()}
	r.dropped.Range(func(k, v any) bool {
		s.Dropped[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	s.DroppedByStream = map[string]map[string]uint64{}
	r.streams.Range(func(k, _ any) bool {
		s.DroppedByStream[k.(string)] = map[string]uint64{}
		return true
	})
	r.streamDrops.Range(func(k, v any) bool {
		d := k.(streamDrop)
		if s.DroppedByStream[d.stream] == nil {
			s.DroppedByStream[d.stream] = map[string]uint64{}
		}
		s.DroppedByStream[d.stream][d.reason] = v.(*atomic.Uint64).Load()
		return true
	})
	r.batches.Range(func(k, v any) bool {
		s.Batches[k.(int)] = v.(*atomic.Uint64).Load()
		return true
	})
	r.mu.Lock()
	slow := r.slowDropped
	if r.sub != nil {
		if n, err := r.sub.Dropped(); err == nil {
			slow = uint64(n)
		}
		if n, _, err := r.sub.Pending(); err == nil {
			s.Pending = n
		}
	}
	if r.queue != nil {
		s.Queued = r.queue.Len()
	}
	r.mu.Unlock()
	if slow > 0 {
		s.Dropped[ReasonSlowConsumer] = slow
	}
	return s
}

// ClassifyFrame is one analysed frame as a FrameClassifier sees it.
type ClassifyFrame struct {
	// Stream names the frame's stream (which classifiers run is configured per stream).
	Stream string
	// Image is the decoded 8-bit BGR frame, owned by the caller and open during the call.
	Image gocv.Mat
	// Faces are the faces the pipeline found, in result order.
	Faces []result.Face
}

// FrameClassifier runs custom classifiers on analysed frames; the i-th output lists frame i's
// classifications. An error means none could run (the frames still get their face results).
type FrameClassifier interface {
	ClassifyFrames(ctx context.Context, frames []ClassifyFrame) ([][]result.Classification, error)
}

func (r *Role) setDefaults() {
	if r.Workers <= 0 {
		r.Workers = runtime.NumCPU()
	}
	if r.MaxBatch <= 0 {
		r.MaxBatch = config.Default().Analyze.MaxBatch
	}
	if r.MaxWait <= 0 {
		r.MaxWait = config.Default().Analyze.MaxWait
	}
	if r.QueueSize <= 0 {
		r.QueueSize = max(64, 4*r.MaxBatch*r.Workers)
	}
	if r.MaxClockSkew <= 0 {
		r.MaxClockSkew = DefaultMaxClockSkew
	}
	if r.Name == "" {
		r.Name, _ = os.Hostname()
	}
	if r.Log == nil {
		r.Log = slog.Default()
	}
	if r.ResultsPrefix == "" {
		r.ResultsPrefix = bus.ResultsPrefix
	}
	if r.Publisher == nil {
		r.Publisher = bus.CorePublisher{Conn: r.Conn}
	}
	if r.LateHeads == nil {
		r.LateHeads = heads.Costly()
	}
	if r.LatePrefix == "" {
		r.LatePrefix = bus.LateHeadsPrefix
	}
	if r.LateQueue <= 0 {
		r.LateQueue = 4
	}
}

// Run consumes frames until ctx ends, then drains: it stops taking frames, finishes every queued
// frame (publishing its result), flushes the connection and returns.
func (r *Role) Run(ctx context.Context) error {
	if r.Conn == nil || r.Analyzer == nil {
		return errors.New("analyze: Conn and Analyzer are required")
	}
	r.setDefaults()
	q := batch.NewLatest[string, job](r.QueueSize, r.MaxBatch, r.MaxWait, mergeHeads)
	r.mu.Lock()
	r.queue = q
	r.mu.Unlock()
	// Room for the drops of several seconds of frames while a publish waits out a JetStream
	// leader election (drop documents are small).
	r.intakeDrops = make(chan intakeDrop, max(1024, 4*r.QueueSize))
	sub, err := r.Conn.QueueSubscribe(bus.All(bus.FramesPrefix), bus.AnalyzeQueue, func(m *nats.Msg) {
		r.received.Add(1)
		f, err := frame.FromMsg(m)
		if err == nil {
			if _, seen := r.streams.Load(f.Stream); !seen {
				r.streams.Store(f.Stream, struct{}{})
			}
		}
		if err != nil {
			// The drop goes to the subject's stream, never to one a header names.
			reason := result.ReasonDecode
			if errors.Is(err, frame.ErrStreamMismatch) {
				reason = result.ReasonStreamMismatch
			}
			r.dropOnIntake(frame.Frame{Stream: frame.SubjectStream(m.Subject)}, reason, err.Error())
			return
		}
		if ahead := f.Captured.Sub(time.Now()); ahead > r.MaxClockSkew {
			// A capture time in the future would dodge the deadline and give negative latencies.
			r.dropOnIntake(f, result.ReasonFutureCapture, fmt.Sprintf("captured %s in the future (more than the allowed clock skew %s)",
				ahead.Round(time.Millisecond), r.MaxClockSkew))
			return
		}
		key := f.Stream
		if f.Complete {
			key = f.Stream + "#" + strconv.FormatUint(f.Seq, 10) // a recording's frames never supersede each other
		}
		dropped, superseded, ok := q.Put(key, job{f: f, recv: time.Now()})
		switch {
		case !ok:
			r.dropOnIntake(f, result.ReasonQueue, "analyzer queue full")
		case superseded && dropped.f.Seq == f.Seq:
			r.dropOnIntake(f, result.ReasonSuperseded, "reduced frame dropped: the stream's waiting full frame carries a heads request")
		case superseded:
			r.dropOnIntake(dropped.f, result.ReasonSuperseded, fmt.Sprintf("frame %d replaced by newer frame %d", dropped.f.Seq, f.Seq))
		}
	})
	if err != nil {
		return fmt.Errorf("analyze: subscribe: %w", err)
	}
	// Bound what the client buffers for us beyond our own queue; what it drops beyond that is
	// counted as "slow_consumer" (no Drop can be announced: the frames were never parsed).
	if err := sub.SetPendingLimits(max(256, 4*r.QueueSize), 64<<20); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("analyze: %w", err)
	}
	if err := r.Conn.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("analyze: %w", err)
	}
	r.Ready()
	close(r.ready)
	r.mu.Lock()
	r.sub = sub
	r.mu.Unlock()
	r.Log.Info("analyzer ready", "workers", r.Workers, "max_batch", r.MaxBatch, "max_wait", r.MaxWait, "deadline", r.Deadline)

	work := context.WithoutCancel(ctx) // in-flight batches finish after ctx ends
	if r.lh = newLateHeads(r); r.lh != nil {
		r.lh.start(work)
	}
	// The drop publisher: drops decided while receiving are published (and, with a
	// StreamPublisher, acknowledged) here, so the subscription callback never waits on the bus.
	stopDrops := make(chan struct{})
	var dropWG sync.WaitGroup
	dropWG.Add(1)
	go func() {
		defer dropWG.Done()
		for {
			select {
			case d := <-r.intakeDrops:
				r.announce(work, d.f, d.reason, d.detail)
			case <-stopDrops:
				for {
					select {
					case d := <-r.intakeDrops:
						r.announce(work, d.f, d.reason, d.detail)
					default:
						return
					}
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < r.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b := q.Next(ctx)
				if b == nil {
					return
				}
				r.process(work, b)
			}
		}()
	}
	<-ctx.Done()
	// Stop intake, then finish what was taken. Unsubscribe waits for no running callback, so
	// drain the queue until it stays empty.
	r.mu.Lock()
	if n, err := sub.Dropped(); err == nil {
		r.slowDropped = uint64(n)
	}
	_ = sub.Unsubscribe()
	r.sub = nil
	r.mu.Unlock()
	wg.Wait()
	for rest := q.Drain(); len(rest) > 0; rest = q.Drain() {
		for len(rest) > 0 {
			n := min(len(rest), r.MaxBatch)
			r.process(work, rest[:n])
			rest = rest[n:]
		}
	}
	if r.lh != nil {
		r.lh.stop()
	}
	close(stopDrops)
	dropWG.Wait()
	if err := r.Conn.Flush(); err != nil {
		return fmt.Errorf("analyze: flush results: %w", err)
	}
	return nil
}

func (r *Role) process(ctx context.Context, jobs []job) {
	// Frames that request heads (a new track's, emotion's DenseNet alone ~70 ms a face on one
	// core) go after the rest of their batch, whose results are then published without waiting
	// for them.
	if light, heavy := r.splitByHeads(jobs); len(light) > 0 && len(heavy) > 0 {
		r.process(ctx, light)
		r.process(ctx, heavy)
		return
	}
	start := time.Now()
	defer func() { r.busy.Add(int64(time.Since(start))) }()
	v, _ := r.batches.LoadOrStore(len(jobs), new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
	mats := make([]gocv.Mat, 0, len(jobs))
	kept := make([]job, 0, len(jobs))
	var requested, lates [][]string
	handed := make([]bool, len(jobs)) // mats handed to the late heads, which close them
	defer func() {
		for i, m := range mats {
			if !handed[i] {
				m.Close()
			}
		}
	}()
	scaled, canScale := r.Analyzer.(ScaledAnalyzer)
	reduce := canScale && !r.FullDecode
	sc, perStream := r.Classifiers.(StreamClassifier)
	var scales []float32
	var sizes [][2]int
	now := time.Now()
	for _, j := range jobs {
		if r.Deadline > 0 && now.Sub(j.captured()) > r.Deadline {
			r.drop(ctx, j.f, result.ReasonDeadline, fmt.Sprintf("frame %s old", now.Sub(j.f.Captured).Round(time.Millisecond)))
			continue
		}
		// A frame ingest published at reduced size (Scale) is analysed in the frame's own
		// coordinates; a full one that requests no heads may be decoded at half size.
		scale := 1
		if canScale && j.f.Scale > 1 {
			scale = j.f.Scale
		}
		factor := 1
		classified := r.Classifiers != nil && (!perStream || sc.Runs(j.f.Stream))
		if reduce && scale == 1 && !classified && len(j.f.Heads) == 0 && j.f.Encoding == frame.EncodingJPEG && j.f.Width >= frame.ReduceFromWidth {
			factor = frame.ReducedScale
		}
		m, err := vision.DecodeReduced(j.f.Data, r.MaxPixels, factor)
		if err != nil {
			r.drop(ctx, j.f, result.ReasonDecode, err.Error())
			continue
		}
		mats = append(mats, m)
		kept = append(kept, j)
		now, late := r.lh.split(j.f, j.f.Heads)
		requested = append(requested, now)
		lates = append(lates, late)
		scales = append(scales, float32(factor*scale))
		sizes = append(sizes, publishedSize(j.f, m, factor*scale))
	}
	if len(kept) == 0 {
		return
	}
	var out []FrameFaces
	var err error
	if canScale {
		out, err = scaled.AnalyzeScaled(ctx, mats, requested, scales)
	} else {
		out, err = r.Analyzer.AnalyzeWith(ctx, mats, requested)
	}
	if err != nil {
		r.Log.Error("analysis failed", "frames", len(kept), "err", err)
		for _, j := range kept {
			r.drop(ctx, j.f, result.ReasonInfer, err.Error())
		}
		return
	}
	var classes [][]result.Classification
	if r.Classifiers != nil {
		frames := make([]ClassifyFrame, len(kept))
		for i, j := range kept {
			frames[i] = ClassifyFrame{Stream: j.f.Stream, Image: mats[i], Faces: facesIn(out[i].Faces, scales[i])}
		}
		if classes, err = r.Classifiers.ClassifyFrames(ctx, frames); err != nil {
			r.Log.Warn("classifiers failed", "frames", len(kept), "err", err)
			classes = nil
		}
	}
	done := time.Now().UTC()
	for i, j := range kept {
		res := result.Result{
			Schema: result.SchemaVersion, Stream: j.f.Stream, Seq: j.f.Seq,
			CapturedAt: j.f.Captured.UTC(), AnalyzedAt: done,
			LatencyMS: float64(done.Sub(j.captured()).Microseconds()) / 1000,
			Width:     sizes[i][0], Height: sizes[i][1],
			Faces: out[i].Faces, Analyzer: r.Name,
		}
		if res.Faces == nil {
			res.Faces = []result.Face{}
		}
		if i < len(classes) {
			res.Classifications = classes[i]
		}
		var late lateJob
		if len(lates[i]) > 0 && len(res.Faces) > 0 {
			if r.lh.reserve() {
				late = lateJob{job: j, image: mats[i], faces: lateFaces(res.Faces), scale: scales[i], size: sizes[i], heads: lates[i]}
				for k := range res.Faces {
					res.Faces[k].PendingHeads = lates[i]
				}
			} else {
				r.lateSkipped.Add(1)
			}
		}
		r.publish(ctx, r.ResultsPrefix, j.f.Stream, res, msgID("r", j.f))
		r.analyzed.Add(1)
		r.faces.Add(uint64(len(res.Faces)))
		if late.heads != nil { // after the result, which announces them
			handed[i] = true
			r.lh.put(late)
		}
	}
}

// splitByHeads separates the frames that request no heads to run with them (late heads do not
// count) from those that do, each in order.
func (r *Role) splitByHeads(jobs []job) (light, heavy []job) {
	for _, j := range jobs {
		if now, _ := r.lh.split(j.f, j.f.Heads); len(now) > 0 {
			heavy = append(heavy, j)
		} else {
			light = append(light, j)
		}
	}
	return light, heavy
}

// facesIn returns faces in the pixels of an image at 1/scale of the frame (faces itself at
// scale 1): what a classifier cutting faces out of that image needs.
func facesIn(faces []result.Face, scale float32) []result.Face {
	if scale == 1 {
		return faces
	}
	out := slices.Clone(faces)
	for i := range out {
		scaleFace(&out[i], 1/scale)
	}
	return out
}

// drop counts a frame a worker gives up on and announces it through the Publisher.
func (r *Role) drop(ctx context.Context, f frame.Frame, reason, detail string) {
	r.countDrop(f.Stream, reason)
	r.announce(ctx, f, reason, detail)
}

// dropOnIntake counts a frame refused while receiving and hands its announcement to the drop
// publisher, or, when its buffer is full, publishes it on Conn at once (no acknowledgement:
// delivery never waits).
func (r *Role) dropOnIntake(f frame.Frame, reason, detail string) {
	r.countDrop(f.Stream, reason)
	select {
	case r.intakeDrops <- intakeDrop{f: f, reason: reason, detail: detail}:
	default:
		r.announce(nil, f, reason, detail)
	}
}

// streamDrop keys the drops of one stream for one reason.
type streamDrop struct{ stream, reason string }

// countDrop counts a dropped frame of stream for reason, by stream too when the stream id is
// valid (an invalid one would only make an unbounded label).
func (r *Role) countDrop(stream, reason string) {
	v, _ := r.dropped.LoadOrStore(reason, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
	if frame.ValidateStream(stream) != nil {
		return
	}
	v, _ = r.streamDrops.LoadOrStore(streamDrop{stream, reason}, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

// announce publishes a Drop on vigil.drops.<stream>: through the Publisher, or on Conn when ctx
// is nil. A frame whose stream id is invalid is only counted: no subject can be built for it.
func (r *Role) announce(ctx context.Context, f frame.Frame, reason, detail string) {
	if frame.ValidateStream(f.Stream) != nil {
		return
	}
	doc := result.Drop{Schema: result.SchemaVersion, Stream: f.Stream, Seq: f.Seq, Reason: reason, Detail: detail, At: time.Now().UTC()}
	r.publish(ctx, bus.DropsPrefix, f.Stream, doc, msgID("d", f))
}

// msgID identifies a frame's outcome for JetStream deduplication: kind, stream, sequence and
// capture time (which tells a restarted ingest's frames apart from its predecessor's). Frames
// that could not be parsed have none.
func msgID(kind string, f frame.Frame) string {
	if f.Seq == 0 || f.Captured.IsZero() {
		return ""
	}
	return fmt.Sprintf("%s.%s.%d.%d", kind, f.Stream, f.Seq, f.Captured.UnixNano())
}

func (r *Role) publish(ctx context.Context, prefix, stream string, doc any, id string) {
	subj, err := bus.Subject(prefix, stream)
	if err != nil {
		return
	}
	b, err := json.Marshal(doc)
	if err != nil {
		r.Log.Error("encode document", "err", err)
		return
	}
	if ctx == nil {
		err = r.Conn.Publish(subj, b)
	} else {
		err = r.Publisher.Publish(ctx, subj, b, id)
	}
	if err != nil {
		if r.publishErrors.Add(1) == 1 || r.publishErrors.Load()%100 == 0 {
			r.Log.Warn("publish failed", "subject", subj, "failures", r.publishErrors.Load(), "err", err)
		}
	}
}
