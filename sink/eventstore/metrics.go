package eventstore

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/pkg/metrics"
)

// Collector exports the store's Stats, read at scrape time:
// vigil_eventstore_events_total{outcome="stored"|"duplicate"},
// vigil_eventstore_snapshots_total{outcome="stored"|"refused"}, vigil_eventstore_results_total,
// vigil_eventstore_pruned_total{table="events"|"results"} and vigil_eventstore_errors_total.
func (s *Store) Collector() *metrics.Collector {
	counter := prometheus.CounterValue
	pair := func(a, b string, f func(Stats) (uint64, uint64)) func() []metrics.Sample {
		return func() []metrics.Sample {
			x, y := f(s.Stats())
			return []metrics.Sample{{Labels: []string{a}, Value: float64(x)}, {Labels: []string{b}, Value: float64(y)}}
		}
	}
	return metrics.NewCollector([]metrics.Family{
		{Name: "vigil_eventstore_events_total", Help: "Track events stored (stored) or already stored (duplicate: a redelivery).",
			Type: counter, Labels: []string{"outcome"},
			Collect: pair("stored", "duplicate", func(st Stats) (uint64, uint64) { return st.Events, st.Duplicates })},
		{Name: "vigil_eventstore_snapshots_total", Help: "Face snapshots stored, or refused (not a JPEG, or too large).",
			Type: counter, Labels: []string{"outcome"},
			Collect: pair("stored", "refused", func(st Stats) (uint64, uint64) { return st.Snapshots, st.SnapshotsRefused })},
		{Name: "vigil_eventstore_results_total", Help: "Result summaries stored.", Type: counter,
			Collect: func() []metrics.Sample { return metrics.One(float64(s.Stats().Results)) }},
		{Name: "vigil_eventstore_pruned_total", Help: "Rows removed by retention, by table.", Type: counter, Labels: []string{"table"},
			Collect: pair("events", "results", func(st Stats) (uint64, uint64) { return st.PrunedEvents, st.PrunedResults })},
		{Name: "vigil_eventstore_errors_total", Help: "Event store writes and prunes that failed.", Type: counter,
			Collect: func() []metrics.Sample { return metrics.One(float64(s.Stats().Errors)) }},
	})
}

// Collector exports the consumer's Stats, labelled by its durable name (Durable, also without
// JetStream): vigil_events_consumed_total{consumer, outcome="ok"|"failed"|"invalid"} and
// vigil_events_snapshots_total{consumer, outcome="cut"|"missed"}.
func (c *Consumer) Collector() *metrics.Collector {
	name := func() string {
		if c.Durable == "" {
			return "vigil-events"
		}
		return c.Durable
	}
	return metrics.NewCollector([]metrics.Family{
		{Name: "vigil_events_consumed_total", Help: "Track events handled: ok (every event sink took it), failed (redelivered with JetStream), invalid (dropped).",
			Type: prometheus.CounterValue, Labels: []string{"consumer", "outcome"},
			Collect: func() []metrics.Sample {
				st := c.Stats()
				return []metrics.Sample{{Labels: []string{name(), "ok"}, Value: float64(st.Events)},
					{Labels: []string{name(), "failed"}, Value: float64(st.Failed)},
					{Labels: []string{name(), "invalid"}, Value: float64(st.Invalid)}}
			}},
		{Name: "vigil_events_snapshots_total", Help: "Face snapshots cut for events (cut), or not (missed: the frame was no longer held or did not crop).",
			Type: prometheus.CounterValue, Labels: []string{"consumer", "outcome"},
			Collect: func() []metrics.Sample {
				st := c.Stats()
				return []metrics.Sample{{Labels: []string{name(), "cut"}, Value: float64(st.Snapshots)},
					{Labels: []string{name(), "missed"}, Value: float64(st.SnapshotMisses)}}
			}},
	})
}
