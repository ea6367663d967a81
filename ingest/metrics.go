package ingest

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/ingest/streams"
)

// Reasons a frame is dropped, as the vigil_ingest_stream_frames_dropped_total metric's "reason"
// label names them.
const (
	// DropSampled: not published because the stream's fps is below the source's rate (the
	// sampling the stream asks for, not a loss).
	DropSampled = "sampled"
	// DropReplaced: a live source delivered a newer frame before the stream took this one
	// (ingest slower than the camera; see Latest).
	DropReplaced = "replaced"
	// DropEncode: the frame did not encode as JPEG.
	DropEncode = "encode"
	// DropPublish: NATS refused the frame (the stream then restarts).
	DropPublish = "publish"
	// DropInvalid: a pushed image did not decode.
	DropInvalid = "invalid"
	// DropBusy: a pushed image was refused because the stream had too many in progress.
	DropBusy = "busy"
)

// dropReasons are the reasons a streamObs counts itself (DropReplaced comes from LiveStats).
var dropReasons = [...]string{DropSampled, DropEncode, DropPublish, DropInvalid, DropBusy}

type dropReason int

const (
	dropSampled dropReason = iota
	dropEncode
	dropPublish
	dropInvalid
	dropBusy
)

// fpsWindow is how many publish times the current-fps estimate looks at.
const fpsWindow = 16

// streamObs counts one stream's frames for its status and metrics. It outlives the runners a
// stream goes through (restarts, reconfigurations), so counters only grow while the stream
// exists. Its methods are safe for concurrent use and do nothing on a nil *streamObs.
type streamObs struct {
	decoded, published atomic.Uint64
	drops              [len(dropReasons)]atomic.Uint64
	srcW, srcH         atomic.Int64
	outW, outH         atomic.Int64
	decodeSec          prometheus.Observer
	latencySec         prometheus.Observer

	mu    sync.Mutex
	times [fpsWindow]time.Time // the last publish times, a ring
	n     int                  // how many of times are set
	next  int                  // where the next time goes
}

func (o *streamObs) decodedFrame(w, h int) {
	if o == nil {
		return
	}
	o.decoded.Add(1)
	o.srcW.Store(int64(w))
	o.srcH.Store(int64(h))
}

func (o *streamObs) decodeTime(d time.Duration) {
	if o == nil || o.decodeSec == nil {
		return
	}
	o.decodeSec.Observe(d.Seconds())
}

func (o *streamObs) drop(r dropReason) {
	if o == nil {
		return
	}
	o.drops[r].Add(1)
}

func (o *streamObs) publishedFrame(w, h int, captured time.Time) {
	if o == nil {
		return
	}
	now := time.Now()
	o.published.Add(1)
	o.outW.Store(int64(w))
	o.outH.Store(int64(h))
	if o.latencySec != nil && !captured.IsZero() {
		o.latencySec.Observe(max(0, now.Sub(captured).Seconds()))
	}
	o.mu.Lock()
	o.times[o.next] = now
	o.next = (o.next + 1) % fpsWindow
	o.n = min(o.n+1, fpsWindow)
	o.mu.Unlock()
}

