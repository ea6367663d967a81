package track

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/pkg/result"
)

// TestMain guards against leaked goroutines with goleak directly rather than testenv.Main, which
// links gocv: this package and its tests stay pure Go (CGO_ENABLED=0 go vet passes). The tests on
// real models and video, which need cgo, are in ./e2e and use testenv.Main.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// unit returns a random unit vector of 512 floats.
func unit(rng *rand.Rand) []float32 {
	v := make([]float64, 512)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return normalize(v)
}

// near returns base plus noise of relative size eps, normalised: cos(base, near) ≈ 1/sqrt(1+eps²).
func near(rng *rand.Rand, base []float32, eps float64) []float32 {
	v := make([]float64, len(base))
	for i := range v {
		v[i] = float64(base[i]) + eps*rng.NormFloat64()/math.Sqrt(float64(len(base)))
	}
	return normalize(v)
}

// face is a frontal face of side size with its top-left corner at x, y.
func face(x, y, size float32, emb []float32) result.Face {
	lm := []result.Point{{X: x + 0.3*size, Y: y + 0.4*size}, {X: x + 0.7*size, Y: y + 0.4*size}, {X: x + 0.5*size, Y: y + 0.6*size},
		{X: x + 0.35*size, Y: y + 0.8*size}, {X: x + 0.65*size, Y: y + 0.8*size}}
	return result.Face{Box: result.Box{X1: x, Y1: y, X2: x + size, Y2: y + size}, Score: 0.99, Landmarks: lm, Embedding: emb}
}

// resultAt is the result for sequence seq at 5 frames per second.
func resultAt(seq uint64, faces ...result.Face) *result.Result {
	if faces == nil {
		faces = []result.Face{}
	}
	return &result.Result{Schema: result.SchemaVersion, Stream: "cam", Seq: seq, CapturedAt: t0.Add(time.Duration(seq) * 200 * time.Millisecond),
		Width: 640, Height: 480, Faces: faces}
}

// events collects every event of a run, by kind.
type events []event.Event

func (e events) of(kind string) []event.Event {
	var out []event.Event
	for _, ev := range e {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

func TestOneFaceKeepsItsID(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	person := unit(rng)
	tr := NewTracker("cam", TrackerConfig{}, nil)
	var evs events
	var ids []string
	for seq := uint64(1); seq <= 30; seq++ {
		// Drifts right and jitters; every 7th frame has no embedding (landmarks failed).
		e := near(rng, person, 0.3)
		if seq%7 == 0 {
			e = nil
		}
		res := resultAt(seq, face(100+float32(seq)*6+float32(rng.IntN(5)), 120+float32(rng.IntN(5)), 96, e))
		evs = append(evs, tr.Update(res).Events...)
		ids = append(ids, res.Faces[0].TrackID)
	}
	for i, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("frame %d: track id %q, want %q throughout: %v", i+1, id, ids[0], ids)
		}
	}
	if a := evs.of(event.KindAppeared); len(a) != 1 || a[0].TrackID != ids[0] || a[0].Seq != 2 {
		t.Fatalf("appeared events %+v, want one for %s at seq 2 (MinHits 2)", a, ids[0])
	}
	if len(evs.of(event.KindLeft)) != 0 || len(evs.of(event.KindRecognized)) != 0 {
		t.Fatalf("unexpected events: %+v", evs)
	}
	left := tr.Finish(event.ReasonEnd)
	if len(left) != 1 || left[0].Kind != event.KindLeft || left[0].Reason != event.ReasonEnd || left[0].Frames != 30 || left[0].LastSeen != t0.Add(30*200*time.Millisecond) {
		t.Fatalf("Finish: %+v", left)
	}
	if tr.Tracks() != 0 {
		t.Fatalf("%d tracks after Finish", tr.Tracks())
	}
}

