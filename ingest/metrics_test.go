package ingest

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-video/vigil/ingest/rtsptest"
	"github.com/vigil-video/vigil/ingest/streams"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// metricValue returns the value of the series of family name whose labels include want
// (counter, gauge, or a histogram's sample count), and whether it exists.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) (float64, bool) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range fams {
		if fam.GetName() != name {
			continue
		}
	series:
		for _, m := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			return value(m), true
		}
	}
	return 0, false
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// TestManagerMetrics: the collector's values move with a real file stream, a push stream and a
// failing stream, pass Prometheus' lint, and a deleted stream's series go away.
func TestManagerMetrics(t *testing.T) {
	testenv.NeedsTestData(t)
	e := startManager(t, t.TempDir(), nil)
	reg := prometheus.NewRegistry()
	if err := e.mgr.Register(reg); err != nil {
		t.Fatal(err)
	}
	for _, s := range []streams.Spec{fileSpec(t, "cam", 5, 320, 240), {Name: "door", Source: "push", Enabled: true, FPS: 240},
		{Name: "broken", Source: "rtsp://127.0.0.1:1/none", Enabled: true}, {Name: "off", Source: "push"}} {
		if r := httpCall(t, "POST", e.url, specJSON(t, s)); r.status != http.StatusCreated {
			t.Fatalf("create %s: %v", s.Name, r)
		}
	}
	for i := 0; i < 2; i++ {
		if r := httpCall(t, "POST", e.url+"/door/frames", testImage(t, "two_people.jpg")); r.status != http.StatusAccepted {
			t.Fatalf("push: %v", r)
		}
	}
	if r := httpCall(t, "POST", e.url+"/door/frames", testImage(t, "two_people.jpg")[:4000]); r.status != http.StatusBadRequest {
		t.Fatalf("push a truncated image: %v", r)
	}
	get := func(name string, labels ...string) float64 {
		t.Helper()
		want := map[string]string{}
		for i := 0; i+1 < len(labels); i += 2 {
			want[labels[i]] = labels[i+1]
		}
		v, ok := metricValue(t, reg, name, want)
		if !ok {
			t.Fatalf("no series %s%v", name, want)
		}
		return v
	}
	testenv.Eventually(t, 30*time.Second, "cam to publish 6 frames and broken to fail twice", func() bool {
		return get("vigil_ingest_stream_frames_published_total", "stream", "cam") >= 6 &&
			get("vigil_ingest_stream_source_failures_total", "stream", "broken") >= 2
	})
	checks := []struct {
		name   string
		labels []string
		ok     func(float64) bool
		want   string
	}{
		{"vigil_ingest_stream_frames_decoded_total", []string{"stream", "cam"}, func(v float64) bool { return v >= 25 }, ">= 25 (5 per published)"},
		{"vigil_ingest_stream_frames_dropped_total", []string{"stream", "cam", "reason", DropSampled}, func(v float64) bool { return v >= 20 }, ">= 20"},
		{"vigil_ingest_stream_frames_dropped_total", []string{"stream", "cam", "reason", DropPublish}, func(v float64) bool { return v == 0 }, "0"},
		{"vigil_ingest_stream_decode_seconds", []string{"stream", "cam"}, func(v float64) bool { return v >= 25 }, "an observation per decoded frame"},
		{"vigil_ingest_stream_capture_to_publish_seconds", []string{"stream", "cam"}, func(v float64) bool { return v >= 6 }, "an observation per published frame"},
		{"vigil_ingest_stream_state", []string{"stream", "cam", "state", streams.StateLive}, func(v float64) bool { return v == 1 }, "1"},
		{"vigil_ingest_stream_state", []string{"stream", "cam", "state", streams.StateBackoff}, func(v float64) bool { return v == 0 }, "0"},
		{"vigil_ingest_stream_fps", []string{"stream", "cam"}, func(v float64) bool { return v > 2 && v < 10 }, "about 5"},
		{"vigil_ingest_stream_frame_width_pixels", []string{"stream", "cam", "stage", "source"}, func(v float64) bool { return v == 596 }, "596"},
		{"vigil_ingest_stream_frame_width_pixels", []string{"stream", "cam", "stage", "published"}, func(v float64) bool { return v > 0 && v <= 320 }, "<= 320"},
		{"vigil_ingest_stream_frame_height_pixels", []string{"stream", "cam", "stage", "published"}, func(v float64) bool { return v > 0 && v <= 240 }, "<= 240"},
		{"vigil_ingest_stream_frames_published_total", []string{"stream", "door"}, func(v float64) bool { return v == 2 }, "2"},
		{"vigil_ingest_stream_frames_dropped_total", []string{"stream", "door", "reason", DropInvalid}, func(v float64) bool { return v == 1 }, "1"},
		{"vigil_ingest_stream_decode_seconds", []string{"stream", "door"}, func(v float64) bool { return v == 2 }, "2"},
		{"vigil_ingest_stream_state", []string{"stream", "door", "state", streams.StateLive}, func(v float64) bool { return v == 1 }, "1"},
		{"vigil_ingest_stream_state", []string{"stream", "off", "state", streams.StateDisabled}, func(v float64) bool { return v == 1 }, "1"},
		{"vigil_ingest_stream_reconnects_total", []string{"stream", "broken"}, func(v float64) bool { return v >= 2 }, ">= 2"},
		{"vigil_ingest_stream_frames_published_total", []string{"stream", "broken"}, func(v float64) bool { return v == 0 }, "0"},
	}
	for _, c := range checks {
		if v := get(c.name, c.labels...); !c.ok(v) {
			t.Errorf("%s%v = %v, want %s", c.name, c.labels, v, c.want)
		}
	}
	if v := get("vigil_ingest_stream_state", "stream", "broken", "state", streams.StateBackoff) +
		get("vigil_ingest_stream_state", "stream", "broken", "state", streams.StateConnecting); v != 1 {
		t.Errorf("broken is neither in backoff nor connecting")
	}
	all, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(all).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}

	// A deleted stream's series are gone.
	if r := httpCall(t, "DELETE", e.url+"/cam", nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %v", r)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range fams {
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stream" && l.GetValue() == "cam" {
					t.Fatalf("%s still has a series for the deleted stream", fam.GetName())
				}
			}
		}
	}
}

