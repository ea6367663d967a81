// Package classify runs custom image classifiers, on frames, on faces and on fixed regions,
// and trains new ones from labelled images.
//
//   - Load turns a manifest and an ONNX model into a Classifier, checking that they fit
//     together and running the model once; Predict scores targets of images.
//   - Registry keeps the classifiers of a JetStream object store loaded, following the store
//     live (a registration or deletion anywhere reaches every analyzer), and registers new ones
//     after loading them.
//   - Runner is the analyzer's per-frame hook: it runs the classifiers a selection assigns to a
//     frame's stream and returns result.Classifications.
//   - Trainer trains a softmax head on backbone embeddings of a dataset and exports backbone and
//     head as one ONNX model with its manifest.
//   - Service adapts all of it to the HTTP API of package api.
//
// This package is the cgo leaf (gocv, onnxruntime) of the classifier feature; manifests,
// datasets, training math, the store and the HTTP handlers are pure Go packages below it.
package classify

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/analyze/classify/manifest"
	"github.com/vigil-video/vigil/analyze/classify/store"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/onnx/graph"
)

// Classifier is one loaded classifier: its manifest and its onnxruntime session. It is safe for
// concurrent use. Close releases it; Predict on a closed classifier fails with an error wrapping
// onnx.ErrClosed.
type Classifier struct {
	m    manifest.Manifest
	sess *onnx.Session
	pre  *preprocessor
	out  int // index of the scores output
}

// Load checks model against m and prepares it: the bytes must be an ONNX model without external
// data whose input and scores output fit the manifest (manifest.CheckModel), onnxruntime must
// accept it, and one run on a test image must give len(m.Labels) finite scores. When m.SHA256 is
// set the model's digest must equal it (store.ErrDigest). Other refusals wrap
// manifest.ErrModel and say what does not fit. m must be valid (manifest.Validate).
func Load(ctx context.Context, rt *onnx.Runtime, m manifest.Manifest, model []byte, opts onnx.SessionOptions) (*Classifier, error) {
	c, err := load(ctx, rt, m, model, opts)
	if err != nil {
		return nil, fmt.Errorf("classifier %s: %w", m.Name, err)
	}
	return c, nil
}

func load(ctx context.Context, rt *onnx.Runtime, m manifest.Manifest, model []byte, opts onnx.SessionOptions) (*Classifier, error) {
	m = m.Clone()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if m.SHA256 != "" {
		if got := store.Digest(model); got != m.SHA256 {
			return nil, fmt.Errorf("%w: registered sha256 %s, the model's is %s", store.ErrDigest, m.SHA256, got)
		}
	}
	info, err := graph.Inspect(model)
	if errors.Is(err, graph.ErrMalformed) || errors.Is(err, graph.ErrNoGraph) {
		return nil, fmt.Errorf("%w: the file is not an ONNX model (%d bytes): %w", manifest.ErrModel, len(model), err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", manifest.ErrModel, err)
	}
	shape, err := m.CheckModel(info)
	if err != nil {
		return nil, err
	}
	sess, err := rt.NewSession(m.Name, model, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: onnxruntime refuses it: %w", manifest.ErrModel, err)
	}
	c := &Classifier{m: m, sess: sess, pre: newPreprocessor(m.Input), out: shape.OutputIndex}
	if err := c.selfTest(ctx); err != nil {
		_ = sess.Close()
		return nil, fmt.Errorf("%w: %w", manifest.ErrModel, err)
	}
	return c, nil
}

// selfTest checks the session's shapes and runs it once on a test image.
func (c *Classifier) selfTest(ctx context.Context) error {
	in := c.sess.InputShape()
	want := []int64{int64(c.m.Input.Channels()), int64(c.m.Input.Height), int64(c.m.Input.Width)}
	if c.m.Input.Layout == manifest.LayoutNHWC {
		want = []int64{want[1], want[2], want[0]}
	}
	if len(in) != 3 || in[0] != want[0] || in[1] != want[1] || in[2] != want[2] {
		return fmt.Errorf("the model's input sample shape is %v; the manifest needs %v (%s)", in, want, c.m.Input.Layout)
	}
	n := 1
	for _, d := range c.sess.OutputShape(c.out) {
		n *= int(d)
	}
	if n != len(c.m.Labels) {
		return fmt.Errorf("output %q has %d values per image (shape %v) but the manifest has %d labels",
			c.sess.Outputs()[c.out], n, c.sess.OutputShape(c.out), len(c.m.Labels))
	}
	img := gocv.NewMatWithSize(48, 64, gocv.MatTypeCV8UC3)
	defer img.Close()
	for y := 0; y < 48; y++ {
		for x := 0; x < 64; x++ {
			img.SetUCharAt(y, 3*x, uint8(4*x))
			img.SetUCharAt(y, 3*x+1, uint8(5*y))
			img.SetUCharAt(y, 3*x+2, 128)
		}
	}
	preds, err := c.Predict(ctx, []Target{{Name: "test", Image: img, Rect: image.Rect(0, 0, 64, 48)}})
	if err != nil {
		return fmt.Errorf("test run: %w", err)
	}
	for _, s := range preds[0].Scores {
		if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
			return errors.New("test run: the model returned a score that is not finite")
		}
	}
	return nil
}

