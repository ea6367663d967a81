package batch

import (
	"context"
	"sync"
	"time"
)

// Latest is a bounded multi-producer, multi-consumer queue that keeps at most one pending item
// per key: the newest. It is the analyzer's newest-frame flow control, keyed by stream:
//   - Put replaces a key's pending item with the newer one and hands the older back to the caller
//     (who counts it as superseded), so no item ever waits behind an older item of its key (a
//     merge function may instead keep the older and hand back the newer, when only the older
//     can serve what it asked for: the pending item is then one behind the newest);
//   - keys are served in the order their slot was filled, so a key that has waited longest goes
//     first, whatever rate its producer has: keys are served fairly (round robin under overload);
//   - the backlog is at most one item per key and at most maxKeys items in all.
//
// Consumers call Next, which closes a batch on maxBatch items or maxWait after its first item,
// whichever comes first, like Queue. The zero value is not usable: use NewLatest.
type Latest[K comparable, T any] struct {
	maxKeys  int
	maxBatch int
	maxWait  time.Duration
	merge    func(older, newer T) (keep, drop T)

	mu    sync.Mutex
	slots map[K]T
	order []K // keys with a pending item, oldest slot first
	// signal holds a token while items may be pending; each taker passes it on when it leaves
	// items behind, so several waiting consumers all wake.
	signal chan struct{}
}

// NewLatest returns a queue holding pending items for at most maxKeys keys (minimum 1), whose
// batches hold at most maxBatch items (minimum 1) and wait at most maxWait after their first item
// (0: take only what is already pending). merge, when not nil, decides between a key's pending
// item and the newer one: keep stays pending, drop goes back to Put's caller. Usually keep is
// the newer item carrying over what the older one asked for; it may be the older one when only
// it can serve that request. Without merge the newer item is kept.
func NewLatest[K comparable, T any](maxKeys, maxBatch int, maxWait time.Duration, merge func(older, newer T) (keep, drop T)) *Latest[K, T] {
	return &Latest[K, T]{maxKeys: max(1, maxKeys), maxBatch: max(1, maxBatch), maxWait: maxWait, merge: merge,
		slots: map[K]T{}, signal: make(chan struct{}, 1)}
}

// Put makes v key's pending item. When key already had one, the item given up is returned with
// superseded=true: the older one, or what merge drops (the item kept holds the older item's place
// in line). When maxKeys other keys are pending already, v is refused: ok=false, and the caller
// counts the drop.
func (q *Latest[K, T]) Put(key K, v T) (dropped T, superseded, ok bool) {
	q.mu.Lock()
	if old, had := q.slots[key]; had {
		keep, drop := v, old
		if q.merge != nil {
			keep, drop = q.merge(old, v)
		}
		q.slots[key] = keep
		q.mu.Unlock()
		return drop, true, true
	}
	if len(q.order) >= q.maxKeys {
		q.mu.Unlock()
		return dropped, false, false
	}
	q.slots[key] = v
	q.order = append(q.order, key)
	q.mu.Unlock()
	q.wake()
	return dropped, false, true
}

func (q *Latest[K, T]) wake() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// take moves up to n pending items, oldest slot first, into out.
func (q *Latest[K, T]) take(out []T, n int) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := min(n, len(q.order))
	for _, key := range q.order[:k] {
		out = append(out, q.slots[key])
		delete(q.slots, key)
	}
	q.order = append(q.order[:0], q.order[k:]...)
	if len(q.order) > 0 {
		q.wake()
	}
	return out
}

// Len is the number of pending items (at most one per key).
func (q *Latest[K, T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order)
}

// Next blocks until an item is pending or ctx ends, then keeps taking items (oldest slot first)
// until the batch holds maxBatch items or maxWait has passed since the first one. It returns nil
// only when ctx ended before any item was pending; a batch collected when ctx ends mid-wait is
// returned as is.
func (q *Latest[K, T]) Next(ctx context.Context) []T {
	var out []T
	for len(out) == 0 {
		select {
		case <-q.signal:
		case <-ctx.Done():
			return nil
		}
		out = q.take(make([]T, 0, q.maxBatch), q.maxBatch)
	}
	if len(out) == q.maxBatch || q.maxWait <= 0 {
		return out
	}
	timer := time.NewTimer(q.maxWait)
	defer timer.Stop()
	for len(out) < q.maxBatch {
		select {
		case <-q.signal:
			out = q.take(out, q.maxBatch-len(out))
		case <-timer.C:
			return out
		case <-ctx.Done():
			return out
		}
	}
	return out
}

// Drain removes and returns every pending item without blocking, oldest slot first.
func (q *Latest[K, T]) Drain() []T {
	q.mu.Lock()
	n := len(q.order)
	q.mu.Unlock()
	return q.take(nil, n)
}
