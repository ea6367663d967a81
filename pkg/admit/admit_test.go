package admit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/testenv"
)

// waitFor polls cond until the state is reached.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, what, cond)
}

func TestGateBoundsConcurrencyAndQueue(t *testing.T) {
	g := &Gate{MaxConcurrent: 2, MaxWaiting: 1, MaxPixels: 1000}
	ctx := context.Background()
	r1, err := g.Acquire(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := g.Acquire(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		r, err := g.Acquire(ctx, 10)
		if err == nil {
			r() // before answering: the stats below must see it released
		}
		got <- err
	}()
	waitFor(t, "the third caller waits", func() bool { return g.Stats().Waiting == 1 })
	if _, err := g.Acquire(ctx, 10); !errors.Is(err, ErrBusy) {
		t.Fatalf("a fourth caller with a full queue: %v, want ErrBusy at once", err)
	}
	r1()
	r1() // idempotent
	if err := <-got; err != nil {
		t.Fatalf("the waiter after a release: %v", err)
	}
	r2()
	if s := g.Stats(); s.Admitted != 3 || s.Refused != 1 || s.Running != 0 || s.Pixels != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestGateBoundsPixelsInOrder(t *testing.T) {
	g := &Gate{MaxConcurrent: 10, MaxWaiting: 10, MaxPixels: 100}
	ctx := context.Background()
	big, err := g.Acquire(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	order := make(chan int64, 2)
	var wg sync.WaitGroup
	for i, px := range []int64{50, 10} { // 10 would fit now, but waits its turn behind 50
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := g.Acquire(ctx, px)
			if err != nil {
				t.Error(err)
				return
			}
			order <- px
			r()
		}()
		waitFor(t, "queued", func() bool { return g.Stats().Waiting == i+1 })
	}
	if s := g.Stats(); s.Running != 1 || s.Waiting != 2 {
		t.Fatalf("stats %+v: the 10-pixel job must wait behind the 50-pixel one (first come, first served)", s)
	}
	big()
	wg.Wait()
	if len(order) != 2 {
		t.Fatalf("%d of 2 waiters admitted", len(order))
	}
	// A job over the whole budget runs alone, counted as the budget.
	huge, err := g.Acquire(ctx, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	if s := g.Stats(); s.Pixels != 100 {
		t.Fatalf("huge job counted as %d pixels, want the budget", s.Pixels)
	}
	huge()
}

func TestGateEnter(t *testing.T) {
	g := &Gate{MaxConcurrent: 1, MaxWaiting: 1}
	l1, ok1 := g.Enter()
	l2, ok2 := g.Enter()
	if _, ok3 := g.Enter(); !ok1 || !ok2 || ok3 {
		t.Fatalf("Enter: %v %v %v, want two in and the third refused", ok1, ok2, ok3)
	}
	l1()
	l1()
	if l, ok := g.Enter(); !ok {
		t.Fatal("Enter after a leave refused")
	} else {
		l()
	}
	l2()
	if s := g.Stats(); s.Refused != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestGateWaitEnds(t *testing.T) {
	g := &Gate{MaxConcurrent: 1, MaxWait: time.Millisecond}
	hold, err := g.Acquire(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer hold()
	if _, err := g.Acquire(context.Background(), 1); !errors.Is(err, ErrBusy) {
		t.Fatalf("after MaxWait: %v, want ErrBusy", err)
	}
	g.MaxWait = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.Acquire(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	if s := g.Stats(); s.Waiting != 0 {
		t.Fatalf("%d waiters left behind", s.Waiting)
	}
}

// Under a storm of jobs the bounds hold at every moment, and every caller is admitted or
// refused with ErrBusy.
func TestGateStorm(t *testing.T) {
	g := &Gate{MaxConcurrent: 3, MaxWaiting: 5, MaxPixels: 1000}
	var running, pixels, peakRun, peakPix, admitted, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			px := int64(100 + 97*i%700)
			r, err := g.Acquire(context.Background(), px)
			if errors.Is(err, ErrBusy) {
				refused.Add(1)
				return
			}
			if err != nil {
				t.Error(err)
				return
			}
			admitted.Add(1)
			n, p := running.Add(1), pixels.Add(px)
			for v := peakRun.Load(); n > v && !peakRun.CompareAndSwap(v, n); v = peakRun.Load() {
			}
			for v := peakPix.Load(); p > v && !peakPix.CompareAndSwap(v, p); v = peakPix.Load() {
			}
			running.Add(-1)
			pixels.Add(-px)
			r()
		}()
	}
	wg.Wait()
	if peakRun.Load() > 3 || peakPix.Load() > 1000 || admitted.Load()+refused.Load() != 200 {
		t.Fatalf("peak %d running, %d pixels; %d admitted + %d refused", peakRun.Load(), peakPix.Load(), admitted.Load(), refused.Load())
	}
}
