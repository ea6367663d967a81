package sink

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/bus/bustest"
	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// memSink records results; failFirst makes the first Write of each seq fail once.
type memSink struct {
	mu        sync.Mutex
	got       []result.Result
	failFirst bool
	failed    map[uint64]bool
}

func (m *memSink) Write(_ context.Context, r result.Result) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failFirst && !m.failed[r.Seq] {
		if m.failed == nil {
			m.failed = map[uint64]bool{}
		}
		m.failed[r.Seq] = true
		return errors.New("destination unavailable")
	}
	m.got = append(m.got, r)
	return nil
}

func (m *memSink) Close() error { return nil }

func (m *memSink) seqs() map[uint64]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[uint64]int{}
	for _, r := range m.got {
		out[r.Seq]++
	}
	return out
}

func (m *memSink) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.got)
}

func jsSetup(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	s := bustest.StartServer(t)
	nc, err := bus.Connect(context.Background(), s.ClientURL(), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bus.EnsureStreams(ctx, js, config.Default().JetStream, nil); err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func storeDoc(t *testing.T, js jetstream.JetStream, prefix, stream string, doc any) {
	t.Helper()
	subj, _ := bus.Subject(prefix, stream)
	b, _ := json.Marshal(doc)
	if _, err := js.Publish(context.Background(), subj, b); err != nil {
		t.Fatal(err)
	}
}

func storeResults(t *testing.T, js jetstream.JetStream, stream string, from, to uint64) {
	t.Helper()
	for s := from; s <= to; s++ {
		storeDoc(t, js, bus.ResultsPrefix, stream, result.Result{Schema: 1, Stream: stream, Seq: s, Faces: []result.Face{}, LatencyMS: 120})
	}
}

// runRole starts r and returns a stop function that cancels it and returns Run's error.
func runRole(t *testing.T, r *Role) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-r.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return")
			return nil
		}
	}
}

