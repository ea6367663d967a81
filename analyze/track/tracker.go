package track

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/pkg/heads"
	"github.com/vigil-video/vigil/pkg/result"
)

// Matcher identifies a face by its embedding against a gallery of enrolled identities. Match
// returns the most similar identity's name, its cosine similarity and ok=true when it is a match
// by the gallery's own rule; otherwise ok=false. The tracker applies TrackerConfig.Threshold on
// top. *gallery.Gallery (analyze/gallery) has this method. Implementations must be safe for
// concurrent use.
type Matcher interface {
	Match(emb []float32) (name string, similarity float32, ok bool)
}

// UnknownMatcher matches an embedding to the unknown people (tracks that ended without identity,
// clustered by sink/unknowns): Match returns the id of the most similar unknown, its cosine
// similarity and ok=true when it is a match at the clustering's threshold. *unknown.Index
// (pkg/unknown) has this method. Implementations must be safe for concurrent use.
type UnknownMatcher interface {
	Match(emb []float32) (id string, similarity float32, ok bool)
}

// DefaultThreshold is the cosine similarity from which a frame's gallery match votes for an
// identity. On ../shared/testdata/faces the lowest same-person similarity is 0.58 and the highest
// different-person one 0.34; 0.45 sits in that gap.
const DefaultThreshold = 0.45

// TrackerConfig tunes a Tracker. Zero fields take their defaults.
type TrackerConfig struct {
	// IoUWeight is the share of box overlap (IoU with the track's predicted box) in the
	// association score; the rest is the cosine similarity of the embeddings. Default 0.5.
	IoUWeight float64
	// MinIoU: a face and a track associate when their IoU reaches it (subject to VetoCosine).
	// Default 0.1.
	MinIoU float64
	// MinCosine: a face and a track whose embeddings are at least this similar associate even
	// without overlap (a fast move, dropped frames). Default 0.5.
	MinCosine float64
	// VetoCosine: a face and a track whose embeddings are less similar than this never associate,
	// however much they overlap (two people crossing, or one taking another's place). Default
	// 0.35: different people in ../shared/testdata/faces reach 0.34, while consecutive frames of
	// the woman in video/fer_test.mp4 stay at 0.74 or more.
	VetoCosine float64
	// MinHits is the sightings in a row that confirm a track (and announce face.appeared); a
	// track missed before that is dropped silently. Default 2.
	MinHits int
	// MaxMisses ends a confirmed track (face.left, reason "lost") after this many analysed frames
	// in a row without it. Default 5 (1 s at 5 frames/s).
	MaxMisses int
	// MaxAge ends a confirmed track once its last sighting is this much capture time older than
	// a frame without it, whatever MaxMisses says (for low or irregular frame rates). Default 2s;
	// negative: only MaxMisses counts.
	MaxAge time.Duration
	// MaxTracks bounds the live tracks of a stream; further faces get no track. Default 64.
	MaxTracks int
	// Threshold is the similarity from which a frame's gallery match counts as a vote for that
	// identity; below it the frame votes "unknown". Default DefaultThreshold (0.45).
	Threshold float32
	// MinVotes is the frames that must have voted before an identity can settle. Default 3.
	MinVotes int
	// MinShare is the share of the vote weight (unknown votes included) the leading identity
	// needs to settle. Default 0.5.
	MinShare float64
	// Window is the sightings per track kept for voting and crop choice. Default 15.
	Window int
	// Heads are the heads whose output is scheduled per track (Step.HeadsNeeded): all of them
	// on a new track, again once its output is HeadsInterval old, and when a clearly better view
	// of the face comes (BetterView). Default event.DefaultHeads.
	Heads []string
	// SettleHeads are the heads asked for on every frame of a track whose identity has not
	// settled yet, until it settles, its last MinVotes votes clearly match nobody (each more
	// than 0.1 below Threshold), or SettleSamples embeddings have voted (then the person is
	// called unknown until the next scheduled run). Only those also in Heads are asked for.
	// Default embedding, age, gender (about 9 ms per face on one core, against ~80 ms for all).
	SettleHeads []string
	// SettleSamples bounds the frames asked for SettleHeads per track. Default 2 * MinVotes.
	SettleSamples int
	// HeadsInterval is how much capture time a track's heads output stays fresh. Default 5s;
	// negative: heads are never asked for.
	HeadsInterval time.Duration
	// BetterView asks for the heads again when a sighting's Quality (size, sharpness,
	// frontality) reaches this multiple of the quality of the sighting they last ran on.
	// Default 1.3; negative: never. At most once per BetterViewGap of capture time per track.
	BetterView float64
	// BetterViewGap is the least capture time between two better-view runs of a track's heads
	// (quality flickers from frame to frame). Default 1s.
	BetterViewGap time.Duration
	// SoloHeads are heads too costly to run on one frame together with others (the expression
	// model, a DenseNet-121, costs ~55 ms a face on one core, several times the rest together):
	// they are asked for on a frame of their own, after the other heads a track needs, so no
	// frame's latency carries all of them. Default heads.Costly() (emotion), which the analyzer
	// also runs late on live frames (analyze.Role.LateHeads).
	SoloHeads []string
	// AgeWindow is how many age estimates a track keeps for its robust mean (the mean of the
	// middle half of them). Default 9.
	AgeWindow int
}

