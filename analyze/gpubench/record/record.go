// Package record records, from a real video, the pre-processed inputs the
// analyzer feeds each face model, into a gpubench.Recording: the
// detector's input for every recorded frame and every per-face model's
// input for every face found in them. It runs the real analyze.Pipeline
// (OpenCV decoding and pre-processing, onnxruntime on the CPU) and only
// listens to the models' inputs, so the recording is exactly what the
// analyzer computes; the GPU benchmark then replays it without OpenCV.
package record

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/analyze/gpubench"
	"github.com/vigil-video/vigil/detect"
	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/onnx"
)

// Options configure Record.
type Options struct {
	// Video is the video file to record from. Required.
	Video string
	// Frames is how many frames, spread evenly over the video, are
	// recorded (default 32).
	Frames int
	// Deps is the deps directory "make setup" filled. Required.
	Deps string
	// Batch is how many frames the pipeline analyses at once (default 8);
	// it does not change what is recorded.
	Batch int
}

// Record analyses opt.Frames frames of opt.Video with every head and
// returns what each model was given, model by model in call order.
func Record(ctx context.Context, opt Options) (*gpubench.Recording, error) {
	if opt.Video == "" || opt.Deps == "" {
		return nil, errors.New("record: Options.Video and Options.Deps are required")
	}
	if opt.Frames <= 0 {
		opt.Frames = 32
	}
	if opt.Batch <= 0 {
		opt.Batch = 8
	}
	man, err := models.Load()
	if err != nil {
		return nil, err
	}
	lib, err := man.VerifyPath(opt.Deps, "onnxruntime")
	if err != nil {
		return nil, err
	}
	rt, err := onnx.NewRuntime(lib)
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	ms := analyze.NewModelSet(rt, man, opt.Deps, onnx.SessionOptions{IntraOpThreads: 1, MaxBatch: 64})
	defer ms.Close()
	rec := &recorder{get: ms.Get, sets: map[string]*gpubench.Set{}}
	p, err := analyze.NewPipeline(analyze.PipelineConfig{Heads: analyze.AllHeads}, rec.model)
	if err != nil {
		return nil, err
	}
	frames, err := ingest.SampleFile(ctx, opt.Video, opt.Frames)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, m := range frames {
			m.Close()
		}
	}()
	out := &gpubench.Recording{Source: opt.Video, Frames: len(frames)}
	for i := 0; i < len(frames); i += opt.Batch {
		res, err := p.Analyze(ctx, frames[i:min(i+opt.Batch, len(frames))])
		if err != nil {
			return nil, fmt.Errorf("record: analyse frames %d-: %w", i, err)
		}
		for _, r := range res {
			out.Faces += len(r.Faces)
		}
	}
	for _, name := range rec.order {
		out.Sets = append(out.Sets, *rec.sets[name])
	}
	return out, nil
}

// recorder wraps the models so that every Run's input is kept.
type recorder struct {
	get   analyze.Models
	mu    sync.Mutex
	sets  map[string]*gpubench.Set
	order []string
}

// model is an analyze.Models function returning recording wrappers.
func (r *recorder) model(name string) (detect.Model, error) {
	m, err := r.get(name)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.sets[name]; !ok {
		r.sets[name] = &gpubench.Set{Model: name, Shape: m.InputShape()}
		r.order = append(r.order, name)
	}
	return recordingModel{Model: m, r: r, name: name}, nil
}

type recordingModel struct {
	detect.Model
	r    *recorder
	name string
}

// Run keeps a copy of input, then runs the model.
func (m recordingModel) Run(ctx context.Context, n int, input []float32) ([][]float32, error) {
	m.r.mu.Lock()
	s := m.r.sets[m.name]
	s.Data = append(s.Data, input...)
	m.r.mu.Unlock()
	return m.Model.Run(ctx, n, input)
}
