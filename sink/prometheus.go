package sink

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/pkg/result"
)

// latencyBuckets are the capture-to-result latency histogram's upper bounds, in seconds.
func latencyBuckets() []float64 {
	return []float64{0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30}
}

// Prometheus is a Sink that turns results into metrics, labelled by stream:
// vigil_sink_results_total, vigil_sink_faces_total and the histogram
// vigil_sink_result_latency_seconds (capture to analysis). Its Write never fails.
type Prometheus struct {
	results, faces *prometheus.CounterVec
	latency        *prometheus.HistogramVec
}

// NewPrometheus registers the metrics in reg and returns the sink.
func NewPrometheus(reg prometheus.Registerer) (*Prometheus, error) {
	p := &Prometheus{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_sink_results_total",
			Help: "Results written, by stream."}, []string{"stream"}),
		faces: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_sink_faces_total",
			Help: "Faces in the results written, by stream."}, []string{"stream"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vigil_sink_result_latency_seconds",
			Help: "Capture-to-result latency of the results written, by stream.", Buckets: latencyBuckets()}, []string{"stream"}),
	}
	for _, c := range []prometheus.Collector{p.results, p.faces, p.latency} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Write counts r and observes its latency.
func (p *Prometheus) Write(_ context.Context, r result.Result) error {
	p.results.WithLabelValues(r.Stream).Inc()
	p.faces.WithLabelValues(r.Stream).Add(float64(len(r.Faces)))
	p.latency.WithLabelValues(r.Stream).Observe(r.LatencyMS / 1000)
	return nil
}

// Close does nothing: the registry outlives the sink.
func (p *Prometheus) Close() error { return nil }