func TestTwoFacesCrossing(t *testing.T) {
	for _, tc := range []struct {
		name string
		// embeddings on faces; without them only box overlap and motion tell the faces apart
		embeddings bool
		// zigzag makes the motion erratic, so that overlap and motion alone cannot follow it
		zigzag bool
	}{
		{"boxes and motion", false, false},
		{"embeddings through erratic motion", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			alice, bob := unit(rng), unit(rng)
			tr := NewTracker("cam", TrackerConfig{}, nil)
			var aliceIDs, bobIDs []string
			for seq := uint64(1); seq <= 25; seq++ {
				step := float32(seq) * 20
				jitter := float32(0)
				if tc.zigzag && seq%2 == 0 {
					jitter = 45
				}
				var ea, eb []float32
				if tc.embeddings {
					ea, eb = near(rng, alice, 0.4), near(rng, bob, 0.4)
				}
				a := face(40+step+jitter, 100, 90, ea)  // left to right
				b := face(560-step-jitter, 110, 90, eb) // right to left, crossing at seq 13
				faces := []result.Face{a, b}
				swapped := rng.IntN(2) == 0
				if swapped {
					faces = []result.Face{b, a}
				}
				res := resultAt(seq, faces...)
				tr.Update(res)
				ia, ib := res.Faces[0].TrackID, res.Faces[1].TrackID
				if swapped {
					ia, ib = ib, ia
				}
				aliceIDs, bobIDs = append(aliceIDs, ia), append(bobIDs, ib)
			}
			for i := range aliceIDs {
				if aliceIDs[i] != aliceIDs[0] || bobIDs[i] != bobIDs[0] {
					t.Fatalf("frame %d: ids changed\nleft-to-right: %v\nright-to-left: %v", i+1, aliceIDs, bobIDs)
				}
			}
			if aliceIDs[0] == bobIDs[0] {
				t.Fatalf("both faces have track %s", aliceIDs[0])
			}
		})
	}
}

func TestLeaveAndReenterGetsNewID(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	person := unit(rng)
	tr := NewTracker("cam", TrackerConfig{}, nil)
	var evs events
	idAt := map[uint64]string{}
	for seq := uint64(1); seq <= 30; seq++ {
		res := resultAt(seq)
		if seq <= 10 || seq > 20 { // away for 10 frames (2 s): more than MaxMisses
			res = resultAt(seq, face(200, 150, 100, near(rng, person, 0.3)))
		}
		evs = append(evs, tr.Update(res).Events...)
		if len(res.Faces) > 0 {
			idAt[seq] = res.Faces[0].TrackID
		}
	}
	evs = append(evs, tr.Finish(event.ReasonShutdown)...)
	first, second := idAt[1], idAt[21]
	if first == "" || second == "" || first == second {
		t.Fatalf("ids before and after leaving: %q, %q; want two different ids", first, second)
	}
	if idAt[10] != first || idAt[30] != second {
		t.Fatalf("ids not stable within a visit: %v", idAt)
	}
	app, left := evs.of(event.KindAppeared), evs.of(event.KindLeft)
	if len(app) != 2 || app[0].TrackID != first || app[1].TrackID != second {
		t.Fatalf("appeared: %+v", app)
	}
	if len(left) != 2 || left[0].TrackID != first || left[0].Reason != event.ReasonLost || left[1].TrackID != second || left[1].Reason != event.ReasonShutdown {
		t.Fatalf("left: %+v", left)
	}
	// The first visit was last seen at seq 10 and declared lost after MaxMisses (5) more frames.
	if left[0].Seq != 15 || left[0].LastSeen != t0.Add(10*200*time.Millisecond) || left[0].Frames != 10 {
		t.Fatalf("left event of the first visit: %+v", left[0])
	}
}

// withCosine returns a unit vector whose cosine with the unit vector base is c.
func withCosine(rng *rand.Rand, base []float32, c float64) []float32 {
	other := unit(rng)
	d, _ := cosine(other, base)
	v := make([]float64, len(base))
	for i := range v {
		v[i] = float64(other[i]) - d*float64(base[i]) // orthogonal to base
	}
	orth := normalize(v)
	for i := range v {
		v[i] = c*float64(base[i]) + math.Sqrt(1-c*c)*float64(orth[i])
	}
	return normalize(v)
}

