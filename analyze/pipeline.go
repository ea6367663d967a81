// Package analyze is the analyze role: it takes frames from NATS, batches them across streams,
// runs the face pipeline (detect → landmarks → align → embedding and attribute heads) through
// onnxruntime and publishes one result per frame.
//
// pipeline.go and heads.go hold the face pipeline itself; role.go the NATS consumer.
package analyze

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/detect"
	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/vision"
)

// PipelineConfig selects the heads and thresholds of a Pipeline.
type PipelineConfig struct {
	// Heads lists the heads to run on every face (see AllHeads). Default: none beyond detection
	// and landmarks.
	Heads []string
	// OnDemand lists heads loaded but run only on frames that request them (a frame's Vigil-Heads
	// header, set when the track stage wants fresh attributes for a new or stale track). A head in
	// both lists runs on every face. Default none.
	OnDemand []string
	// Detect is the detector's post-processing. Default detect.DefaultPostConfig().
	Detect detect.PostConfig
	// MaxFaces bounds the faces analysed per frame, largest first. Default 32.
	MaxFaces int
	// GenderThreshold: a gender score above it is "male". Default
	// config.Default().Analyze.GenderThreshold (0.6, the model vendor's value).
	GenderThreshold float32
	// LivenessThreshold: a liveness score at or above it is a real face. Default
	// config.Default().Analyze.LivenessThreshold (0.5).
	LivenessThreshold float32
	// MinRecognitionSize is the shortest box side, in frame pixels, from which a face is
	// embedded and its liveness estimated; a smaller face is marked result.Face.TooSmall and
	// gets neither. Default result.DefaultMinRecognitionSize (40): on the shared test photos
	// scaled down, the same-person similarity falls from 0.85 at full size to 0.78 at 40 px and
	// 0.72 at 32 px, where the detector already misses a third of the faces (README, "Too small
	// faces"). Negative: no minimum.
	MinRecognitionSize float32
	// Tiles, when set, also runs the detector on overlapping tiles of frames larger than a tile
	// (detect.DetectTiled), finding faces too small for its 320x240 view of the whole frame: one
	// more detector run per tile (6 for a 1024x559 photo, 24 for 1080p). Default nil (whole
	// frame only); the image API and commands set it.
	Tiles *detect.TileConfig
	// MirrorTolerance is the face-quality gate: a detection whose five landmarks move by more
	// than this share of its side plus one pixel when the face is mirrored is dropped as not a
	// face (animals, letters, textures). Default config.Default().Analyze.FaceGate (0.03, measured
	// there); negative: no gate.
	MirrorTolerance float32
	// KeepEmbeddings puts each face's embedding into results. Default false (512 floats per face).
	KeepEmbeddings bool
	// ChannelOrder overrides a head's input plane order, keyed by head name. For experiments; the
	// defaults were measured on the shared test photos (see README, "Accuracy").
	ChannelOrder map[string]vision.Order
}

func (c *PipelineConfig) setDefaults() {
	if c.Detect == (detect.PostConfig{}) {
		c.Detect = detect.DefaultPostConfig()
	}
	if c.MaxFaces <= 0 {
		c.MaxFaces = 32
	}
	def := config.Default().Analyze
	if c.GenderThreshold == 0 {
		c.GenderThreshold = float32(def.GenderThreshold)
	}
	if c.LivenessThreshold == 0 {
		c.LivenessThreshold = float32(def.LivenessThreshold)
	}
	if c.MirrorTolerance == 0 {
		c.MirrorTolerance = float32(def.FaceGate)
	}
	if c.MinRecognitionSize == 0 {
		c.MinRecognitionSize = result.DefaultMinRecognitionSize
	}
}

// Models gives the Pipeline its models by manifest name (fr_detect, fr_landmark, fr_feature,
// fr_age, fr_gender, fr_expression, fr_liveness, fr_pose). Only the models the configured heads
// need are requested.
type Models func(name string) (detect.Model, error)

// ModelsFor lists the manifest names of the models a head set needs, detector and landmarks first.
func ModelsFor(heads []string) []string {
	names := []string{"fr_detect", "fr_landmark"}
	for _, h := range heads {
		names = append(names, headModel[h])
	}
	return names
}

var headModel = map[string]string{
	HeadEmbedding: "fr_feature",
	HeadAge:       "fr_age",
	HeadGender:    "fr_gender",
	HeadEmotion:   "fr_expression",
	HeadLiveness:  "fr_liveness",
	HeadPose:      "fr_pose",
}

