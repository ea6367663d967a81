package backoff_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/backoff"
	"github.com/vigil-video/vigil/pkg/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestSchedule(t *testing.T) {
	b := backoff.Backoff{Initial: time.Second, Max: 3 * time.Second, Multiplier: 3, Jitter: -1}
	for i, want := range []time.Duration{time.Second, 3 * time.Second, 3 * time.Second} {
		if got := b.Next(); got != want {
			t.Fatalf("delay %d = %s, want %s", i, got, want)
		}
	}
	b.Reset()
	if got := b.Next(); got != time.Second {
		t.Fatalf("after Reset: %s, want Initial", got)
	}
	if got := (&backoff.Backoff{}).ResetDelay(); got != 10*time.Second {
		t.Fatalf("default ResetDelay %s, want 10s", got)
	}
}

// TestLoopRestarts: a watch that fails is run again after each failure until ctx ends; then
// Loop returns.
func TestLoopRestarts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var runs atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		backoff.Loop(ctx, &backoff.Backoff{Initial: time.Millisecond, Max: time.Millisecond, Jitter: -1},
			slog.New(slog.DiscardHandler), "test watcher", func(ctx context.Context) error {
				if runs.Add(1) <= 3 {
					return errors.New("watch channel closed")
				}
				<-ctx.Done() // the fourth run follows until the end
				return ctx.Err()
			})
	}()
	testenv.Eventually(t, 10*time.Second, "the fourth run", func() bool { return runs.Load() == 4 })
	cancel()
	<-done
	if n := runs.Load(); n != 4 {
		t.Fatalf("%d runs, want 4 (three failures, then one until ctx ended)", n)
	}
}

// TestLoopStopsWhileWaiting: ctx ending during a wait ends Loop without another run.
func TestLoopStopsWhileWaiting(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var runs atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		backoff.Loop(ctx, &backoff.Backoff{Initial: time.Hour, Max: time.Hour, Jitter: -1},
			slog.New(slog.DiscardHandler), "test watcher", func(context.Context) error {
				runs.Add(1)
				return errors.New("failed")
			})
	}()
	testenv.Eventually(t, 10*time.Second, "the first run", func() bool { return runs.Load() == 1 })
	cancel()
	<-done // an hour's wait would hang the test here
	if n := runs.Load(); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}
}