// TestAnotherPersonInTheSamePlace: when one person takes another's place at once, box overlap
// does not carry the first one's track over: their embeddings are too different.
func TestAnotherPersonInTheSamePlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	first := unit(rng)
	second := withCosine(rng, first, 0.3) // as similar as different people get in the test photos
	tr := NewTracker("cam", TrackerConfig{}, nil)
	var evs events
	ids := map[string]bool{}
	for seq := uint64(1); seq <= 12; seq++ {
		e := first
		if seq > 6 {
			e = second
		}
		res := resultAt(seq, face(200, 150, 120, e))
		evs = append(evs, tr.Update(res).Events...)
		ids[res.Faces[0].TrackID] = true
	}
	if len(ids) != 2 || len(evs.of(event.KindAppeared)) != 2 || len(evs.of(event.KindLeft)) != 1 {
		t.Fatalf("tracks %v, events %+v: want two tracks, the first one left", ids, evs)
	}
}

func TestSpuriousDetectionMakesNoEvents(t *testing.T) {
	tr := NewTracker("cam", TrackerConfig{}, nil)
	var evs events
	evs = append(evs, tr.Update(resultAt(1, face(10, 10, 40, nil))).Events...)
	for seq := uint64(2); seq <= 10; seq++ {
		evs = append(evs, tr.Update(resultAt(seq)).Events...)
	}
	evs = append(evs, tr.Finish(event.ReasonEnd)...)
	if len(evs) != 0 {
		t.Fatalf("a one-frame detection made events: %+v", evs)
	}
}

// markerMatcher names an embedding by the sign of its first component, like a gallery with two
// identities whose embeddings are close: positive is "alice", negative "bob"; unknown when the
// magnitude is below 0.01.
type markerMatcher struct{ calls int }

func (m *markerMatcher) Match(emb []float32) (string, float32, bool) {
	m.calls++
	switch {
	case emb[0] > 0.01:
		return "alice", 0.7, true
	case emb[0] < -0.01:
		return "bob", 0.62, true
	}
	return "", 0.3, false
}

func marked(rng *rand.Rand, base []float32, mark float32) []float32 {
	e := near(rng, base, 0.2)
	e[0] = mark
	return e
}

func TestVotePicksWeightedMajority(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	person := unit(rng)
	m := &markerMatcher{}
	tr := NewTracker("cam", TrackerConfig{}, m)
	var evs events
	var results []*result.Result
	for seq := uint64(1); seq <= 12; seq++ {
		// Two of every three frames vote "bob", but from a blurred (low score), turned-away face;
		// every third frame votes "alice" from a sharp frontal one.
		f := face(200, 150, 120, marked(rng, person, 0.05))
		f.Pose = &result.Pose{}
		if seq%3 != 0 {
			f = face(200, 150, 120, marked(rng, person, -0.05))
			f.Score = 0.6
			f.Pose = &result.Pose{Yaw: 65, Pitch: 10}
		}
		res := resultAt(seq, f)
		evs = append(evs, tr.Update(res).Events...)
		results = append(results, res)
	}
	rec := evs.of(event.KindRecognized)
	if len(rec) != 1 || rec[0].Identity == nil || rec[0].Identity.Name != "alice" {
		t.Fatalf("recognized events %+v, want one for alice", rec)
	}
	if rec[0].Seq != 3 || rec[0].Crop.Seq != 3 {
		t.Fatalf("alice settled at seq %d (crop from %d), want 3: her first vote outweighs two poor ones", rec[0].Seq, rec[0].Crop.Seq)
	}
	if math.Abs(float64(rec[0].Identity.Similarity)-0.7) > 1e-6 {
		t.Fatalf("similarity %v, want alice's 0.7", rec[0].Identity.Similarity)
	}
	for _, res := range results {
		id := res.Faces[0].Identity
		if res.Seq < 3 && id != nil {
			t.Fatalf("seq %d: identity %+v before the vote settled", res.Seq, *id)
		}
		if res.Seq >= 3 && (id == nil || id.Name != "alice") {
			t.Fatalf("seq %d: identity %+v, want alice", res.Seq, id)
		}
	}
	if m.calls != 12 {
		t.Fatalf("matcher called %d times, want once per face", m.calls)
	}
	left := tr.Finish(event.ReasonEnd)
	if len(left) != 1 || left[0].Identity == nil || left[0].Identity.Name != "alice" {
		t.Fatalf("left: %+v", left)
	}
}

