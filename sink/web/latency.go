package web

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"slices"

	"github.com/vigil-video/vigil/pkg/httpapi"
)

// LatencySample is one drawn frame as a browser measured it, in milliseconds.
type LatencySample struct {
	// Seq is the frame's sequence number.
	Seq uint64 `json:"seq"`
	// TotalMS is from the result's arrival on the server (from NATS) to the overlay drawn in the
	// browser (the browser's clock corrected by its measured offset to the server's).
	TotalMS float64 `json:"total_ms"`
	// ServerMS is from the result's arrival to the server writing it to the browser (queueing).
	ServerMS float64 `json:"server_ms"`
	// ClientMS is from the record being read in the browser to the overlay drawn (image decode,
	// waiting for the next animation frame, drawing).
	ClientMS float64 `json:"client_ms"`
}

// LatencyReport is the body of POST /v1/ui/latency.
type LatencyReport struct {
	Stream  string          `json:"stream"`
	Samples []LatencySample `json:"samples"`
	// Superseded counts frames the browser received but never drew, a newer one having arrived
	// before the next animation frame.
	Superseded uint64 `json:"superseded"`
}

// Percentiles summarises one latency measure, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// LatencySummary is the UI latency over the latest samples browsers reported.
type LatencySummary struct {
	Samples    int         `json:"samples"`
	Total      Percentiles `json:"total_ms"`
	Server     Percentiles `json:"server_ms"`
	Client     Percentiles `json:"client_ms"`
	Superseded uint64      `json:"superseded"`
}

// latencyStats keeps the latest samples reported. Not safe for concurrent use.
type latencyStats struct {
	max        int
	samples    []LatencySample
	next       int
	superseded uint64
}

func newLatencyStats(n int) latencyStats { return latencyStats{max: n} }

func (l *latencyStats) add(s LatencySample) {
	if len(l.samples) < l.max {
		l.samples = append(l.samples, s)
		return
	}
	l.samples[l.next] = s
	l.next = (l.next + 1) % l.max
}

func (l *latencyStats) summary() LatencySummary {
	out := LatencySummary{Samples: len(l.samples), Superseded: l.superseded}
	pick := func(f func(LatencySample) float64) Percentiles {
		if len(l.samples) == 0 {
			return Percentiles{}
		}
		v := make([]float64, len(l.samples))
		for i, s := range l.samples {
			v[i] = f(s)
		}
		slices.Sort(v)
		q := func(p float64) float64 { return v[min(len(v)-1, int(math.Ceil(p*float64(len(v))))-1)] }
		return Percentiles{P50: q(0.5), P95: q(0.95), P99: q(0.99), Max: v[len(v)-1]}
	}
	out.Total = pick(func(s LatencySample) float64 { return s.TotalMS })
	out.Server = pick(func(s LatencySample) float64 { return s.ServerMS })
	out.Client = pick(func(s LatencySample) float64 { return s.ClientMS })
	return out
}

// maxLatencySamples bounds the samples of one report.
const maxLatencySamples = 512

func (u *UI) serveLatency(w http.ResponseWriter, r *http.Request) {
	var rep LatencyReport
	dec := json.NewDecoder(io.LimitReader(r.Body, 128<<10))
	if err := dec.Decode(&rep); err != nil {
		if httpapi.IsBodyTooLarge(err) {
			httpapi.WriteBodyTooLarge(w, httpapi.MaxUpload(r))
			return
		}
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_json", "the body must be a JSON latency report: "+err.Error())
		return
	}
	if len(rep.Samples) > maxLatencySamples {
		httpapi.WriteError(w, http.StatusBadRequest, "too_many_samples", "at most 512 samples per report")
		return
	}
	u.mu.Lock()
	for _, s := range rep.Samples {
		if finite(s.TotalMS) && finite(s.ServerMS) && finite(s.ClientMS) && math.Abs(s.TotalMS) < 3.6e6 {
			u.lat.add(s)
		}
	}
	u.lat.superseded += rep.Superseded
	u.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// Stats are the UI's counters, as GET /v1/ui/stats answers them.
type Stats struct {
	Streams int `json:"streams"`
	Viewers int `json:"viewers"`
	Events  int `json:"events"`
	// IntakeDropped counts NATS messages dropped because the UI's intake was full; Invalid the
	// messages that did not parse.
	IntakeDropped uint64         `json:"intake_dropped"`
	Invalid       uint64         `json:"invalid"`
	Latency       LatencySummary `json:"latency"`
}

// Stats returns the UI's counters and the latency browsers reported.
func (u *UI) Stats() Stats {
	dropped := u.intakeDropped()
	u.mu.Lock()
	defer u.mu.Unlock()
	return Stats{Streams: len(u.streams), Viewers: len(u.viewers), Events: len(u.events.items), IntakeDropped: dropped,
		Invalid: u.invalid, Latency: u.lat.summary()}
}

func (u *UI) serveStats(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	httpapi.WriteJSON(w, http.StatusOK, u.Stats())
}

// serveClock answers GET /v1/ui/clock: the server's time, for browsers to measure their clock's
// offset (they correct latency measurements with it).
func (u *UI) serveClock(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	httpapi.WriteJSON(w, http.StatusOK, map[string]float64{"server_ms": unixMS(u.cfg.now())})
}
