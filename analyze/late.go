package analyze

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/lowprio"
	"github.com/vigil-video/vigil/pkg/result"
)

// LateAnalyzer is an Analyzer that can run on-demand heads on faces it found earlier
// (*Pipeline implements it): the Role's late heads need it.
type LateAnalyzer interface {
	Analyzer
	// OnDemandHeads lists the heads run only on frames that request them.
	OnDemandHeads() []string
	// RunHeads runs the named on-demand heads on faces of frame (see Pipeline.RunHeads).
	RunHeads(ctx context.Context, frame gocv.Mat, faces []result.Face, heads []string) error
}

// lateNice is how much lower than the workers the late heads' thread runs: at nice 10 it gets
// about a tenth of a CPU's time while the workers want it all, and what they leave otherwise.
const lateNice = 10

// lateJob is one frame's late heads: the frame's job, its decoded image (owned by the late job),
// its faces in published-frame pixels (Box, Score, Landmarks, TooSmall only) and the scale from
// those to the image's pixels.
type lateJob struct {
	job
	image gocv.Mat
	faces []result.Face
	scale float32
	size  [2]int
	heads []string
}

// lateHeads runs frames' late heads, one at a time, on a thread of low priority, and publishes
// each frame's outputs on LatePrefix. Its queue is bounded: reserve a place before publishing the
// result that announces the heads as pending, then hand the job over with put.
type lateHeads struct {
	r        *Role
	an       LateAnalyzer
	heads    []string // the Role's LateHeads that are on-demand heads of the analyzer
	jobs     chan lateJob
	inFlight atomic.Int64
	wg       sync.WaitGroup
}

func newLateHeads(r *Role) *lateHeads {
	an, ok := r.Analyzer.(LateAnalyzer)
	if !ok || len(r.LateHeads) == 0 {
		return nil
	}
	var hs []string
	for _, h := range r.LateHeads {
		if slices.Contains(an.OnDemandHeads(), h) {
			hs = append(hs, h)
		}
	}
	if len(hs) == 0 {
		return nil
	}
	return &lateHeads{r: r, an: an, heads: hs, jobs: make(chan lateJob, r.LateQueue)}
}

// split returns the heads of requested to run now and those to run late on frame f: late only
// for live frames (a recording's frames wait for every head: nothing is gained by hurrying one).
func (l *lateHeads) split(f frame.Frame, requested []string) (now, late []string) {
	if l == nil || f.Complete {
		return requested, nil
	}
	for _, h := range requested {
		if slices.Contains(l.heads, h) {
			late = append(late, h)
		} else {
			now = append(now, h)
		}
	}
	return now, late
}

// reserve takes a place in the queue, or reports that it is full.
func (l *lateHeads) reserve() bool {
	if l.inFlight.Add(1) > int64(cap(l.jobs)) {
		l.inFlight.Add(-1)
		return false
	}
	return true
}

// put hands over a job whose place is reserved (it never blocks).
func (l *lateHeads) put(j lateJob) { l.jobs <- j }

// start runs the worker until stop.
func (l *lateHeads) start(ctx context.Context) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		// The goroutine keeps its thread locked: when it returns, the thread ends with it.
		if err := lowprio.Lock(lateNice); err != nil {
			l.r.Log.Warn("late heads run at normal priority", "err", err)
		}
		for j := range l.jobs {
			l.run(ctx, j)
			l.inFlight.Add(-1)
		}
	}()
}

// stop runs the jobs still queued, then ends the worker.
func (l *lateHeads) stop() {
	close(l.jobs)
	l.wg.Wait()
}

// run runs one job's heads and publishes their outputs.
func (l *lateHeads) run(ctx context.Context, j lateJob) {
	defer j.image.Close()
	work := slices.Clone(facesIn(j.faces, j.scale))
	if err := l.an.RunHeads(ctx, j.image, work, j.heads); err != nil {
		l.r.Log.Warn("late heads failed", "stream", j.f.Stream, "seq", j.f.Seq, "err", err)
		l.r.lateFailed.Add(1)
		return
	}
	for k := range work {
		work[k].Box, work[k].Landmarks = j.faces[k].Box, j.faces[k].Landmarks
	}
	done := time.Now().UTC()
	doc := result.Result{Schema: result.SchemaVersion, Stream: j.f.Stream, Seq: j.f.Seq, CapturedAt: j.f.Captured.UTC(), AnalyzedAt: done,
		LatencyMS: float64(done.Sub(j.captured()).Microseconds()) / 1000,
		Width:     j.size[0], Height: j.size[1], Faces: work, Analyzer: l.r.Name}
	l.r.late.Add(1) // before the document: who reads it then finds it counted
	l.r.publish(nil, l.r.LatePrefix, j.f.Stream, doc, "")
}

// lateFaces returns the part of faces a late job needs: where each face is, not what the heads
// that already ran said.
func lateFaces(faces []result.Face) []result.Face {
	out := make([]result.Face, len(faces))
	for i, f := range faces {
		out[i] = result.Face{Box: f.Box, Score: f.Score, Landmarks: f.Landmarks, TooSmall: f.TooSmall}
	}
	return out
}
