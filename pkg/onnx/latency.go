package onnx

import (
	"sort"
	"sync/atomic"
	"time"
)

// latencyBounds are the upper bounds, in seconds, of every session's inference latency
// histogram: from 0.5 ms (a landmark model) to 2 s (a large batch on a loaded CPU).
var latencyBounds = [...]float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2}

// latencyHist counts onnxruntime invocations by duration, lock-free, and sums the CPU time of
// the threads that ran them.
type latencyHist struct {
	counts [len(latencyBounds) + 1]atomic.Uint64 // the last: above every bound
	sum    atomic.Int64                          // nanoseconds
	cpu    atomic.Int64                          // nanoseconds of the calling thread's CPU
}

// observe records one invocation that took d, cpu of it on the calling thread.
func (h *latencyHist) observe(d, cpu time.Duration) {
	s := d.Seconds()
	i := sort.SearchFloat64s(latencyBounds[:], s) // first bound >= s
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
	h.cpu.Add(int64(cpu))
}

// Latency is a session's inference latency histogram: one observation per onnxruntime
// invocation (a Run of more than MaxBatch samples makes several), successful ones only.
type Latency struct {
	// Buckets maps each upper bound, in seconds, to the cumulative count of invocations that
	// took at most that long (Prometheus's histogram form).
	Buckets map[float64]uint64
	// Count is the number of invocations; Sum their total duration in seconds.
	Count uint64
	Sum   float64
	// CPU is the CPU time, in seconds, of the threads that called them, during the calls: the
	// whole cost of a session with one intra-op thread (onnxruntime computes on the caller's
	// thread), unlike Sum, which a loaded machine inflates with time spent waiting for a core.
	// With more intra-op threads it counts the caller's share only. 0 where the system has no
	// thread CPU clock.
	CPU float64
}

// Latency returns the session's inference latency histogram so far.
func (s *Session) Latency() Latency {
	l := Latency{Buckets: make(map[float64]uint64, len(latencyBounds))}
	var cum uint64
	for i, b := range latencyBounds {
		cum += s.lat.counts[i].Load()
		l.Buckets[b] = cum
	}
	l.Count = cum + s.lat.counts[len(latencyBounds)].Load()
	l.Sum = time.Duration(s.lat.sum.Load()).Seconds()
	l.CPU = time.Duration(s.lat.cpu.Load()).Seconds()
	return l
}

// Sessions returns the runtime's open sessions, sorted by name (for metrics: every model,
// the face models and custom classifiers alike).
func (r *Runtime) Sessions() []*Session {
	r.mu.Lock()
	out := make([]*Session, 0, len(r.sessions))
	for s := range r.sessions {
		out = append(out, s)
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}
