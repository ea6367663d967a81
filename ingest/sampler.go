package ingest

import "time"

// Sampler picks frames to reach a target rate from a faster source, by media time: a frame is
// kept when at least one period has passed since the last kept frame's slot. It is pure logic,
// safe for one goroutine.
type Sampler struct {
	period time.Duration
	next   time.Duration
	seeded bool
}

// NewSampler keeps fps frames per second of media time; fps <= 0 keeps every frame.
func NewSampler(fps float64) *Sampler {
	s := &Sampler{}
	if fps > 0 {
		s.period = time.Duration(float64(time.Second) / fps)
	}
	return s
}

// Keep reports whether the frame at media time t is kept. Times going backwards (a looped file,
// a reconnected camera) restart the schedule at t.
func (s *Sampler) Keep(t time.Duration) bool {
	if s.period == 0 {
		return true
	}
	if !s.seeded || t < s.next-s.period {
		s.seeded = true
		s.next = t + s.period
		return true
	}
	if t < s.next {
		return false
	}
	// Advance by whole periods so the kept rate stays fps even when frames are irregular.
	for s.next <= t {
		s.next += s.period
	}
	return true
}

// Wants reports, without changing the schedule, whether a frame at media time t may be the one
// Keep keeps for its slot, given span, the nominal spacing of the source's frames: true when a
// slot starts within (t-1.5*span, t] (the half span absorbs jittered timestamps), or when Keep
// would start or restart the schedule at t. Decoders ask
// it before decoding, in decode order, while Keep still lags behind: slots start at whole
// periods from the schedule's next slot, so the answer does not depend on that lag.
func (s *Sampler) Wants(t, span time.Duration) bool {
	if s.period == 0 || span <= 0 || !s.seeded || t < s.next-s.period {
		return true
	}
	k := (t - s.next) / s.period
	if t < s.next && (t-s.next)%s.period != 0 {
		k-- // floor, not truncation, below the next slot
	}
	return s.next+k*s.period > t-span-span/2
}