// defaultOrder is each head's input plane order. B,G,R was measured better than the reference
// library's R,G,B on ../shared/testdata/faces for the embedding (higher same-person similarity,
// same different-person similarity), gender (Obama, Biden and Salley scored more male) and
// liveness (38 of 39 real photos called real against 9), and for emotion on the labelled faces
// of ../shared/testdata/attributes (R,G,B called most neutral faces happy); see README,
// "Accuracy". Pose keeps the reference's B,G,R: the test data has no labels to measure it by.
var defaultOrder = map[string]vision.Order{
	HeadEmbedding: vision.BGR,
	HeadAge:       vision.BGR,
	HeadGender:    vision.BGR,
	HeadEmotion:   vision.BGR,
	HeadLiveness:  vision.BGR,
	HeadPose:      vision.BGR,
}

// Pipeline is the face pipeline. It is safe for concurrent use: Analyze holds no state between
// calls, and the models allow concurrent runs.
type Pipeline struct {
	cfg      PipelineConfig
	detector *detect.Detector
	marks    *detect.Landmarker
	heads    []*head
}

// NewPipeline builds the pipeline for cfg, taking its models from models.
func NewPipeline(cfg PipelineConfig, models Models) (*Pipeline, error) {
	cfg.setDefaults()
	p := &Pipeline{cfg: cfg}
	m, err := models("fr_detect")
	if err != nil {
		return nil, err
	}
	if p.detector, err = detect.NewDetector(m, cfg.Detect); err != nil {
		return nil, err
	}
	if m, err = models("fr_landmark"); err != nil {
		return nil, err
	}
	if p.marks, err = detect.NewLandmarker(m); err != nil {
		return nil, err
	}
	always := map[string]bool{}
	for _, name := range cfg.Heads {
		always[name] = true
	}
	seen := map[string]bool{}
	for _, name := range append(append([]string(nil), cfg.Heads...), cfg.OnDemand...) {
		if seen[name] {
			continue
		}
		seen[name] = true
		mname, ok := headModel[name]
		if !ok {
			return nil, fmt.Errorf("unknown head %q", name)
		}
		m, err := models(mname)
		if err != nil {
			return nil, err
		}
		h, err := p.newHead(name, m)
		if err != nil {
			return nil, err
		}
		h.onDemand = !always[name]
		p.heads = append(p.heads, h)
	}
	return p, nil
}

// Heads lists the heads this pipeline runs on every face.
func (p *Pipeline) Heads() []string {
	var out []string
	for _, h := range p.heads {
		if !h.onDemand {
			out = append(out, h.name)
		}
	}
	return out
}

// OnDemandHeads lists the heads this pipeline runs only on frames that request them.
func (p *Pipeline) OnDemandHeads() []string {
	var out []string
	for _, h := range p.heads {
		if h.onDemand {
			out = append(out, h.name)
		}
	}
	return out
}

