// Package metrics serves a Vigil process's Prometheus metrics on a listener of its own
// (--metrics-addr), separate from the HTTP API but with its Host check (httpapi.HostGuard), and
// provides collectors that read a role's counters at scrape time, so roles keep plain counters
// and know nothing about Prometheus.
//
// Every process registers into its own registry (NewRegistry); nothing is global.
//
// The package is pure Go.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-video/vigil/pkg/httpapi"
)

// NewRegistry returns a registry holding the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Server serves GET /metrics from Gatherer, and GET /healthz (200 "ok"), on Addr, to requests
// whose Host it serves (AllowedHosts). Fill the fields, Start, and Close when done.
type Server struct {
	// Addr is the listen address (host:port; port 0 picks a free one). Required.
	Addr string
	// Gatherer is what /metrics exposes. Required.
	Gatherer prometheus.Gatherer
	// AllowedHosts are the host names /metrics answers besides IP addresses, localhost (and
	// *.localhost) and the machine's host name, as httpapi.Server.AllowedHosts (pass the same
	// --allowed-hosts): other Host headers get 421 host_not_allowed, which stops a web page
	// rebinding its name to the machine from reading the metrics. /healthz answers any host.
	// Default none.
	AllowedHosts []string
	// Log receives errors. Default slog.Default().
	Log *slog.Logger

	mu   sync.Mutex
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// Start listens on Addr (so an unusable address fails here, not later) and serves in a
// goroutine that Close stops and waits for.
func (s *Server) Start() error {
	if s.Gatherer == nil {
		return errors.New("metrics: no Gatherer")
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	mux := http.NewServeMux()
	handler, err := httpapi.HostGuard(s.AllowedHosts, mux, "/healthz")
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w", s.Addr, err)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.Log.Handler(), slog.LevelWarn), ErrorHandling: promhttp.ContinueOnError,
		Timeout: 10 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	s.mu.Lock()
	s.ln, s.srv, s.done = ln, srv, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Log.Error("metrics server stopped", "err", err)
		}
	}()
	return nil
}

// URL returns the metrics endpoint, http://host:port/metrics; empty before Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String() + "/metrics"
}

// Close stops serving, waits up to ctx for in-flight scrapes, and waits for the serving
// goroutine. Safe to call more than once and before Start.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		_ = srv.Close()
	}
	<-done
	return err
}

// Sample is one value of a Family, with its label values in the Family's label order.
type Sample struct {
	Labels []string
	Value  float64
}

// Family is a metric family read at scrape time by calling Collect.
type Family struct {
	// Name and Help describe the family (Name in Prometheus form, e.g. vigil_analyze_frames_total).
	Name, Help string
	// Type is prometheus.CounterValue or prometheus.GaugeValue.
	Type prometheus.ValueType
	// Labels are the label names; every Sample carries one value per name.
	Labels []string
	// Collect returns the current samples.
	Collect func() []Sample
}

// Histogram is a histogram family read at scrape time from cumulative bucket counts.
type Histogram struct {
	Name, Help string
	// Collect returns the cumulative count of observations ≤ each upper bound, the total count
	// and the sum of observations.
	Collect func() (buckets map[float64]uint64, count uint64, sum float64)
}

// Collector exports Families and Histograms. Build one with NewCollector and register it.
type Collector struct {
	fams  []Family
	descs []*prometheus.Desc
	hists []Histogram
	hdesc []*prometheus.Desc
}

// NewCollector returns a collector over fams and hists.
func NewCollector(fams []Family, hists ...Histogram) *Collector {
	c := &Collector{fams: fams, hists: hists}
	for _, f := range fams {
		c.descs = append(c.descs, prometheus.NewDesc(f.Name, f.Help, f.Labels, nil))
	}
	for _, h := range hists {
		c.hdesc = append(c.hdesc, prometheus.NewDesc(h.Name, h.Help, nil, nil))
	}
	return c
}

// Describe sends every family's description (prometheus.Collector).
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	for _, d := range c.hdesc {
		ch <- d
	}
}

// Collect reads every family (prometheus.Collector). Samples with the wrong number of labels
// are skipped.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for i, f := range c.fams {
		for _, s := range f.Collect() {
			m, err := prometheus.NewConstMetric(c.descs[i], f.Type, s.Value, s.Labels...)
			if err == nil {
				ch <- m
			}
		}
	}
	for i, h := range c.hists {
		buckets, count, sum := h.Collect()
		if m, err := prometheus.NewConstHistogram(c.hdesc[i], count, sum, buckets); err == nil {
			ch <- m
		}
	}
}

// One returns a single unlabelled sample.
func One(v float64) []Sample { return []Sample{{Value: v}} }
