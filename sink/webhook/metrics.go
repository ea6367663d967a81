package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names the Collector exports, each labelled by webhook (Sink.Name).
const (
	MetricDeliveries = "vigil_webhook_deliveries_total" // counter, + outcome: delivered, rejected, gave_up, queue_full, aborted
	MetricRetries    = "vigil_webhook_retries_total"    // counter: attempts after the first
	MetricFiltered   = "vigil_webhook_filtered_total"   // counter: documents the filter left out
	MetricDiscarded  = "vigil_webhook_discarded_total"  // counter: failures Discard turned into success
	MetricInFlight   = "vigil_webhook_in_flight"        // gauge: deliveries in progress
	MetricQueued     = "vigil_webhook_queued"           // gauge: deliveries waiting or in progress
	MetricDuration   = "vigil_webhook_delivery_seconds" // histogram: Write to accepting answer, retries included
)

// Collector exports the Stats of webhook sinks as Prometheus metrics, read at scrape time.
// Register one Collector for all of a process's webhook sinks (names must differ).
type Collector struct {
	sinks                                                              []*Sink
	deliveries, retries, filtered, discarded, flight, queued, duration *prometheus.Desc
}

// NewCollector returns a collector over sinks.
func NewCollector(sinks ...*Sink) *Collector {
	l := []string{"webhook"}
	return &Collector{
		sinks:      sinks,
		deliveries: prometheus.NewDesc(MetricDeliveries, "Webhook deliveries by outcome: delivered, rejected (permanent 3xx/4xx answer), gave_up (attempts exhausted), queue_full, aborted (closed or cancelled).", []string{"webhook", "outcome"}, nil),
		retries:    prometheus.NewDesc(MetricRetries, "Webhook attempts after the first.", l, nil),
		filtered:   prometheus.NewDesc(MetricFiltered, "Documents the webhook's filter left out.", l, nil),
		discarded:  prometheus.NewDesc(MetricDiscarded, "Failed deliveries counted and skipped (Discard).", l, nil),
		flight:     prometheus.NewDesc(MetricInFlight, "Webhook deliveries in progress.", l, nil),
		queued:     prometheus.NewDesc(MetricQueued, "Webhook deliveries waiting or in progress.", l, nil),
		duration:   prometheus.NewDesc(MetricDuration, "Time from Write to the receiver's accepting answer, retries included.", l, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.deliveries, c.retries, c.filtered, c.discarded, c.flight, c.queued, c.duration} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter, gauge := prometheus.CounterValue, prometheus.GaugeValue
	for _, s := range c.sinks {
		st := s.Stats()
		for outcome, v := range map[string]uint64{"delivered": st.Delivered, "rejected": st.Rejected,
			"gave_up": st.GaveUp, "queue_full": st.QueueFull, "aborted": st.Aborted} {
			ch <- prometheus.MustNewConstMetric(c.deliveries, counter, float64(v), s.Name, outcome)
		}
		ch <- prometheus.MustNewConstMetric(c.retries, counter, float64(st.Retries), s.Name)
		ch <- prometheus.MustNewConstMetric(c.filtered, counter, float64(st.Filtered), s.Name)
		ch <- prometheus.MustNewConstMetric(c.discarded, counter, float64(st.Discarded), s.Name)
		ch <- prometheus.MustNewConstMetric(c.flight, gauge, float64(st.InFlight), s.Name)
		ch <- prometheus.MustNewConstMetric(c.queued, gauge, float64(st.Queued), s.Name)
		buckets := make(map[float64]uint64, len(st.DurationBuckets))
		for i, b := range DurationBounds() {
			if i < len(st.DurationBuckets) {
				buckets[b] = st.DurationBuckets[i]
			}
		}
		ch <- prometheus.MustNewConstHistogram(c.duration, st.DurationCount, st.DurationSum, buckets, s.Name)
	}
}
