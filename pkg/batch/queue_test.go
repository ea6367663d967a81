package batch

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFlushOnSize(t *testing.T) {
	q := NewQueue[int](16, 4, time.Hour)
	for i := 0; i < 6; i++ {
		if !q.TryPut(i) {
			t.Fatal("TryPut refused below capacity")
		}
	}
	b := q.Next(context.Background())
	if len(b) != 4 || b[0] != 0 || b[3] != 3 {
		t.Fatalf("first batch %v, want [0 1 2 3]", b)
	}
	if q.Len() != 2 {
		t.Fatalf("Len = %d, want 2", q.Len())
	}
}

func TestFlushOnWait(t *testing.T) {
	q := NewQueue[int](16, 8, 20*time.Millisecond)
	q.TryPut(1)
	start := time.Now()
	b := q.Next(context.Background())
	if len(b) != 1 {
		t.Fatalf("batch %v, want one item", b)
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Fatalf("returned after %s, before max wait", waited)
	}
}

func TestLateItemJoinsBatch(t *testing.T) {
	q := NewQueue[int](16, 2, time.Minute)
	q.TryPut(1)
	done := make(chan []int)
	go func() { done <- q.Next(context.Background()) }()
	q.TryPut(2) // arrives while Next waits; size 2 closes the batch long before a minute
	if b := <-done; len(b) != 2 {
		t.Fatalf("batch %v, want 2 items", b)
	}
}

func TestBoundedAndDrain(t *testing.T) {
	q := NewQueue[int](3, 2, 0)
	for i := 0; i < 3; i++ {
		q.TryPut(i)
	}
	if q.TryPut(99) {
		t.Fatal("TryPut accepted beyond capacity")
	}
	if got := q.Drain(); len(got) != 3 {
		t.Fatalf("Drain = %v", got)
	}
	if q.Len() != 0 {
		t.Fatal("queue not empty after Drain")
	}
}

func TestNextCancelled(t *testing.T) {
	q := NewQueue[int](1, 1, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if b := q.Next(ctx); b != nil {
		t.Fatalf("Next on cancelled ctx = %v", b)
	}
}

func TestConcurrentConsumersSeeEachItemOnce(t *testing.T) {
	q := NewQueue[int](1000, 7, time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	seen := map[int]int{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b := q.Next(ctx)
				if b == nil {
					return
				}
				if len(b) > 7 {
					t.Errorf("batch of %d > max 7", len(b))
				}
				mu.Lock()
				for _, v := range b {
					seen[v]++
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < 1000; i++ {
		for !q.TryPut(i) {
			time.Sleep(time.Microsecond)
		}
	}
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == 1000 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()
	for i := 0; i < 1000; i++ {
		if seen[i] != 1 {
			t.Fatalf("item %d seen %d times", i, seen[i])
		}
	}
}
