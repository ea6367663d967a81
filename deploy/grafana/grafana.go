// Package grafana holds Vigil's Grafana dashboard (vigil.json: import it in Grafana, or
// provision it from this directory) and the list of the metrics it charts. The dashboard reads a
// Prometheus data source chosen on import ($datasource) and filters per-stream panels by
// $stream.
package grafana

import _ "embed"

//go:embed vigil.json
var dashboard []byte

// Dashboard returns the dashboard JSON (a copy).
func Dashboard() []byte { return append([]byte(nil), dashboard...) }

// Metric is a metric family the dashboard charts.
type Metric struct {
	// Name is the family name (histograms without _bucket, _sum, _count).
	Name string
	// Labels are the labels the dashboard groups or filters by.
	Labels []string
	// Owner is the package that exports it (or should).
	Owner string
	// Proposed marks names no code exports yet: the dashboard's panel for it stays empty until
	// the owner adds it under this name.
	Proposed bool
}

// Metrics returns every metric family the dashboard charts.
func Metrics() []Metric {
	return []Metric{
		{Name: "vigil_ingest_frames_published_total", Labels: []string{"stream"}, Owner: "cmd/vigil/cli (ingest)"},
		{Name: "vigil_ingest_frames_skipped_total", Labels: []string{"stream"}, Owner: "cmd/vigil/cli (ingest)"},
		{Name: "vigil_ingest_errors_total", Labels: []string{"stream"}, Owner: "cmd/vigil/cli (ingest)"},
		{Name: "vigil_ingest_stream_frames_published_total", Labels: []string{"stream"}, Owner: "ingest (Manager)"},
		{Name: "vigil_ingest_stream_frames_dropped_total", Labels: []string{"stream", "reason"}, Owner: "ingest (Manager)"},
		{Name: "vigil_ingest_stream_fps", Labels: []string{"stream"}, Owner: "ingest (Manager)"},
		{Name: "vigil_ingest_stream_capture_to_publish_seconds", Labels: []string{"stream"}, Owner: "ingest (Manager)"},
		{Name: "vigil_ingest_stream_reconnects_total", Labels: []string{"stream"}, Owner: "ingest (Manager)"},
		{Name: "vigil_ingest_stream_source_failures_total", Labels: []string{"stream"}, Owner: "ingest (Manager)"},
		{Name: "vigil_ingest_stream_state", Labels: []string{"stream", "state"}, Owner: "ingest (Manager)"},
		{Name: "vigil_analyze_frames_received_total", Owner: "cmd/vigil/cli (analyze)"},
		{Name: "vigil_analyze_frames_analyzed_total", Owner: "cmd/vigil/cli (analyze)"},
		{Name: "vigil_analyze_faces_total", Owner: "cmd/vigil/cli (analyze)"},
		{Name: "vigil_analyze_frames_dropped_total", Labels: []string{"stream", "reason"}, Owner: "cmd/vigil/cli (analyze)"},
		{Name: "vigil_analyze_queue_frames", Owner: "cmd/vigil/cli (analyze)"},
		{Name: "vigil_analyze_pending_messages", Owner: "cmd/vigil/cli (analyze)"},
		{Name: "vigil_analyze_batch_size", Owner: "cmd/vigil/cli (analyze)"},
		{Name: "vigil_analyze_busy_seconds_total", Owner: "cmd/vigil/cli (analyze)"},
		{Name: "vigil_analyze_workers", Owner: "cmd/vigil/cli (analyze)"},
		{Name: "vigil_analyze_publish_errors_total", Owner: "cmd/vigil/cli (analyze)"},
		{Name: "vigil_model_latency_seconds", Labels: []string{"model"}, Owner: "pkg/onnx (Session.Latency), cmd/vigil/cli"},
		{Name: "vigil_model_cpu_seconds_total", Labels: []string{"model"}, Owner: "pkg/onnx (Session.Latency), cmd/vigil/cli"},
		{Name: "vigil_gallery_identities", Owner: "analyze/gallery", Proposed: true},
		{Name: "vigil_sink_results_total", Labels: []string{"stream"}, Owner: "sink (Prometheus sink)"},
		{Name: "vigil_sink_faces_total", Labels: []string{"stream"}, Owner: "sink (Prometheus sink)"},
		{Name: "vigil_sink_result_latency_seconds", Labels: []string{"stream"}, Owner: "sink (Prometheus sink)"},
		{Name: "vigil_sink_drops_total", Labels: []string{"stream", "reason"}, Owner: "cmd/vigil/cli (sink)"},
		{Name: "vigil_sink_write_errors_total", Labels: []string{"stream"}, Owner: "cmd/vigil/cli (sink)"},
		{Name: "vigil_sink_consumer_pending_messages", Owner: "cmd/vigil/cli (sink)"},
		{Name: "vigil_sink_consumer_ack_pending_messages", Owner: "cmd/vigil/cli (sink)"},
		{Name: "vigil_sink_consumer_redelivered_messages", Owner: "cmd/vigil/cli (sink)"},
		{Name: "vigil_sink_delivered_total", Labels: []string{"sink"}, Owner: "cmd/vigil/cli (from jsonl, webhook, eventstore Delivered())", Proposed: true},
		{Name: "vigil_webhook_deliveries_total", Labels: []string{"webhook", "outcome"}, Owner: "sink/webhook"},
		{Name: "vigil_webhook_retries_total", Labels: []string{"webhook"}, Owner: "sink/webhook"},
		{Name: "vigil_webhook_discarded_total", Labels: []string{"webhook"}, Owner: "sink/webhook"},
		{Name: "vigil_webhook_delivery_seconds", Labels: []string{"webhook"}, Owner: "sink/webhook"},
		{Name: "vigil_webhook_in_flight", Labels: []string{"webhook"}, Owner: "sink/webhook"},
		{Name: "vigil_webhook_queued", Labels: []string{"webhook"}, Owner: "sink/webhook"},
		{Name: "vigil_eventstore_events_total", Labels: []string{"outcome"}, Owner: "sink/eventstore"},
		{Name: "vigil_eventstore_snapshots_total", Labels: []string{"outcome"}, Owner: "sink/eventstore"},
		{Name: "vigil_eventstore_pruned_total", Labels: []string{"table"}, Owner: "sink/eventstore"},
		{Name: "vigil_eventstore_errors_total", Owner: "sink/eventstore"},
		{Name: "vigil_events_consumed_total", Labels: []string{"consumer", "outcome"}, Owner: "sink/eventstore (Consumer)"},
		{Name: "vigil_events_snapshots_total", Labels: []string{"consumer", "outcome"}, Owner: "sink/eventstore (Consumer)"},
		{Name: "vigil_snapshot_frames_held", Owner: "sink/eventstore/snapshot"},
		{Name: "vigil_jsonl_rotations_total", Labels: []string{"file"}, Owner: "sink/jsonl"},
		{Name: "vigil_nats_reconnects_total", Labels: []string{"client"}, Owner: "cmd/vigil/cli"},
		{Name: "vigil_nats_disconnects_total", Labels: []string{"client"}, Owner: "cmd/vigil/cli"},
		{Name: "vigil_nats_slow_consumer_events_total", Labels: []string{"client"}, Owner: "cmd/vigil/cli"},
		{Name: "vigil_nats_connected", Labels: []string{"client"}, Owner: "cmd/vigil/cli"},
		{Name: "vigil_nats_in_messages_total", Labels: []string{"client"}, Owner: "cmd/vigil/cli"},
		{Name: "vigil_nats_out_messages_total", Labels: []string{"client"}, Owner: "cmd/vigil/cli"},
		{Name: "vigil_nats_in_bytes_total", Labels: []string{"client"}, Owner: "cmd/vigil/cli"},
		{Name: "vigil_nats_out_bytes_total", Labels: []string{"client"}, Owner: "cmd/vigil/cli"},
	}
}
