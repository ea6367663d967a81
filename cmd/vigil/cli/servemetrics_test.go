package cli

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestServeMetrics: vigil serve --metrics-addr records the API's requests by route and code
// (vigil_http_requests_total, as vigil run does) and serves them only to the hosts the API
// serves: a name outside --allowed-hosts gets 421 host_not_allowed, an allowed one, localhost
// and IP addresses the metrics.
func TestServeMetrics(t *testing.T) {
	deps := testenv.DepsDir(t)
	b := startSinkBus(t)
	run := startCommand(t, map[string]string{"VIGIL_DEPS": deps}, "serve", "--nats-url", b.url, "--http-addr", "127.0.0.1:0",
		"--metrics-addr", "127.0.0.1:0", "--allowed-hosts", "vigil.example.com", "--log-json")
	base := run.logValue(t, time.Minute, "face API listening", "url")
	metricsURL := run.logValue(t, time.Second, "metrics", "url")
	for range 2 {
		if code := get(t, base+"/v1/identities"); code != http.StatusOK {
			t.Fatalf("GET /v1/identities: %d", code)
		}
	}
	scrapeAs := func(host string) (int, string) { t.Helper(); return testenv.GetAsHost(t, metricsURL, host) }
	const want = `vigil_http_requests_total{code="200",route="GET /v1/identities"} 2`
	for _, host := range []string{"vigil.example.com", "localhost", strings.TrimPrefix(strings.TrimSuffix(metricsURL, "/metrics"), "http://")} {
		if code, body := scrapeAs(host); code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("metrics as %s: %d, want 200 with %s in\n%.2000s", host, code, want, body)
		}
	}
	if code, body := scrapeAs("attacker.example"); code != http.StatusMisdirectedRequest || !strings.Contains(body, "host_not_allowed") {
		t.Errorf("metrics as attacker.example: %d %s, want 421 host_not_allowed", code, body)
	}
	if code := run.stop(t); code != 0 {
		t.Fatalf("vigil serve exited %d:\n%s", code, run.stderr.String())
	}
}

// TestMetricsAllowedHosts: a role without an HTTP API (here vigil sink) serves its metrics to
// the host names --metrics-allowed-hosts lists (a Prometheus scraping by service name) as well
// as to IP addresses, and 421 to any other name.
func TestMetricsAllowedHosts(t *testing.T) {
	b := startSinkBus(t)
	run := startCommand(t, nil, "sink", "--nats-url", b.url, "--quiet", "--log-json", "--events-db", filepath.Join(t.TempDir(), "events.db"),
		"--metrics-addr", "127.0.0.1:0", "--metrics-allowed-hosts", "sink.monitoring,prom.internal")
	metricsURL := run.logValue(t, 10*time.Second, "metrics", "url")
	for _, host := range []string{"sink.monitoring", "prom.internal", strings.TrimPrefix(strings.TrimSuffix(metricsURL, "/metrics"), "http://")} {
		if code, body := testenv.GetAsHost(t, metricsURL, host); code != http.StatusOK || !strings.Contains(body, "vigil_sink_") {
			t.Errorf("metrics as %s: %d, want 200 with the sink's series", host, code)
		}
	}
	if code, body := testenv.GetAsHost(t, metricsURL, "attacker.example"); code != http.StatusMisdirectedRequest || !strings.Contains(body, "host_not_allowed") {
		t.Errorf("metrics as attacker.example: %d %s, want 421 host_not_allowed", code, body)
	}
	if code := run.stop(t); code != 0 {
		t.Fatalf("vigil sink exited %d:\n%s", code, run.stderr.String())
	}
}
