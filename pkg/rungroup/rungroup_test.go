package rungroup_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sync"
	"testing"

	"github.com/vigil-video/vigil/pkg/rungroup"
	"github.com/vigil-video/vigil/pkg/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// recorder notes the order of events from several goroutines.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// blocker is an actor that runs until interrupted and records when it returns.
func blocker(rec *recorder, name string, err error) (func() error, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	return func() error {
			<-ctx.Done()
			rec.add(name + " returned")
			return err
		}, func() {
			rec.add(name + " interrupted")
			cancel()
		}
}

func TestRunStopsInOrderOfAdd(t *testing.T) {
	var (
		g   rungroup.Group
		rec recorder
	)
	for _, name := range []string{"ingest", "analyze", "sink"} {
		g.Add(blocker(&rec, name, nil))
	}
	trigger := make(chan struct{})
	g.Add(func() error { <-trigger; rec.add("signal returned"); return nil }, func() { rec.add("signal interrupted") })
	close(trigger)
	if err := g.Run(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []string{
		"signal returned",
		"ingest interrupted", "ingest returned",
		"analyze interrupted", "analyze returned",
		"sink interrupted", "sink returned",
		"signal interrupted",
	}
	got := rec.get()
	if len(got) != len(want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %q, want %q", got, want)
		}
	}
}

// A later actor is interrupted only once the earlier one has returned, even when the earlier
// one takes its time to finish after its interrupt.
func TestRunWaitsForEachBeforeTheNext(t *testing.T) {
	var (
		g        rungroup.Group
		rec      recorder
		released = make(chan struct{})
	)
	// "slow" finishes only some work after its interrupt; "next" must not be interrupted before.
	g.Add(func() error {
		<-released
		for range 1000 {
			runtime.Gosched()
		}
		rec.add("slow returned")
		return nil
	}, func() { close(released) })
	g.Add(blocker(&rec, "next", nil))
	g.Add(func() error { return nil }, func() {}) // returns at once: starts the shutdown
	if err := g.Run(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := rec.get()
	want := []string{"slow returned", "next interrupted", "next returned"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("events %q, want %q", got, want)
	}
}

func TestRunJoinsErrorsInOrderOfAdd(t *testing.T) {
	var (
		g   rungroup.Group
		rec recorder
	)
	errA, errB := errors.New("a failed"), errors.New("b failed on stop")
	g.Add(func() error { return errA }, func() {})
	g.Add(blocker(&rec, "b", errB))
	g.Add(blocker(&rec, "c", nil))
	err := g.Run()
	if !errors.Is(err, errA) || !errors.Is(err, errB) {
		t.Fatalf("Run = %v, want both %v and %v", err, errA, errB)
	}
	if err.Error() != "a failed\nb failed on stop" {
		t.Fatalf("Run = %q, want the errors in the order added", err)
	}
}

func TestRunCallsEveryInterruptOnce(t *testing.T) {
	var g rungroup.Group
	calls := make([]int, 3)
	for i := range calls {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			if i == 1 {
				return nil // returns by itself: still interrupted, once
			}
			<-ctx.Done()
			return nil
		}, func() { calls[i]++; cancel() })
	}
	if err := g.Run(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for i, n := range calls {
		if n != 1 {
			t.Errorf("actor %d interrupted %d times, want 1", i, n)
		}
	}
}

func TestRunEmpty(t *testing.T) {
	var g rungroup.Group
	if err := g.Run(); err != nil {
		t.Fatalf("Run of an empty group = %v, want nil", err)
	}
}
