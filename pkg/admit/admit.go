// Package admit is admission control for the expensive requests of the HTTP API: decoding an
// uploaded image and running models on it. A Gate bounds how many such jobs run at once and how
// many decoded pixels they hold together, lets a bounded number of callers wait a bounded time
// for room, and refuses the rest at once with ErrBusy, which handlers answer with 503 and a
// Retry-After header. So the memory decoding takes stays under a fixed bound whatever the
// request mix: at most MaxPixels decoded pixels (3 bytes each in BGR) per Gate.
//
// The package is pure Go.
package admit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBusy is wrapped by Acquire's error when the gate is full and its queue too, or a waiter's
// turn did not come within MaxWait. Answer it with 503 and a Retry-After of RetryAfter.
var ErrBusy = errors.New("server busy")

// RetryAfter is the Retry-After, in seconds, that a refused caller is given.
const RetryAfter = 1

// DefaultMaxPixels is Gate.MaxPixels's default: two 8192x8192 images (about 400 MB decoded).
const DefaultMaxPixels = 2 * 8192 * 8192

// Gate admits jobs. Fill the fields before first use; a zero Gate uses the defaults. Safe for
// concurrent use.
type Gate struct {
	// MaxConcurrent bounds the jobs holding the gate at once. Default runtime.NumCPU().
	MaxConcurrent int
	// MaxPixels bounds the decoded pixels the jobs holding the gate declare, together; a job
	// declaring more is counted as MaxPixels (it runs alone). Default DefaultMaxPixels.
	MaxPixels int64
	// MaxWaiting bounds the callers waiting for room; one more is refused at once. Default
	// 4 * MaxConcurrent.
	MaxWaiting int
	// MaxWait bounds how long a caller waits for room before it is refused. Default 10 s.
	MaxWait time.Duration

	once    sync.Once
	entered atomic.Int64 // requests between Enter and leave
	mu      sync.Mutex
	running int
	pixels  int64
	queue   []*waiter // first come, first served: a large job is not starved by small ones
	stats   Stats
}

type waiter struct {
	pixels  int64
	ready   chan struct{}
	granted bool
}

// Stats are a Gate's counters.
type Stats struct {
	// Admitted counts the jobs let in; Refused those refused with ErrBusy.
	Admitted, Refused uint64
	// Running and Waiting are the jobs holding the gate and waiting for it now; Pixels the
	// pixels the running ones declared.
	Running, Waiting int
	Pixels           int64
}

func (g *Gate) init() {
	g.once.Do(func() {
		if g.MaxConcurrent <= 0 {
			g.MaxConcurrent = runtime.NumCPU()
		}
		if g.MaxPixels <= 0 {
			g.MaxPixels = DefaultMaxPixels
		}
		if g.MaxWaiting <= 0 {
			g.MaxWaiting = 4 * g.MaxConcurrent
		}
		if g.MaxWait <= 0 {
			g.MaxWait = 10 * time.Second
		}
	})
}

// Acquire waits for room for a job that will decode pixels pixels (0 or less: count it as 1)
// and returns the function that gives the room back (call it once, when the decoded image is
// released). It fails at once with ErrBusy when MaxWaiting callers already wait, with ErrBusy
// after MaxWait, and with ctx's error when ctx ends first.
func (g *Gate) Acquire(ctx context.Context, pixels int64) (release func(), err error) {
	g.init()
	pixels = min(max(pixels, 1), g.MaxPixels)
	g.mu.Lock()
	if len(g.queue) == 0 && g.fits(pixels) {
		g.take(pixels)
		g.mu.Unlock()
		return g.releaser(pixels), nil
	}
	if len(g.queue) >= g.MaxWaiting {
		g.stats.Refused++
		n := len(g.queue)
		g.mu.Unlock()
		return nil, fmt.Errorf("%w: %d jobs running and %d waiting; retry in %d s", ErrBusy, g.MaxConcurrent, n, RetryAfter)
	}
	w := &waiter{pixels: pixels, ready: make(chan struct{})}
	g.queue = append(g.queue, w)
	g.mu.Unlock()

	timer := time.NewTimer(g.MaxWait)
	defer timer.Stop()
	select {
	case <-w.ready:
		return g.releaser(pixels), nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = fmt.Errorf("%w: no room within %s; retry in %d s", ErrBusy, g.MaxWait, RetryAfter)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if w.granted { // granted while giving up: keep it
		return g.releaser(pixels), nil
	}
	for i, q := range g.queue {
		if q == w {
			g.queue = append(g.queue[:i], g.queue[i+1:]...)
			break
		}
	}
	if errors.Is(err, ErrBusy) {
		g.stats.Refused++
	}
	g.grant() // the head may have changed
	return nil, err
}

// Enter counts a request in before its body is read, so that at most MaxConcurrent +
// MaxWaiting requests hold an upload in memory at once: beyond that it returns ok false (and
// counts a refusal), and the caller answers 503 with Retry-After without reading the body.
// Otherwise call leave when the request ends.
func (g *Gate) Enter() (leave func(), ok bool) {
	g.init()
	if g.entered.Add(1) > int64(g.MaxConcurrent+g.MaxWaiting) {
		g.entered.Add(-1)
		g.mu.Lock()
		g.stats.Refused++
		g.mu.Unlock()
		return nil, false
	}
	var once sync.Once
	return func() { once.Do(func() { g.entered.Add(-1) }) }, true
}

// Stats returns the gate's counters.
func (g *Gate) Stats() Stats {
	g.init()
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.Running, s.Waiting, s.Pixels = g.running, len(g.queue), g.pixels
	return s
}

func (g *Gate) fits(pixels int64) bool {
	return g.running < g.MaxConcurrent && (g.running == 0 || g.pixels+pixels <= g.MaxPixels)
}

func (g *Gate) take(pixels int64) {
	g.running++
	g.pixels += pixels
	g.stats.Admitted++
}

// grant lets in waiters from the head of the queue while they fit. The caller holds g.mu.
func (g *Gate) grant() {
	for len(g.queue) > 0 && g.fits(g.queue[0].pixels) {
		w := g.queue[0]
		g.queue = g.queue[1:]
		g.take(w.pixels)
		w.granted = true
		close(w.ready)
	}
}

func (g *Gate) releaser(pixels int64) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.running--
			g.pixels -= pixels
			g.grant()
		})
	}
}