func (c *TrackerConfig) setDefaults() {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.IoUWeight, 0.5)
	def(&c.MinIoU, 0.1)
	def(&c.MinCosine, 0.5)
	def(&c.VetoCosine, 0.35)
	def(&c.MinShare, 0.5)
	if c.MinHits <= 0 {
		c.MinHits = 2
	}
	if c.MaxMisses <= 0 {
		c.MaxMisses = 5
	}
	if c.MaxAge == 0 {
		c.MaxAge = 2 * time.Second
	}
	if c.MaxTracks <= 0 {
		c.MaxTracks = 64
	}
	if c.Threshold == 0 {
		c.Threshold = DefaultThreshold
	}
	if c.MinVotes <= 0 {
		c.MinVotes = 3
	}
	if c.Window <= 0 {
		c.Window = 15
	}
	if c.Heads == nil {
		c.Heads = append([]string(nil), event.DefaultHeads...)
	}
	if c.HeadsInterval == 0 {
		c.HeadsInterval = 5 * time.Second
	}
	if c.SettleHeads == nil {
		c.SettleHeads = []string{"embedding", "age", "gender"}
	}
	if c.SettleSamples <= 0 {
		c.SettleSamples = 2 * c.MinVotes
	}
	if c.BetterView == 0 {
		c.BetterView = 1.3
	}
	if c.BetterViewGap == 0 {
		c.BetterViewGap = time.Second
	}
	if c.AgeWindow <= 0 {
		c.AgeWindow = 9
	}
	if c.SoloHeads == nil {
		c.SoloHeads = heads.Costly()
	}
}

// Validate reports a configuration the tracker cannot work with.
func (c TrackerConfig) Validate() error {
	switch {
	case c.IoUWeight < 0 || c.IoUWeight > 1:
		return fmt.Errorf("track: IoU weight %v outside 0..1", c.IoUWeight)
	case c.MinIoU < 0 || c.MinIoU > 1:
		return fmt.Errorf("track: min IoU %v outside 0..1", c.MinIoU)
	case c.MinCosine < -1 || c.MinCosine > 1 || c.VetoCosine < -1 || c.VetoCosine > 1:
		return fmt.Errorf("track: cosine gates %v, %v outside -1..1", c.MinCosine, c.VetoCosine)
	case c.Threshold < -1 || c.Threshold > 1:
		return fmt.Errorf("track: identity threshold %v outside -1..1", c.Threshold)
	case c.MinShare < 0 || c.MinShare > 1:
		return fmt.Errorf("track: min share %v outside 0..1", c.MinShare)
	case c.MinVotes > c.Window && c.Window > 0:
		return fmt.Errorf("track: min votes %d above the vote window %d", c.MinVotes, c.Window)
	}
	return event.ValidateHeads("x", c.Heads)
}

