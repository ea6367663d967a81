package ingest

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/ingest/streams"
)

// AttachedSource is the source a Status shows for an attached stream: a browser publishing over
// WHIP (the only sources attached today).
const AttachedSource = "whip"

// Statuses returns the attached streams running now, sorted by name, as the stream list shows
// them (GET /v1/streams): source AttachedSource, state live, their counters. They are not in the
// persisted list: they exist while their publisher is connected.
func (a *Attached) Statuses() []streams.Status {
	a.mu.Lock()
	runs := make([]*attachedRun, 0, len(a.running))
	names := make([]string, 0, len(a.running))
	for name, run := range a.running {
		runs = append(runs, run)
		names = append(names, name)
	}
	a.mu.Unlock()
	now := time.Now()
	out := make([]streams.Status, 0, len(runs))
	for i, run := range runs {
		out = append(out, attachedStatus(names[i], run, now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func attachedStatus(name string, run *attachedRun, now time.Time) streams.Status {
	c, o := run.cfg, run.obs
	st := streams.Status{
		Spec: streams.Spec{Name: name, Source: AttachedSource, Enabled: true, FPS: c.FPS, MaxWidth: c.MaxWidth,
			MaxHeight: c.MaxHeight, JPEGQuality: c.JPEGQuality},
		RunsHere: true, State: streams.StateLive,
		Stats: &streams.RunStats{Decoded: o.decoded.Load(), Published: o.published.Load(), SampledOut: o.drops[dropSampled].Load(),
			Width: int(o.outW.Load()), Height: int(o.outH.Load())},
	}
	for i := range o.drops {
		if dropReason(i) != dropSampled {
			st.Stats.Dropped += o.drops[i].Load()
		}
	}
	fps, last := o.fps(now)
	st.Stats.FPS = fps
	if !last.IsZero() {
		t := last.UTC()
		st.Stats.LastPublished = &t
	}
	return st
}

// StreamsCollector exports the streams of m (nil: none) and the attached streams of a (nil:
// none) under the same families, vigil_ingest_stream_* (see Manager.Collector), so that a
// browser's WHIP stream has the series a configured stream has. Register it instead of
// m.Collector() when the process also attaches streams.
func StreamsCollector(m *Manager, a *Attached) prometheus.Collector { return streamsCollector{m, a} }

type streamsCollector struct {
	m *Manager
	a *Attached
}

// Describe sends every family's description.
func (c streamsCollector) Describe(ch chan<- *prometheus.Desc) {
	if c.m != nil {
		managerCollector{c.m}.Describe(ch)
		return
	}
	for _, d := range []*prometheus.Desc{descDecoded, descPublished, descDropped, descFPS, descWidth, descHeight, descState} {
		ch <- d
	}
}

// Collect reads the managed streams, then the attached ones (a name in both is reported once,
// as managed).
func (c streamsCollector) Collect(ch chan<- prometheus.Metric) {
	managed := map[string]bool{}
	if c.m != nil {
		managerCollector{c.m}.Collect(ch)
		for _, ms := range c.m.snapshot() {
			managed[ms.name] = true
		}
	}
	if c.a == nil {
		return
	}
	c.a.mu.Lock()
	runs := make(map[string]*attachedRun, len(c.a.running))
	for name, run := range c.a.running {
		runs[name] = run
	}
	c.a.mu.Unlock()
	now := time.Now()
	for name, run := range runs {
		if managed[name] {
			continue
		}
		o := run.obs
		counter := func(d *prometheus.Desc, v uint64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{name}, labels...)...)
		}
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{name}, labels...)...)
		}
		counter(descDecoded, o.decoded.Load())
		counter(descPublished, o.published.Load())
		for i, r := range dropReasons {
			counter(descDropped, o.drops[i].Load(), r)
		}
		fps, _ := o.fps(now)
		gauge(descFPS, fps)
		gauge(descWidth, float64(o.srcW.Load()), "source")
		gauge(descWidth, float64(o.outW.Load()), "published")
		gauge(descHeight, float64(o.srcH.Load()), "source")
		gauge(descHeight, float64(o.outH.Load()), "published")
		for _, s := range stateNames {
			v := 0.0
			if s == streams.StateLive {
				v = 1
			}
			gauge(descState, v, s)
		}
	}
}
