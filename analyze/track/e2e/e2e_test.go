package e2e

import (
	"context"
	"encoding/json"
	"image"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/nats-io/nats.go"
	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/analyze/analyzetest"
	"github.com/vigil-video/vigil/analyze/track"
	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/pkg/vision"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// trackedPrefix is where the track role publishes in these tests. The analyze role publishes on
// vigil.results (it has no option to publish on vigil.analyzed yet), so the track role reads
// vigil.results and writes here; in a deployment it reads vigil.analyzed and writes vigil.results.
const trackedPrefix = "vigil.tracked"

func natsConns(t *testing.T) func(name string) *nats.Conn {
	t.Helper()
	srv := &bus.EmbeddedServer{}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return func(name string) *nats.Conn {
		nc, err := bus.Connect(context.Background(), srv.ClientURL(), name, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
}

// modelSet loads the real models through the real onnxruntime.
func modelSet(t *testing.T) *analyze.ModelSet { return analyzetest.ModelSet(t) }

// startAnalyzer runs the real analyze role as `vigil run` would with tracking: the default heads
// except the on-demand ones, which run only on frames that request them, and embeddings kept in
// its results for the track role.
func startAnalyzer(t *testing.T, nc *nats.Conn, ms *analyze.ModelSet) {
	t.Helper()
	startAnalyzerWith(t, nc, ms, analyze.PipelineConfig{
		Heads:          []string{analyze.HeadEmbedding, analyze.HeadAge, analyze.HeadGender},
		OnDemand:       []string{analyze.HeadEmotion, analyze.HeadLiveness, analyze.HeadPose},
		KeepEmbeddings: true,
	})
}

func startAnalyzerWith(t *testing.T, nc *nats.Conn, ms *analyze.ModelSet, cfg analyze.PipelineConfig) {
	t.Helper()
	p, err := analyze.NewPipeline(cfg, ms.Get)
	if err != nil {
		t.Fatal(err)
	}
	role := &analyze.Role{Conn: nc, Analyzer: p, Workers: 2, MaxBatch: 4, MaxWait: 5 * time.Millisecond, Name: "e2e"}
	run(t, role.Run, role.Ready())
}

// run starts a role's Run and stops it (cancel, wait) when the test ends.
func run(t *testing.T, fn func(context.Context) error, ready <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
}

// observer records, for one stream, the frames that requested heads, the analyzer's results, the
// track role's results and its events.
type observer struct {
	mu          sync.Mutex
	headsFrames map[uint64][]string
	raw         map[uint64]result.Result
	late        map[uint64]result.Result // late heads (bus.LateHeadsPrefix)
	tracked     map[uint64]result.Result
	events      []event.Event
	changed     chan struct{}
}

func observe(t *testing.T, nc *nats.Conn, stream string) *observer {
	t.Helper()
	o := &observer{headsFrames: map[uint64][]string{}, raw: map[uint64]result.Result{}, late: map[uint64]result.Result{}, tracked: map[uint64]result.Result{},
		changed: make(chan struct{}, 1)}
	sub := func(subject string, fn func(m *nats.Msg)) {
		s, err := nc.Subscribe(subject, func(m *nats.Msg) {
			o.mu.Lock()
			fn(m)
			o.mu.Unlock()
			select {
			case o.changed <- struct{}{}:
			default:
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Unsubscribe() })
	}
	parse := func(m *nats.Msg) result.Result {
		r, err := result.ParseResult(m.Data)
		if err != nil {
			t.Errorf("%s: %v", m.Subject, err)
		}
		return r
	}
	sub(bus.FramesPrefix+"."+stream, func(m *nats.Msg) {
		if h := m.Header.Get(frame.HeaderHeads); h != "" {
			seq, _ := strconv.ParseUint(m.Header.Get(frame.HeaderSeq), 10, 64)
			o.headsFrames[seq] = strings.Split(h, ",")
		}
	})
	sub(bus.ResultsPrefix+"."+stream, func(m *nats.Msg) { r := parse(m); o.raw[r.Seq] = r })
	sub(trackedPrefix+"."+stream, func(m *nats.Msg) { r := parse(m); o.tracked[r.Seq] = r })
	sub(bus.LateHeadsPrefix+"."+stream, func(m *nats.Msg) { r := parse(m); o.late[r.Seq] = r })
	sub(event.EventsPrefix+"."+stream+".>", func(m *nats.Msg) {
		e, err := event.ParseEvent(m.Data)
		if err != nil {
			t.Errorf("%s: %v", m.Subject, err)
			return
		}
		o.events = append(o.events, e)
	})
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return o
}

// waitEnded waits until the stream's n results are tracked and a face.left with reason "end"
// has arrived.
func (o *observer) waitEnded(t *testing.T, n int) {
	t.Helper()
	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		ok := len(o.tracked) >= n
		ended := false
		for _, e := range o.events {
			ended = ended || e.Kind == event.KindLeft && e.Reason == event.ReasonEnd
		}
		o.mu.Unlock()
		if ok && ended {
			return
		}
		select {
		case <-o.changed:
		case <-deadline.C:
			t.Fatalf("timed out: %d of %d results tracked, ended %v", len(o.tracked), n, ended)
		}
	}
}

func (o *observer) of(kind string) []event.Event {
	var out []event.Event
	for _, e := range o.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// TestVideoOneTrackForTheWoman runs ingest (the face video, read once at 10 frames/s), the real
// analyzer and the track role on one NATS server: the woman keeps one track id through the
// video, appears and leaves once, the track role's heads request reaches ingest, the frame after
// it carries pose, liveness and emotion, and every later result of the track shows them.
func TestVideoOneTrackForTheWoman(t *testing.T) {
	video := filepath.Join(testenv.TestData(t), "video", "fer_test.mp4")
	conn := natsConns(t)
	obs := observe(t, conn("observer"), "fer")
	startAnalyzer(t, conn("analyze"), modelSet(t))
	tr := &track.Role{Conn: conn("track"), Input: bus.ResultsPrefix, Output: trackedPrefix}
	run(t, tr.Run, tr.Ready())

	in := &ingest.Role{Conn: conn("ingest"), Streams: []ingest.StreamConfig{{Name: "fer", Source: video, FPS: 10, Once: true}}}
	if err := in.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	frames := int(in.Stats()["fer"].Published)
	obs.waitEnded(t, frames)

	obs.mu.Lock()
	defer obs.mu.Unlock()
	// One track id for the woman across most frames.
	perTrack := map[string]int{}
	withFace := 0
	for _, r := range obs.tracked {
		if len(r.Faces) > 0 {
			withFace++
		}
		for _, f := range r.Faces {
			perTrack[f.TrackID]++
			if f.Embedding != nil {
				t.Fatalf("seq %d: embedding in a tracked result", r.Seq)
			}
		}
	}
	woman, most := "", 0
	for id, n := range perTrack {
		if n > most {
			woman, most = id, n
		}
	}
	t.Logf("%d frames, %d with a face; tracks %v", frames, withFace, perTrack)
	if frames < 40 || withFace < frames*9/10 || most < frames*9/10 || woman == "" {
		t.Fatalf("track %q on %d of %d frames (%d with a face); want one track on at least 90%%", woman, most, frames, withFace)
	}
	// Appeared and left exactly once, for her track.
	app, left := obs.of(event.KindAppeared), obs.of(event.KindLeft)
	if len(app) != 1 || len(left) != 1 || app[0].TrackID != woman || left[0].TrackID != woman || left[0].Reason != event.ReasonEnd {
		t.Fatalf("appeared %+v\nleft %+v\nwant one of each for %s", app, left, woman)
	}
	if c := app[0].Crop; c.Stream != "fer" || c.Width != 596 || c.Height != 336 || c.Box.X2 <= c.Box.X1 || obs.tracked[c.Seq].Faces == nil {
		t.Fatalf("appeared crop %+v does not reference an analysed frame", c)
	}
	// The heads request reached ingest: some frames carry Vigil-Heads, far fewer than all.
	var asked []uint64
	for seq := range obs.headsFrames {
		asked = append(asked, seq)
	}
	sort.Slice(asked, func(i, j int) bool { return asked[i] < asked[j] })
	t.Logf("frames with Vigil-Heads: %v (%d requests)", asked, tr.Stats().HeadsRequests)
	if len(asked) == 0 || len(asked) > frames/4 {
		t.Fatalf("%d of %d frames requested heads; want some, not most", len(asked), frames)
	}
	// The analyzer runs embedding, age and gender on every frame here: the new track asks for
	// liveness and pose, then for emotion (a solo head) on a frame of its own.
	// (A request can merge with a repeated one at ingest, which reads a recording ahead.)
	first := asked[0]
	if got := obs.headsFrames[first]; !slices.Contains(got, "liveness") || !slices.Contains(got, "pose") || slices.Contains(got, "emotion") {
		t.Fatalf("frame %d requested %v, want liveness and pose, not emotion", first, got)
	}
	emotion := uint64(0)
	for _, seq := range asked {
		if emotion == 0 && slices.Contains(obs.headsFrames[seq], "emotion") {
			emotion = seq
		}
	}
	if emotion == 0 {
		t.Fatalf("frames %v: none requested emotion", asked)
	}
	// The analyzer ran them on those frames, and only on requested frames.
	for seq, r := range obs.raw {
		for _, f := range r.Faces {
			_, requested := obs.headsFrames[seq]
			heavy := f.Pose != nil || f.Liveness != nil || f.Emotion != nil
			if requested != heavy {
				t.Fatalf("seq %d: heads requested %v, analyzer output pose/liveness/emotion %v", seq, requested, heavy)
			}
		}
	}
	if len(obs.raw[first].Faces) == 0 {
		t.Fatalf("frame %d requested heads but has no face", first)
	}
	first = emotion + 16 // from here on (ingest reads 16 frames ahead), the track has them all
	// The track carries them forward: every later result of her track shows them.
	for seq, r := range obs.tracked {
		for _, f := range r.Faces {
			if f.TrackID == woman && seq > first && (f.Pose == nil || f.Liveness == nil || f.Emotion == nil) {
				t.Fatalf("seq %d (after %d): heavy attributes not carried: %+v", seq, first, f)
			}
			if seq < emotion && f.Emotion != nil {
				t.Fatalf("seq %d: emotion before any frame ran it", seq)
			}
		}
	}
	// Measured association margins, for tuning: similarity of consecutive embeddings.
	logConsecutiveSimilarity(t, obs.raw)
}

// TestHeadsPerTrackByDefault runs the face video through analyzers configured as vigil run's
// defaults (every frame: detection and landmarks; every head on request) and the track role
// with its default heads: the heads run on the track's first requested frame, then only on
// requested frames (settling, the schedule), far from every frame; every later result of the
// track carries its aggregated age, gender, emotion, liveness and pose with heads_seq naming a
// frame they really ran on. Emotion, a late head on live frames, runs after its frame's result
// went out: that result says it is pending, the late-heads document that follows carries it for
// the same faces, and the track's later results carry it.
func TestHeadsPerTrackByDefault(t *testing.T) {
	video := filepath.Join(testenv.TestData(t), "video", "fer_test.mp4")
	conn := natsConns(t)
	obs := observe(t, conn("observer"), "fer")
	startAnalyzerWith(t, conn("analyze"), modelSet(t), analyze.PipelineConfig{OnDemand: analyze.AllHeads, KeepEmbeddings: true})
	tr := &track.Role{Conn: conn("track"), Input: bus.ResultsPrefix, Output: trackedPrefix,
		Tracker: track.TrackerConfig{HeadsInterval: 2 * time.Second}}
	run(t, tr.Run, tr.Ready())
	// Live: the video in real time, read once (not a recording analysed completely), so a heads
	// request reaches the very next frame.
	in := &ingest.Role{Conn: conn("ingest"), Streams: []ingest.StreamConfig{{Name: "fer", Source: video, FPS: 10, Realtime: true}}}
	if err := in.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	frames := int(in.Stats()["fer"].Published)
	obs.waitEnded(t, 1)
	// Late heads may still be on their way: they run on a thread of low priority.
	testenv.Eventually(t, time.Minute, "the late heads of every frame that left them pending", func() bool {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		for seq, r := range obs.raw {
			if _, ok := obs.late[seq]; !ok && len(r.Faces) > 0 && slices.Contains(r.Faces[0].PendingHeads, "emotion") {
				return false
			}
		}
		return true
	})
	obs.mu.Lock()
	defer obs.mu.Unlock()
	ran := map[uint64]bool{}
	for seq, r := range obs.raw {
		for _, f := range r.Faces {
			_, requested := obs.headsFrames[seq]
			if f.Embedding != nil || f.Age != nil || f.Gender != nil || f.Pose != nil || f.Liveness != nil || f.Emotion != nil {
				if !requested {
					t.Fatalf("seq %d: heads ran on a frame that did not request them", seq)
				}
				ran[seq] = true
			}
		}
	}
	emotionSeq := uint64(0)
	for seq, r := range obs.raw {
		if !slices.Contains(obs.headsFrames[seq], "emotion") || len(r.Faces) == 0 {
			continue
		}
		if r.Faces[0].Emotion == nil && r.Faces[0].PendingHeads == nil {
			continue // skipped: the late queue was full (the track asks again)
		}
		l := obs.late[seq]
		if len(l.Faces) != len(r.Faces) || !l.AnalyzedAt.After(r.AnalyzedAt) {
			t.Fatalf("seq %d: late heads %d faces at %v, result %d faces at %v", seq, len(l.Faces), l.AnalyzedAt, len(r.Faces), r.AnalyzedAt)
		}
		for k, f := range r.Faces {
			if f.Emotion != nil || !slices.Equal(f.PendingHeads, []string{"emotion"}) {
				t.Fatalf("seq %d face %d: emotion %v pending %v, want it pending, not in the result", seq, k, f.Emotion, f.PendingHeads)
			}
			lf := l.Faces[k]
			if lf.Box != f.Box || lf.Emotion == nil || len(lf.Emotion.Scores) != len(analyze.Emotions) || lf.Age != nil || lf.PendingHeads != nil {
				t.Fatalf("seq %d face %d: late heads %+v for result face %+v, want its box with emotion only", seq, k, lf, f)
			}
		}
		ran[seq] = true
		if emotionSeq == 0 || seq < emotionSeq {
			emotionSeq = seq
		}
	}
	if emotionSeq == 0 {
		t.Fatal("no frame ran emotion")
	}
	var seqs []uint64
	for seq := range ran {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	t.Logf("%d frames; heads ran on %v", frames, seqs)
	if len(seqs) < 2 || len(seqs) > frames/2 {
		t.Fatalf("heads ran on %d of %d frames: want per track (first frame, settling, schedule), not every frame", len(seqs), frames)
	}
	if got := obs.headsFrames[seqs[0]]; strings.Join(got, ",") != "embedding,age,gender,liveness,pose" {
		t.Fatalf("first heads frame %d requested %v, want every head but emotion (a new track; emotion runs alone)", seqs[0], got)
	}
	// From the second half of the video on (results the track role published before the slow
	// first heads frame's result reached it carry nothing yet; on a loaded machine that can be
	// many frames, as ingest reads a recording up to 16 frames ahead).
	carried, emotionFrom, last := 0, uint64(0), uint64(0)
	for seq, r := range obs.tracked {
		last = max(last, seq)
		for _, f := range r.Faces {
			if seq <= seqs[0]+3 || f.TrackID == "" {
				continue
			}
			if f.HeadsSeq == 0 || f.HeadsSeq > seq || !ran[f.HeadsSeq] || f.HeadsCapturedAt == nil {
				t.Fatalf("seq %d: heads_seq %d does not name a frame the heads ran on before it", seq, f.HeadsSeq)
			}
			if f.Age == nil || f.Gender == nil || f.Liveness == nil || f.Pose == nil {
				t.Fatalf("seq %d: the track's values are not all carried: %+v", seq, f)
			}
			if f.Emotion != nil && (seq < emotionSeq || f.HeadsSeq < emotionSeq) {
				t.Fatalf("seq %d: emotion before the first frame that ran it (%d): %+v", seq, emotionSeq, f)
			}
			if f.Emotion != nil && (emotionFrom == 0 || seq < emotionFrom) {
				emotionFrom = seq
			}
			if f.Gender.Score < 0 || f.Gender.Score > 1 {
				t.Fatalf("seq %d: gender score %v is not a probability", seq, f.Gender.Score)
			}
			carried++
		}
	}
	if carried < len(obs.tracked)/2 {
		t.Fatalf("%d of %d results carry the track's values, want those after the first heads frame", carried, len(obs.tracked))
	}
	// Once the late emotion reached the track, its results carry it (the low-priority thread
	// may take a while on a loaded machine, but not the rest of the video).
	if emotionFrom == 0 {
		t.Fatal("no tracked result carries emotion")
	}
	for seq := emotionFrom; seq <= last; seq++ {
		for _, f := range obs.tracked[seq].Faces {
			if f.TrackID != "" && f.Emotion == nil {
				t.Fatalf("seq %d: emotion not carried after seq %d had it", seq, emotionFrom)
			}
		}
	}
	t.Logf("emotion ran late on seq %d; carried from seq %d", emotionSeq, emotionFrom)
}

func logConsecutiveSimilarity(t *testing.T, raw map[uint64]result.Result) {
	var seqs []uint64
	for s := range raw {
		seqs = append(seqs, s)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	lo, hi := float32(2), float32(-2)
	var prev []float32
	for _, s := range seqs {
		if fs := raw[s].Faces; len(fs) > 0 && fs[0].Embedding != nil {
			if prev != nil {
				c := analyze.Cosine(prev, fs[0].Embedding)
				lo, hi = min(lo, c), max(hi, c)
			}
			prev = fs[0].Embedding
		}
	}
	t.Logf("cosine of consecutive embeddings of the largest face: %.3f..%.3f", lo, hi)
}

// photoGallery is a gallery-like Matcher over enrolled photos' embeddings: the best cosine over
// an identity's photos, a match from threshold on.
type photoGallery struct {
	threshold float32
	names     []string
	embs      [][]float32
}

func (g *photoGallery) Match(emb []float32) (string, float32, bool) {
	best, name := float32(-2), ""
	for i, e := range g.embs {
		if c := analyze.Cosine(e, emb); c > best {
			best, name = c, g.names[i]
		}
	}
	if best < g.threshold {
		return "", best, false
	}
	return name, best, true
}

// faceFrame decodes a photo, finds its face and returns a 256x256 JPEG of a square around it
// (twice the face's size, shrunk to stay inside the photo), so consecutive frames made from
// different photos put the face at about the same place.
func faceFrame(t *testing.T, p *analyze.Pipeline, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := vision.Decode(data, 0)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer m.Close()
	out, err := p.Analyze(context.Background(), []gocv.Mat{m})
	if err != nil || len(out[0].Faces) == 0 {
		t.Fatalf("%s: no face (%v)", path, err)
	}
	b := out[0].Faces[0].Box
	cx, cy := float64(b.X1+b.X2)/2, float64(b.Y1+b.Y2)/2
	half := float64(max(b.X2-b.X1, b.Y2-b.Y1))
	half = min(half, cx, cy, float64(m.Cols())-cx, float64(m.Rows())-cy)
	crop, err := vision.CropResize(m, image.Rect(int(cx-half), int(cy-half), int(cx+half), int(cy+half)), 256, 256)
	if err != nil {
		t.Fatal(err)
	}
	defer crop.Close()
	jpg, err := vision.EncodeJPEG(crop, 90)
	if err != nil {
		t.Fatal(err)
	}
	return jpg
}

// TestRecognizesObamaAcrossFrames enrols a gallery-like Matcher with two photos of Barack Obama
// and the photos of the other identities, then streams frames made from his two other photos
// through the real analyzer and the track role: one track, recognised as Obama once, and every
// result from then on carries his identity.
func TestRecognizesObamaAcrossFrames(t *testing.T) { recognizeObama(t, false) }

// TestRecognizesObamaPerTrack is TestRecognizesObamaAcrossFrames with the default configuration:
// analyzers run only detection and landmarks on every frame, the track role asks for the
// heads per track, and the camera (this test) honours its heads requests on its next frame, one
// frame at a time as a live camera would. The identity is the one the every-frame mode gives,
// within 4 frames of the face appearing (800 ms at 5 frames/s).
func TestRecognizesObamaPerTrack(t *testing.T) { recognizeObama(t, true) }

func recognizeObama(t *testing.T, perTrack bool) {
	faces := filepath.Join(testenv.TestData(t), "faces")
	ms := modelSet(t)
	enrol, err := analyze.NewPipeline(analyze.PipelineConfig{Heads: []string{analyze.HeadEmbedding}}, ms.Get)
	if err != nil {
		t.Fatal(err)
	}
	g := &photoGallery{threshold: track.DefaultThreshold}
	add := func(name, path string) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := vision.Decode(data, 0)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out, err := enrol.Analyze(context.Background(), []gocv.Mat{m})
		m.Close()
		if err != nil || len(out[0].Embeddings) == 0 || out[0].Embeddings[0] == nil {
			t.Fatalf("%s: no embedding (%v)", path, err)
		}
		g.names, g.embs = append(g.names, name), append(g.embs, out[0].Embeddings[0])
	}
	add("Barack_Obama", filepath.Join(faces, "Barack_Obama", "obama.jpg"))
	add("Barack_Obama", filepath.Join(faces, "Barack_Obama", "obama2.jpg"))
	for _, other := range []string{"Joe_Biden", "John_Salley", "John_Savage", "John_Schneider"} {
		photos, _ := filepath.Glob(filepath.Join(faces, other, "*"))
		if len(photos) > 4 {
			photos = photos[:4]
		}
		for _, p := range photos {
			add(other, p)
		}
	}
	shots := [][]byte{
		faceFrame(t, enrol, filepath.Join(faces, "Barack_Obama", "obama3.jpg")),
		faceFrame(t, enrol, filepath.Join(faces, "Barack_Obama", "knn_test_obama1.jpg")),
	}

	conn := natsConns(t)
	obs := observe(t, conn("observer"), "obama")
	trCfg := track.TrackerConfig{HeadsInterval: -1}
	if perTrack {
		startAnalyzerWith(t, conn("analyze"), ms, analyze.PipelineConfig{OnDemand: analyze.AllHeads, KeepEmbeddings: true})
		trCfg = track.TrackerConfig{}
	} else {
		startAnalyzer(t, conn("analyze"), ms)
	}
	tr := &track.Role{Conn: conn("track"), Input: bus.ResultsPrefix, Output: trackedPrefix, Matcher: g, Tracker: trCfg}
	run(t, tr.Run, tr.Ready())

	const frames = 12
	pub := conn("camera")
	inbox, err := event.SubscribeHeads(pub, "obama")
	if err != nil {
		t.Fatal(err)
	}
	defer inbox.Close()
	start := time.Now()
	for seq := uint64(1); seq <= frames; seq++ {
		if perTrack && seq > 1 { // live: the next frame follows the previous one's result
			testenv.Eventually(t, 30*time.Second, "the previous frame's result", func() bool {
				obs.mu.Lock()
				defer obs.mu.Unlock()
				_, ok := obs.tracked[seq-1]
				return ok
			})
		}
		f := frame.Frame{Stream: "obama", Seq: seq, Captured: start.Add(time.Duration(seq) * 200 * time.Millisecond),
			Width: 256, Height: 256, Encoding: frame.EncodingJPEG, Data: shots[seq%2], Complete: true, Heads: inbox.Take()}
		msg, err := f.Msg(bus.FramesPrefix + ".obama")
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.PublishMsg(msg); err != nil {
			t.Fatal(err)
		}
	}
	eos, _ := json.Marshal(result.EndOfStream{Schema: result.SchemaVersion, Stream: "obama", Frames: frames, At: time.Now().UTC()})
	if err := pub.Publish(bus.EOSPrefix+".obama", eos); err != nil {
		t.Fatal(err)
	}
	obs.waitEnded(t, frames)

	obs.mu.Lock()
	defer obs.mu.Unlock()
	for seq := uint64(1); seq <= frames; seq++ {
		if fs := obs.raw[seq].Faces; len(fs) > 0 && fs[0].Embedding != nil {
			name, sim, _ := g.Match(fs[0].Embedding)
			t.Logf("seq %d: %d faces, best gallery match %s %.3f", seq, len(fs), name, sim)
		}
	}
	rec := obs.of(event.KindRecognized)
	if len(rec) != 1 || rec[0].Identity == nil || rec[0].Identity.Name != "Barack_Obama" || rec[0].Identity.Similarity < track.DefaultThreshold {
		t.Fatalf("recognized events %+v, want one for Barack_Obama", rec)
	}
	id := rec[0].TrackID
	if app, left := obs.of(event.KindAppeared), obs.of(event.KindLeft); len(app) != 1 || len(left) != 1 ||
		left[0].Identity == nil || left[0].Identity.Name != "Barack_Obama" || left[0].TrackID != id {
		t.Fatalf("appeared %+v, left %+v: want one each for track %s, left recognised", app, left, id)
	}
	for seq := uint64(1); seq <= frames; seq++ {
		r := obs.tracked[seq]
		if len(r.Faces) == 0 || r.Faces[0].TrackID != id {
			t.Fatalf("seq %d: faces %+v, want the face on track %s", seq, r.Faces, id)
		}
		if got := r.Faces[0].Identity; seq >= rec[0].Seq && (got == nil || got.Name != "Barack_Obama") {
			t.Fatalf("seq %d: identity %+v after recognition at %d", seq, got, rec[0].Seq)
		}
	}
	if perTrack && rec[0].Seq > 4 {
		t.Fatalf("recognised at seq %d, want within 4 frames of the face appearing", rec[0].Seq)
	}
	t.Logf("recognised at seq %d with similarity %.3f", rec[0].Seq, rec[0].Identity.Similarity)
}