// Step is what one frame changed.
type Step struct {
	// Events are the events the frame decided, in order: face.left of lost tracks, then
	// face.appeared, then face.recognized. Their At is zero (the publisher sets it).
	Events []event.Event
	// HeadsFor lists the tracks in this frame that need heads run on a coming frame; empty when
	// none does. HeadsNeeded is the union of the heads they need, in Heads order. HeadsReason is
	// the most urgent reason among them: event.RequestNewTrack, RequestSettle, RequestBetterView,
	// then event.RequestStale.
	HeadsFor    []string
	HeadsNeeded []string
	HeadsReason string
	// Fresh lists the scheduled heads whose output a face of this frame carried from the frame
	// itself (union over the frame's faces, in Heads order): the analyzer ran them on this
	// frame (an honoured request, or heads it always runs).
	Fresh []string
}

// HeadsSeen reports whether the analyzer ran any scheduled head on this frame.
func (s Step) HeadsSeen() bool { return len(s.Fresh) > 0 }

// Tracker follows the faces of one stream. Feed it every analysed result of the stream in
// sequence order (Update); it is not safe for concurrent use. It takes no clock: its time is the
// results' capture time.
type Tracker struct {
	cfg      TrackerConfig
	stream   string
	matcher  Matcher
	unknowns UnknownMatcher

	idPrefix string
	nextID   uint64
	tracks   []*trk
	lastSeq  uint64
}

// trk is one track's state.
type trk struct {
	id                    string
	confirmed, recognized bool
	hits, misses          int
	firstSeen, lastSeen   time.Time
	lastSeq               uint64
	box                   result.Box
	vx, vy                float64 // centre velocity, pixels per sequence number
	moved                 bool    // vx, vy are measured
	emb                   []float32
	sightings             []sighting // the last Window, oldest first
	identity              *result.Identity
	unknownID             string // the unknown person the track's embedding matched, while it has no identity
	attrs                 carried
	headAt                map[string]time.Time // per head: capture time of its latest output
	headsAt               time.Time            // capture time of the latest run of every non-solo head
	headsQuality          float64              // that sighting's Quality
	embSamples            int                  // sightings with an embedding (identity votes from the model)
}

type sighting struct {
	crop    event.Crop
	quality float64
	// full: heads ran on the sighting's frame (or were pending on it), so ingest published it
	// at full size (frames without a heads request may travel at half size: frame.Scale).
	full  bool
	voted bool
	name  string // "" votes unknown
	sim   float32
}

// NewTracker returns a tracker for stream. matcher may be nil: frames then vote with the identity
// the analyzer put on the face, if any.
func NewTracker(stream string, cfg TrackerConfig, matcher Matcher) *Tracker {
	cfg.setDefaults()
	return &Tracker{cfg: cfg, stream: stream, matcher: matcher}
}

// SetUnknowns makes the tracker match tracks without identity to the unknown people: their
// faces and events then carry unknown_id (nil: never).
func (t *Tracker) SetUnknowns(u UnknownMatcher) { t.unknowns = u }

// Tracks returns the number of live tracks (tentative and confirmed).
func (t *Tracker) Tracks() int { return len(t.tracks) }