func (p *Pipeline) newHead(name string, m detect.Model) (*head, error) {
	in := m.InputShape()
	if len(in) != 3 || in[0] != 3 || in[1] != in[2] {
		return nil, fmt.Errorf("%s head: input shape %v, want [3 S S]", name, in)
	}
	order := defaultOrder[name]
	if o, ok := p.cfg.ChannelOrder[name]; ok {
		order = o
	}
	h := &head{name: name, model: m, size: int(in[1]), order: order}
	switch name {
	case HeadEmbedding:
		h.norm = unit127
		h.crop = func(f faceInput, size int) (gocv.Mat, bool) {
			if !f.hasLM {
				return gocv.Mat{}, false
			}
			a, err := detect.Align(f.frame, f.pts5)
			return a, err == nil
		}
		keep := p.cfg.KeepEmbeddings
		h.apply = func(outs [][]float32, f faceInput) {
			e := l2normalize(outs[0])
			*f.emb = e
			if keep {
				f.out.Embedding = e
			}
		}
	case HeadAge, HeadGender:
		gather, err := ssrGather(m)
		if err != nil {
			return nil, fmt.Errorf("%s head: %w", name, err)
		}
		// SSR-Net (64x64) is fed the landmark-aligned face zoomed out to 0.65, B,G,R, and the
		// mean of the face and its mirror image: on ../shared/testdata/attributes this took
		// gender from 21 to 26 of 30 right and the UTKFace age error from 20 to 16 years, against
		// the reference's 1.4x box crop (README, "Accuracy"; vigil eval attributes). B,G,R with
		// ImageNet's mean and std is how the model was trained (SSR_Net_Pytorch reads images with
		// cv2.imread and normalises them unchanged); zooms 0.6-0.7, INTER_AREA resampling and
		// multi-zoom averaging all land within one face of 26/30, so none replaces this crop.
		h.norm = imagenet
		h.crop = cropAligned(0.65)
		h.flip = true
		if name == HeadAge {
			h.apply = func(outs [][]float32, f faceInput) {
				if x := gather(outs); x != nil {
					age := float32(ssrMerge(x, 101))
					f.out.Age = &age
				}
			}
		} else {
			thr := p.cfg.GenderThreshold
			h.apply = func(outs [][]float32, f faceInput) {
				if x := gather(outs); x != nil {
					f.out.Gender = result.GenderFromMale(float32(ssrMerge(x, 1)), thr)
				}
			}
		}
	case HeadEmotion:
		h.norm = scale255
		// The box enlarged 1.2x about its centre and clipped to the frame, B,G,R. The reference
		// takes 1.2x from the box's top-left corner (off centre, and it crashes at the frame's
		// edge) and feeds R,G,B: on ../shared/testdata/attributes R,G,B called 5 of 12 neutral
		// faces happy (smile vs neutral 18/23), B,G,R with this crop 22/23 with every broad
		// smile happy (10/11) and no clear non-smile happy (README, "Accuracy").
		h.crop = cropCentred(1.2)
		h.apply = func(outs [][]float32, f faceInput) {
			p := softmax(outs[0])
			if len(p) != len(Emotions) {
				return
			}
			e := &result.Emotion{Scores: make(map[string]float32, len(p))}
			best := 0
			for i, v := range p {
				e.Scores[Emotions[i]] = v
				if v > p[best] {
					best = i
				}
			}
			e.Label = Emotions[best]
			f.out.Emotion = e
		}
	case HeadLiveness:
		h.norm = raw
		h.crop = cropExpanded(2.7)
		thr := p.cfg.LivenessThreshold
		h.apply = func(outs [][]float32, f faceInput) {
			p := softmax(outs[0])
			if len(p) < 1 {
				return
			}
			f.out.Liveness = &result.Liveness{Score: p[0], Real: p[0] >= thr}
		}
	case HeadPose:
		h.norm = imagenet
		h.crop = func(f faceInput, size int) (gocv.Mat, bool) {
			return cropTo(f.frame, detect.MarginRect(f.box, f.frame.Cols(), f.frame.Rows(), 0.25), size)
		}
		yaw, pitch, roll := detect.OutputIndex(m, "output"), detect.OutputIndex(m, "617"), detect.OutputIndex(m, "618")
		if yaw < 0 || pitch < 0 || roll < 0 {
			return nil, fmt.Errorf("pose head: outputs %v, want output, 617, 618", m.Outputs())
		}
		h.apply = func(outs [][]float32, f faceInput) {
			f.out.Pose = &result.Pose{Yaw: poseDegrees(outs[yaw]), Pitch: poseDegrees(outs[pitch]), Roll: poseDegrees(outs[roll])}
		}
	}
	return h, nil
}

// Analyze runs the pipeline on a batch of 8-bit BGR frames. Each model runs once for the whole
// batch: the detector over the frames, every head over all faces of all frames. The i-th entry
// lists frame i's faces, largest first, with their embeddings (also when not kept in results).
// On-demand heads do not run; see AnalyzeWith.
func (p *Pipeline) Analyze(ctx context.Context, frames []gocv.Mat) ([]FrameFaces, error) {
	return p.AnalyzeWith(ctx, frames, nil)
}

// AnalyzeScaled is AnalyzeWith for frames decoded smaller than their published size:
// scales[i] (1 or more; 0 or absent means 1) is frame i's published width over its decoded
// width. Boxes and landmarks come back in published-frame pixels, and TooSmall is decided on
// that size. Meant for frames that only need detection and landmarks (heads crop from the
// decoded pixels).
func (p *Pipeline) AnalyzeScaled(ctx context.Context, frames []gocv.Mat, requested [][]string, scales []float32) ([]FrameFaces, error) {
	out, err := p.AnalyzeWith(ctx, frames, requested)
	if err != nil {
		return nil, err
	}
	for i := range out {
		if i >= len(scales) || scales[i] <= 0 || scales[i] == 1 {
			continue
		}
		for j := range out[i].Faces {
			f := &out[i].Faces[j]
			scaleFace(f, scales[i])
			f.TooSmall = min(f.Box.X2-f.Box.X1, f.Box.Y2-f.Box.Y1) < p.cfg.MinRecognitionSize
		}
	}
	return out, nil
}