func TestVoteNeedsMinVotesAndShare(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	person := unit(rng)
	for _, tc := range []struct {
		name  string
		marks []float32 // per frame: >0 alice, <0 bob, 0 unknown
		want  string    // settled identity, "" none
		at    uint64    // seq of face.recognized
	}{
		{"three equal votes settle at the third", []float32{1, 1, 1, 1}, "alice", 3},
		{"mostly unknown never settles", []float32{1, 0, 0, 0, 0, 1, 0, 0}, "", 0},
		{"split vote waits for a majority", []float32{1, -1, 1, -1, 1}, "alice", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker("cam", TrackerConfig{}, &markerMatcher{})
			var evs events
			for i, mark := range tc.marks {
				evs = append(evs, tr.Update(resultAt(uint64(i+1), face(200, 150, 120, marked(rng, person, 0.05*mark)))).Events...)
			}
			rec := evs.of(event.KindRecognized)
			if tc.want == "" {
				if len(rec) != 0 {
					t.Fatalf("recognized %+v, want none", rec)
				}
				return
			}
			if len(rec) != 1 || rec[0].Identity.Name != tc.want || rec[0].Seq != tc.at {
				t.Fatalf("recognized %+v, want %s at seq %d", rec, tc.want, tc.at)
			}
		})
	}
}

func TestAnalyzerIdentityVotesWithoutMatcher(t *testing.T) {
	tr := NewTracker("cam", TrackerConfig{}, nil)
	var evs events
	for seq := uint64(1); seq <= 4; seq++ {
		f := face(200, 150, 120, nil)
		f.Identity = &result.Identity{Name: "carol", Similarity: 0.8}
		if seq == 2 {
			f.Identity.Similarity = 0.3 // below the threshold: votes unknown
		}
		evs = append(evs, tr.Update(resultAt(seq, f)).Events...)
	}
	if rec := evs.of(event.KindRecognized); len(rec) != 1 || rec[0].Identity.Name != "carol" || rec[0].Seq != 3 {
		t.Fatalf("recognized %+v, want carol at seq 3 (three votes, two of them hers)", rec)
	}
}

func TestHeadsScheduleAndCarry(t *testing.T) {
	tr := NewTracker("cam", TrackerConfig{HeadsInterval: time.Second, Heads: []string{"emotion", "liveness", "pose"}}, nil)
	heavy := func(f result.Face) result.Face {
		f.Pose = &result.Pose{Yaw: 5}
		f.Liveness = &result.Liveness{Real: true, Score: 0.9}
		f.Emotion = &result.Emotion{Label: "happy", Scores: map[string]float32{"happy": 0.9}}
		return f
	}
	var asked []uint64
	for seq := uint64(1); seq <= 14; seq++ {
		f := face(200, 150, 120, nil)
		if seq == 3 || seq == 10 { // the frames after a request carry the heads
			f = heavy(f)
		}
		res := resultAt(seq, f)
		st := tr.Update(res)
		if st.HeadsSeen() != (seq == 3 || seq == 10) {
			t.Fatalf("seq %d: HeadsSeen %v", seq, st.HeadsSeen())
		}
		if len(st.HeadsFor) > 0 {
			asked = append(asked, seq)
			want := event.RequestStale
			if seq < 3 {
				want = event.RequestNewTrack
			}
			if st.HeadsReason != want || st.HeadsFor[0] != res.Faces[0].TrackID {
				t.Fatalf("seq %d: heads for %v (%s), want %s for %s", seq, st.HeadsFor, st.HeadsReason, want, res.Faces[0].TrackID)
			}
		}
		got := res.Faces[0]
		if seq >= 3 && (got.Pose == nil || got.Liveness == nil || got.Emotion == nil || got.Emotion.Label != "happy") {
			t.Fatalf("seq %d: heavy attributes not carried: %+v", seq, got)
		}
		if seq < 3 && got.Pose != nil {
			t.Fatalf("seq %d: pose before any frame had it", seq)
		}
	}
	// New at 1 and 2; fresh from 3 for 1 s (5 frames): stale at 8 and 9; fresh again from 10 to 14.
	if want := []uint64{1, 2, 8, 9}; !equal(asked, want) {
		t.Fatalf("heads asked at %v, want %v", asked, want)
	}
}

