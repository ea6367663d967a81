package classify

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/vigil-video/vigil/analyze/classify/api"
	"github.com/vigil-video/vigil/analyze/classify/manifest"
	"github.com/vigil-video/vigil/analyze/classify/project"
	"github.com/vigil-video/vigil/analyze/classify/store"
	"github.com/vigil-video/vigil/pkg/onnx/graph"
)

// NoBackboneHelp says how to get a frame backbone when a server has none: it ends the error of a
// training project whose target needs one.
const NoBackboneHelp = "upload an ImageNet classifier .onnx once (its last linear layer's input is what frame classifiers learn " +
	"from; MobileNetV2 from the ONNX model zoo, mobilenetv2-12.onnx, works): `vigil classifiers backbone add FILE.onnx`, or " +
	"\"Add a backbone\" in the web UI's Classifiers tab; or train on faces (target \"face\")"

// CheckImageNetBackbone checks that model can serve as an ImageNet backbone (ImageNetBackbone's
// preprocessing): one float32 image input [N, 3, 224, 224] (dynamic sizes allowed) and a last
// linear layer whose input the head can learn from. Errors wrap manifest.ErrModel.
func CheckImageNetBackbone(name string, model []byte) error {
	info, err := graph.Inspect(model)
	if err != nil {
		return fmt.Errorf("%w: backbone %s is not an ONNX model: %w", manifest.ErrModel, name, err)
	}
	if len(info.Inputs) != 1 {
		return fmt.Errorf("%w: backbone %s has %d inputs, want one image [N, 3, 224, 224]", manifest.ErrModel, name, len(info.Inputs))
	}
	in := info.Inputs[0]
	want := []int64{-1, 3, 224, 224}
	ok := in.ElemType == graph.ElemFloat && (!in.HasShape || len(in.Dims) == 4)
	for i := 1; ok && in.HasShape && i < 4; i++ {
		ok = !in.Dims[i].Fixed() || in.Dims[i].Value == want[i]
	}
	if !ok {
		return fmt.Errorf("%w: backbone %s: input %q is %v, want float32 [N, 3, 224, 224] (an ImageNet classifier)", manifest.ErrModel, name, in.Name, in.Dims)
	}
	if _, err := graph.FindFeatures(model); err != nil {
		return fmt.Errorf("%w: backbone %s: no last linear layer to learn from (is it an image classifier?): %w", manifest.ErrModel, name, err)
	}
	return nil
}

// backbone resolves a project's backbone: a built-in one (Backbones), else one uploaded to
// Stored. "default" (or "") is Backbones["face"] for face targets, and for frame targets
// Backbones["default"], else the first uploaded backbone by name. No backbone at all is a
// project.ErrInvalid saying how to get one.
func (t *ProjectTrainer) backbone(ctx context.Context, spec project.Spec) (string, Backbone, error) {
	name := spec.Backbone
	if name == "default" || name == "" {
		name = "default"
		if spec.Target == manifest.TargetFace {
			name = "face"
		}
	}
	if bb, ok := t.Backbones[name]; ok {
		return name, bb, nil
	}
	if t.Stored != nil {
		if name == "default" {
			list, err := t.Stored.List(ctx)
			if err != nil {
				return "", Backbone{}, err
			}
			if len(list) == 0 {
				return "", Backbone{}, fmt.Errorf("%w: no ImageNet backbone on this server for frame classifiers: %s", project.ErrInvalid, NoBackboneHelp)
			}
			name = list[0].Name
		}
		_, model, err := t.Stored.Get(ctx, name)
		if err == nil {
			return name, ImageNetBackbone(name, model), nil
		}
		if !errors.Is(err, store.ErrBackboneNotFound) {
			return "", Backbone{}, err
		}
	}
	have, _ := t.ListBackbones(ctx)
	var names []string
	for _, b := range have {
		names = append(names, b.Name)
	}
	if name == "default" {
		return "", Backbone{}, fmt.Errorf("%w: no ImageNet backbone on this server for frame classifiers: %s", project.ErrInvalid, NoBackboneHelp)
	}
	return "", Backbone{}, fmt.Errorf("%w: no backbone %q on this server (have: %s); %s", project.ErrInvalid, name, strings.Join(names, ", "), NoBackboneHelp)
}

var _ api.Backbones = (*ProjectTrainer)(nil)

// ListBackbones lists the backbones projects may name: the built-in ones, then the uploaded ones.
func (t *ProjectTrainer) ListBackbones(ctx context.Context) ([]api.BackboneInfo, error) {
	var out []api.BackboneInfo
	names := make([]string, 0, len(t.Backbones))
	for k := range t.Backbones {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		target := t.Backbones[k].Target
		if target == "" {
			target = manifest.TargetFrame
		}
		out = append(out, api.BackboneInfo{Name: k, Target: target, Builtin: true})
	}
	if t.Stored == nil {
		return out, nil
	}
	list, err := t.Stored.List(ctx)
	if err != nil {
		return out, err
	}
	for _, e := range list {
		if _, dup := t.Backbones[e.Name]; dup {
			continue
		}
		out = append(out, api.BackboneInfo{Name: e.Name, Target: manifest.TargetFrame, SHA256: e.SHA256, Size: e.Size, AddedAt: e.ModTime})
	}
	return out, nil
}

// AddBackbone checks model (CheckImageNetBackbone) and uploads it as backbone name. Built-in
// names are refused (manifest.ErrInvalid); without Stored it is api.ErrNoBackboneStore.
func (t *ProjectTrainer) AddBackbone(ctx context.Context, name string, model []byte) (api.BackboneInfo, error) {
	if t.Stored == nil {
		return api.BackboneInfo{}, api.ErrNoBackboneStore
	}
	if _, ok := t.Backbones[name]; ok || name == "default" {
		return api.BackboneInfo{}, fmt.Errorf("%w: %q is a built-in backbone name; choose another", manifest.ErrInvalid, name)
	}
	if !manifest.ValidName(name) {
		return api.BackboneInfo{}, fmt.Errorf("%w: backbone name %q: 1-64 characters a-z, 0-9, '_' or '-', starting with a letter or digit", manifest.ErrInvalid, name)
	}
	if err := CheckImageNetBackbone(name, model); err != nil {
		return api.BackboneInfo{}, err
	}
	e, err := t.Stored.Put(ctx, name, model)
	if err != nil {
		return api.BackboneInfo{}, err
	}
	return api.BackboneInfo{Name: e.Name, Target: manifest.TargetFrame, SHA256: e.SHA256, Size: e.Size, AddedAt: e.ModTime}, nil
}

// DeleteBackbone removes an uploaded backbone (store.ErrBackboneNotFound when there is none;
// built-in ones cannot be deleted).
func (t *ProjectTrainer) DeleteBackbone(ctx context.Context, name string) error {
	if _, ok := t.Backbones[name]; ok {
		return fmt.Errorf("%w: %q is built in and cannot be deleted", manifest.ErrInvalid, name)
	}
	if t.Stored == nil {
		return fmt.Errorf("backbone %s: %w", name, store.ErrBackboneNotFound)
	}
	return t.Stored.Delete(ctx, name)
}
