package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/ingest/streams"
	"github.com/vigil-video/vigil/pkg/admit"
)

// Manager runs a changing set of live streams: it is the streams.Runner behind a
// streams.Registry (which owns the list: file, HTTP, NATS, key-value bucket), and runs each
// stream it is given in goroutines of its own, so a failing or slow stream never disturbs the
// others.
//
// Each stream has a supervisor goroutine that owns its runner: it starts the runner, changes
// its rate, size and quality in place (no reconnection, no restart of a file), restarts it when
// the source changes, stops it when the stream is disabled or removed, and restarts it after a
// failure with capped exponential backoff (a camera that is down at start is retried until it
// answers). A file without Loop that reaches its end stays ended until its configuration
// changes. Push streams (streams.PushSource) publish the images given to Push.
//
// Fill the exported fields, Initialize, then use it (usually through a streams.Registry); Close
// stops every stream and waits for their goroutines. Finite batch runs (--once) stay with Role.
type Manager struct {
	// Conn is the NATS connection frames are published on. Required.
	Conn *nats.Conn
	// Log receives one line per stream start, stop and failure, never per frame.
	// Default slog.Default().
	Log *slog.Logger
	// Backoff spaces the restarts of a failed stream. Zero value: Backoff's defaults (500 ms
	// doubling to 30 s, reset after 10 s of health).
	Backoff Backoff
	// PushMaxPixels bounds a pushed image's width x height when it is decoded.
	// Default streams.DefaultMaxPixels.
	PushMaxPixels int
	// PushQueue is how many pushed images of one stream may wait while one is processed; more
	// are refused with streams.ErrBusy. Default 2.
	PushQueue int
	// PushGate admits the decodes of pushed images across all push streams, with the pixels
	// each image's header declares, so that memory stays bounded however many streams push:
	// beyond it a push gets 503 server_busy with Retry-After. Default a Gate of NumCPU decodes
	// holding at most admit.DefaultMaxPixels pixels.
	PushGate *admit.Gate
	// DecodeSlots bounds the managed streams' file decoding (see DecodeSlots), shared with
	// whatever else holds it. Set it before Start. Default nil: no bound.
	DecodeSlots *DecodeSlots
	// FullFrames publishes every frame of the managed streams at full size
	// (StreamConfig.FullFrames). Set it before Start. Default false.
	FullFrames bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // supervisors

	decodeHist, latencyHist *prometheus.HistogramVec

	mu      sync.Mutex
	streams map[string]*managed
	closed  bool
}

var _ streams.Runner = (*Manager)(nil)

// Initialize checks the configuration and prepares the Manager.
func (m *Manager) Initialize() error {
	if m.Conn == nil {
		return errors.New("ingest manager: no NATS connection")
	}
	if m.Log == nil {
		m.Log = slog.Default()
	}
	if m.PushMaxPixels <= 0 {
		m.PushMaxPixels = streams.DefaultMaxPixels
	}
	if m.PushQueue <= 0 {
		m.PushQueue = 2
	}
	if m.PushGate == nil {
		m.PushGate = &admit.Gate{}
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.decodeHist, m.latencyHist = newDecodeHist(), newLatencyHist()
	m.streams = map[string]*managed{}
	return nil
}

// Close stops every stream and waits until their goroutines have exited. Idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.streams == nil || m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.cancel()
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}

// Collector returns a prometheus.Collector of every stream's metrics, read at scrape time:
// vigil_ingest_stream_frames_decoded_total, _frames_published_total, _frames_dropped_total
// (by reason, see the Drop constants), _reconnects_total, _source_failures_total, the gauges
// _fps, _frame_width_pixels and _frame_height_pixels (stage source or published) and _state
// (one series per state, 1 for the current one), and the histograms _decode_seconds and
// _capture_to_publish_seconds; all labelled by stream. A removed stream's series disappear.
// Call after Initialize.
func (m *Manager) Collector() prometheus.Collector { return managerCollector{m} }

// Register registers Collector on reg.
func (m *Manager) Register(reg prometheus.Registerer) error {
	if err := reg.Register(m.Collector()); err != nil {
		return fmt.Errorf("ingest metrics: %w", err)
	}
	return nil
}

// CheckSource checks a source's form (Classify) without opening it.
func (m *Manager) CheckSource(source string) error {
	_, _, err := Classify(source)
	return err
}

