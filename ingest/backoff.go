package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/vigil-video/vigil/pkg/backoff"
)

// Backoff computes capped exponential delays with jitter between reconnection attempts: the
// shared backoff.Backoff (pkg/backoff), whose zero value uses the defaults.
type Backoff = backoff.Backoff

// LiveState is where a live source stands in its connection cycle.
type LiveState int32

// Live source states.
const (
	// StateConnecting: opening the stream.
	StateConnecting LiveState = iota
	// StateLive: connected and delivering frames.
	StateLive
	// StateBackoff: the stream failed; waiting before the next attempt.
	StateBackoff
	// StateClosed: closed, or stopped after its context ended.
	StateClosed
)

// String names the state for logs and metrics.
func (s LiveState) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateLive:
		return "live"
	case StateBackoff:
		return "backoff"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("LiveState(%d)", int32(s))
}

// LiveStats describe a live source for metrics. Counters only grow.
type LiveStats struct {
	// State is the connection state now.
	State LiveState
	// Reconnects counts successful reopenings after the stream was lost.
	Reconnects uint64
	// Failures counts lost streams and failed open attempts.
	Failures uint64
	// FramesRead counts frames read from the stream.
	FramesRead uint64
	// FramesReplaced counts frames dropped unseen because a newer one arrived first (Latest).
	FramesReplaced uint64
	// LastError describes the latest failure; "" if none.
	LastError string
}

// StatsSource is implemented by live sources that report LiveStats. Stats is safe to call from
// any goroutine, concurrently with Read.
type StatsSource interface {
	Source
	Stats() LiveStats
}

// Reconnector is a live Source that keeps a stream alive: it reads frames from the source Open
// returns and, when opening or reading fails (a camera reboots, a server restarts, a publisher
// freezes until the read timeout), closes it, waits per Backoff and opens it again, until ctx
// ends. It serves any live source, since it only knows the Open func.
//
// Read returns only frames or ctx's error; it follows the Source contract (one goroutine; Close
// not concurrent with Read). Stats may be called from any goroutine.
type Reconnector struct {
	// Open opens the inner source; it is called again after every failure. Required.
	Open func(ctx context.Context) (Source, error)
	// Backoff spaces the attempts. Zero value: Backoff's defaults.
	Backoff Backoff
	// Name identifies the source in logs; it must not carry credentials. Default "live source".
	Name string
	// Log receives one line per failure and per recovery, never per frame.
	// Default slog.Default().
	Log *slog.Logger

	cur     Source
	since   time.Time // when cur connected
	healthy bool      // cur has lived ResetAfter and reset the backoff
	opened  bool      // a source has been open before

	state      atomic.Int32
	reconnects atomic.Uint64
	failures   atomic.Uint64
	frames     atomic.Uint64
	lastErr    atomic.Pointer[string]
}

// Connect opens the first inner source now and returns Open's error as is, so a source that
// cannot be opened at start (a mistyped URL, a missing device) is refused at once instead of
// being retried forever. Without Connect, the first Read opens the source, retrying as needed.
func (r *Reconnector) Connect(ctx context.Context) error {
	if r.Open == nil {
		return errors.New("reconnector: no Open func")
	}
	if r.cur != nil {
		return nil
	}
	r.state.Store(int32(StateConnecting))
	src, err := r.Open(ctx)
	if err != nil {
		r.fail(err)
		return err
	}
	r.connected(src)
	return nil
}

func (r *Reconnector) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}

func (r *Reconnector) name() string {
	if r.Name == "" {
		return "live source"
	}
	return r.Name
}

func (r *Reconnector) fail(err error) {
	r.failures.Add(1)
	msg := err.Error()
	r.lastErr.Store(&msg)
}

func (r *Reconnector) connected(src Source) {
	r.cur, r.since, r.healthy = src, time.Now(), false
	if r.opened {
		r.reconnects.Add(1)
		r.log().Info("live source reconnected", "source", r.name(), "reconnects", r.reconnects.Load())
	}
	r.opened = true
	r.state.Store(int32(StateLive))
}

// Read returns the next frame, reopening the stream as often as needed. It returns an error only
// when ctx ends (ctx's error) or Open is missing.
func (r *Reconnector) Read(ctx context.Context) (RawFrame, error) {
	if r.Open == nil {
		return RawFrame{}, errors.New("reconnector: no Open func")
	}
	var wait time.Duration
	if r.cur == nil && r.opened {
		wait = r.Backoff.Next() // the previous Read ended with its ctx after a failure
	}
	for {
		if err := ctx.Err(); err != nil {
			r.state.Store(int32(StateClosed))
			return RawFrame{}, err
		}
		if r.cur == nil {
			if wait > 0 {
				r.state.Store(int32(StateBackoff))
				if err := sleepCtx(ctx, wait); err != nil {
					r.state.Store(int32(StateClosed))
					return RawFrame{}, err
				}
			}
			r.state.Store(int32(StateConnecting))
			src, err := r.Open(ctx)
			if err != nil {
				if ctx.Err() != nil {
					continue
				}
				r.fail(err)
				wait = r.Backoff.Next()
				r.log().Warn("live source: open failed", "source", r.name(), "err", err, "retry_in", wait.Round(time.Millisecond))
				continue
			}
			r.connected(src)
		}
		f, err := r.cur.Read(ctx)
		if err == nil {
			r.frames.Add(1)
			if !r.healthy && time.Since(r.since) >= r.Backoff.ResetDelay() {
				r.healthy = true
				r.Backoff.Reset()
			}
			return f, nil
		}
		_ = r.cur.Close()
		r.cur = nil
		if ctx.Err() != nil {
			continue
		}
		if errors.Is(err, ErrEndOfStream) {
			err = fmt.Errorf("%s: stream ended: %w", r.name(), err)
		}
		r.fail(err)
		if r.healthy {
			r.Backoff.Reset()
		}
		wait = r.Backoff.Next()
		r.log().Warn("live source lost, reconnecting", "source", r.name(), "err", err,
			"up", time.Since(r.since).Round(time.Millisecond), "retry_in", wait.Round(time.Millisecond))
	}
}

// Close closes the current inner source, if any.
func (r *Reconnector) Close() error {
	r.state.Store(int32(StateClosed))
	if r.cur == nil {
		return nil
	}
	err := r.cur.Close()
	r.cur = nil
	return err
}

// Live reports true: a Reconnector only makes sense for live sources.
func (r *Reconnector) Live() bool { return true }

// Stats returns the connection state and counters; FramesReplaced is always 0 here (see Latest).
func (r *Reconnector) Stats() LiveStats {
	s := LiveStats{
		State:      LiveState(r.state.Load()),
		Reconnects: r.reconnects.Load(),
		Failures:   r.failures.Load(),
		FramesRead: r.frames.Load(),
	}
	if p := r.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	return s
}

// sleepCtx waits d or until ctx ends, returning ctx's error in that case.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
