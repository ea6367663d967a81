package track

import (
	"time"

	"github.com/vigil-video/vigil/pkg/result"
)

// reorder puts one stream's results back in sequence order: analyzers in a queue group, each
// with several workers, finish frames out of order. A result waits until every lower sequence
// number has a result or a drop, at most wait (then the gap is skipped) and at most max results.
//
// Sequence numbers start at 1, so a stream's first results wait for seq 1 like any gap: a track
// role that joins a running stream releases its first result after wait, or once max are held.
type reorder struct {
	next    uint64 // the next sequence number to release; 0 means 1
	held    map[uint64]*result.Result
	skip    map[uint64]bool // sequence numbers announced dropped
	waiting time.Time       // when the gap at next started holding results back
}

// expected returns the next sequence number to release.
func (o *reorder) expected() uint64 { return max(o.next, 1) }

// add takes res (Seq >= expected()) and returns the results now in order; when more than limit
// are held, it skips the gap.
func (o *reorder) add(res *result.Result, now time.Time, limit int) []*result.Result {
	o.next = o.expected()
	if o.held == nil {
		o.held = map[uint64]*result.Result{}
	}
	o.held[res.Seq] = res
	out := o.release(now)
	if len(o.held) > limit {
		out = append(out, o.jump(now)...)
	}
	return out
}

// drop records that seq will have no result and returns the results that were waiting for it.
func (o *reorder) drop(seq uint64, now time.Time) []*result.Result {
	o.next = o.expected()
	if seq < o.next {
		return nil
	}
	if o.skip == nil {
		o.skip = map[uint64]bool{}
	}
	o.skip[seq] = true
	return o.release(now)
}

// expire skips a gap that has held results back for wait or longer.
func (o *reorder) expire(now time.Time, wait time.Duration) []*result.Result {
	if len(o.held)+len(o.skip) == 0 || o.waiting.IsZero() || now.Sub(o.waiting) < wait {
		return nil
	}
	return o.jump(now)
}

// flush returns every held result in order, skipping gaps.
func (o *reorder) flush(now time.Time) []*result.Result {
	var out []*result.Result
	for len(o.held)+len(o.skip) > 0 {
		out = append(out, o.jump(now)...)
	}
	return out
}

// jump moves next to the lowest held or skipped sequence number, then releases.
func (o *reorder) jump(now time.Time) []*result.Result {
	lowest := uint64(0)
	for s := range o.held {
		if lowest == 0 || s < lowest {
			lowest = s
		}
	}
	for s := range o.skip {
		if lowest == 0 || s < lowest {
			lowest = s
		}
	}
	if lowest > o.next {
		o.next = lowest
	}
	return o.release(now)
}

// release hands out results from next on while there is no gap.
func (o *reorder) release(now time.Time) []*result.Result {
	var out []*result.Result
	moved := false
	for {
		if r, ok := o.held[o.next]; ok {
			delete(o.held, o.next)
			out = append(out, r)
		} else if o.skip[o.next] {
			delete(o.skip, o.next)
		} else {
			break
		}
		o.next++
		moved = true
	}
	switch {
	case len(o.held)+len(o.skip) == 0:
		o.waiting = time.Time{}
	case moved || o.waiting.IsZero():
		o.waiting = now // a new gap starts holding results back
	}
	return out
}