// fps estimates the current published rate from the last publish times: 0 before two frames,
// and 0 once the stream has been silent for three of its recent intervals (at least 2 s).
func (o *streamObs) fps(now time.Time) (float64, time.Time) {
	if o == nil {
		return 0, time.Time{}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == 0 {
		return 0, time.Time{}
	}
	last := o.times[(o.next+fpsWindow-1)%fpsWindow]
	if o.n < 2 {
		return 0, last
	}
	first := o.times[(o.next+fpsWindow-o.n)%fpsWindow]
	span := last.Sub(first)
	if span <= 0 {
		return 0, last
	}
	interval := span / time.Duration(o.n-1)
	if now.Sub(last) > max(3*interval, 2*time.Second) {
		return 0, last
	}
	return float64(o.n-1) / span.Seconds(), last
}

// Metric names and help of a Manager's collector.
var (
	descDecoded = prometheus.NewDesc("vigil_ingest_stream_frames_decoded_total",
		"Frames decoded from the stream's source (push streams: images decoded).", []string{"stream"}, nil)
	descPublished = prometheus.NewDesc("vigil_ingest_stream_frames_published_total",
		"Frames published on vigil.frames.<stream>.", []string{"stream"}, nil)
	descDropped = prometheus.NewDesc("vigil_ingest_stream_frames_dropped_total",
		"Frames not published, by reason: sampled (above the stream's fps, by design), replaced (a newer live frame arrived first), encode, publish, invalid (push image), busy (push refused).",
		[]string{"stream", "reason"}, nil)
	descReconnects = prometheus.NewDesc("vigil_ingest_stream_reconnects_total",
		"Times the stream's source was reopened after it failed (live-source reconnections and restarts).", []string{"stream"}, nil)
	descFailures = prometheus.NewDesc("vigil_ingest_stream_source_failures_total",
		"Source failures: failed opens, lost connections, read timeouts.", []string{"stream"}, nil)
	descFPS = prometheus.NewDesc("vigil_ingest_stream_fps",
		"Current published frames per second (over the last 16 frames; 0 when idle).", []string{"stream"}, nil)
	descWidth = prometheus.NewDesc("vigil_ingest_stream_frame_width_pixels",
		"Width of the last frame: stage source (decoded) or published (after scaling down).", []string{"stream", "stage"}, nil)
	descHeight = prometheus.NewDesc("vigil_ingest_stream_frame_height_pixels",
		"Height of the last frame: stage source (decoded) or published (after scaling down).", []string{"stream", "stage"}, nil)
	descState = prometheus.NewDesc("vigil_ingest_stream_state",
		"1 for the stream's current state (connecting, live, backoff, ended, disabled, stopped), 0 for the others.",
		[]string{"stream", "state"}, nil)
)

// stateNames are the values of descState's "state" label.
var stateNames = []string{streams.StateConnecting, streams.StateLive, streams.StateBackoff, streams.StateEnded,
	streams.StateDisabled, streams.StateStopped}

func newDecodeHist() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vigil_ingest_stream_decode_seconds",
		Help:    "Time to decode one frame: file sources and pushed images (a live source's read mixes decoding with waiting for the camera and is not observed).",
		Buckets: []float64{0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1}}, []string{"stream"})
}

func newLatencyHist() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vigil_ingest_stream_capture_to_publish_seconds",
		Help:    "From a frame's capture (decoded, or a pushed image's Vigil-Captured time) to its publication: sampling, scaling, encoding and waiting.",
		Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}}, []string{"stream"})
}

// managerCollector exports a Manager's streams (see Manager.Collector).
type managerCollector struct{ m *Manager }

// Describe sends every family's description.
func (c managerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDecoded, descPublished, descDropped, descReconnects, descFailures, descFPS,
		descWidth, descHeight, descState} {
		ch <- d
	}
	c.m.decodeHist.Describe(ch)
	c.m.latencyHist.Describe(ch)
}

// Collect reads every stream's counters and gauges now, and the histograms.
func (c managerCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, ms := range c.m.snapshot() {
		name, o := ms.name, ms.obs
		counter := func(d *prometheus.Desc, v uint64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{name}, labels...)...)
		}
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{name}, labels...)...)
		}
		st := ms.status(now)
		live := ms.liveStats()
		counter(descDecoded, o.decoded.Load())
		counter(descPublished, o.published.Load())
		for i, r := range dropReasons {
			counter(descDropped, o.drops[i].Load(), r)
		}
		counter(descDropped, live.FramesReplaced, DropReplaced)
		counter(descReconnects, st.Reconnects)
		counter(descFailures, live.Failures)
		gauge(descFPS, st.FPS)
		gauge(descWidth, float64(o.srcW.Load()), "source")
		gauge(descWidth, float64(o.outW.Load()), "published")
		gauge(descHeight, float64(o.srcH.Load()), "source")
		gauge(descHeight, float64(o.outH.Load()), "published")
		for _, s := range stateNames {
			v := 0.0
			if s == st.State {
				v = 1
			}
			gauge(descState, v, s)
		}
	}
	c.m.decodeHist.Collect(ch)
	c.m.latencyHist.Collect(ch)
}