// Apply makes stream spec.Name run as spec says (see streams.Runner). spec must be valid with
// its defaults set.
func (m *Manager) Apply(spec streams.Spec) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.streams == nil || m.closed {
		return
	}
	ms := m.streams[spec.Name]
	if ms != nil && ms.set(spec) {
		return
	}
	nm := &managed{m: m, name: spec.Name, prev: ms, desired: spec, gen: 1,
		wake: make(chan struct{}, 1), done: make(chan struct{}), settled: make(chan struct{}),
		state: streams.StateConnecting, log: m.Log.With("stream", spec.Name),
		obs: &streamObs{decodeSec: m.decodeHist.WithLabelValues(spec.Name), latencySec: m.latencyHist.WithLabelValues(spec.Name)}}
	m.streams[spec.Name] = nm
	m.wg.Add(1)
	go nm.supervise(m.ctx)
}

// Remove stops stream name and forgets it, in the background (see Settle).
func (m *Manager) Remove(name string) {
	m.mu.Lock()
	ms := m.streams[name]
	m.mu.Unlock()
	if ms != nil {
		ms.retire()
	}
}

// Settle waits until the latest Apply or Remove of stream name has been carried out: for a
// removed stream, until its goroutines have exited.
func (m *Manager) Settle(ctx context.Context, name string) error {
	m.mu.Lock()
	ms := m.streams[name]
	m.mu.Unlock()
	if ms == nil {
		return nil
	}
	return ms.settle(ctx)
}

// Status reports stream name.
func (m *Manager) Status(name string) (streams.RunStatus, bool) {
	m.mu.Lock()
	ms := m.streams[name]
	m.mu.Unlock()
	if ms == nil {
		return streams.RunStatus{}, false
	}
	return ms.status(time.Now()), true
}

// Stats returns each stream's counters, keyed by name (Skipped: sampled out; Errors: encode and
// publish failures and source failures).
func (m *Manager) Stats() map[string]StreamStats {
	out := map[string]StreamStats{}
	for _, ms := range m.snapshot() {
		o := ms.obs
		out[ms.name] = StreamStats{Decoded: o.decoded.Load(), Published: o.published.Load(), Skipped: o.drops[dropSampled].Load(),
			Errors: o.drops[dropEncode].Load() + o.drops[dropPublish].Load() + ms.liveStats().Failures}
	}
	return out
}

// Push publishes one pushed image on push stream name (see streams.Runner).
func (m *Manager) Push(ctx context.Context, name string, image []byte, captured time.Time) (streams.PushResult, error) {
	m.mu.Lock()
	ms := m.streams[name]
	m.mu.Unlock()
	var p *pushRunner
	if ms != nil {
		ms.mu.Lock()
		p = ms.push
		ms.mu.Unlock()
	}
	if p == nil {
		return streams.PushResult{}, fmt.Errorf("%w: no push stream %s runs here", streams.ErrNotFound, name)
	}
	return p.push(ctx, image, captured)
}

