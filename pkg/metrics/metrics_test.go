package metrics

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vigil-video/vigil/pkg/testenv"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestServerAndCollector: the endpoint serves families read at scrape time, labelled samples,
// a histogram from cumulative counts, the Go and process collectors; Close stops it.
func TestServerAndCollector(t *testing.T) {
	reg := NewRegistry()
	n := 0.0
	reg.MustRegister(NewCollector([]Family{
		{Name: "vigil_test_frames_total", Help: "Frames.", Type: prometheus.CounterValue, Collect: func() []Sample { n++; return One(n) }},
		{Name: "vigil_test_dropped_total", Help: "Drops.", Type: prometheus.CounterValue, Labels: []string{"reason"},
			Collect: func() []Sample {
				return []Sample{{Labels: []string{"deadline"}, Value: 2}, {Labels: []string{"queue"}, Value: 1}, {Labels: []string{"x", "y"}, Value: 9}}
			}},
	}, Histogram{Name: "vigil_test_batch_size", Help: "Batch sizes.", Collect: func() (map[float64]uint64, uint64, float64) {
		return map[float64]uint64{1: 3, 2: 5, 4: 6}, 6, 13
	}}))
	s := &Server{Addr: "127.0.0.1:0", Gatherer: reg}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	get := func(url string) string {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", url, resp.StatusCode)
		}
		return string(b)
	}
	body := get(s.URL())
	for _, want := range []string{"vigil_test_frames_total 1", `vigil_test_dropped_total{reason="deadline"} 2`, `vigil_test_dropped_total{reason="queue"} 1`,
		`vigil_test_batch_size_bucket{le="2"} 5`, `vigil_test_batch_size_bucket{le="+Inf"} 6`, "vigil_test_batch_size_sum 13", "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %q in\n%s", want, body)
		}
	}
	if strings.Contains(body, `"x"`) {
		t.Error("a sample with the wrong label count was exported")
	}
	if !strings.Contains(get(s.URL()), "vigil_test_frames_total 2") {
		t.Error("families are not read at each scrape")
	}
	if got := get(strings.TrimSuffix(s.URL(), "/metrics") + "/healthz"); got != "ok\n" {
		t.Errorf("healthz %q", got)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(s.URL()); err == nil {
		t.Error("still serving after Close")
	}
}

func TestServerBadAddress(t *testing.T) {
	s := &Server{Addr: "not an address", Gatherer: NewRegistry()}
	if err := s.Start(); err == nil || !strings.Contains(err.Error(), "not an address") {
		t.Fatalf("Start: %v", err)
	}
	if err := (&Server{Addr: "127.0.0.1:0"}).Start(); err == nil {
		t.Fatal("started without a Gatherer")
	}
}

// TestServerHostCheck: the metrics endpoint refuses Host headers it does not serve with 421
// host_not_allowed (a DNS-rebound page cannot read it), as the API server does with the same
// --allowed-hosts: allowed names, localhost and IP addresses get the metrics; /healthz answers
// any host; an invalid entry fails Start.
func TestServerHostCheck(t *testing.T) {
	reg := NewRegistry()
	reg.MustRegister(NewCollector([]Family{{Name: "vigil_test_frames_total", Help: "Frames.", Type: prometheus.CounterValue,
		Collect: func() []Sample { return One(7) }}}))
	s := &Server{Addr: "127.0.0.1:0", Gatherer: reg, AllowedHosts: []string{"metrics.example.com", "*.corp.example"}}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	get := func(url, host string) (int, string) { t.Helper(); return testenv.GetAsHost(t, url, host) }
	for _, host := range []string{"attacker.example", "metrics.example.com.evil.example", "corp.example"} {
		if code, body := get(s.URL(), host); code != http.StatusMisdirectedRequest || !strings.Contains(body, "host_not_allowed") ||
			strings.Contains(body, "vigil_test_frames_total") {
			t.Errorf("Host %s: %d %s, want 421 host_not_allowed", host, code, body)
		}
	}
	for _, host := range []string{"metrics.example.com", "metrics.example.com:9090", "prom.corp.example", "localhost", "127.0.0.1:9090", "[::1]"} {
		if code, body := get(s.URL(), host); code != http.StatusOK || !strings.Contains(body, "vigil_test_frames_total 7") {
			t.Errorf("Host %s: %d %.200s, want 200 with the metrics", host, code, body)
		}
	}
	if code, body := get(strings.TrimSuffix(s.URL(), "/metrics")+"/healthz", "attacker.example"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("healthz for any host: %d %q", code, body)
	}
	bad := &Server{Addr: "127.0.0.1:0", Gatherer: reg, AllowedHosts: []string{"http://x/"}}
	if err := bad.Start(); err == nil {
		_ = bad.Close(context.Background())
		t.Fatal("started with an invalid allowed host")
	}
}