// Update associates res's faces with the stream's tracks and enriches them in place: TrackID on
// every face that has a track, Identity from the track's settled vote (nil until it settles, and
// for unknown people), and the track's latest age, gender, emotion, liveness and pose on faces
// whose frame did not have them. res must come after every result already given, in sequence
// order; an older one is only labelled (see Label).
func (t *Tracker) Update(res *result.Result) Step {
	if t.lastSeq != 0 && res.Seq <= t.lastSeq {
		return t.late(res)
	}
	if t.idPrefix == "" {
		t.idPrefix = strconv.FormatInt(res.CapturedAt.UnixMilli(), 36)
	}
	now := res.CapturedAt
	var step Step
	match := t.associate(res)
	seen := make([]bool, len(t.tracks))
	for _, ti := range match {
		if ti >= 0 {
			seen[ti] = true
		}
	}
	// Tracks not seen: count the miss; end those that are gone.
	kept := t.tracks[:0]
	remap := make([]int, len(t.tracks))
	for i, tr := range t.tracks {
		remap[i] = -1
		if !seen[i] {
			tr.misses++
			if !tr.confirmed {
				continue // a tentative track missed once is dropped silently
			}
			if tr.misses >= t.cfg.MaxMisses || t.cfg.MaxAge > 0 && now.Sub(tr.lastSeen) >= t.cfg.MaxAge {
				step.Events = append(step.Events, t.leftEvent(tr, event.ReasonLost, res.Seq, now))
				continue
			}
		}
		remap[i] = len(kept)
		kept = append(kept, tr)
	}
	t.tracks = kept
	var appeared, recognized []event.Event
	heads := len(t.cfg.Heads) > 0
	for fi := range res.Faces {
		f := &res.Faces[fi]
		var tr *trk
		if ti := match[fi]; ti >= 0 {
			tr = t.tracks[remap[ti]]
			t.observe(tr, res, f)
		} else if len(t.tracks) < t.cfg.MaxTracks {
			tr = t.newTrack(res, f)
		}
		if tr == nil {
			t.clearIdentity(f)
			continue
		}
		q := Quality(*f)
		if heads {
			fresh := freshHeads(*f, t.cfg.Heads)
			step.addFresh(fresh, t.cfg.Heads)
			t.ran(tr, fresh, q, now)
		}
		if len(f.Embedding) > 0 || f.TooSmall && f.Age != nil && f.Gender != nil { // a too small face's settle run counts
			tr.embSamples++
		}
		tr.attrs.take(f, q, res.Seq, now, t.cfg.AgeWindow)
		t.vote(tr, res, f)
		t.matchUnknown(tr, f)
		if !tr.confirmed && tr.hits >= t.cfg.MinHits {
			tr.confirmed = true
			appeared = append(appeared, t.event(tr, event.KindAppeared, res.Seq, now, best(tr.sightings, "")))
		}
		if tr.confirmed && !tr.recognized && tr.identity != nil {
			tr.recognized = true
			ev := t.event(tr, event.KindRecognized, res.Seq, now, best(tr.sightings, tr.identity.Name))
			ev.Identity = cloneIdentity(tr.identity)
			recognized = append(recognized, ev)
		}
		t.label(tr, f)
		if t.cfg.HeadsInterval >= 0 && heads {
			if need, reason := t.needs(tr, q, now); len(need) > 0 {
				step.need(tr.id, need, reason, t.cfg.Heads)
			}
		}
	}
	step.Events = append(append(step.Events, appeared...), recognized...)
	t.lastSeq = res.Seq
	return step
}

// Reasons of heads requests beyond event.RequestNewTrack and event.RequestStale.
const (
	// RequestSettle: a track's identity has not settled; its SettleHeads run again.
	RequestSettle = "settle"
	// RequestBetterView: a clearly better view of the face came than the one heads last ran on.
	RequestBetterView = "better_view"
)

// reasonRank orders request reasons by urgency (lower first; unknown reasons last).
func reasonRank(reason string) int {
	switch reason {
	case event.RequestNewTrack:
		return 0
	case RequestSettle:
		return 1
	case RequestBetterView:
		return 2
	case event.RequestStale:
		return 3
	}
	return 4
}

// ran records that the heads fresh ran on a sighting of tr of quality q captured at.
func (t *Tracker) ran(tr *trk, fresh []string, q float64, at time.Time) {
	if len(fresh) == 0 {
		return
	}
	if tr.headAt == nil {
		tr.headAt = map[string]time.Time{}
	}
	for _, h := range fresh {
		if at.After(tr.headAt[h]) {
			tr.headAt[h] = at
		}
	}
	for _, h := range t.cfg.Heads {
		if !slices.Contains(t.cfg.SoloHeads, h) && !slices.Contains(fresh, h) {
			return
		}
	}
	if at.After(tr.headsAt) {
		tr.headsAt, tr.headsQuality = at, q
	}
}