// snapshot returns the managed streams, sorted by name.
func (m *Manager) snapshot() []*managed {
	m.mu.Lock()
	out := make([]*managed, 0, len(m.streams))
	for _, ms := range m.streams {
		out = append(out, ms)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// forget removes ms from the map if it is still the stream's entry, with its histogram series.
func (m *Manager) forget(ms *managed) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.streams[ms.name] == ms {
		delete(m.streams, ms.name)
		m.decodeHist.DeleteLabelValues(ms.name)
		m.latencyHist.DeleteLabelValues(ms.name)
	}
}

// SpecOf returns the streams.Spec of a StreamConfig from flags (Once and Window have no
// equivalent: a managed stream is never finite batch work).
func SpecOf(c StreamConfig) streams.Spec {
	return streams.Spec{Name: c.Name, Source: c.Source, Enabled: true, FPS: c.FPS, MaxWidth: c.MaxWidth, MaxHeight: c.MaxHeight,
		JPEGQuality: c.JPEGQuality, Loop: c.Loop, Realtime: c.Realtime}
}

// tuning is what may change while a stream runs, without reopening its source.
type tuning struct {
	FPS                 float64
	MaxWidth, MaxHeight int
	JPEGQuality         int
}

func tuningOf(s streams.Spec) tuning {
	return tuning{FPS: s.FPS, MaxWidth: s.MaxWidth, MaxHeight: s.MaxHeight, JPEGQuality: s.JPEGQuality}
}

// settings returns the runner's rate, size and quality now: its tuning when the Manager set
// one, else its configuration's.
func (r *streamRunner) settings() tuning {
	if t := r.tune.Load(); t != nil {
		return *t
	}
	return tuning{FPS: r.cfg.FPS, MaxWidth: r.cfg.MaxWidth, MaxHeight: r.cfg.MaxHeight, JPEGQuality: r.cfg.JPEGQuality}
}

// needsRestart reports whether going from a to b reopens the source.
func needsRestart(a, b streams.Spec) bool {
	return a.Source != b.Source || a.Loop != b.Loop || a.Realtime != b.Realtime
}

// managed is one stream of a Manager and its supervisor's state.
type managed struct {
	m    *Manager
	name string
	prev *managed // an earlier incarnation still stopping; waited for before starting
	obs  *streamObs
	log  *slog.Logger
	wake chan struct{} // signals the supervisor (capacity 1)
	done chan struct{} // closed when the supervisor has exited

	mu       sync.Mutex
	desired  streams.Spec
	gen      uint64 // bumped by every set and by retire
	applied  uint64 // the gen the supervisor has carried out
	retired  bool
	settled  chan struct{} // closed and replaced when applied changes
	state    string
	lastErr  string
	push     *pushRunner
	live     StatsSource // the live source being read, if any
	liveBase LiveStats   // counters of the live sources read before
	restarts uint64      // restarts after a failure
	failures uint64      // failures that stopped a runner
}

// set records a new desired spec; false when ms is retired (the caller starts a new one).
func (ms *managed) set(spec streams.Spec) bool {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.retired {
		return false
	}
	ms.desired = spec
	ms.gen++
	ms.signal()
	return true
}

func (ms *managed) retire() {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if !ms.retired {
		ms.retired = true
		ms.gen++
		ms.signal()
	}
}

func (ms *managed) signal() {
	select {
	case ms.wake <- struct{}{}:
	default:
	}
}

func (ms *managed) settle(ctx context.Context) error {
	ms.mu.Lock()
	target, retired := ms.gen, ms.retired
	ms.mu.Unlock()
	if retired {
		select {
		case <-ms.done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("stream %s: waiting for it to stop: %w", ms.name, ctx.Err())
		}
	}
	for {
		ms.mu.Lock()
		ok, ch := ms.applied >= target, ms.settled
		ms.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ms.done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("stream %s: waiting for the change to be applied: %w", ms.name, ctx.Err())
		}
	}
}

func (ms *managed) markApplied(gen uint64, state string) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if state != "" {
		ms.state = state
	}
	if gen > ms.applied {
		ms.applied = gen
		close(ms.settled)
		ms.settled = make(chan struct{})
	}
}

func (ms *managed) setState(state, lastErr string) {
	ms.mu.Lock()
	ms.state = state
	if lastErr != "" {
		ms.lastErr = lastErr
	}
	ms.mu.Unlock()
}

// liveStats returns the live counters of every source the stream has read, plus the failures
// that stopped its runners.
func (ms *managed) liveStats() LiveStats {
	ms.mu.Lock()
	s, live, fails := ms.liveBase, ms.live, ms.failures
	ms.mu.Unlock()
	if live != nil {
		cur := live.Stats()
		s.State, s.LastError = cur.State, cur.LastError
		s.Reconnects += cur.Reconnects
		s.Failures += cur.Failures
		s.FramesRead += cur.FramesRead
		s.FramesReplaced += cur.FramesReplaced
	}
	s.Failures += fails
	return s
}

// foldLive adds the finished live source's counters to the base.
func (ms *managed) foldLive() {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.live == nil {
		return
	}
	cur := ms.live.Stats()
	ms.liveBase.Reconnects += cur.Reconnects
	ms.liveBase.Failures += cur.Failures
	ms.liveBase.FramesRead += cur.FramesRead
	ms.liveBase.FramesReplaced += cur.FramesReplaced
	ms.live = nil
}

