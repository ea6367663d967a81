package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestModelSeconds: bench live reads each model's total inference time from a metrics
// endpoint, sessions of one model added: the CPU counters where exported, else the latency
// histograms' sums (wall time); it fails on a bad answer.
func TestModelSeconds(t *testing.T) {
	wall := `# HELP vigil_model_latency_seconds Inference time.
# TYPE vigil_model_latency_seconds histogram
vigil_model_latency_seconds_bucket{model="fr_detect",le="0.01"} 3
vigil_model_latency_seconds_bucket{model="fr_detect",le="+Inf"} 4
vigil_model_latency_seconds_sum{model="fr_detect"} 0.125
vigil_model_latency_seconds_count{model="fr_detect"} 4
vigil_model_latency_seconds_bucket{model="fr_feature",le="+Inf"} 1
vigil_model_latency_seconds_sum{model="fr_feature"} 0.5
vigil_model_latency_seconds_count{model="fr_feature"} 1
# TYPE vigil_frames_total counter
vigil_frames_total 9
`
	cpu := wall + `# TYPE vigil_model_cpu_seconds_total counter
vigil_model_cpu_seconds_total{model="fr_detect"} 0.0625
vigil_model_cpu_seconds_total{model="fr_feature"} 0.25
`
	var body atomic.Pointer[string]
	body.Store(&wall)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(*body.Load()))
	}))
	defer srv.Close()
	got, kind, err := modelSeconds(context.Background(), srv.URL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["fr_detect"] != 0.125 || got["fr_feature"] != 0.5 || kind != "wall" {
		t.Fatalf("model seconds %v (%s), want wall fr_detect 0.125 and fr_feature 0.5", got, kind)
	}
	body.Store(&cpu)
	got, kind, err = modelSeconds(context.Background(), srv.URL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["fr_detect"] != 0.0625 || got["fr_feature"] != 0.25 || kind != "CPU" {
		t.Fatalf("model seconds %v (%s), want CPU fr_detect 0.0625 and fr_feature 0.25", got, kind)
	}
	if _, _, err := modelSeconds(context.Background(), srv.URL+"/nothing"); err == nil {
		t.Fatal("a 404 read as metrics")
	}
}

// TestFullFramesIn: the run flags that make every frame full size are recognised, others not.
func TestFullFramesIn(t *testing.T) {
	for args, want := range map[string]bool{
		"":                          false,
		"--heads none":              false,
		"--heads=none --track=true": false,
		"--full-frames":             true,
		"--full-frames=false":       false,
		"--heads default":           true,
		"--heads=embedding,age":     true,
		"-heads all":                true,
	} {
		if got := fullFramesIn(strings.Fields(args)); got != want {
			t.Errorf("fullFramesIn(%q) = %v, want %v", args, got, want)
		}
	}
}

// TestCapacityNeedsSourcesInRealTime: a run passes the capacity search only when its sources
// delivered what the clips hold in real time: paced files that fell behind (decoding starved
// by the decode slots) offered less, and their streams do not count as served.
func TestCapacityNeedsSourcesInRealTime(t *testing.T) {
	r := &liveReport{streams: 2, fps: 5, window: 10 * time.Second, results: map[string]int{"a": 50, "b": 50},
		otherLatencies: []time.Duration{20 * time.Millisecond}, published: 100}
	if !r.passes(150 * time.Millisecond) {
		t.Fatal("100 frames delivered of 100 in 10 s, no drops, p99 20 ms: want a pass")
	}
	r.published = 80
	if r.passes(150 * time.Millisecond) {
		t.Fatal("80 frames delivered of 100: the sources fell behind, want a fail")
	}
}
