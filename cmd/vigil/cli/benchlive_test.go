package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestModelSeconds: bench live reads each model's total inference time from a metrics
// endpoint (the histogram sums, sessions of one model added), and fails on a bad answer.
func TestModelSeconds(t *testing.T) {
	body := `# HELP vigil_model_latency_seconds Inference time.
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
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	got, err := modelSeconds(context.Background(), srv.URL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["fr_detect"] != 0.125 || got["fr_feature"] != 0.5 {
		t.Fatalf("model seconds %v, want fr_detect 0.125 and fr_feature 0.5", got)
	}
	if _, err := modelSeconds(context.Background(), srv.URL+"/nothing"); err == nil {
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