func (ms *managed) status(now time.Time) streams.RunStatus {
	live := ms.liveStats()
	ms.mu.Lock()
	st := streams.RunStatus{State: ms.state, Error: ms.lastErr, Reconnects: live.Reconnects + ms.restarts}
	hasLive := ms.live != nil
	if ms.retired {
		st.State = streams.StateStopped
	}
	ms.mu.Unlock()
	if hasLive && st.State == streams.StateLive {
		switch live.State {
		case StateConnecting:
			st.State = streams.StateConnecting
		case StateBackoff:
			st.State = streams.StateBackoff
		case StateClosed:
			st.State = streams.StateStopped
		}
		if live.State != StateLive && live.LastError != "" {
			st.Error = live.LastError
		}
	}
	o := ms.obs
	st.Decoded, st.Published = o.decoded.Load(), o.published.Load()
	st.SampledOut = o.drops[dropSampled].Load()
	st.Dropped = live.FramesReplaced
	for i := range o.drops {
		if dropReason(i) != dropSampled {
			st.Dropped += o.drops[i].Load()
		}
	}
	st.FPS, st.LastPublished = o.fps(now)
	st.Width, st.Height = int(o.outW.Load()), int(o.outH.Load())
	return st
}

// run is one runner of a stream and its goroutine.
type run struct {
	spec   streams.Spec
	runner *streamRunner
	cancel context.CancelFunc
	done   chan error // receives run's result once
	start  time.Time
}

// stop cancels the runner and waits for its goroutine.
func (r *run) stop() {
	r.cancel()
	<-r.done
}

// hold says why a stopped stream is not restarted at once.
type hold int

const (
	holdNone    hold = iota
	holdEnded        // a finite source ended: wait for a new configuration
	holdBackoff      // it failed: wait for the timer or a new configuration
)

// supervise carries out the desired state of the stream until it is retired or the Manager
// closes. It owns the stream's runner and push runner.
func (ms *managed) supervise(ctx context.Context) {
	defer ms.m.wg.Done()
	defer close(ms.done)
	defer ms.m.forget(ms)
	if ms.prev != nil {
		select {
		case <-ms.prev.done:
		case <-ctx.Done():
		}
	}
	var (
		cur     *run
		push    *pushRunner
		waiting hold
		holdGen uint64
		timer   *time.Timer
		timerC  <-chan time.Time
	)
	backoff := ms.m.Backoff
	stopTimer := func() {
		if timer != nil {
			timer.Stop()
			timer, timerC = nil, nil
		}
	}
	defer stopTimer()
	stopPush := func() {
		if push != nil {
			push.close()
			push = nil
			ms.mu.Lock()
			ms.push = nil
			ms.mu.Unlock()
		}
	}
	for {
		ms.mu.Lock()
		want, gen, retired := ms.desired, ms.gen, ms.retired
		ms.mu.Unlock()
		stopping := retired || ctx.Err() != nil
		if cur != nil && (stopping || !want.Enabled || want.IsPush() || needsRestart(cur.spec, want)) {
			cur.stop()
			ms.foldLive()
			ms.log.Info("stream runner stopped")
			cur = nil
		}
		if push != nil && (stopping || !want.Enabled || !want.IsPush()) {
			stopPush()
		}
		if stopping {
			ms.markApplied(gen, streams.StateStopped)
			return
		}
		if waiting != holdNone && gen != holdGen {
			waiting = holdNone // a new configuration: try at once
			stopTimer()
		}
		switch {
		case !want.Enabled:
			waiting = holdNone
			stopTimer()
			ms.markApplied(gen, streams.StateDisabled)
		case want.IsPush():
			if push == nil && waiting == holdNone {
				p, err := newPushRunner(ms.m.Conn, ms.name, tuningOf(want), ms.obs, ms.m.PushMaxPixels, ms.m.PushQueue, ms.log)
				if p != nil {
					p.gate, p.fullFrames = ms.m.PushGate, ms.m.FullFrames
				}
				if err != nil {
					ms.failed(err, &backoff, time.Time{}, gen, &waiting, &holdGen, &timer, &timerC)
					ms.markApplied(gen, "")
					break
				}
				push = p
				ms.mu.Lock()
				ms.push = p
				ms.mu.Unlock()
				backoff.Reset()
			}
			if push != nil {
				t := tuningOf(want)
				push.tune.Store(&t)
				ms.markApplied(gen, streams.StateLive)
			} else {
				ms.markApplied(gen, "")
			}
		default:
			if cur != nil {
				t := tuningOf(want)
				cur.runner.tune.Store(&t)
				cur.spec = want
				ms.markApplied(gen, "")
			} else if waiting == holdNone {
				cur = ms.start(ctx, want)
				ms.markApplied(gen, streams.StateConnecting)
			} else {
				ms.markApplied(gen, "")
			}
		}
		var runDone chan error
		if cur != nil {
			runDone = cur.done
		}
		select {
		case <-ms.wake:
		case <-ctx.Done():
		case <-timerC:
			timer, timerC = nil, nil
			waiting = holdNone
		case err := <-runDone:
			r := cur
			cur = nil
			ms.foldLive()
			if err == nil {
				ms.log.Info("stream source ended")
				waiting, holdGen = holdEnded, gen
				ms.setState(streams.StateEnded, "")
				break
			}
			ms.failed(err, &backoff, r.start, gen, &waiting, &holdGen, &timer, &timerC)
		}
	}
}

