package snapshot

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/pkg/metrics"
)

// Collector exports the ring's Stats, read at scrape time: vigil_snapshot_frames_total
// (frames received), vigil_snapshot_invalid_frames_total, vigil_snapshot_frames_held (gauge),
// and vigil_snapshot_lookups_total{outcome="hit"|"miss"|"crop_error"}.
func (r *Ring) Collector() *metrics.Collector {
	counter := prometheus.CounterValue
	return metrics.NewCollector([]metrics.Family{
		{Name: "vigil_snapshot_frames_total", Help: "Frames the snapshot ring received.", Type: counter,
			Collect: func() []metrics.Sample { return metrics.One(float64(r.Stats().Frames)) }},
		{Name: "vigil_snapshot_invalid_frames_total", Help: "Frame messages the snapshot ring could not parse.", Type: counter,
			Collect: func() []metrics.Sample { return metrics.One(float64(r.Stats().Invalid)) }},
		{Name: "vigil_snapshot_frames_held", Help: "Frames the snapshot ring holds, over all streams.", Type: prometheus.GaugeValue,
			Collect: func() []metrics.Sample { return metrics.One(float64(r.Stats().Held)) }},
		{Name: "vigil_snapshot_lookups_total", Help: "Snapshot requests: hit (frame held), miss (frame gone), crop_error (frame held, crop failed).",
			Type: counter, Labels: []string{"outcome"},
			Collect: func() []metrics.Sample {
				st := r.Stats()
				return []metrics.Sample{{Labels: []string{"hit"}, Value: float64(st.Hits - st.CropErrors)},
					{Labels: []string{"miss"}, Value: float64(st.Misses)},
					{Labels: []string{"crop_error"}, Value: float64(st.CropErrors)}}
			}},
	})
}
