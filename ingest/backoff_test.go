package ingest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/testenv"
)

func TestBackoffSchedule(t *testing.T) {
	b := Backoff{Jitter: -1}
	want := []time.Duration{500, 1000, 2000, 4000, 8000, 16000, 30000, 30000}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("delay %d = %v, want %v", i, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.Next(); got != 500*time.Millisecond {
		t.Fatalf("after Reset: %v, want 500ms", got)
	}
	c := Backoff{Initial: time.Second, Max: 3 * time.Second, Multiplier: 3, Jitter: -1}
	for i, w := range []time.Duration{1, 3, 3} {
		if got := c.Next(); got != w*time.Second {
			t.Fatalf("custom delay %d = %v, want %v", i, got, w*time.Second)
		}
	}
	// Max below Initial: Initial wins.
	d := Backoff{Initial: time.Second, Max: time.Millisecond, Jitter: -1}
	if got := d.Next(); got != time.Second {
		t.Fatalf("Max < Initial: %v", got)
	}
}

// TestBackoffJitter: the default jitter spreads each delay over ±20% without exceeding Max.
func TestBackoffJitter(t *testing.T) {
	seen := map[time.Duration]bool{}
	for i := 0; i < 200; i++ {
		b := Backoff{}
		d := b.Next()
		if d < 400*time.Millisecond || d > 600*time.Millisecond {
			t.Fatalf("first delay %v outside 500ms ± 20%%", d)
		}
		seen[d] = true
		for j := 0; j < 12; j++ {
			if d := b.Next(); d > 30*time.Second {
				t.Fatalf("delay %v above Max", d)
			}
		}
	}
	if len(seen) < 50 {
		t.Fatalf("only %d distinct delays in 200: no jitter", len(seen))
	}
}

func TestLiveStateString(t *testing.T) {
	for s, want := range map[LiveState]string{StateConnecting: "connecting", StateLive: "live",
		StateBackoff: "backoff", StateClosed: "closed", LiveState(9): "LiveState(9)"} {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", int32(s), s.String(), want)
		}
	}
}

// TestReconnectorRetries: a Reconnector whose stream is unreachable keeps trying with backoff
// (its state shows it), counting failures, until its context ends.
func TestReconnectorRetries(t *testing.T) {
	url := "rtsp://" + freePort(t) + "/cam"
	r := &Reconnector{
		Open: func(ctx context.Context) (Source, error) {
			return OpenNetwork(ctx, url, NetworkOptions{OpenTimeout: time.Second})
		},
		Backoff: Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond},
		Name:    "unreachable",
	}
	if err := r.Connect(context.Background()); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Connect: %v, want the refusal", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(ctx)
		done <- err
	}()
	testenv.Eventually(t, 10*time.Second, "three failed attempts in backoff", func() bool {
		st := r.Stats()
		return st.Failures >= 4 && st.State == StateBackoff
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Read returned %v, want context.Canceled", err)
	}
	st := r.Stats()
	if st.State != StateClosed || st.Reconnects != 0 || st.FramesRead != 0 || !strings.Contains(st.LastError, "refused") {
		t.Fatalf("stats %+v", st)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Reconnector{}).Read(context.Background()); err == nil {
		t.Fatal("a Reconnector without Open read")
	}
}
