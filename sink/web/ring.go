package web

import (
	"image"
	"time"
)

// storedFrame is a frame kept for matching and crops. data aliases the NATS message's payload,
// which nothing else writes.
type storedFrame struct {
	seq           uint64
	captured      time.Time
	width, height int
	encoding      string
	data          []byte
	// analysed is set once the frame's result arrived; blur are then the regions to blur in it
	// under Config.Privacy (see shown).
	analysed bool
	blur     []image.Rectangle
}

// frameRing keeps a stream's most recent frames, at most maxFrames of them and maxBytes of
// payload (at least the newest frame is kept). Not safe for concurrent use.
type frameRing struct {
	maxFrames int
	maxBytes  int64
	frames    []storedFrame // oldest first
	bytes     int64
}

// put adds f as the newest frame, evicting the oldest ones beyond the bounds. It returns the
// change in bytes held.
func (r *frameRing) put(f storedFrame) int64 {
	before := r.bytes
	r.frames = append(r.frames, f)
	r.bytes += int64(len(f.data))
	drop := 0
	for len(r.frames)-drop > 1 && (len(r.frames)-drop > r.maxFrames || r.bytes > r.maxBytes) {
		r.bytes -= int64(len(r.frames[drop].data))
		drop++
	}
	r.dropFront(drop)
	return r.bytes - before
}

// popOldest evicts the oldest frame unless it is the only one; it returns the bytes freed.
func (r *frameRing) popOldest() int64 {
	if len(r.frames) < 2 {
		return 0
	}
	n := int64(len(r.frames[0].data))
	r.bytes -= n
	r.dropFront(1)
	return n
}

func (r *frameRing) dropFront(k int) {
	if k > 0 {
		n := copy(r.frames, r.frames[k:])
		clear(r.frames[n:])
		r.frames = r.frames[:n]
	}
}

// get returns the newest frame with sequence number seq.
func (r *frameRing) get(seq uint64) (storedFrame, bool) {
	for i := len(r.frames) - 1; i >= 0; i-- {
		if r.frames[i].seq == seq {
			return r.frames[i], true
		}
	}
	return storedFrame{}, false
}

// mark records that the frame with sequence number seq was analysed, with the regions to blur
// in it; it reports whether the frame is held.
func (r *frameRing) mark(seq uint64, blur []image.Rectangle) bool {
	for i := len(r.frames) - 1; i >= 0; i-- {
		if r.frames[i].seq == seq {
			r.frames[i].analysed, r.frames[i].blur = true, blur
			return true
		}
	}
	return false
}

// len returns the number of frames held.
func (r *frameRing) len() int { return len(r.frames) }

// rate measures events per second over the last liveWindow, from the times of the latest
// rateSize events.
type rate struct {
	times [rateSize]time.Time
	next  int
	n     int
}

const rateSize = 64

func (r *rate) add(t time.Time) {
	r.times[r.next] = t
	r.next = (r.next + 1) % rateSize
	r.n = min(r.n+1, rateSize)
}

// perSecond is the event rate over the events within liveWindow of now: (count-1) over the time
// from the first to the last of them while events keep coming (the last within a second), else
// count over the window, so a stream that stopped decays to 0.
func (r *rate) perSecond(now time.Time) float64 {
	var first, last time.Time
	count := 0
	for i := 0; i < r.n; i++ {
		t := r.times[(r.next-1-i+rateSize)%rateSize]
		if now.Sub(t) > liveWindow {
			break
		}
		if count == 0 {
			last = t
		}
		first = t
		count++
	}
	if count == 0 {
		return 0
	}
	if now.Sub(last) > time.Second || count < 2 || !last.After(first) {
		return float64(count) / liveWindow.Seconds()
	}
	return float64(count-1) / last.Sub(first).Seconds()
}