// failed records a failure of the stream's runner and arms the backoff timer.
func (ms *managed) failed(err error, b *Backoff, started time.Time, gen uint64, waiting *hold, holdGen *uint64, timer **time.Timer, timerC *<-chan time.Time) {
	if !started.IsZero() && time.Since(started) >= b.ResetDelay() {
		b.Reset()
	}
	wait := b.Next()
	ms.mu.Lock()
	ms.failures++
	ms.restarts++
	ms.state = streams.StateBackoff
	ms.lastErr = err.Error()
	ms.mu.Unlock()
	ms.log.Warn("stream failed; restarting", "err", err, "retry_in", wait.Round(time.Millisecond))
	*waiting, *holdGen = holdBackoff, gen
	if *timer != nil {
		(*timer).Stop()
	}
	*timer = time.NewTimer(wait)
	*timerC = (*timer).C
}

// start starts a runner for spec in its own goroutine.
func (ms *managed) start(ctx context.Context, spec streams.Spec) *run {
	cfg := StreamConfig{Name: spec.Name, Source: spec.Source, FPS: spec.FPS, MaxWidth: spec.MaxWidth, MaxHeight: spec.MaxHeight,
		JPEGQuality: spec.JPEGQuality, Loop: spec.Loop, Realtime: spec.Realtime, FullFrames: ms.m.FullFrames}
	cfg.SetDefaults()
	r := &streamRunner{cfg: cfg, nc: ms.m.Conn, log: ms.log, obs: ms.obs, decode: ms.m.DecodeSlots}
	r.open = func(ctx context.Context) (Source, error) { return ms.open(ctx, cfg, r.sampling(cfg.Realtime)) }
	t := tuningOf(spec)
	r.tune.Store(&t)
	rctx, cancel := context.WithCancel(ctx)
	x := &run{spec: spec, runner: r, cancel: cancel, done: make(chan error, 1), start: time.Now()}
	ms.log.Info("stream runner starting", "source", streams.RedactSource(spec.Source), "fps", spec.FPS)
	go func() { x.done <- r.run(rctx) }()
	return x
}

// open opens the stream's source through Open. A file is opened unpaced and wrapped so that its
// decode time is observed, looped by reopening it (see loopSource), then paced when Realtime; a
// live source's LiveStats are tracked.
func (ms *managed) open(ctx context.Context, cfg StreamConfig, opts OpenOptions) (Source, error) {
	src, err := Open(ctx, cfg.Source, opts)
	if err != nil {
		return nil, err
	}
	if src.Live() {
		if ss, ok := src.(StatsSource); ok {
			ms.mu.Lock()
			ms.live = ss
			ms.mu.Unlock()
		}
	} else {
		src = timedSource{Source: src, obs: ms.obs}
		if cfg.Loop {
			src = &loopSource{cur: src, open: func(ctx context.Context) (Source, error) {
				s, err := Open(ctx, cfg.Source, opts)
				if err != nil {
					return nil, err
				}
				return timedSource{Source: s, obs: ms.obs}, nil
			}}
		}
		if cfg.Realtime {
			src = &pacedSource{Source: src}
		}
	}
	ms.mu.Lock()
	ms.state, ms.lastErr = streams.StateLive, "" // the failure before, if any, is over
	ms.mu.Unlock()
	return src, nil
}
