package classify

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/analyze/classify/api"
	"github.com/vigil-video/vigil/analyze/classify/manifest"
	"github.com/vigil-video/vigil/analyze/classify/project"
	"github.com/vigil-video/vigil/analyze/classify/store"
	"github.com/vigil-video/vigil/analyze/classify/train"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/vision"
)

// Service serves the classifier HTTP API (it implements api.Backend) from a Registry. Fill the
// exported fields; it holds no other state.
type Service struct {
	// Registry holds the classifiers. Required.
	Registry *Registry
	// Faces finds faces for face classifiers; without it, face classifiers cannot be asked for
	// by name and are skipped when all classifiers run.
	Faces FaceFinder
	// MaxPixels bounds decoded images. Default vision.DefaultMaxPixels.
	MaxPixels int
}

var _ api.Backend = (*Service)(nil)

// Classifiers lists the registry's classifiers.
func (s *Service) Classifiers(context.Context) []api.ClassifierInfo {
	var out []api.ClassifierInfo
	for _, st := range s.Registry.Status() {
		out = append(out, infoOf(st))
	}
	return out
}

func infoOf(st Status) api.ClassifierInfo {
	return api.ClassifierInfo{Name: st.Name, State: st.State, Error: st.Error, Manifest: st.Manifest, Size: st.Size, LoadedAt: st.LoadedAt}
}

// Register checks, stores and loads a classifier (Registry.Register).
func (s *Service) Register(ctx context.Context, m manifest.Manifest, model []byte) (api.ClassifierInfo, error) {
	st, err := s.Registry.Register(ctx, m, model)
	if err != nil {
		return api.ClassifierInfo{}, err
	}
	return infoOf(st), nil
}

// Delete removes a classifier (Registry.Delete).
func (s *Service) Delete(ctx context.Context, name string) error {
	return s.Registry.Delete(ctx, name)
}

// Classify decodes image and runs the named classifiers (every loaded one when models is
// empty) on it, face classifiers on each face Faces finds.
func (s *Service) Classify(ctx context.Context, image []byte, models []string) (api.ClassifyResult, error) {
	loaded := map[string]*Classifier{}
	for _, c := range s.Registry.Classifiers() {
		loaded[c.m.Name] = c
	}
	var names []string
	needFaces := false
	if len(models) == 0 {
		for name, c := range loaded {
			if c.m.Target == manifest.TargetFace && s.Faces == nil {
				continue
			}
			names = append(names, name)
			needFaces = needFaces || c.m.Target == manifest.TargetFace
		}
	}
	var missing []string
	for _, name := range models {
		c, ok := loaded[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		if c.m.Target == manifest.TargetFace {
			if s.Faces == nil {
				return api.ClassifyResult{}, fmt.Errorf("%w: %s classifies faces, and this server runs no face detector", api.ErrUnknownClassifier, name)
			}
			needFaces = true
		}
		names = append(names, name)
	}
	if len(missing) > 0 {
		return api.ClassifyResult{}, fmt.Errorf("%w: %s (loaded: %s)", api.ErrUnknownClassifier, strings.Join(missing, ", "), strings.Join(keys(loaded), ", "))
	}
	img, err := vision.Decode(image, s.MaxPixels)
	if err != nil {
		return api.ClassifyResult{}, fmt.Errorf("%w: %s", api.ErrImage, strings.TrimPrefix(err.Error(), vision.ErrImage.Error()+": "))
	}
	defer img.Close()
	f := Frame{Image: img}
	if needFaces {
		found, err := s.Faces.FindFaces(ctx, []gocv.Mat{img})
		if err != nil {
			return api.ClassifyResult{}, fmt.Errorf("find faces: %w", err)
		}
		if len(found) == 1 {
			f.Faces = found[0]
		}
	}
	res := api.ClassifyResult{Width: img.Cols(), Height: img.Rows(), Faces: len(f.Faces), Predictions: []api.Prediction{}}
	if names == nil {
		names = []string{} // run none rather than all
	}
	preds, err := (&Runner{Source: s.Registry}).Predict(ctx, []Frame{f}, names)
	if err != nil {
		return api.ClassifyResult{}, err
	}
	for _, p := range preds[0] {
		c := loaded[p.Model]
		scores := make(map[string]float32, len(p.Scores))
		for i, v := range p.Scores {
			scores[c.m.Labels[i]] = v
		}
		res.Predictions = append(res.Predictions, api.Prediction{Model: p.Model, Target: p.Target, Label: p.Label, Score: p.Score,
			Reported: !p.Below, Scores: scores})
	}
	return res, nil
}

func keys(m map[string]*Classifier) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}

// ProjectTrainer trains the classifiers of HTTP training projects (its Train method is a
// project.TrainFunc) and registers them. Fill the exported fields.
type ProjectTrainer struct {
	// Runtime runs the backbones. Required.
	Runtime *onnx.Runtime
	// Registry registers trained classifiers. Required.
	Registry *Registry
	// Backbones are the built-in backbones projects may name. A project whose backbone is
	// "default" gets Backbones["face"] for face targets, and for frame targets
	// Backbones["default"], else the first backbone in Stored.
	Backbones map[string]Backbone
	// Stored holds the uploaded ImageNet backbones (api.Backbones's AddBackbone); nil: none.
	Stored *store.Backbones
	// Faces finds faces for face backbones.
	Faces FaceFinder
	// Folds adds a k-fold cross-validation to each report. Default 5; negative: none.
	Folds int
	// Head configures the head's training. Default the zero value.
	Head train.Config
}

// Train is a project.TrainFunc: it trains req's classifier and registers it under
// req.Classifier.
func (t *ProjectTrainer) Train(ctx context.Context, req project.TrainRequest) (project.TrainOutcome, error) {
	name, bb, err := t.backbone(ctx, req.Spec)
	if err != nil {
		return project.TrainOutcome{}, err
	}
	target := bb.Target
	if target == "" {
		target = manifest.TargetFrame
	}
	if req.Spec.Target != "" && req.Spec.Target != target {
		return project.TrainOutcome{}, fmt.Errorf("%w: backbone %s classifies %ss, the project's target is %s", project.ErrInvalid, name, target, req.Spec.Target)
	}
	folds := t.Folds
	if folds == 0 {
		folds = 5
	}
	res, err := Train(ctx, t.Runtime, req.Dataset, TrainConfig{Name: req.Classifier, Backbone: bb, Head: t.Head, Folds: max(folds, 0), Faces: t.Faces,
		Progress: func(p TrainProgress) {
			if req.Progress != nil {
				req.Progress(p.Phase, p.Done, p.Total)
			}
		}})
	if err != nil {
		if errors.Is(err, train.ErrData) && folds > 0 {
			err = fmt.Errorf("%w (each class needs at least %d usable images for %d-fold cross-validation)", err, max(folds, 3), folds)
		}
		return project.TrainOutcome{}, err
	}
	if req.Progress != nil {
		req.Progress("register", 0, 1)
	}
	if _, err := t.Registry.Register(ctx, res.Manifest, res.Model); err != nil {
		return project.TrainOutcome{}, fmt.Errorf("register %s: %w", req.Classifier, err)
	}
	report := struct {
		TrainReport
		Manifest manifest.Manifest `json:"manifest"`
	}{res.Report, res.Manifest}
	return project.TrainOutcome{Report: report, Classifier: req.Classifier}, nil
}
