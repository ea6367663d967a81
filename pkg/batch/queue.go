// Package batch provides a bounded queue whose consumers take items in batches that close on a
// maximum size or a maximum wait after their first item, whichever comes first.
//
// It is pure Go and knows nothing about frames or models.
package batch

import (
	"context"
	"time"
)

// Queue is a bounded multi-producer, multi-consumer queue. Producers never block: TryPut refuses
// an item when the queue is full, and the caller counts the drop. Consumers call Next, each
// assembling its own batch, so several workers can batch in parallel.
type Queue[T any] struct {
	ch       chan T
	maxBatch int
	maxWait  time.Duration
}

// NewQueue returns a queue holding at most capacity items (minimum 1) whose batches hold at most
// maxBatch items (minimum 1) and wait at most maxWait after their first item (0: take only what
// is already queued).
func NewQueue[T any](capacity, maxBatch int, maxWait time.Duration) *Queue[T] {
	if capacity < 1 {
		capacity = 1
	}
	if maxBatch < 1 {
		maxBatch = 1
	}
	return &Queue[T]{ch: make(chan T, capacity), maxBatch: maxBatch, maxWait: maxWait}
}

// TryPut enqueues v and reports whether there was room.
func (q *Queue[T]) TryPut(v T) bool {
	select {
	case q.ch <- v:
		return true
	default:
		return false
	}
}

// Len is the number of queued items.
func (q *Queue[T]) Len() int { return len(q.ch) }

// Cap is the queue's capacity.
func (q *Queue[T]) Cap() int { return cap(q.ch) }

// Next blocks until an item is available or ctx ends, then keeps taking items until the batch
// holds maxBatch items or maxWait has passed since the first one. It returns nil only when ctx
// ended before any item arrived; a batch collected when ctx ends mid-wait is returned as is.
func (q *Queue[T]) Next(ctx context.Context) []T {
	var first T
	select {
	case first = <-q.ch:
	case <-ctx.Done():
		return nil
	}
	out := make([]T, 1, q.maxBatch)
	out[0] = first
	// Take what is already there without waiting.
	for len(out) < q.maxBatch {
		select {
		case v := <-q.ch:
			out = append(out, v)
			continue
		default:
		}
		break
	}
	if len(out) == q.maxBatch || q.maxWait <= 0 {
		return out
	}
	timer := time.NewTimer(q.maxWait)
	defer timer.Stop()
	for len(out) < q.maxBatch {
		select {
		case v := <-q.ch:
			out = append(out, v)
		case <-timer.C:
			return out
		case <-ctx.Done():
			return out
		}
	}
	return out
}

// Drain removes and returns every queued item without blocking.
func (q *Queue[T]) Drain() []T {
	var out []T
	for {
		select {
		case v := <-q.ch:
			out = append(out, v)
		default:
			return out
		}
	}
}