// due returns the heads among Heads whose latest output is older than age (or missing), at most
// one solo head and only when no other head is due, so that no frame runs them all.
func (t *Tracker) due(tr *trk, now time.Time, age time.Duration) []string {
	var due, solo []string
	for _, h := range t.cfg.Heads {
		at, ok := tr.headAt[h]
		if ok && now.Sub(at) < age {
			continue
		}
		if slices.Contains(t.cfg.SoloHeads, h) {
			solo = append(solo, h)
		} else {
			due = append(due, h)
		}
	}
	if len(due) == 0 && len(solo) > 0 {
		return solo[:1]
	}
	return due
}

// needs returns the heads tr needs run on a coming frame, and why: every head but the solo ones
// on a new track, then SettleHeads (those among Heads) until its identity settles (as someone,
// or as clearly unknown), then the solo
// heads on frames of their own, the heads whose output is stale, all again on a better view
// (quality q); nil when none.
func (t *Tracker) needs(tr *trk, q float64, now time.Time) ([]string, string) {
	missing := t.due(tr, now, time.Duration(math.MaxInt64))
	if len(missing) > 0 && !slices.Contains(t.cfg.SoloHeads, missing[0]) {
		return missing, event.RequestNewTrack
	}
	if tr.identity == nil && tr.embSamples < t.cfg.SettleSamples && !t.clearlyUnknown(tr) {
		var settle []string
		for _, h := range t.cfg.SettleHeads {
			if slices.Contains(t.cfg.Heads, h) {
				settle = append(settle, h)
			}
		}
		if len(settle) > 0 {
			return settle, RequestSettle
		}
	}
	if len(missing) > 0 { // a solo head, once the identity heads have settled
		return missing, event.RequestNewTrack
	}
	if stale := t.due(tr, now, t.cfg.HeadsInterval); len(stale) > 0 {
		if !slices.Contains(t.cfg.SoloHeads, stale[0]) {
			stale = t.due(tr, now, 0) // one stale head refreshes all but the solo ones: fewer frames carry heads
		}
		return stale, event.RequestStale
	}
	if t.cfg.BetterView > 0 && q > 0 && q >= t.cfg.BetterView*tr.headsQuality && now.Sub(tr.headsAt) >= t.cfg.BetterViewGap {
		return t.due(tr, now, 0), RequestBetterView
	}
	return nil, ""
}

// unknownMargin is how far below Threshold a vote's best similarity must be for it to count
// towards settling a track as clearly unknown.
const unknownMargin = 0.1

// clearlyUnknown reports whether tr's identity has settled as "not in the gallery": its last
// MinVotes votes all matched nobody, none within unknownMargin of Threshold. Such a track needs
// no more identity samples until its heads go stale (which also notices a person enrolled since):
// an unknown face costs MinVotes identity runs, not SettleSamples.
func (t *Tracker) clearlyUnknown(tr *trk) bool {
	n := 0
	for i := len(tr.sightings) - 1; i >= 0 && n < t.cfg.MinVotes; i-- {
		s := tr.sightings[i]
		if !s.voted {
			continue
		}
		if s.name != "" || s.sim >= t.cfg.Threshold-unknownMargin {
			return false
		}
		n++
	}
	return n >= t.cfg.MinVotes
}

// addFresh records heads whose output a face of the frame carried, in the order of all.
func (s *Step) addFresh(fresh, all []string) {
	for _, h := range all {
		if slices.Contains(fresh, h) && !slices.Contains(s.Fresh, h) {
			s.Fresh = append(s.Fresh, h)
		}
	}
}

// need adds track id's heads (kept in the order of all, and only those in it) to the step.
func (s *Step) need(id string, heads []string, reason string, all []string) {
	s.HeadsFor = append(s.HeadsFor, id)
	for _, h := range all {
		if slices.Contains(heads, h) && !slices.Contains(s.HeadsNeeded, h) {
			s.HeadsNeeded = append(s.HeadsNeeded, h)
		}
	}
	if s.HeadsReason == "" || reasonRank(reason) < reasonRank(s.HeadsReason) {
		s.HeadsReason = reason
	}
}

// Label enriches res's faces from the current tracks without changing their association state:
// for a result that arrived after later ones were already tracked. Fresh head outputs on it
// still join the track's aggregated values. A face gets the track it associates with (by
// the same gates as Update), or no track.
func (t *Tracker) Label(res *result.Result) { t.late(res) }