// scaleFace multiplies f's box and landmarks by s.
func scaleFace(f *result.Face, s float32) {
	f.Box = result.Box{X1: f.Box.X1 * s, Y1: f.Box.Y1 * s, X2: f.Box.X2 * s, Y2: f.Box.Y2 * s}
	f.Landmarks = slices.Clone(f.Landmarks)
	for k := range f.Landmarks {
		f.Landmarks[k].X *= s
		f.Landmarks[k].Y *= s
	}
}

// AnalyzeWith is Analyze where requested[i] names the on-demand heads to run on frame i's faces
// too (nil or shorter: none). Names that are not on-demand heads of this pipeline are ignored.
func (p *Pipeline) AnalyzeWith(ctx context.Context, frames []gocv.Mat, requested [][]string) ([]FrameFaces, error) {
	dets, err := p.findFaces(ctx, frames)
	if err != nil {
		return nil, err
	}
	out := make([]FrameFaces, len(frames))
	var faces []faceInput
	var lms [][]float32
	var refs []detect.FaceRef // faces whose landmarks the quality gate did not compute
	var missing []int         // their indices in faces
	for i, ds := range dets {
		sort.SliceStable(ds, func(a, b int) bool { return ds[a].det.Box.Area() > ds[b].det.Box.Area() })
		if len(ds) > p.cfg.MaxFaces {
			ds = ds[:p.cfg.MaxFaces]
		}
		out[i].Faces = make([]result.Face, len(ds))
		out[i].Embeddings = make([][]float32, len(ds))
		for j, fd := range ds {
			d := fd.det
			out[i].Faces[j] = result.Face{Box: result.Box{X1: d.Box.X1, Y1: d.Box.Y1, X2: d.Box.X2, Y2: d.Box.Y2}, Score: d.Score}
			var req []string
			if i < len(requested) {
				req = requested[i]
			}
			small := min(d.Box.W(), d.Box.H()) < p.cfg.MinRecognitionSize
			out[i].Faces[j].TooSmall = small
			faces = append(faces, faceInput{frame: frames[i], box: d.Box, out: &out[i].Faces[j], emb: &out[i].Embeddings[j], requested: req,
				tooSmall: small})
			lms = append(lms, fd.lms)
			if fd.lms == nil {
				refs = append(refs, detect.FaceRef{Frame: frames[i], Box: d.Box})
				missing = append(missing, len(faces)-1)
			}
		}
	}
	if len(faces) == 0 {
		return out, nil
	}
	if len(refs) > 0 {
		more, err := p.marks.Landmarks(ctx, refs)
		if err != nil {
			return nil, err
		}
		for k, i := range missing {
			lms[i] = more[k]
		}
	}
	for i := range faces {
		pts, ok := detect.Landmarks5(lms[i])
		if !ok {
			continue
		}
		faces[i].pts5, faces[i].hasLM = pts, true
		lm := make([]result.Point, 5)
		for k, q := range pts {
			lm[k] = result.Point{X: q.X, Y: q.Y}
		}
		faces[i].out.Landmarks = lm
	}
	for _, h := range p.heads {
		if err := h.run(ctx, faces); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// RunHeads runs the on-demand heads named in heads (others are ignored) on faces found earlier
// in frame, an 8-bit BGR image in the faces' pixel coordinates, and writes their outputs into
// faces: the analyze role's late heads. A face's Box places it, its five Landmarks align it (a
// face without them is skipped by the heads that align), TooSmall skips the recognition heads.
func (p *Pipeline) RunHeads(ctx context.Context, frame gocv.Mat, faces []result.Face, heads []string) error {
	in := make([]faceInput, len(faces))
	for i := range faces {
		f := &faces[i]
		in[i] = faceInput{frame: frame, box: detect.Box{X1: f.Box.X1, Y1: f.Box.Y1, X2: f.Box.X2, Y2: f.Box.Y2}, out: f,
			emb: new([]float32), requested: heads, tooSmall: f.TooSmall}
		if len(f.Landmarks) == 5 {
			for k, q := range f.Landmarks {
				in[i].pts5[k] = detect.Point{X: q.X, Y: q.Y}
			}
			in[i].hasLM = true
		}
	}
	for _, h := range p.heads {
		if !h.onDemand || !slices.Contains(heads, h.name) {
			continue
		}
		if err := h.run(ctx, in); err != nil {
			return err
		}
	}
	return nil
}

// FrameFaces is what the pipeline found in one frame.
type FrameFaces struct {
	// Faces are the frame's faces, largest first.
	Faces []result.Face
	// Embeddings[j] is Faces[j]'s L2-normalised embedding, nil when the embedding head did not
	// run or the face had no landmarks.
	Embeddings [][]float32
}
