// Package backoff spaces retries: capped exponential delays with jitter (Backoff), and Loop, the
// one restart loop for long-running work that fails now and then (KV watchers, reconnecting
// sources). Pure Go.
package backoff

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Backoff computes capped exponential delays with jitter between reconnection attempts. The
// zero value uses the defaults. It is not safe for concurrent use.
type Backoff struct {
	// Initial is the first delay. Default 500 ms.
	Initial time.Duration
	// Max caps the delay. Default 30 s.
	Max time.Duration
	// Multiplier grows the delay after each attempt. Default 2.
	Multiplier float64
	// Jitter spreads each delay uniformly over ±Jitter of its value, so cameras that fail
	// together do not reconnect in lockstep. Default 0.2; a negative value disables it.
	Jitter float64
	// ResetAfter is how long an attempt must stay healthy (a source delivering frames, a watcher
	// following its bucket) before the delay starts again from Initial. Default 10 s.
	ResetAfter time.Duration

	attempt int
}

func (b *Backoff) defaults() (initial, maxDelay time.Duration, mult, jitter float64) {
	initial, maxDelay, mult, jitter = b.Initial, b.Max, b.Multiplier, b.Jitter
	if initial <= 0 {
		initial = 500 * time.Millisecond
	}
	if maxDelay <= 0 {
		maxDelay = 30 * time.Second
	}
	if maxDelay < initial {
		maxDelay = initial
	}
	if mult < 1 {
		mult = 2
	}
	switch {
	case jitter == 0:
		jitter = 0.2
	case jitter < 0:
		jitter = 0
	case jitter > 1:
		jitter = 1
	}
	return initial, maxDelay, mult, jitter
}

// Next returns the delay before the next attempt and advances the schedule: Initial, then
// Initial*Multiplier^n capped at Max, each spread by Jitter (never beyond Max).
func (b *Backoff) Next() time.Duration {
	initial, maxDelay, mult, jitter := b.defaults()
	d := float64(initial)
	for i := 0; i < b.attempt && d < float64(maxDelay); i++ {
		d *= mult
	}
	d = min(d, float64(maxDelay))
	b.attempt++
	if jitter > 0 {
		d *= 1 - jitter + 2*jitter*rand.Float64()
	}
	return time.Duration(min(d, float64(maxDelay)))
}

// Reset starts the schedule again from Initial.
func (b *Backoff) Reset() { b.attempt = 0 }

// ResetDelay is ResetAfter once its default applies: how long an attempt must stay healthy
// before the schedule starts again from Initial.
func (b *Backoff) ResetDelay() time.Duration {
	if b.ResetAfter <= 0 {
		return 10 * time.Second
	}
	return b.ResetAfter
}

// Loop runs fn until ctx ends. Whenever fn returns before that (failing, or its watch ending),
// Loop logs it at warning level as "<what> stopped; restarting", waits per b and runs fn again;
// a run that lasted b.ResetDelay() or more restarts the schedule from b.Initial. Loop returns
// when ctx ends, at once if it is waiting.
func Loop(ctx context.Context, b *Backoff, log *slog.Logger, what string, fn func(context.Context) error) {
	for ctx.Err() == nil {
		start := time.Now()
		err := fn(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) >= b.ResetDelay() {
			b.Reset()
		}
		wait := b.Next()
		log.Warn(what+" stopped; restarting", "err", err, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
