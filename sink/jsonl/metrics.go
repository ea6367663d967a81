package jsonl

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/pkg/metrics"
)

// NewCollector exports the Stats of writers, labelled by file (Path), read at scrape time:
// vigil_jsonl_lines_total, vigil_jsonl_bytes_total, vigil_jsonl_rotations_total,
// vigil_jsonl_removed_files_total and vigil_jsonl_errors_total.
func NewCollector(writers ...*Writer) *metrics.Collector {
	each := func(f func(Stats) uint64) func() []metrics.Sample {
		return func() []metrics.Sample {
			out := make([]metrics.Sample, 0, len(writers))
			for _, w := range writers {
				out = append(out, metrics.Sample{Labels: []string{w.Path}, Value: float64(f(w.Stats()))})
			}
			return out
		}
	}
	l, counter := []string{"file"}, prometheus.CounterValue
	return metrics.NewCollector([]metrics.Family{
		{Name: "vigil_jsonl_lines_total", Help: "JSON lines written.", Type: counter, Labels: l, Collect: each(func(s Stats) uint64 { return s.Lines })},
		{Name: "vigil_jsonl_bytes_total", Help: "Bytes written.", Type: counter, Labels: l, Collect: each(func(s Stats) uint64 { return s.Bytes })},
		{Name: "vigil_jsonl_rotations_total", Help: "File rotations.", Type: counter, Labels: l, Collect: each(func(s Stats) uint64 { return s.Rotations })},
		{Name: "vigil_jsonl_removed_files_total", Help: "Rotated files removed beyond Keep.", Type: counter, Labels: l, Collect: each(func(s Stats) uint64 { return s.Removed })},
		{Name: "vigil_jsonl_errors_total", Help: "Failed writes and rotations.", Type: counter, Labels: l, Collect: each(func(s Stats) uint64 { return s.Errors })},
	})
}

// Delivered returns the lines written (for vigil_sink_delivered_total).
func (w *Writer) Delivered() uint64 { return w.Stats().Lines }
