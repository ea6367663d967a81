package ingest

import "time"

// Sampler picks frames to reach a target rate from a faster source, by media time: a frame is
// kept when at least one period (less a millisecond, for rounded timestamps) has passed since the
// last kept frame's slot. It is pure logic,
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

// slack is how early a frame may come and still take its slot: a millisecond (at most a tenth
// of the period), for timestamps rounded to a container's time base (a 30 fps file in
// milliseconds puts its second frame at 33 ms, before the 33.33 ms slot).
func (s *Sampler) slack() time.Duration { return min(s.period/10, time.Millisecond) }

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
	if t < s.next-s.slack() {
		return false
	}
	// Advance by whole periods so the kept rate stays fps even when frames are irregular (past
	// t's own slot when it came early).
	for s.next <= t+s.slack() {
		s.next += s.period
	}
	return true
}

// Wants reports, without changing the schedule, whether a frame at media time t may be the one
// Keep keeps for its slot, given span, the nominal spacing of the source's frames: true when a
// slot, less Keep's slack, starts within (t-span, t], so that exactly one frame of a regular
// timeline is wanted per slot, or when Keep would start or restart the schedule at t. On an
// irregular timeline Keep may then keep a later frame than a full decode would give it.
// Decoders ask it before decoding, in decode order, while Keep still lags behind: slots start at
// whole periods from the schedule's next slot, so the answer does not depend on that lag.
func (s *Sampler) Wants(t, span time.Duration) bool {
	if s.period == 0 || span <= 0 || !s.seeded || t < s.next-s.period {
		return true
	}
	d := t + s.slack() - s.next
	k := d / s.period
	if d < 0 && d%s.period != 0 {
		k-- // floor, not truncation, below the next slot
	}
	return s.next+k*s.period-s.slack() > t-span
}