// TestManagerRTSP: an RTSP camera through the manager: live, then, when the publisher goes away
// and comes back, the reconnection shows in the status and the metrics (LiveStats), and frames
// flow again.
func TestManagerRTSP(t *testing.T) {
	srv := rtsptest.New(t, rtsptest.Options{Video: faceVideo(t)})
	e := startManager(t, t.TempDir(), nil)
	reg := prometheus.NewRegistry()
	if err := e.mgr.Register(reg); err != nil {
		t.Fatal(err)
	}
	frames := e.frames(t, "gate")
	if r := httpCall(t, "POST", e.url, []byte(`{"name":"gate","source":"`+srv.URL+`","fps":5,"max_width":320,"max_height":240}`)); r.status != http.StatusCreated {
		t.Fatalf("create: %v", r)
	}
	next(t, frames, 30*time.Second)
	if st, _ := e.mgr.Status("gate"); st.State != streams.StateLive {
		t.Fatalf("state %q", st.State)
	}
	srv.KillPublisher()
	testenv.Eventually(t, 30*time.Second, "the loss to be noticed", func() bool {
		v, _ := metricValue(t, reg, "vigil_ingest_stream_source_failures_total", map[string]string{"stream": "gate"})
		return v >= 1
	})
	if st, _ := e.mgr.Status("gate"); st.State == streams.StateLive || st.Error == "" {
		t.Errorf("after the publisher left: %+v", st)
	}
	if err := srv.StartPublisher(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	for {
		f := next(t, frames, 60*time.Second)
		if f.Captured.After(restarted) {
			break
		}
	}
	testenv.Eventually(t, 10*time.Second, "the reconnection to be counted", func() bool {
		v, _ := metricValue(t, reg, "vigil_ingest_stream_reconnects_total", map[string]string{"stream": "gate"})
		return v >= 1
	})
	if st, _ := e.mgr.Status("gate"); st.State != streams.StateLive || st.Error != "" {
		t.Errorf("after the publisher came back: %+v", st)
	}
	if v, _ := metricValue(t, reg, "vigil_ingest_stream_state", map[string]string{"stream": "gate", "state": streams.StateLive}); v != 1 {
		t.Errorf("state gauge live = %v", v)
	}
}
