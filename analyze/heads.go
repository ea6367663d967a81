package analyze

import (
	"context"
	"fmt"
	"image"
	"math"
	"strings"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/detect"
	"github.com/vigil-video/vigil/pkg/heads"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/vision"
)

// Head names, as used in configuration (--heads) and in the models manifest (pkg/heads).
const (
	HeadEmbedding = heads.Embedding
	HeadAge       = heads.Age
	HeadGender    = heads.Gender
	HeadEmotion   = heads.Emotion
	HeadLiveness  = heads.Liveness
	HeadPose      = heads.Pose
)

// AllHeads lists every face head in the order they run (heads.All).
var AllHeads = heads.All()

// DefaultHeads are the heads `vigil run` enables (heads.Default): all but emotion, whose
// DenseNet-121 costs ~66 ms per face on one core (30x the detector).
var DefaultHeads = heads.Default()

// Emotions are the expression model's classes in output order.
var Emotions = []string{"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}

// ParseHeads parses a comma-separated head list. "all" means AllHeads, "default" DefaultHeads,
// "none" or "" no heads (detection and landmarks only).
func ParseHeads(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "all":
		return append([]string(nil), AllHeads...), nil
	case "default":
		return append([]string(nil), DefaultHeads...), nil
	case "", "none":
		return nil, nil
	}
	seen := map[string]bool{}
	var out []string
	for _, h := range strings.Split(s, ",") {
		h = strings.TrimSpace(h)
		known := false
		for _, k := range AllHeads {
			known = known || k == h
		}
		if !known {
			return nil, fmt.Errorf("unknown head %q (choose from %s, or all, default, none)", h, strings.Join(AllHeads, ", "))
		}
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out, nil
}

// faceInput is one face of a batch, as the heads see it.
type faceInput struct {
	frame gocv.Mat
	box   detect.Box
	pts5  [5]detect.Point
	hasLM bool
	out   *result.Face
	emb   *[]float32 // where the embedding head stores the face's embedding
	// requested lists the on-demand heads the face's frame asked for.
	requested []string
	// tooSmall: the face is below PipelineConfig.MinRecognitionSize; the recognition heads
	// (embedding, liveness) skip it.
	tooSmall bool
}

// wants reports whether head h runs on face f.
func (h *head) wants(f faceInput) bool {
	if f.tooSmall && (h.name == HeadEmbedding || h.name == HeadLiveness) {
		return false
	}
	if !h.onDemand {
		return true
	}
	for _, r := range f.requested {
		if r == h.name {
			return true
		}
	}
	return false
}

// head is one per-face model: how to crop and normalise its input, and how to read its output
// into the face.
type head struct {
	name  string
	model detect.Model
	size  int
	order vision.Order
	norm  vision.Norm
	// crop returns the size x size input image for a face, or ok=false to skip the face.
	crop func(f faceInput, size int) (gocv.Mat, bool)
	// apply reads this face's outputs (one slice per model output) into f.out.
	apply func(outs [][]float32, f faceInput)
	// onDemand heads run only on faces whose frame requested them.
	onDemand bool
	// flip also runs the model on the horizontally mirrored crop and averages the two outputs
	// (test-time augmentation), where measured to help (see PipelineConfig's head notes).
	flip bool
}

// run crops every face, runs the model once for the batch and applies the outputs.
func (h *head) run(ctx context.Context, faces []faceInput) error {
	per := 3 * h.size * h.size
	input := make([]float32, 0, len(faces)*per)
	idx := make([]int, 0, len(faces))
	for i, f := range faces {
		if !h.wants(f) {
			continue
		}
		m, ok := h.crop(f, h.size)
		if !ok {
			continue
		}
		err := h.fill(&input, m, per)
		m.Close()
		if err != nil {
			return fmt.Errorf("%s head: %w", h.name, err)
		}
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return nil
	}
	views := 1
	if h.flip {
		views = 2
	}
	outs, err := h.model.Run(ctx, views*len(idx), input)
	if err != nil {
		return fmt.Errorf("%s head: %w", h.name, err)
	}
	for j, i := range idx {
		per := make([][]float32, len(outs))
		for k, o := range outs {
			n := len(o) / (views * len(idx))
			per[k] = o[views*j*n : (views*j+1)*n]
			if views == 2 { // the mean of the crop's and its mirror's outputs
				avg := make([]float32, n)
				for x := range avg {
					avg[x] = (o[views*j*n+x] + o[(views*j+1)*n+x]) / 2
				}
				per[k] = avg
			}
		}
		h.apply(per, faces[i])
	}
	return nil
}

// fill appends the model input for crop m to input (per floats), and for a flipping head the
// input for its mirror image after it.
func (h *head) fill(input *[]float32, m gocv.Mat, per int) error {
	*input = append(*input, make([]float32, per)...)
	if err := vision.FillCHW((*input)[len(*input)-per:], m, h.order, h.norm); err != nil {
		return err
	}
	if !h.flip {
		return nil
	}
	mirror := gocv.NewMat()
	defer mirror.Close()
	gocv.Flip(m, &mirror, 1)
	*input = append(*input, make([]float32, per)...)
	return vision.FillCHW((*input)[len(*input)-per:], mirror, h.order, h.norm)
}

// cropAligned returns a crop function warping the face by its five landmarks onto the ArcFace
// template scaled to size x size and zoomed out by zoom (0.65: the template's face fills 65% of
// the crop, leaving hair, chin and cheeks in view), so that faces are upright and equally
// framed whatever the detector's box. Faces without landmarks are skipped.
func cropAligned(zoom float64) func(faceInput, int) (gocv.Mat, bool) {
	return func(f faceInput, size int) (gocv.Mat, bool) {
		if !f.hasLM {
			return gocv.Mat{}, false
		}
		var dst [5]detect.Point
		k, c := float64(size)/112*zoom, float64(size)/2
		for i, p := range detect.Template112 {
			dst[i] = detect.Point{X: float32((float64(p.X)-56)*k + c), Y: float32((float64(p.Y)-56)*k + c)}
		}
		a, ok := detect.Similarity(f.pts5, dst)
		if !ok {
			return gocv.Mat{}, false
		}
		m, err := vision.WarpAffine(f.frame, a, size, size)
		return m, err == nil
	}
}

// cropCentred returns a crop function taking the face box scaled by s about its centre, the
// part outside the frame left out (the crop is then resized to a square regardless).
func cropCentred(s float32) func(faceInput, int) (gocv.Mat, bool) {
	return func(f faceInput, size int) (gocv.Mat, bool) {
		b := f.box
		cx, cy, hw, hh := (b.X1+b.X2)/2, (b.Y1+b.Y2)/2, b.W()*s/2, b.H()*s/2
		return cropTo(f.frame, image.Rect(int(cx-hw), int(cy-hh), int(cx+hw), int(cy+hh)), size)
	}
}

// cropExpanded returns a crop function taking the face box scaled by s (kept inside the frame).
func cropExpanded(s float32) func(faceInput, int) (gocv.Mat, bool) {
	return func(f faceInput, size int) (gocv.Mat, bool) {
		r := detect.ExpandedRect(f.box, f.frame.Cols(), f.frame.Rows(), s)
		return cropTo(f.frame, r, size)
	}
}

func cropTo(frame gocv.Mat, r image.Rectangle, size int) (gocv.Mat, bool) {
	m, err := vision.CropResize(frame, r, size, size)
	return m, err == nil
}

var (
	imagenet = vision.Norm{Scale: 1.0 / 255, Mean: [3]float32{0.485, 0.456, 0.406}, Std: [3]float32{0.229, 0.224, 0.225}}
	unit127  = vision.Norm{Scale: 1, Mean: [3]float32{127, 127, 127}, Std: [3]float32{128, 128, 128}}
	scale255 = vision.Norm{Scale: 1.0 / 255, Std: [3]float32{1, 1, 1}}
	raw      = vision.Norm{Scale: 1, Std: [3]float32{1, 1, 1}}
)

// softmax returns the softmax of logits (numerically stable).
func softmax(logits []float32) []float32 {
	out := make([]float32, len(logits))
	if len(logits) == 0 {
		return out
	}
	m := logits[0]
	for _, v := range logits {
		m = max(m, v)
	}
	var sum float64
	for i, v := range logits {
		e := math.Exp(float64(v - m))
		out[i] = float32(e)
		sum += e
	}
	for i := range out {
		out[i] = float32(float64(out[i]) / sum)
	}
	return out
}

// ssrMerge combines SSR-Net's stage outputs into one value: x holds, in order, the three stages'
// 3 probabilities, the 3 stage deltas and the three stages' 3 index offsets (21 values); v is the
// output range (101 for age in years, 1 for the gender score).
func ssrMerge(x []float32, v float64) float64 {
	const s1, s2, s3 = 3.0, 3.0, 3.0
	var a, b, c float64
	for i := 0; i < 3; i++ {
		a += (float64(i) + float64(x[12+i])) * float64(x[i])
		b += (float64(i) + float64(x[15+i])) * float64(x[3+i])
		c += (float64(i) + float64(x[18+i])) * float64(x[6+i])
	}
	k1 := s1 * (1 + float64(x[9]))
	k2 := s2 * (1 + float64(x[10]))
	k3 := s3 * (1 + float64(x[11]))
	a /= k1
	b = b / k1 / k2
	c = c / k1 / k2 / k3
	return (a + b + c) * v
}

// ssrOutputs are SSR-Net's output names in the order ssrMerge reads them.
var ssrOutputs = []string{"prob_stage_1", "prob_stage_2", "prob_stage_3", "stage1_delta_k", "stage2_delta_k", "stage3_delta_k",
	"index_offset_stage1", "index_offset_stage2", "index_offset_stage3"}

// ssrGather returns a function concatenating one face's SSR-Net outputs in ssrOutputs order.
func ssrGather(m detect.Model) (func(outs [][]float32) []float32, error) {
	idx := make([]int, len(ssrOutputs))
	for i, name := range ssrOutputs {
		idx[i] = detect.OutputIndex(m, name)
		if idx[i] < 0 {
			return nil, fmt.Errorf("SSR-Net model lacks output %q (has %v)", name, m.Outputs())
		}
	}
	return func(outs [][]float32) []float32 {
		x := make([]float32, 0, 21)
		for _, i := range idx {
			x = append(x, outs[i]...)
		}
		if len(x) != 21 {
			return nil
		}
		return x
	}, nil
}

// poseDegrees is the expectation of a 66-bin softmax, in degrees (bins of 3 from -99).
func poseDegrees(logits []float32) float32 {
	p := softmax(logits)
	var e float64
	for i, v := range p {
		e += float64(v) * float64(i)
	}
	return float32(e*3 - 99)
}

func l2normalize(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	if s == 0 {
		return out
	}
	inv := 1 / math.Sqrt(s)
	for i, x := range v {
		out[i] = float32(float64(x) * inv)
	}
	return out
}

// Cosine is the cosine similarity of two L2-normalised embeddings (their dot product).
func Cosine(a, b []float32) float32 {
	if len(a) != len(b) {
		return 0
	}
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}