func TestHeadsNeverAskedWhenDisabled(t *testing.T) {
	tr := NewTracker("cam", TrackerConfig{HeadsInterval: -1}, nil)
	for seq := uint64(1); seq <= 3; seq++ {
		if st := tr.Update(resultAt(seq, face(200, 150, 120, nil))); len(st.HeadsFor) > 0 {
			t.Fatalf("seq %d: heads asked with a negative interval", seq)
		}
	}
}

func TestLateResultIsLabelledOnly(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	person := unit(rng)
	tr := NewTracker("cam", TrackerConfig{}, nil)
	for seq := uint64(2); seq <= 5; seq++ {
		tr.Update(resultAt(seq, face(200, 150, 120, near(rng, person, 0.3))))
	}
	late := resultAt(1, face(202, 151, 118, near(rng, person, 0.3)))
	if st := tr.Update(late); len(st.Events) != 0 {
		t.Fatalf("late result made events: %+v", st.Events)
	}
	now := resultAt(6, face(200, 150, 120, near(rng, person, 0.3)))
	tr.Update(now)
	if late.Faces[0].TrackID == "" || late.Faces[0].TrackID != now.Faces[0].TrackID || tr.Tracks() != 1 {
		t.Fatalf("late face track %q, current %q, %d tracks", late.Faces[0].TrackID, now.Faces[0].TrackID, tr.Tracks())
	}
}

