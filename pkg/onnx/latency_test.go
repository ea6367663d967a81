package onnx

import (
	"context"
	"testing"

	tm "github.com/vigil-video/vigil/pkg/onnx/internal/testmodel"
)

// TestSessionLatency: every onnxruntime invocation is observed once (a Run of 5 samples at
// MaxBatch 2 is three), buckets are cumulative and end at Count, failed runs are not observed,
// the calling thread's CPU time during them is summed, and the runtime lists its open sessions
// by name.
func TestSessionLatency(t *testing.T) {
	r := newRuntime(t)
	s := newSession(t, r, "tiny", tm.Tiny(tm.Raw), SessionOptions{MaxBatch: 2})
	b := newSession(t, r, "another", tm.Tiny(tm.Raw), SessionOptions{})
	if l := s.Latency(); l.Count != 0 || l.Sum != 0 {
		t.Fatalf("latency before any run: %+v", l)
	}
	if _, err := s.Run(context.Background(), 5, randInput(1, 5, 6)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(context.Background(), 3, make([]float32, 5)); err == nil {
		t.Fatal("a run with the wrong input size succeeded")
	}
	l := s.Latency()
	if l.Count != 3 || l.Sum <= 0 {
		t.Fatalf("latency after one run of 5 samples at batch 2: %+v, want 3 invocations", l)
	}
	// One intra-op thread computes on the calling thread: its CPU time is counted, and cannot
	// exceed the calls' wall time.
	if l.CPU <= 0 || l.CPU > l.Sum+1e-4 {
		t.Fatalf("CPU %g s for %g s of invocations, want more than 0 and at most the wall time", l.CPU, l.Sum)
	}
	var prev uint64
	for _, bound := range latencyBounds {
		if l.Buckets[bound] < prev || l.Buckets[bound] > l.Count {
			t.Fatalf("buckets not cumulative: %v (count %d)", l.Buckets, l.Count)
		}
		prev = l.Buckets[bound]
	}
	if got := r.Sessions(); len(got) != 2 || got[0] != b || got[1] != s {
		t.Fatalf("Sessions() = %v, want another then tiny", got)
	}
}
