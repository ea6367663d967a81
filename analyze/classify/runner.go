package classify

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"sort"
	"strconv"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/analyze/classify/manifest"
	"github.com/vigil-video/vigil/analyze/classify/selection"
	"github.com/vigil-video/vigil/detect"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/result"
)

// Source gives the classifiers currently loaded, sorted by name. *Registry implements it.
type Source interface {
	Classifiers() []*Classifier
}

// Frame is one analysed frame, as the Runner takes it.
type Frame struct {
	// Stream is the frame's stream; the selection decides which classifiers run on it.
	Stream string
	// Image is the decoded frame, 8-bit BGR, owned by the caller and kept open during the call.
	Image gocv.Mat
	// Faces are the faces the pipeline found (box and, for aligned crops, the 5 landmarks), in
	// the order of result.Result.Faces: face targets are named "face:<index>".
	Faces []result.Face
}

// Target names in predictions and results.
const (
	TargetFrame  = "frame"
	TargetRegion = "region"
	// TargetFacePrefix precedes a face's index in Result.Faces: "face:0" is the first face.
	TargetFacePrefix = "face:"
)

// Runner runs the loaded classifiers on frames: the analyze role's per-frame hook. Fill the
// exported fields; it holds no other state and is safe for concurrent use.
type Runner struct {
	// Source gives the loaded classifiers (a *Registry). Required.
	Source Source
	// Selection says which classifiers run on which stream. Default (zero value): every
	// classifier on every stream.
	Selection selection.Selection
	// Log receives warnings about classifiers that failed on a frame. Default slog.Default().
	Log *slog.Logger
}

// Classify runs, for every frame, the classifiers the selection assigns to its stream (each
// classifier once over all targets of all frames) and returns each frame's classifications:
// one per classifier and target whose top score reaches the manifest's threshold, ordered by
// classifier name, then target. A classifier that fails (or is unloaded meanwhile) is logged
// and left out; Classify itself fails only when ctx ends.
func (r *Runner) Classify(ctx context.Context, frames []Frame) ([][]result.Classification, error) {
	preds, err := r.Predict(ctx, frames, nil)
	if err != nil {
		return nil, err
	}
	out := make([][]result.Classification, len(frames))
	for i, ps := range preds {
		for _, p := range ps {
			if !p.Below {
				out[i] = append(out[i], result.Classification{Model: p.Model, Label: p.Label, Score: p.Score, Target: p.Target})
			}
		}
	}
	return out, nil
}

// Runs reports whether any loaded classifier runs on stream's frames (by the Selection).
func (r *Runner) Runs(stream string) bool {
	if r.Source == nil {
		return false
	}
	for _, c := range r.Source.Classifiers() {
		if r.Selection.Runs(stream, c.m.Name) {
			return true
		}
	}
	return false
}

// Predict is Classify with every prediction (also those below threshold, marked Below) and
// every score. When only is non-nil, exactly the classifiers it names run, regardless of the
// selection.
func (r *Runner) Predict(ctx context.Context, frames []Frame, only []string) ([][]Prediction, error) {
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	out := make([][]Prediction, len(frames))
	if len(frames) == 0 || r.Source == nil {
		return out, nil
	}
	want := map[string]bool{}
	for _, n := range only {
		want[n] = true
	}
	for _, c := range r.Source.Classifiers() {
		name := c.m.Name
		if only != nil && !want[name] {
			continue
		}
		var idx []int // frame of each target
		var targets []Target
		var owned []gocv.Mat
		for i, f := range frames {
			if only == nil && !r.Selection.Runs(f.Stream, name) {
				continue
			}
			ts, mats := targetsOf(c.m, f)
			owned = append(owned, mats...)
			for range ts {
				idx = append(idx, i)
			}
			targets = append(targets, ts...)
		}
		preds, err := c.Predict(ctx, targets)
		for _, m := range owned {
			m.Close()
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("classify: %w", ctx.Err())
			}
			if !errors.Is(err, onnx.ErrClosed) {
				log.Warn("classifier failed", "classifier", name, "targets", len(targets), "err", err)
			}
			continue
		}
		for j, p := range preds {
			out[idx[j]] = append(out[idx[j]], p)
		}
	}
	for _, ps := range out {
		sort.SliceStable(ps, func(a, b int) bool {
			if ps[a].Model != ps[b].Model {
				return ps[a].Model < ps[b].Model
			}
			return ps[a].Target < ps[b].Target
		})
	}
	return out, nil
}

// targetsOf returns what classifier m looks at in frame f, and the Mats it made for them (the
// aligned faces), which the caller closes.
func targetsOf(m manifest.Manifest, f Frame) ([]Target, []gocv.Mat) {
	w, h := f.Image.Cols(), f.Image.Rows()
	full := image.Rect(0, 0, w, h)
	switch m.Target {
	case manifest.TargetFrame:
		return []Target{{Name: TargetFrame, Image: f.Image, Rect: full}}, nil
	case manifest.TargetRegion:
		r := regionRect(m.Region, w, h)
		if r.Intersect(full).Empty() {
			return nil, nil
		}
		return []Target{{Name: TargetRegion, Image: f.Image, Rect: r}}, nil
	}
	var ts []Target
	var mats []gocv.Mat
	for i, face := range f.Faces {
		name := TargetFacePrefix + strconv.Itoa(i)
		if m.Face.Crop == manifest.FaceAlign {
			if len(face.Landmarks) != 5 {
				continue
			}
			var pts [5]detect.Point
			for k, p := range face.Landmarks {
				pts[k] = detect.Point{X: p.X, Y: p.Y}
			}
			a, err := detect.Align(f.Image, pts)
			if err != nil {
				continue
			}
			mats = append(mats, a)
			ts = append(ts, Target{Name: name, Image: a, Rect: image.Rect(0, 0, a.Cols(), a.Rows())})
			continue
		}
		r := faceRect(face.Box, m.Face.Margin)
		if r.Intersect(full).Empty() {
			continue
		}
		ts = append(ts, Target{Name: name, Image: f.Image, Rect: r})
	}
	return ts, mats
}
