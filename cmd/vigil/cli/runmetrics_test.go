package cli

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/metrics"
	"github.com/vigil-video/vigil/pkg/result"
)

// TestAnalyzeDropSamples: every stream has a series per common reason from its first frame (0
// before a drop), slow_consumer exists at 0 from the start under stream "", and drops no stream
// is known for are there too, so each reason sums to the analyzer's total.
func TestAnalyzeDropSamples(t *testing.T) {
	got := map[string]float64{}
	for _, s := range analyzeDropSamples(analyze.Stats{}) {
		got[strings.Join(s.Labels, "/")] = s.Value
	}
	if v, ok := got["/"+analyze.ReasonSlowConsumer]; len(got) != 1 || !ok || v != 0 {
		t.Fatalf("before any frame: %v, want only slow_consumer at 0", got)
	}
	st := analyze.Stats{
		Dropped:         map[string]uint64{result.ReasonQueue: 5, result.ReasonDecode: 1, analyze.ReasonSlowConsumer: 7},
		DroppedByStream: map[string]map[string]uint64{"lobby": {result.ReasonQueue: 5}, "door": {}},
	}
	got = map[string]float64{}
	for _, s := range analyzeDropSamples(st) {
		key := strings.Join(s.Labels, "/")
		if _, dup := got[key]; dup {
			t.Fatalf("series %s twice", key)
		}
		got[key] = s.Value
	}
	for key, want := range map[string]float64{
		"lobby/queue": 5, "lobby/deadline": 0, "lobby/superseded": 0, "door/queue": 0, "door/decode": 0,
		"/slow_consumer": 7, "/decode": 1,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v; all: %v", key, v, ok, want, got)
		}
	}
	// The family passes Prometheus' checks with these samples.
	c := metrics.NewCollector([]metrics.Family{{Name: "vigil_analyze_frames_dropped_total", Help: "h", Type: prometheus.CounterValue,
		Labels: []string{"stream", "reason"}, Collect: func() []metrics.Sample { return analyzeDropSamples(st) }}})
	if n := gatherSeries(t, c)["vigil_analyze_frames_dropped_total"]; len(n) != len(got) {
		t.Errorf("gathered %d series, want %d", len(n), len(got))
	}
}

// TestHTTPMetrics: vigil_http_requests_total counts answered requests by route pattern and code.
func TestHTTPMetrics(t *testing.T) {
	srv := &httpapi.Server{Addr: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler)}
	srv.HandleFunc("GET /v1/things/{id}", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, path := range []string{"/v1/things/1", "/v1/things/2", "/nowhere"} {
		resp, err := http.Get(srv.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	series := gatherSeries(t, httpMetrics(srv))["vigil_http_requests_total"]
	want := map[string]float64{`code="200",route="GET /v1/things/{id}"`: 2, `code="404",route="unmatched"`: 1}
	if len(series) != len(want) {
		t.Fatalf("series %v, want %v", series, want)
	}
	for k, v := range want {
		if series[k] != v {
			t.Errorf("%s = %v, want %v (all %v)", k, series[k], v, series)
		}
	}
}

// gatherSeries registers c in a fresh registry (which checks its descriptions and samples),
// gathers it and returns each family's values by their labels, name="value" joined with commas.
func gatherSeries(t *testing.T, c prometheus.Collector) map[string]map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, f := range fams {
		out[f.GetName()] = map[string]float64{}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"=\""+l.GetValue()+"\"")
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			out[f.GetName()][strings.Join(labels, ",")] = v
		}
	}
	return out
}

// TestAnalyzeMetricsLateHeads: the analyze role's metrics pass Prometheus' pedantic checks and
// count late heads by outcome, each outcome present from the start.
func TestAnalyzeMetricsLateHeads(t *testing.T) {
	got := gatherSeries(t, analyzeMetrics(&analyze.Role{}, 2, 4))["vigil_analyze_late_heads_total"]
	for _, outcome := range []string{"ran", "skipped", "failed"} {
		if v, ok := got[`outcome="`+outcome+`"`]; !ok || v != 0 {
			t.Errorf("vigil_analyze_late_heads_total{outcome=%q} = %v (present %v), want 0; all: %v", outcome, v, ok, got)
		}
	}
}