// late is Label, returning the heads whose output res's faces carried (a late answer to a heads
// request is still an answer).
func (t *Tracker) late(res *result.Result) Step {
	var step Step
	match := t.associate(res)
	for fi := range res.Faces {
		f := &res.Faces[fi]
		if ti := match[fi]; ti >= 0 {
			tr := t.tracks[ti]
			// Heads that ran on a late frame (a slow, heads-carrying frame is the likeliest to
			// arrive late) still count for the track's values and its schedule.
			q := Quality(*f)
			fresh := freshHeads(*f, t.cfg.Heads)
			if len(t.cfg.Heads) > 0 {
				step.addFresh(fresh, t.cfg.Heads)
				t.ran(tr, fresh, q, res.CapturedAt)
			}
			if len(f.Embedding) > 0 {
				tr.embSamples++
			}
			tr.attrs.take(f, q, res.Seq, res.CapturedAt, t.cfg.AgeWindow)
			if len(tr.emb) == 0 && len(f.Embedding) > 0 { // the track's embedding (face.left, search by photo)
				tr.emb = append([]float32(nil), f.Embedding...)
				t.matchUnknown(tr, f)
			}
			t.label(tr, f)
		} else {
			t.clearIdentity(f)
		}
	}
	return step
}

// Finish ends every track: it returns face.left with reason for each confirmed one (Seq and
// CapturedAt of its last sighting) and leaves the tracker empty; later results start new tracks.
func (t *Tracker) Finish(reason string) []event.Event {
	var out []event.Event
	for _, tr := range t.tracks {
		if tr.confirmed {
			out = append(out, t.leftEvent(tr, reason, tr.lastSeq, tr.lastSeen))
		}
	}
	t.tracks = nil
	return out
}

// associate returns, for each face of res, the index of its track in t.tracks or -1.
func (t *Tracker) associate(res *result.Result) []int {
	match := make([]int, len(res.Faces))
	for i := range match {
		match[i] = -1
	}
	if len(t.tracks) == 0 || len(res.Faces) == 0 {
		return match
	}
	cost := make([][]float64, len(res.Faces))
	allowed := false
	for fi, f := range res.Faces {
		cost[fi] = make([]float64, len(t.tracks))
		for ti, tr := range t.tracks {
			c, ok := t.pairCost(tr, f, res.Seq)
			if !ok {
				c = forbidden * 2
			} else {
				allowed = true
			}
			cost[fi][ti] = c
		}
	}
	if !allowed {
		return match
	}
	return Assign(cost)
}

// pairCost scores face f against track tr's box predicted at seq: 1 - (w·IoU + (1-w)·cosine),
// or IoU alone without embeddings; ok is false when the gates forbid the pair.
func (t *Tracker) pairCost(tr *trk, f result.Face, seq uint64) (float64, bool) {
	pred := tr.box
	if tr.moved && seq > tr.lastSeq {
		d := float64(seq - tr.lastSeq)
		dx, dy := float32(tr.vx*d), float32(tr.vy*d)
		pred = result.Box{X1: pred.X1 + dx, Y1: pred.Y1 + dy, X2: pred.X2 + dx, Y2: pred.Y2 + dy}
	}
	ov := iou(pred, f.Box)
	cos, hasEmb := cosine(tr.emb, f.Embedding)
	if hasEmb && cos < t.cfg.VetoCosine {
		return 0, false
	}
	if ov < t.cfg.MinIoU && !(hasEmb && cos >= t.cfg.MinCosine) {
		return 0, false
	}
	score := ov
	if hasEmb {
		score = t.cfg.IoUWeight*ov + (1-t.cfg.IoUWeight)*max(cos, 0)
	}
	return 1 - score, true
}

func (t *Tracker) newTrack(res *result.Result, f *result.Face) *trk {
	t.nextID++
	tr := &trk{id: t.idPrefix + "-" + strconv.FormatUint(t.nextID, 10), firstSeen: res.CapturedAt}
	t.tracks = append(t.tracks, tr)
	t.observe(tr, res, f)
	return tr
}

