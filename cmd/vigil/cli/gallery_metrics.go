package cli

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/pkg/metrics"
)

// galleryMetrics exports the face service's count of corrupt identity records: those the
// gallery watcher currently leaves out of matching, and the reads (API, CLI) that skipped one.
func galleryMetrics(s *faceService) *metrics.Collector {
	return metrics.NewCollector([]metrics.Family{
		{Name: "vigil_gallery_corrupt_records", Help: "Identity records in the gallery bucket that do not decode and are skipped by matching, listing and GET.",
			Type: prometheus.GaugeValue, Collect: func() []metrics.Sample {
				return []metrics.Sample{{Value: float64(s.Gallery.Corrupt())}}
			}},
		{Name: "vigil_gallery_corrupt_reads_total", Help: "Reads of the gallery (GET, list, updates) that found a corrupt identity record and skipped it.",
			Type: prometheus.CounterValue, Collect: func() []metrics.Sample {
				return []metrics.Sample{{Value: float64(s.Store.CorruptReads())}}
			}},
	})
}
