package track

import (
	"math/rand/v2"
	"testing"

	"github.com/vigil-video/vigil/pkg/event"
)

// TestUnknownIDOnFacesAndEvents: with an UnknownMatcher, the faces of a track without identity
// whose embedding matches an unknown person carry its unknown_id from the first frame on, and so
// do its face.appeared and face.left; a track no unknown matches carries none; a track that is
// recognised carries its identity and no unknown_id, even though its embedding matches an
// unknown too (in results after it settled, and in its events).
func TestUnknownIDOnFacesAndEvents(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	stranger, newcomer, known := unit(rng), unit(rng), unit(rng)
	// Two unknowns: the stranger and, wrongly, the known person (an unknown enrolled later).
	unknowns := map[string][]float32{"u-00000000000000aa": stranger, "u-00000000000000bb": known}
	calls := 0
	um := matcherFunc(func(emb []float32) (string, float32, bool) {
		calls++
		best, sim := "", float32(-1)
		for id, c := range unknowns {
			if s := cosineOf(c, emb); s > sim {
				best, sim = id, s
			}
		}
		return best, sim, sim >= DefaultThreshold
	})
	gallery := matcherFunc(func(emb []float32) (string, float32, bool) {
		if s := cosineOf(known, emb); s >= DefaultThreshold {
			return "Ada", s, true
		}
		return "", 0, false
	})
	tr := NewTracker("cam", TrackerConfig{}, gallery)
	tr.SetUnknowns(um)
	var evs events
	for seq := uint64(1); seq <= 8; seq++ {
		res := resultAt(seq, face(40, 100, 96, near(rng, stranger, 0.3)), face(250, 100, 96, near(rng, newcomer, 0.3)),
			face(460, 100, 96, near(rng, known, 0.3)))
		evs = append(evs, tr.Update(res).Events...)
		s, n, k := res.Faces[0], res.Faces[1], res.Faces[2]
		if s.UnknownID != "u-00000000000000aa" || s.Identity != nil {
			t.Errorf("frame %d: the stranger's face has unknown_id %q identity %v, want u-00000000000000aa", seq, s.UnknownID, s.Identity)
		}
		if n.UnknownID != "" {
			t.Errorf("frame %d: the newcomer's face has unknown_id %q, want none (no unknown matches)", seq, n.UnknownID)
		}
		if k.Identity != nil && k.UnknownID != "" {
			t.Errorf("frame %d: the recognised face has identity %v and unknown_id %q", seq, k.Identity, k.UnknownID)
		}
		if seq >= 3 && k.Identity == nil {
			t.Errorf("frame %d: the known face is not recognised", seq)
		}
	}
	evs = append(evs, tr.Finish(event.ReasonEnd)...)
	byTrack := map[string]string{}
	for _, ev := range evs {
		byTrack[ev.TrackID+" "+ev.Kind] = ev.UnknownID
		if ev.Identity != nil && ev.UnknownID != "" {
			t.Errorf("%s of %s has identity %v and unknown_id %q", ev.Kind, ev.TrackID, ev.Identity, ev.UnknownID)
		}
	}
	appeared := evs.of(event.KindAppeared)
	left := evs.of(event.KindLeft)
	if len(appeared) != 3 || len(left) != 3 || len(evs.of(event.KindRecognized)) != 1 {
		t.Fatalf("events %+v: want 3 appeared, 1 recognized, 3 left", evs)
	}
	want := map[string]string{appeared[0].TrackID: "u-00000000000000aa", appeared[1].TrackID: "", appeared[2].TrackID: ""}
	for id, u := range want {
		for _, kind := range []string{event.KindAppeared, event.KindLeft} {
			if got := byTrack[id+" "+kind]; got != u && !(kind == event.KindAppeared && id == appeared[2].TrackID) {
				t.Errorf("%s of track %s: unknown_id %q, want %q", kind, id, got, u)
			}
		}
	}
	if calls == 0 {
		t.Fatal("the unknowns were never consulted")
	}
}