// observe records a sighting of tr in res: box, motion, embedding, counters.
func (t *Tracker) observe(tr *trk, res *result.Result, f *result.Face) {
	if tr.hits > 0 && res.Seq > tr.lastSeq {
		d := float64(res.Seq - tr.lastSeq)
		cx0, cy0 := center(tr.box)
		cx1, cy1 := center(f.Box)
		vx, vy := (cx1-cx0)/d, (cy1-cy0)/d
		if tr.moved {
			vx, vy = (tr.vx+vx)/2, (tr.vy+vy)/2
		}
		// A face does not cross more than its own size per frame: cap wild estimates.
		lim := float64(f.Box.X2 - f.Box.X1)
		tr.vx, tr.vy, tr.moved = clamp(vx, -lim, lim), clamp(vy, -lim, lim), true
	}
	tr.box = f.Box
	if len(f.Embedding) > 0 {
		if len(tr.emb) != len(f.Embedding) {
			tr.emb = append([]float32(nil), f.Embedding...)
		} else {
			mix := make([]float64, len(tr.emb))
			for i := range mix {
				mix[i] = 0.7*float64(tr.emb[i]) + 0.3*float64(f.Embedding[i])
			}
			tr.emb = normalize(mix)
		}
	}
	tr.hits++
	tr.misses = 0
	tr.lastSeen, tr.lastSeq = res.CapturedAt, res.Seq
}

// vote adds this frame's sighting of tr, with its identity vote when it has one, and settles the
// track's identity once the vote allows it.
func (t *Tracker) vote(tr *trk, res *result.Result, f *result.Face) {
	s := sighting{quality: Quality(*f), crop: event.Crop{Stream: res.Stream, Seq: res.Seq, CapturedAt: res.CapturedAt, Box: f.Box, Width: res.Width, Height: res.Height},
		full: len(freshHeads(*f, t.cfg.Heads)) > 0}
	switch {
	case t.matcher != nil && len(f.Embedding) > 0:
		name, sim, ok := t.matcher.Match(f.Embedding)
		s.voted, s.sim = true, sim
		if ok && name != "" && sim >= t.cfg.Threshold {
			s.name = name
		}
	case f.Identity != nil:
		s.voted, s.sim = true, f.Identity.Similarity
		if f.Identity.Name != "" && f.Identity.Similarity >= t.cfg.Threshold {
			s.name = f.Identity.Name
		}
	}
	tr.sightings = append(tr.sightings, s)
	if n := len(tr.sightings) - t.cfg.Window; n > 0 {
		tr.sightings = append(tr.sightings[:0], tr.sightings[n:]...)
	}
	name, sim, ok := t.tally(tr.sightings)
	switch {
	case tr.identity == nil && ok:
		tr.identity = &result.Identity{Name: name, Similarity: sim}
	case tr.identity != nil && name == tr.identity.Name:
		tr.identity.Similarity = sim
	}
}

// tally is the weighted vote over sightings: the leading identity, its quality-weighted mean
// similarity, and whether it has settled (at least MinVotes votes, and at least MinShare of the
// vote weight, unknown votes included).
func (t *Tracker) tally(ss []sighting) (string, float32, bool) {
	type sum struct{ w, ws float64 }
	sums := map[string]*sum{}
	var total float64
	votes := 0
	for _, s := range ss {
		if !s.voted {
			continue
		}
		votes++
		w := max(s.quality, 1e-6)
		total += w
		if s.name == "" {
			continue
		}
		x := sums[s.name]
		if x == nil {
			x = &sum{}
			sums[s.name] = x
		}
		x.w += w
		x.ws += w * float64(s.sim)
	}
	lead, leadW := "", 0.0
	for name, x := range sums {
		if x.w > leadW || x.w == leadW && name < lead {
			lead, leadW = name, x.w
		}
	}
	if lead == "" {
		return "", 0, false
	}
	sim := float32(sums[lead].ws / leadW)
	return lead, sim, votes >= t.cfg.MinVotes && leadW >= t.cfg.MinShare*total
}

