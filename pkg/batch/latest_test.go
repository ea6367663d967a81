package batch

import (
	"context"
	"sync"
	"testing"
	"time"
)

type item struct {
	key   string
	seq   int
	heads []string
}

func TestLatestSupersedes(t *testing.T) {
	q := NewLatest[string, item](8, 8, 0, nil)
	for seq := 1; seq <= 5; seq++ {
		old, sup, ok := q.Put("a", item{key: "a", seq: seq})
		if !ok {
			t.Fatalf("seq %d refused", seq)
		}
		if sup != (seq > 1) || sup && old.seq != seq-1 {
			t.Fatalf("seq %d: superseded=%v older=%d, want the previous frame handed back", seq, sup, old.seq)
		}
	}
	if q.Len() != 1 {
		t.Fatalf("Len = %d, want 1: one pending item per key", q.Len())
	}
	b := q.Next(context.Background())
	if len(b) != 1 || b[0].seq != 5 {
		t.Fatalf("batch %v, want only the newest (seq 5)", b)
	}
}

func TestLatestRoundRobin(t *testing.T) {
	// A fast stream re-filling its slot must not jump ahead of a slot that waited longer.
	q := NewLatest[string, item](8, 1, 0, nil)
	q.Put("fast", item{key: "fast", seq: 1})
	q.Put("slow", item{key: "slow", seq: 1})
	q.Put("fast", item{key: "fast", seq: 2})
	q.Put("other", item{key: "other", seq: 1})
	var got []item
	for range 3 {
		got = append(got, q.Next(context.Background())...)
	}
	want := []item{{key: "fast", seq: 2}, {key: "slow", seq: 1}, {key: "other", seq: 1}}
	for i := range want {
		if got[i].key != want[i].key || got[i].seq != want[i].seq {
			t.Fatalf("served %v, want %v", got, want)
		}
	}
}

func TestLatestBoundsKeys(t *testing.T) {
	q := NewLatest[string, item](2, 8, 0, nil)
	q.Put("a", item{})
	q.Put("b", item{})
	if _, _, ok := q.Put("c", item{}); ok {
		t.Fatal("a third key was accepted beyond maxKeys 2")
	}
	if _, sup, ok := q.Put("a", item{seq: 2}); !ok || !sup {
		t.Fatal("a pending key's newer item must still replace the older one when full")
	}
	if b := q.Drain(); len(b) != 2 || b[0].seq != 2 {
		t.Fatalf("Drain = %v, want a(seq 2), b", b)
	}
}

func TestLatestMerge(t *testing.T) {
	// Heads carry over to the newer item, unless it is marked unable to serve them: then the
	// older one stays and the newer is handed back.
	merge := func(older, newer item) (item, item) {
		if len(older.heads) > 0 && newer.seq >= 10 {
			return older, newer
		}
		newer.heads = append(append([]string(nil), older.heads...), newer.heads...)
		return newer, older
	}
	q := NewLatest[string, item](4, 4, 0, merge)
	q.Put("a", item{seq: 1, heads: []string{"embedding"}})
	if dropped, superseded, ok := q.Put("a", item{seq: 2}); !ok || !superseded || dropped.seq != 1 {
		t.Fatalf("Put handed back %v (superseded %v, ok %v), want seq 1", dropped, superseded, ok)
	}
	b := q.Next(context.Background())
	if len(b) != 1 || b[0].seq != 2 || len(b[0].heads) != 1 || b[0].heads[0] != "embedding" {
		t.Fatalf("got %v, want seq 2 carrying the superseded frame's request", b)
	}
	q.Put("a", item{seq: 3, heads: []string{"pose"}})
	if dropped, superseded, _ := q.Put("a", item{seq: 10}); !superseded || dropped.seq != 10 {
		t.Fatalf("Put handed back %v, want the newer seq 10 that merge dropped", dropped)
	}
	if b := q.Next(context.Background()); len(b) != 1 || b[0].seq != 3 {
		t.Fatalf("got %v, want seq 3 kept with its request", b)
	}
}

func TestLatestWakesEveryConsumer(t *testing.T) {
	q := NewLatest[int, int](64, 1, 0, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const workers, keys = 4, 40
	var mu sync.Mutex
	seen := map[int]bool{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b := q.Next(ctx)
				if b == nil {
					return
				}
				mu.Lock()
				for _, v := range b {
					seen[v] = true
				}
				mu.Unlock()
			}
		}()
	}
	for k := range keys {
		q.Put(k, k)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == keys {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumers took %d of %d items", n, keys)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()
}

func TestLatestNextWaitsForMore(t *testing.T) {
	q := NewLatest[string, int](8, 2, time.Minute, nil)
	q.Put("a", 1)
	done := make(chan []int)
	go func() { done <- q.Next(context.Background()) }()
	q.Put("b", 2) // a second key arriving while Next waits closes the batch at maxBatch
	if b := <-done; len(b) != 2 {
		t.Fatalf("batch %v, want 2 items", b)
	}
}
