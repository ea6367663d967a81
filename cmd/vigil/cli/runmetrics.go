package cli

import (
	"sort"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/metrics"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/result"
)

// httpMetrics exports the requests srv answered, by route pattern and status code
// (vigil_http_requests_total): the route is the pattern it was mounted with, so the series stay
// few whatever paths clients send.
func httpMetrics(srv *httpapi.Server) *metrics.Collector {
	return metrics.NewCollector([]metrics.Family{{Name: "vigil_http_requests_total",
		Help: "HTTP requests answered, by route (the pattern mounted, \"" + httpapi.RouteUnmatched + "\" for none) and status code.",
		Type: prometheus.CounterValue, Labels: []string{"route", "code"},
		Collect: func() []metrics.Sample {
			counts := srv.Requests()
			out := make([]metrics.Sample, 0, len(counts))
			for _, c := range counts {
				out = append(out, metrics.Sample{Labels: []string{c.Route, strconv.Itoa(c.Code)}, Value: float64(c.Count)})
			}
			return out
		}}})
}

// collectors are the collectors of what vigil run's front runs: its HTTP server's requests
// and the event history (store writes, the snapshot ring, the event consumer).
func (fr *front) collectors() []prometheus.Collector {
	out := []prometheus.Collector{httpMetrics(fr.srv)}
	if fr.events != nil {
		out = append(out, fr.events.Collector())
	}
	if fr.ring != nil {
		out = append(out, fr.ring.Collector())
	}
	if fr.consumer != nil {
		out = append(out, fr.consumer.Collector())
	}
	return out
}

// modelLatencyDesc describes vigil_model_latency_seconds.
var modelLatencyDesc = prometheus.NewDesc("vigil_model_latency_seconds",
	"Inference time of one onnxruntime invocation (one batch), by model: the face models and custom classifiers.",
	[]string{"model"}, nil)

// modelCPUDesc describes vigil_model_cpu_seconds_total.
var modelCPUDesc = prometheus.NewDesc("vigil_model_cpu_seconds_total",
	"CPU time of the threads that called onnxruntime, during the calls, by model: the whole inference cost with one intra-op thread, which wall time overstates on a loaded machine.",
	[]string{"model"}, nil)

// modelMetrics exports the inference latency histogram and CPU time of every session open in
// rt, by model name (sessions of the same model are summed).
type modelMetrics struct{ rt *onnx.Runtime }

// Describe sends the metrics' descriptions.
func (m modelMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- modelLatencyDesc
	ch <- modelCPUDesc
}

// Collect reads every session's histogram now.
func (m modelMetrics) Collect(ch chan<- prometheus.Metric) {
	byModel := map[string]onnx.Latency{}
	var names []string
	for _, s := range m.rt.Sessions() {
		l := s.Latency()
		acc, seen := byModel[s.Name()]
		if !seen {
			names = append(names, s.Name())
			acc.Buckets = map[float64]uint64{}
		}
		for b, n := range l.Buckets {
			acc.Buckets[b] += n
		}
		acc.Count += l.Count
		acc.Sum += l.Sum
		acc.CPU += l.CPU
		byModel[s.Name()] = acc
	}
	for _, name := range names {
		l := byModel[name]
		if h, err := prometheus.NewConstHistogram(modelLatencyDesc, l.Count, l.Sum, l.Buckets, name); err == nil {
			ch <- h
		}
		ch <- prometheus.MustNewConstMetric(modelCPUDesc, prometheus.CounterValue, l.CPU, name)
	}
}

// extraCollectors are vigil run's collectors beyond the roles': the front's (HTTP requests,
// event history) and the models' inference latency.
func (r *runStack) extraCollectors() []prometheus.Collector {
	out := r.fr.collectors()
	if r.an != nil && r.an.rt != nil {
		out = append(out, modelMetrics{r.an.rt})
	}
	if r.managed == nil && r.attached != nil { // --once: the WHIP streams' series (else with the managed ones)
		out = append(out, ingest.StreamsCollector(nil, r.attached))
	}
	return out
}

// attachStreams records the WHIP streams' runner and lists its streams in /v1/streams.
func (r *runStack) attachStreams(a *ingest.Attached) {
	r.attached = a
	if r.managed != nil {
		r.managed.reg.Attached = a.Statuses
	}
}

// analyzeDropReasons are the reasons vigil_analyze_frames_dropped_total shows for every stream
// from its first frame, at 0 until one happens (so that rate() and alerts have a series).
var analyzeDropReasons = [...]string{result.ReasonDeadline, result.ReasonQueue, result.ReasonSuperseded, result.ReasonDecode, result.ReasonInfer}

// analyzeDropSamples are vigil_analyze_frames_dropped_total's samples: per stream and reason,
// then under stream "" the drops no stream is known for (slow_consumer always, at 0 at start),
// so that the sum over streams of each reason is the analyzer's total.
func analyzeDropSamples(s analyze.Stats) []metrics.Sample {
	var out []metrics.Sample
	byStream := map[string]uint64{} // reason -> drops counted under a stream
	streams := make([]string, 0, len(s.DroppedByStream))
	for name := range s.DroppedByStream {
		streams = append(streams, name)
	}
	sort.Strings(streams)
	for _, name := range streams {
		reasons := s.DroppedByStream[name]
		for _, reason := range analyzeDropReasons {
			if _, ok := reasons[reason]; !ok {
				out = append(out, metrics.Sample{Labels: []string{name, reason}, Value: 0})
			}
		}
		for reason, n := range reasons {
			out = append(out, metrics.Sample{Labels: []string{name, reason}, Value: float64(n)})
			byStream[reason] += n
		}
	}
	out = append(out, metrics.Sample{Labels: []string{"", analyze.ReasonSlowConsumer}, Value: float64(s.Dropped[analyze.ReasonSlowConsumer])})
	for reason, n := range s.Dropped {
		if reason != analyze.ReasonSlowConsumer && n > byStream[reason] {
			out = append(out, metrics.Sample{Labels: []string{"", reason}, Value: float64(n - byStream[reason])})
		}
	}
	return out
}