// matchUnknown looks up the unknown person of a track without identity when f brought a new
// embedding: the track's running embedding against the unknowns' centroids. A match replaces
// the track's unknown; no match keeps the one it had.
func (t *Tracker) matchUnknown(tr *trk, f *result.Face) {
	if t.unknowns == nil || tr.identity != nil || len(f.Embedding) == 0 || len(tr.emb) == 0 {
		return
	}
	if id, _, ok := t.unknowns.Match(tr.emb); ok {
		tr.unknownID = id
	}
}

// unknownOf is tr's unknown person: "" once it has an identity.
func (tr *trk) unknownOf() string {
	if tr.identity != nil {
		return ""
	}
	return tr.unknownID
}

// label puts tr's id, identity (or unknown person) and carried attributes on f.
func (t *Tracker) label(tr *trk, f *result.Face) {
	f.TrackID = tr.id
	f.Identity = cloneIdentity(tr.identity)
	f.UnknownID = tr.unknownOf()
	tr.attrs.fill(f)
}

// clearIdentity removes a per-frame identity from a face without a track: identity in results
// is the track's vote.
func (t *Tracker) clearIdentity(f *result.Face) { f.Identity, f.UnknownID = nil, "" }

func (t *Tracker) event(tr *trk, kind string, seq uint64, at time.Time, crop event.Crop) event.Event {
	return event.Event{Schema: event.EventSchema, Kind: kind, Stream: t.stream, TrackID: tr.id, Seq: seq, CapturedAt: at,
		Crop: crop, FirstSeen: tr.firstSeen, LastSeen: tr.lastSeen, Frames: tr.hits, UnknownID: tr.unknownOf()}
}

func (t *Tracker) leftEvent(tr *trk, reason string, seq uint64, at time.Time) event.Event {
	ev := t.event(tr, event.KindLeft, seq, at, best(tr.sightings, ""))
	ev.Reason = reason
	ev.Embedding = append([]float32(nil), tr.emb...) // for search by photo (the event store)
	if tr.recognized {
		ev.Identity = cloneIdentity(tr.identity)
		ev.UnknownID = ""
	}
	return ev
}

// best returns the crop of the highest-quality sighting (voting for name, when name is set; the
// latest among equals), among those whose frame traveled at full size when there are any: an
// event's snapshot is cut from the sighting's frame, and a half-size frame would give it half
// the pixels.
func best(ss []sighting, name string) event.Crop {
	var c event.Crop
	q, full := -1.0, false
	for _, s := range ss {
		if name != "" && s.name != name {
			continue
		}
		if s.full && !full || s.full == full && s.quality >= q {
			c, q, full = s.crop, s.quality, s.full
		}
	}
	return c
}

func center(b result.Box) (float64, float64) {
	return float64(b.X1+b.X2) / 2, float64(b.Y1+b.Y2) / 2
}

func cloneIdentity(id *result.Identity) *result.Identity {
	if id == nil {
		return nil
	}
	c := *id
	return &c
}

// freshHeads returns the heads of heads whose output f carries from its own frame, or will carry
// in a late-heads document (PendingHeads); unknown names count as present (their output cannot
// be checked). Call it before label fills in the track's values.
func freshHeads(f result.Face, heads []string) []string {
	var out []string
	for _, h := range heads {
		ok := slices.Contains(f.PendingHeads, h) // its output follows (late heads): asked and answered
		switch h {
		case "emotion":
			ok = ok || f.Emotion != nil
		case "liveness":
			ok = ok || f.Liveness != nil
		case "pose":
			ok = ok || f.Pose != nil
		case "age":
			ok = ok || f.Age != nil
		case "gender":
			ok = ok || f.Gender != nil
		case "embedding":
			ok = ok || len(f.Embedding) > 0
		default:
			ok = true
		}
		if ok {
			out = append(out, h)
		}
	}
	// A face too small to recognise gets no embedding or liveness (result.Face.TooSmall): when
	// its frame ran heads, those count as run, or the track would ask for them on every frame.
	if f.TooSmall && len(out) > 0 {
		for _, h := range heads {
			if (h == "embedding" || h == "liveness") && !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	return out
}
