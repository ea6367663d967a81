package track

import (
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/result"
)

// TestTooSmallTrackIsNotAskedEveryFrame: a face too small to recognise never carries an
// embedding or liveness (the analyzer skips them), yet once its heads ran the track counts them
// as run: it is not asked for every head on every frame, and its settle asks stop after
// SettleSamples frames, as for a face whose identity did not settle.
func TestTooSmallTrackIsNotAskedEveryFrame(t *testing.T) {
	tr := NewTracker("cam", TrackerConfig{HeadsInterval: time.Hour}, nil)
	var pending []string
	asks := 0
	for seq := uint64(1); seq <= 30; seq++ {
		f := face(300, 200, 30, nil)
		f.TooSmall = true
		if len(pending) > 0 {
			f = withHeads(f, pending, nil, 40)
			f.Embedding, f.Liveness = nil, nil // what the analyzer gives a too small face
		}
		st := tr.Update(resultAt(seq, f))
		pending = st.HeadsNeeded
		if len(st.HeadsFor) > 0 {
			asks++
		}
	}
	if want := 1 + 2*3; asks > want { // the new track, then at most SettleSamples (2 x MinVotes) settle asks
		t.Fatalf("a too small face was asked for heads on %d of 30 frames, want at most %d", asks, want)
	}
	if fresh := freshHeads(result.Face{TooSmall: true}, []string{"embedding", "liveness"}); len(fresh) != 0 {
		t.Fatalf("a too small face without any heads output counts %v as run", fresh)
	}
}