// TestDurableResume: a sink that stops resumes, through its durable consumer, with what was
// stored meanwhile; nothing is lost or written twice; results stored before a new consumer
// existed are delivered (deliver all).
func TestDurableResume(t *testing.T) {
	nc, js := jsSetup(t)
	storeResults(t, js, "cam", 1, 10)
	first := &memSink{}
	r1 := &Role{Conn: nc, Sinks: []Sink{first}, JetStream: js, AckWait: 2 * time.Second}
	stop := runRole(t, r1)
	testenv.Eventually(t, 30*time.Second, "10 results", func() bool { return first.len() == 10 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	storeResults(t, js, "cam", 11, 25) // while no sink runs
	second := &memSink{}
	r2 := &Role{Conn: nc, Sinks: []Sink{second}, JetStream: js, AckWait: 2 * time.Second}
	stop = runRole(t, r2)
	testenv.Eventually(t, 30*time.Second, "15 more results", func() bool { return second.len() == 15 })
	storeResults(t, js, "cam", 26, 30)
	testenv.Eventually(t, 30*time.Second, "5 live results", func() bool { return second.len() == 20 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for s, n := range second.seqs() {
		if s <= 10 || n != 1 {
			t.Fatalf("resumed sink got seq %d %d times", s, n)
		}
	}
	info, err := js.Consumer(context.Background(), bus.ResultsStream, "vigil-sink")
	if err != nil {
		t.Fatal(err)
	}
	if ci := info.CachedInfo(); ci.Config.AckPolicy != jetstream.AckExplicitPolicy || ci.Config.Durable != "vigil-sink" {
		t.Fatalf("consumer %+v", ci.Config)
	}
}

// TestDurableAckAfterWrite: a result whose Write failed is not acknowledged: it comes back and
// is written; nothing is skipped.
func TestDurableAckAfterWrite(t *testing.T) {
	nc, js := jsSetup(t)
	flaky := &memSink{failFirst: true}
	r := &Role{Conn: nc, Sinks: []Sink{flaky}, JetStream: js, AckWait: time.Second, Durable: "flaky"}
	stop := runRole(t, r)
	storeResults(t, js, "cam", 1, 5)
	testenv.Eventually(t, 30*time.Second, "every result after a redelivery", func() bool { return flaky.len() == 5 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for s := uint64(1); s <= 5; s++ {
		if flaky.seqs()[s] != 1 {
			t.Fatalf("seq %d written %d times", s, flaky.seqs()[s])
		}
	}
	if p := r.Progress()["cam"]; p.WriteErrors != 5 || p.Results != 5 {
		t.Fatalf("progress %+v", p)
	}
}

// TestDurableDrainCatchesUp: when its context ends, the sink first writes what the stream still
// holds for it, then returns.
func TestDurableDrainCatchesUp(t *testing.T) {
	nc, js := jsSetup(t)
	storeResults(t, js, "cam", 1, 300)
	out := &memSink{}
	r := &Role{Conn: nc, Sinks: []Sink{out}, JetStream: js, Buffer: 16, MaxAckPending: 16}
	stop := runRole(t, r)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if out.len() != 300 {
		t.Fatalf("wrote %d of 300 stored results before stopping", out.len())
	}
	ci, err := r.ConsumerInfo(context.Background())
	if err != nil || ci.NumPending != 0 || ci.NumAckPending != 0 {
		t.Fatalf("consumer after drain: %+v %v", ci, err)
	}
}

// TestDurableAwaitAndLost: a finite stream completes from stored results, drops and its end
// record; frames that never got an outcome are counted lost after LostAfter.
func TestDurableAwaitAndLost(t *testing.T) {
	nc, js := jsSetup(t)
	storeResults(t, js, "cam", 1, 3)
	storeDoc(t, js, bus.DropsPrefix, "cam", result.Drop{Schema: 1, Stream: "cam", Seq: 4, Reason: result.ReasonDeadline})
	storeDoc(t, js, bus.EOSPrefix, "cam", result.EndOfStream{Schema: 1, Stream: "cam", Frames: 7})
	out := &memSink{}
	reg := prometheus.NewRegistry()
	prom, err := NewPrometheus(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := &Role{Conn: nc, Sinks: []Sink{out, prom}, JetStream: js, Await: []string{"cam"}, LostAfter: 300 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	p := r.Progress()["cam"]
	if !p.Complete() || p.Results != 3 || p.Lost != 3 || p.DropReasons[ReasonLost] != 3 || p.DropReasons[result.ReasonDeadline] != 1 {
		t.Fatalf("progress %+v", p)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Fatal("frames counted lost before LostAfter")
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "vigil_sink_results_total":
				found[f.GetName()] = m.GetCounter().GetValue() == 3
			case "vigil_sink_result_latency_seconds":
				found[f.GetName()] = m.GetHistogram().GetSampleCount() == 3 && m.GetHistogram().GetSampleSum() > 0.35
			}
		}
	}
	if !found["vigil_sink_results_total"] || !found["vigil_sink_result_latency_seconds"] {
		t.Fatalf("metrics %v", fams)
	}
}

// TestSeqSet: the redelivery memory forgets the oldest sequences first.
func TestSeqSet(t *testing.T) {
	s := newSeqSet(3)
	for i := uint64(1); i <= 5; i++ {
		s.add(i)
		s.add(i)
	}
	for i, want := range map[uint64]bool{1: false, 2: false, 3: true, 4: true, 5: true} {
		if s.has(i) != want {
			t.Fatalf("has(%d) = %v", i, !want)
		}
	}
}

// TestDurableStoppedWhileOpening: a sink stopped before its durable consumer is open (vigil sink
// shut down while it starts) stops cleanly: nothing was read, so there is nothing to report.
func TestDurableStoppedWhileOpening(t *testing.T) {
	nc, js := jsSetup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := &Role{Conn: nc, Sinks: []Sink{&memSink{}}, JetStream: js, Durable: "stopped-early"}
	if err := r.Run(ctx); err != nil {
		t.Fatalf("Run stopped before its consumer opened: %v, want nil", err)
	}
}
