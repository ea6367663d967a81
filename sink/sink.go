// Package sink is the sink role: it receives results, drops and end-of-stream records from NATS
// and hands results to Sinks (JSON lines on stdout or to a file today; webhooks, Prometheus and
// the web view build on the same contract).
package sink

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/vigil-video/vigil/pkg/result"
)

// Sink receives analysis results.
//
// Contract: Write is called from one goroutine at a time, in arrival order, and returns only
// when the result is handed to the destination (written, sent, stored) or failed. The role
// acknowledges a result to JetStream only after every Sink's Write returned nil; a failed Write
// is logged, counted and, with JetStream, redelivered after a second (to every Sink again), so
// delivery is at least once: a destination that must not see a result twice deduplicates on
// (stream, seq, captured_at). Close flushes and releases the destination; no Write follows it.
type Sink interface {
	Write(ctx context.Context, r result.Result) error
	Close() error
}

// JSONLines writes each result as one JSON line. Lines are flushed as they are written, so a
// user tailing the output sees results live.
type JSONLines struct {
	mu     sync.Mutex
	w      *bufio.Writer
	closer io.Closer
}

// NewJSONLines writes to w; Close does not close w.
func NewJSONLines(w io.Writer) *JSONLines {
	return &JSONLines{w: bufio.NewWriter(w)}
}

// CreateJSONLinesFile truncates or creates path and writes results to it; Close closes it.
func CreateJSONLinesFile(path string) (*JSONLines, error) {
	return OpenJSONLinesFile(path, false)
}

// OpenJSONLinesFile creates path if needed and writes results to it, appending to what it holds
// when appendTo is set (a restarted sink keeps its predecessor's lines) and truncating it
// otherwise. Close closes it.
func OpenJSONLinesFile(path string, appendTo bool) (*JSONLines, error) {
	mode := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appendTo {
		mode = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(path, mode, 0o644)
	if err != nil {
		return nil, fmt.Errorf("jsonl sink: %w", err)
	}
	return &JSONLines{w: bufio.NewWriter(f), closer: f}, nil
}

// Write encodes r as one line and flushes it.
func (j *JSONLines) Write(_ context.Context, r result.Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("jsonl sink: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	b = append(b, '\n')
	if _, err := j.w.Write(b); err != nil {
		return fmt.Errorf("jsonl sink: %w", err)
	}
	if err := j.w.Flush(); err != nil {
		return fmt.Errorf("jsonl sink: %w", err)
	}
	return nil
}

// Close flushes and, for a file, closes it.
func (j *JSONLines) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	err := j.w.Flush()
	if j.closer != nil {
		if cerr := j.closer.Close(); err == nil {
			err = cerr
		}
		j.closer = nil
	}
	return err
}
