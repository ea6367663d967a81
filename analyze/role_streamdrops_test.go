package analyze

import (
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestRoleDropsByStream: drops are counted by stream as well as by reason, and every stream a
// frame came from is listed (the metrics show it at 0 before its first drop).
func TestRoleDropsByStream(t *testing.T) {
	h := startRole(t, nil)
	now := time.Now()
	for seq := uint64(1); seq <= 3; seq++ {
		h.publish(t, frame.Frame{Stream: "broken", Seq: seq, Captured: now, Width: 4, Height: 4, Encoding: frame.EncodingJPEG,
			Data: []byte("not a jpeg"), Complete: true})
	}
	h.publish(t, frame.Frame{Stream: "ahead", Seq: 1, Captured: now.Add(time.Hour), Width: 4, Height: 4, Encoding: frame.EncodingJPEG,
		Data: []byte("not a jpeg either")})
	testenv.Eventually(t, 60*time.Second, "4 drops", func() bool {
		s := h.role.Stats()
		return s.Dropped[result.ReasonDecode]+s.Dropped[result.ReasonFutureCapture] == 4
	})
	s := h.role.Stats()
	if got := s.DroppedByStream["broken"][result.ReasonDecode]; got != 3 {
		t.Errorf("broken: %d decode drops, want 3 (%v)", got, s.DroppedByStream)
	}
	if got := s.DroppedByStream["ahead"][result.ReasonFutureCapture]; got != 1 {
		t.Errorf("ahead: %d future_capture drops, want 1 (%v)", got, s.DroppedByStream)
	}
	if len(s.DroppedByStream) != 2 {
		t.Errorf("streams %v, want broken and ahead", s.DroppedByStream)
	}
}
