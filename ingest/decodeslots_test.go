package ingest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestDecodeSlotsBound: no more holders than slots at any time, every waiter served, a waiter
// whose context ends gives up with its error, and nil bounds nothing.
func TestDecodeSlotsBound(t *testing.T) {
	s := NewDecodeSlots(2)
	var holding, most atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if err := s.acquire(context.Background()); err != nil {
					t.Error(err)
					return
				}
				n := holding.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(50 * time.Microsecond)
				holding.Add(-1)
				s.release()
			}
		}()
	}
	wg.Wait()
	if most.Load() != 2 {
		t.Fatalf("at most %d held at once, want 2", most.Load())
	}
	// Both slots taken: a waiter gives up when its context ends.
	for range 2 {
		if err := s.acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire with every slot held: %v, want the context's deadline", err)
	}
	var none *DecodeSlots
	if NewDecodeSlots(0) != nil || NewDecodeSlots(-1) != nil || none.Size() != 0 || none.acquire(ctx) != nil {
		t.Fatal("no slots should bound nothing")
	}
	none.release()
}

// TestDecodeSlotsShared: two file streams sharing one decode slot are both read completely.
func TestDecodeSlotsShared(t *testing.T) {
	testenv.NeedsTestData(t)
	nc, _ := startNATS(t)
	video := faceVideo(t)
	role := &Role{Conn: nc, DecodeSlots: NewDecodeSlots(1),
		Streams: []StreamConfig{{Name: "a", Source: video, FPS: 5}, {Name: "b", Source: video, FPS: 5}}}
	if err := role.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, b := role.Stats()["a"], role.Stats()["b"]
	if a.Published < 20 || a.Published != b.Published || a.Decoded != b.Decoded {
		t.Fatalf("streams sharing a slot: a %+v, b %+v; want the whole clip each (about 23 frames)", a, b)
	}
}