func TestConfigValidate(t *testing.T) {
	good := TrackerConfig{}
	good.setDefaults()
	if err := good.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	for _, bad := range []TrackerConfig{{IoUWeight: 2}, {Threshold: 1.5}, {MinVotes: 20, Window: 10}, {Heads: []string{"Bad Head"}}} {
		bad.setDefaults()
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestQuality(t *testing.T) {
	frontal := face(0, 0, 120, nil)
	turned := frontal
	turned.Landmarks = append([]result.Point(nil), frontal.Landmarks...)
	turned.Landmarks[2].X = frontal.Landmarks[0].X + 5 // nose near the left eye: turned away
	small := face(0, 0, 30, nil)
	posed := frontal
	posed.Pose = &result.Pose{Yaw: 60}
	if !(Quality(frontal) > Quality(turned) && Quality(frontal) > Quality(small) && Quality(frontal) > Quality(posed)) {
		t.Fatalf("quality frontal %v, turned %v, small %v, posed %v", Quality(frontal), Quality(turned), Quality(small), Quality(posed))
	}
	if q := Quality(frontal); math.Abs(q-0.99) > 1e-6 {
		t.Fatalf("a large frontal face with score 0.99 has quality %v, want 0.99", q)
	}
	if q := Quality(result.Face{Box: result.Box{X1: 5, X2: 5, Y2: 9}, Score: 1}); q != 0 {
		t.Fatalf("degenerate box quality %v", q)
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestHeadsPerTrack: with the default heads, a track asks for all of them on its first frame,
// for the identity heads on every frame until its identity settles, then nothing until they are
// stale or a clearly better view comes; and every face carries the track's aggregated values
// with the frame they rest on.
func TestHeadsPerTrack(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	person := unit(rng)
	gal := matcherFunc(func(emb []float32) (string, float32, bool) { return "ada", cosineOf(emb, person), true })
	tr := NewTracker("cam", TrackerConfig{HeadsInterval: 2 * time.Second}, gal)
	var pending []string // heads the analyzer runs on the next frame (an honoured request)
	type ask struct {
		seq    uint64
		reason string
		heads  string
	}
	var asks []ask
	ran := map[uint64]bool{}
	ages := map[uint64]float32{2: 30, 3: 34, 4: 80} // 80: an outlier the robust mean ignores
	for seq := uint64(1); seq <= 25; seq++ {
		size := float32(60)
		if seq >= 20 {
			size = 160 // a clearly larger (better) view
		}
		f := face(200, 150, size, nil)
		if len(pending) > 0 {
			ran[seq] = true
			f = withHeads(f, pending, near(rng, person, 0.2), ages[seq])
		}
		res := resultAt(seq, f)
		st := tr.Update(res)
		pending = st.HeadsNeeded
		if len(st.HeadsFor) > 0 {
			asks = append(asks, ask{seq, st.HeadsReason, strings.Join(st.HeadsNeeded, ",")})
		}
		got := res.Faces[0]
		if seq > 2 {
			if got.HeadsSeq == 0 || got.HeadsCapturedAt == nil || !ran[got.HeadsSeq] {
				t.Fatalf("seq %d: heads_seq %d does not name a frame the heads ran on", seq, got.HeadsSeq)
			}
		}
		if seq == 6 && (got.Age == nil || *got.Age < 30 || *got.Age > 34) {
			t.Fatalf("seq 6: age %v, want the robust mean of 30, 34 and 80, which ignores 80", got.Age)
		}
	}
	all := "embedding,age,gender,liveness,pose" // every head but the solo one, emotion
	if len(asks) < 4 || asks[0] != (ask{1, event.RequestNewTrack, all}) {
		t.Fatalf("asks %+v: want all heads but emotion on the new track's first frame", asks)
	}
	emotionAt := 0
	for i, a := range asks {
		if a.heads == "emotion" && emotionAt == 0 {
			emotionAt = i
		}
	}
	if emotionAt == 0 || asks[emotionAt-1].reason != RequestSettle {
		t.Fatalf("asks %+v: want emotion alone once the identity heads have run (settle first)", asks)
	}
	// Settle: identity heads only, on consecutive frames, until the vote settles (3 votes).
	settled := 0
	for _, a := range asks[2:] {
		if a.reason == RequestSettle {
			settled++
			if a.heads != "embedding,age,gender" {
				t.Fatalf("settle ask %+v: want only the identity heads", a)
			}
		}
		if strings.Contains(a.heads, "emotion") && a.heads != "emotion" {
			t.Fatalf("ask %+v: emotion asked together with other heads", a)
		}
	}
	if settled == 0 || settled > 4 {
		t.Fatalf("asks %+v: want a few settle asks, then none", asks)
	}
	var stale, staleEmotion, better bool
	for _, a := range asks {
		stale = stale || a.reason == event.RequestStale && a.heads == all
		staleEmotion = staleEmotion || a.reason == event.RequestStale && a.heads == "emotion"
		better = better || a.reason == RequestBetterView && a.seq == 20
	}
	if !stale || !staleEmotion || !better {
		t.Fatalf("asks %+v: want stale asks after 2 s (the heads together, emotion alone) and a better-view ask at seq 20", asks)
	}
	if n := len(ran); n > 12 {
		t.Fatalf("heads ran on %d of 25 frames, want per track, not every frame", n)
	}
}

func TestAggregation(t *testing.T) {
	var c carried
	t0 := time.Unix(0, 0)
	for i, g := range []*result.Gender{result.GenderFromMale(0.9, 0.6), result.GenderFromMale(0.55, 0.6), result.GenderFromMale(0.8, 0.6)} {
		f := result.Face{Gender: g, Liveness: &result.Liveness{Real: i != 1, Score: []float32{0.9, 0.2, 0.8}[i]},
			Emotion: &result.Emotion{Label: "x", Scores: map[string]float32{"happy": float32(i) / 2, "neutral": 1 - float32(i)/2}}}
		c.take(&f, 1, uint64(i+1), t0, 9)
	}
	var f result.Face
	c.fill(&f)
	if f.Gender.Label != "male" || f.Gender.Score < 0.7 || f.Gender.Score > 0.76 {
		t.Fatalf("gender %+v, want male at the mean male probability 0.75 (one frame's flip to female outvoted)", f.Gender)
	}
	if !f.Liveness.Real || f.Liveness.Score < 0.6 || f.Liveness.Score > 0.64 {
		t.Fatalf("liveness %+v, want real (2 of 3 votes), mean score 0.63", f.Liveness)
	}
	if f.Emotion.Label != "happy" {
		t.Fatalf("emotion %+v, want happy: the recent frames weigh more", f.Emotion)
	}
	if f.HeadsSeq != 3 {
		t.Fatalf("heads_seq %d, want 3", f.HeadsSeq)
	}
	if g := result.GenderFromMale(1.06, 0.6); g.Score != 1 {
		t.Fatalf("male score 1.06 gives %+v, want a probability clamped to 1", g)
	}
	if g := result.GenderFromMale(0.02, 0.6); g.Label != "female" || g.Score < 0.97 {
		t.Fatalf("male score 0.02 gives %+v, want female with probability 0.98", g)
	}
}

type matcherFunc func([]float32) (string, float32, bool)

func (m matcherFunc) Match(emb []float32) (string, float32, bool) { return m(emb) }

func cosineOf(a, b []float32) float32 {
	c, _ := cosine(a, b)
	return float32(c)
}

// withHeads is f with the output of the heads named (all of them when heads is empty), as an
// analyzer gives it: emb as the embedding, age (when not 0) as the age.
func withHeads(f result.Face, heads []string, emb []float32, age float32) result.Face {
	if len(heads) == 0 {
		heads = event.DefaultHeads
	}
	for _, h := range heads {
		switch h {
		case "embedding":
			f.Embedding = emb
		case "age":
			if age == 0 {
				age = 32
			}
			f.Age = &age
		case "gender":
			f.Gender = result.GenderFromMale(0.1, 0.6)
		case "emotion":
			f.Emotion = &result.Emotion{Label: "neutral", Scores: map[string]float32{"neutral": 1}}
		case "liveness":
			f.Liveness = &result.Liveness{Real: true, Score: 0.9}
		case "pose":
			f.Pose = &result.Pose{}
		}
	}
	return f
}

// TestUnknownSettlesAfterMinVotes: a face that clearly matches nobody in the gallery stops
// asking for identity heads after MinVotes votes, while a face whose best match stays near the
// threshold keeps asking up to SettleSamples.
func TestUnknownSettlesAfterMinVotes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sim       float32
		maxSettle int
		minSettle int
	}{
		{"clearly unknown", 0.1, 2, 1},                        // the new track's run votes, then MinVotes-1 settle runs
		{"near the threshold", DefaultThreshold - 0.05, 6, 5}, // up to SettleSamples (6) identity runs
	} {
		gal := matcherFunc(func([]float32) (string, float32, bool) { return "ada", tc.sim, true })
		tr := NewTracker("cam", TrackerConfig{}, gal)
		rng := rand.New(rand.NewPCG(3, 4))
		person := unit(rng)
		var pending []string
		settle := 0
		for seq := uint64(1); seq <= 12; seq++ {
			f := face(200, 150, 60, nil)
			if len(pending) > 0 {
				f = withHeads(f, pending, near(rng, person, 0.2), 30)
			}
			st := tr.Update(resultAt(seq, f))
			pending = st.HeadsNeeded
			if st.HeadsReason == RequestSettle {
				settle++
			}
		}
		if settle < tc.minSettle || settle > tc.maxSettle {
			t.Fatalf("%s: %d settle asks, want %d..%d", tc.name, settle, tc.minSettle, tc.maxSettle)
		}
	}
}

// TestLateHeadsJoinTheTrack: a frame whose requested emotion is pending (the analyzer runs it
// after publishing the result) answers the request, so the next frames do not ask again; the
// late-heads document for that frame then puts emotion on the track, which later results carry
// with heads_seq naming that frame.
func TestLateHeadsJoinTheTrack(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	person := unit(rng)
	tr := NewTracker("cam", TrackerConfig{HeadsInterval: time.Minute, SettleHeads: []string{}}, nil)
	var pending []string
	emotionSeq := uint64(0)
	for seq := uint64(1); seq <= 12; seq++ {
		f := face(200, 150, 100, nil)
		if len(pending) > 0 {
			if slices.Equal(pending, []string{"emotion"}) {
				if emotionSeq != 0 {
					t.Fatalf("seq %d: emotion asked again after seq %d said it was pending", seq, emotionSeq)
				}
				emotionSeq = seq
				f.PendingHeads = []string{"emotion"}
			} else {
				f = withHeads(f, pending, near(rng, person, 0.1), 30)
			}
		}
		res := resultAt(seq, f)
		st := tr.Update(res)
		pending = st.HeadsNeeded
		if emotionSeq != 0 && seq == emotionSeq {
			if !slices.Contains(st.Fresh, "emotion") {
				t.Fatalf("seq %d: fresh %v, want the pending emotion to answer the request", seq, st.Fresh)
			}
			if res.Faces[0].Emotion != nil {
				t.Fatalf("seq %d: emotion %+v before its output came", seq, res.Faces[0].Emotion)
			}
		}
		if emotionSeq != 0 && seq == emotionSeq+2 {
			// The late heads of emotionSeq arrive: the face where it was, emotion only.
			late := resultAt(emotionSeq, face(200, 150, 100, nil))
			late.Faces[0].Emotion = &result.Emotion{Label: "happy", Scores: map[string]float32{"happy": 0.9, "neutral": 0.1}}
			tr.late(late)
		}
		if emotionSeq != 0 && seq > emotionSeq+2 {
			got := res.Faces[0]
			if got.Emotion == nil || got.Emotion.Label != "happy" || got.HeadsSeq != emotionSeq {
				t.Fatalf("seq %d: emotion %+v heads_seq %d, want the late emotion of seq %d", seq, got.Emotion, got.HeadsSeq, emotionSeq)
			}
		}
	}
	if emotionSeq == 0 {
		t.Fatal("emotion was never asked for")
	}
}

// TestSnapshotFromAFullFrame: an event's crop names a sighting whose frame ran heads (frames
// with a heads request travel at full size; the others may go at half size), even when a
// larger view came on a frame without heads; without any such sighting, the best of all.
func TestSnapshotFromAFullFrame(t *testing.T) {
	ss := []sighting{
		{crop: event.Crop{Seq: 1}, quality: 0.4, full: true},
		{crop: event.Crop{Seq: 2}, quality: 0.9},
		{crop: event.Crop{Seq: 3}, quality: 0.5, full: true},
		{crop: event.Crop{Seq: 4}, quality: 0.6},
	}
	if c := best(ss, ""); c.Seq != 3 {
		t.Fatalf("crop of seq %d, want 3: the best sighting on a full frame", c.Seq)
	}
	if c := best(ss[1:2], ""); c.Seq != 2 {
		t.Fatalf("crop of seq %d, want 2: no full frame, the best of all", c.Seq)
	}
	// Through the tracker: the track's face.left crop is the best view whose frame ran heads, not
	// a later, larger view without them.
	tr := NewTracker("cam", TrackerConfig{HeadsInterval: time.Minute, SettleHeads: []string{}, BetterView: -1}, nil)
	rng := rand.New(rand.NewPCG(7, 8))
	var pending []string
	for seq := uint64(1); seq <= 4; seq++ {
		f := face(200, 150, 60+40*float32(seq), nil) // larger every frame
		if len(pending) > 0 {
			f = withHeads(f, pending, unit(rng), 30)
		}
		pending = tr.Update(resultAt(seq, f)).HeadsNeeded
	}
	// Heads ran on seq 2 (all but emotion) and 3 (emotion alone); seq 4, the largest view, had none.
	left := events(tr.Finish(event.ReasonEnd)).of(event.KindLeft)
	if len(left) != 1 || left[0].Crop.Seq != 3 {
		t.Fatalf("left %+v, want one with the crop of seq 3 (the largest view whose frame ran heads)", left)
	}
}
