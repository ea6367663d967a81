package ingest

import (
	"context"
	"fmt"
)

// DecodeSlots bounds how many file sources of a process decode a frame at the same time, and
// serves the waiting ones in turn. Without a bound, every stream's decoder is a thread the
// kernel shares the cores with evenly: at 16 streams of 720p30 on 2 cores the decoders took
// nearly all of them and the analyzers in the same process got a few frames a second. With one
// slot per core, decoding gets at most what the slots allow, the analyzers the rest, and a
// paced file that cannot be decoded in real time plays slower instead (vigil bench live shows
// it as fewer frames delivered). Network sources are not bounded: their read waits on the
// network, which must not hold a slot. A nil *DecodeSlots bounds nothing.
type DecodeSlots struct{ ch chan struct{} }

// NewDecodeSlots returns n slots; n <= 0 gives nil (no bound).
func NewDecodeSlots(n int) *DecodeSlots {
	if n <= 0 {
		return nil
	}
	return &DecodeSlots{ch: make(chan struct{}, n)}
}

// Size returns the number of slots (0 for nil: no bound).
func (s *DecodeSlots) Size() int {
	if s == nil {
		return 0
	}
	return cap(s.ch)
}

// acquire waits for a slot, in turn, until ctx ends.
func (s *DecodeSlots) acquire(ctx context.Context) error {
	if s == nil {
		return nil
	}
	select {
	case s.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting to decode: %w", ctx.Err())
	}
}

// release returns a slot acquire took.
func (s *DecodeSlots) release() {
	if s != nil {
		<-s.ch
	}
}