// Manifest returns the classifier's manifest (a copy).
func (c *Classifier) Manifest() manifest.Manifest { return c.m.Clone() }

// Close releases the session after running predictions finish.
func (c *Classifier) Close() error { return c.sess.Close() }

// Target is one thing to classify: rectangle Rect of Image (an 8-bit BGR Mat the caller owns
// and keeps open during Predict). Name becomes the prediction's target ("frame", "region",
// "face:0").
type Target struct {
	// Name names the target in predictions.
	Name string
	// Image is the 8-bit BGR image holding the target.
	Image gocv.Mat
	// Rect is the target's rectangle in Image; it is clipped to the image.
	Rect image.Rectangle
}

// Prediction is a classifier's verdict on one target.
type Prediction struct {
	// Model is the classifier's name, Target the target's name.
	Model, Target string
	// Label is the label of the highest score, Score that score (after the softmax, if the
	// manifest asks for one).
	Label string
	// Score is the top score.
	Score float32
	// Scores holds every label's score, in label order.
	Scores []float32
	// Below reports that Score is under the manifest's threshold: the analyzer does not report
	// such predictions.
	Below bool
}

// Predict classifies targets in one batched run. Targets whose rectangle lies outside their
// image are an error.
func (c *Classifier) Predict(ctx context.Context, targets []Target) ([]Prediction, error) {
	if len(targets) == 0 {
		return nil, nil
	}
	per := c.pre.sampleLen
	input := make([]float32, len(targets)*per)
	for i, t := range targets {
		if err := c.pre.fill(input[i*per:(i+1)*per], t.Image, t.Rect); err != nil {
			return nil, fmt.Errorf("classifier %s: %s: %w", c.m.Name, t.Name, err)
		}
	}
	outs, err := c.sess.Run(ctx, len(targets), input)
	if err != nil {
		return nil, fmt.Errorf("classifier %s: %w", c.m.Name, err)
	}
	k := len(c.m.Labels)
	scores := outs[c.out]
	preds := make([]Prediction, len(targets))
	for i, t := range targets {
		s := append([]float32(nil), scores[i*k:(i+1)*k]...)
		if c.m.Output.Softmax {
			softmax(s)
		}
		best := 0
		for j := range s {
			if s[j] > s[best] {
				best = j
			}
		}
		preds[i] = Prediction{Model: c.m.Name, Target: t.Name, Label: c.m.Labels[best], Score: s[best], Scores: s,
			Below: s[best] < c.m.Threshold}
	}
	return preds, nil
}

// softmax turns logits into probabilities in place.
func softmax(v []float32) {
	mx := v[0]
	for _, x := range v {
		mx = max(mx, x)
	}
	var sum float64
	e := make([]float64, len(v))
	for i, x := range v {
		e[i] = math.Exp(float64(x - mx))
		sum += e[i]
	}
	for i := range v {
		v[i] = float32(e[i] / sum)
	}
}
