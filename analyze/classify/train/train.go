// Package train fits the softmax head of a custom classifier on feature vectors (embeddings a
// backbone computed from labelled images): multinomial logistic regression on standardised
// features, trained with Adam on a class-weighted cross-entropy with L2 regularisation, a
// stratified held-out validation split and early stopping on the validation loss. It reports
// accuracy, a confusion matrix and per-class precision and recall, and k-fold cross-validation.
//
// The head it returns works on the raw features: the standardisation is folded into its
// weights, so exporting it is one Gemm (after an optional L2 normalisation) and a Softmax.
//
// The package is pure Go and deterministic for a given Config.Seed.
package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Config configures Fit. The zero value gives the defaults.
type Config struct {
	// ValFraction is the share of each class held out for validation (at least one image per
	// class). Default 0.2.
	ValFraction float64
	// MaxEpochs bounds the passes over the training split. Default 500.
	MaxEpochs int
	// Patience stops training after this many epochs without a lower validation loss; the
	// weights of the best epoch are kept. Default 30.
	Patience int
	// LearningRate is Adam's step size. Default 0.001.
	LearningRate float64
	// L2 is the weight decay (coefficient of 0.5*|W|^2 per sample). Default 1e-3.
	L2 float64
	// BatchSize is the mini-batch size. Default 32.
	BatchSize int
	// Unweighted turns off class weights. By default each class's samples are weighted by
	// n / (classes * n_class), so that a small class counts as much as a large one.
	Unweighted bool
	// L2Normalize divides every feature vector by its Euclidean norm before anything else (face
	// embeddings are compared that way). The exported head must do the same.
	L2Normalize bool
	// CommonScale standardises every feature with one common scale, the root mean square of
	// the features' standard deviations on the training split, instead of each with its own
	// (features are still centred on their own means). It keeps the relative scale of an
	// embedding's dimensions, so that the weight decay falls on the embedding's own geometry
	// and dimensions that barely vary are not blown up to the size of the informative ones.
	// Default false: each feature is scaled by its own deviation, as suits features whose
	// units differ.
	CommonScale bool
	// Seed makes the split and the shuffling reproducible. Default 1.
	Seed uint64
	// Augment, when set, holds for each sample of x (same index) extra feature vectors of the
	// same image augmented (mirrored, cropped). They join the training split with their image
	// and never the validation split or a held-out fold, so that no image is scored on a copy
	// of itself. Default none.
	Augment [][][]float32
	// Progress, when set, is called after every epoch.
	Progress func(Progress)
}

// Progress reports one epoch of Fit.
type Progress struct {
	// Epoch is the epoch just finished, of at most MaxEpochs.
	Epoch, MaxEpochs int
	// TrainLoss is the epoch's mean class-weighted training loss.
	TrainLoss float64
	// ValLoss and ValAccuracy are measured on the validation split after the epoch.
	ValLoss     float64
	ValAccuracy float64
}

func (c *Config) setDefaults() {
	if c.ValFraction <= 0 || c.ValFraction >= 1 {
		c.ValFraction = 0.2
	}
	if c.MaxEpochs <= 0 {
		c.MaxEpochs = 500
	}
	if c.Patience <= 0 {
		c.Patience = 30
	}
	if c.LearningRate <= 0 {
		c.LearningRate = 0.001
	}
	if c.L2 < 0 {
		c.L2 = 0
	} else if c.L2 == 0 {
		c.L2 = 1e-3
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 32
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
}

// Head is a trained linear classifier on raw feature vectors: Probabilities(x) =
// softmax(W·n(x) + b), where n is the L2 normalisation when L2Normalize is set, else identity.
type Head struct {
	// Classes and Dim are K and D.
	Classes, Dim int
	// Weights is W, K rows of D values; Bias is b.
	Weights []float32
	Bias    []float32
	// L2Normalize says the features are L2-normalised before W applies.
	L2Normalize bool
}

// Probabilities returns the class probabilities for the feature vector x (len Dim).
func (h *Head) Probabilities(x []float32) []float32 {
	v := make([]float64, len(x))
	for i, f := range x {
		v[i] = float64(f)
	}
	if h.L2Normalize {
		normalize(v)
	}
	logits := make([]float64, h.Classes)
	for k := range logits {
		s := float64(h.Bias[k])
		row := h.Weights[k*h.Dim : (k+1)*h.Dim]
		for d, w := range row {
			s += float64(w) * v[d]
		}
		logits[k] = s
	}
	softmax(logits)
	out := make([]float32, h.Classes)
	for k, p := range logits {
		out[k] = float32(p)
	}
	return out
}

// Predict returns the most probable class of x and its probability.
func (h *Head) Predict(x []float32) (int, float32) {
	p := h.Probabilities(x)
	best := 0
	for k := range p {
		if p[k] > p[best] {
			best = k
		}
	}
	return best, p[best]
}

// Report describes a Fit.
type Report struct {
	// Labels names the classes.
	Labels []string `json:"labels"`
	// TrainSize and ValSize are the sizes of the two splits.
	TrainSize int `json:"train_size"`
	ValSize   int `json:"val_size"`
	// Epochs is how many epochs ran, BestEpoch the one whose weights were kept (early stopping).
	Epochs    int `json:"epochs"`
	BestEpoch int `json:"best_epoch"`
	// TrainAccuracy and ValAccuracy are the kept head's accuracies on the two splits; ValLoss
	// its class-weighted validation cross-entropy.
	TrainAccuracy float64 `json:"train_accuracy"`
	ValAccuracy   float64 `json:"val_accuracy"`
	ValLoss       float64 `json:"val_loss"`
	// Confusion counts validation samples: Confusion[true][predicted].
	Confusion [][]int `json:"confusion"`
	// PerClass has precision, recall and F1 on the validation split.
	PerClass []ClassMetrics `json:"per_class"`
	// ClassWeights are the loss weights used (all 1 when unweighted).
	ClassWeights []float64 `json:"class_weights"`
}

// ClassMetrics are one class's validation metrics.
type ClassMetrics struct {
	// Label names the class; Support is its number of validation samples.
	Label   string `json:"label"`
	Support int    `json:"support"`
	// Precision, Recall and F1 are the usual per-class metrics (0 when undefined).
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
}

// CVReport is the result of CrossValidate.
type CVReport struct {
	// Folds is k.
	Folds int `json:"folds"`
	// Accuracy lists each fold's accuracy on its held-out part.
	Accuracy []float64 `json:"accuracy"`
	// Mean and Std summarise Accuracy; Pooled is the accuracy over all held-out predictions.
	Mean   float64 `json:"mean"`
	Std    float64 `json:"std"`
	Pooled float64 `json:"pooled"`
	// Confusion pools every fold's held-out predictions: Confusion[true][predicted].
	Confusion [][]int `json:"confusion"`
}

// ErrData is wrapped by the errors for unusable training data.
var ErrData = errors.New("unusable training data")

// checkData validates a training set and returns its feature length.
func checkData(x [][]float32, y []int, k int, minPerClass int) (int, error) {
	if k < 2 {
		return 0, fmt.Errorf("%w: %d classes; at least 2 are needed", ErrData, k)
	}
	if len(x) != len(y) || len(x) == 0 {
		return 0, fmt.Errorf("%w: %d feature vectors for %d labels", ErrData, len(x), len(y))
	}
	d := len(x[0])
	if d == 0 {
		return 0, fmt.Errorf("%w: empty feature vectors", ErrData)
	}
	counts := make([]int, k)
	for i, v := range x {
		if len(v) != d {
			return 0, fmt.Errorf("%w: feature vector %d has %d values, the first has %d", ErrData, i, len(v), d)
		}
		for _, f := range v {
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return 0, fmt.Errorf("%w: feature vector %d holds a value that is not finite", ErrData, i)
			}
		}
		if y[i] < 0 || y[i] >= k {
			return 0, fmt.Errorf("%w: label %d of sample %d is not a class index below %d", ErrData, y[i], i, k)
		}
		counts[y[i]]++
	}
	for c, n := range counts {
		if n < minPerClass {
			return 0, fmt.Errorf("%w: class %d has %d sample(s); at least %d are needed", ErrData, c, n, minPerClass)
		}
	}
	return d, nil
}

// Fit trains a head on feature vectors x with class indexes y (0..len(labels)-1), holding out
// a stratified Config.ValFraction for validation and early stopping. Every class needs at least
// 2 samples. ctx cancels training between epochs.
func Fit(ctx context.Context, x [][]float32, y []int, labels []string, cfg Config) (*Head, Report, error) {
	cfg.setDefaults()
	if _, err := checkData(x, y, len(labels), 2); err != nil {
		return nil, Report{}, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	trainIdx, valIdx := stratifiedSplit(y, len(labels), cfg.ValFraction, rng)
	return fitSplit(ctx, x, y, labels, trainIdx, valIdx, cfg, rng)
}

// CrossValidate estimates the accuracy of Fit by stratified k-fold cross-validation: for each
// fold, a head is fitted (with its own validation split for early stopping) on the other folds
// and scored on the fold. Every class needs at least k samples.
func CrossValidate(ctx context.Context, x [][]float32, y []int, labels []string, k int, cfg Config) (CVReport, error) {
	cfg.setDefaults()
	cfg.Progress = nil
	if k < 2 {
		return CVReport{}, fmt.Errorf("%w: %d folds; use at least 2", ErrData, k)
	}
	if _, err := checkData(x, y, len(labels), max(k, 3)); err != nil {
		return CVReport{}, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xf01d))
	folds := stratifiedFolds(y, len(labels), k, rng)
	rep := CVReport{Folds: k, Confusion: square(len(labels))}
	correct := 0
	for f := 0; f < k; f++ {
		var rest, held []int
		for g := 0; g < k; g++ {
			if g == f {
				held = append(held, folds[g]...)
			} else {
				rest = append(rest, folds[g]...)
			}
		}
		sub := make([]int, len(rest))
		for i, j := range rest {
			sub[i] = y[j]
		}
		tr, va := stratifiedSplit(sub, len(labels), cfg.ValFraction, rng)
		for i := range tr {
			tr[i] = rest[tr[i]]
		}
		for i := range va {
			va[i] = rest[va[i]]
		}
		head, _, err := fitSplit(ctx, x, y, labels, tr, va, cfg, rng)
		if err != nil {
			return CVReport{}, fmt.Errorf("fold %d: %w", f+1, err)
		}
		ok := 0
		for _, i := range held {
			p, _ := head.Predict(x[i])
			rep.Confusion[y[i]][p]++
			if p == y[i] {
				ok++
			}
		}
		correct += ok
		rep.Accuracy = append(rep.Accuracy, float64(ok)/float64(len(held)))
	}
	rep.Mean, rep.Std = meanStd(rep.Accuracy)
	rep.Pooled = float64(correct) / float64(len(x))
	return rep, nil
}

// model is the head in standardised feature space during training.
type model struct {
	k, d int
	w    []float64 // k*d
	b    []float64 // k
}

func (m *model) clone() *model {
	return &model{k: m.k, d: m.d, w: slices.Clone(m.w), b: slices.Clone(m.b)}
}

// logits writes W·x + b into out.
func (m *model) logits(x []float64, out []float64) {
	for c := 0; c < m.k; c++ {
		s := m.b[c]
		row := m.w[c*m.d : (c+1)*m.d]
		for j, w := range row {
			s += w * x[j]
		}
		out[c] = s
	}
}

// SelectL2 picks the weight decay by k-fold cross-validation: CrossValidate for each value of
// grid, the best mean accuracy winning and, among equals, the larger decay (the simpler head).
// It returns the choice with every value's figures; cfg.L2 is ignored.
func SelectL2(ctx context.Context, x [][]float32, y []int, labels []string, k int, grid []float64, cfg Config) (L2Choice, error) {
	if len(grid) == 0 {
		return L2Choice{}, errors.New("train: empty weight-decay grid")
	}
	var ch L2Choice
	for i, l2 := range grid {
		c := cfg
		c.L2 = l2
		cv, err := CrossValidate(ctx, x, y, labels, k, c)
		if err != nil {
			return L2Choice{}, fmt.Errorf("weight decay %g: %w", l2, err)
		}
		ch.Grid = append(ch.Grid, L2Score{L2: l2, Mean: cv.Mean, Std: cv.Std})
		if i == 0 || cv.Mean > ch.CV.Mean+1e-9 || math.Abs(cv.Mean-ch.CV.Mean) <= 1e-9 && l2 > ch.L2 {
			ch.L2, ch.CV = l2, cv
		}
	}
	return ch, nil
}

// L2Choice is SelectL2's result: the chosen weight decay, its cross-validation, and every
// candidate's figures.
type L2Choice struct {
	L2   float64   `json:"l2"`
	CV   CVReport  `json:"cross_validation"`
	Grid []L2Score `json:"grid"`
}

// L2Score is one weight decay's k-fold accuracy (mean and standard deviation over folds).
type L2Score struct {
	L2   float64 `json:"l2"`
	Mean float64 `json:"mean"`
	Std  float64 `json:"std"`
}

// FitAll trains a head on every sample (no validation split) for exactly epochs epochs: the
// final model once the number of epochs (and the other settings) have been chosen on held-out
// data. Its report has no validation figures.
func FitAll(ctx context.Context, x [][]float32, y []int, labels []string, epochs int, cfg Config) (*Head, Report, error) {
	cfg.setDefaults()
	if _, err := checkData(x, y, len(labels), 1); err != nil {
		return nil, Report{}, err
	}
	cfg.MaxEpochs = max(epochs, 1)
	all := make([]int, len(x))
	for i := range all {
		all[i] = i
	}
	return fitSplit(ctx, x, y, labels, all, nil, cfg, rand.New(rand.NewPCG(cfg.Seed, 0xa11)))
}

func fitSplit(ctx context.Context, x [][]float32, y []int, labels []string, trainIdx, valIdx []int, cfg Config, rng *rand.Rand) (*Head, Report, error) {
	if cfg.Augment != nil {
		var err error
		if x, y, trainIdx, err = withAugmented(x, y, trainIdx, cfg.Augment); err != nil {
			return nil, Report{}, err
		}
	}
	k, d := len(labels), len(x[0])
	std, mu, sigma := standardize(x, trainIdx, cfg.L2Normalize, cfg.CommonScale)

	weights := classWeights(y, trainIdx, k, cfg.Unweighted)

	m := &model{k: k, d: d, w: make([]float64, k*d), b: make([]float64, k)}
	// Adam state.
	mw, vw := make([]float64, k*d), make([]float64, k*d)
	mb, vb := make([]float64, k), make([]float64, k)
	const beta1, beta2, eps = 0.9, 0.999, 1e-8
	gw, gb := make([]float64, k*d), make([]float64, k)
	logit := make([]float64, k)
	order := slices.Clone(trainIdx)
	best, bestLoss, bestEpoch, step := m.clone(), math.Inf(1), 0, 0
	epoch := 0
	for epoch = 1; epoch <= cfg.MaxEpochs; epoch++ {
		if err := ctx.Err(); err != nil {
			return nil, Report{}, fmt.Errorf("training: %w", err)
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		trainLoss := 0.0
		for start := 0; start < len(order); start += cfg.BatchSize {
			batch := order[start:min(start+cfg.BatchSize, len(order))]
			clear(gw)
			clear(gb)
			for _, i := range batch {
				m.logits(std[i], logit)
				trainLoss += weights[y[i]] * crossEntropy(logit, y[i])
				softmax(logit)
				wt := weights[y[i]]
				for c := 0; c < k; c++ {
					g := logit[c]
					if c == y[i] {
						g--
					}
					g *= wt
					gb[c] += g
					row := gw[c*d : (c+1)*d]
					for j, e := range std[i] {
						row[j] += g * e
					}
				}
			}
			n := float64(len(batch))
			step++
			c1, c2 := 1-math.Pow(beta1, float64(step)), 1-math.Pow(beta2, float64(step))
			for j := range m.w {
				g := gw[j]/n + cfg.L2*m.w[j]
				mw[j] = beta1*mw[j] + (1-beta1)*g
				vw[j] = beta2*vw[j] + (1-beta2)*g*g
				m.w[j] -= cfg.LearningRate * (mw[j] / c1) / (math.Sqrt(vw[j]/c2) + eps)
			}
			for c := range m.b {
				g := gb[c] / n
				mb[c] = beta1*mb[c] + (1-beta1)*g
				vb[c] = beta2*vb[c] + (1-beta2)*g*g
				m.b[c] -= cfg.LearningRate * (mb[c] / c1) / (math.Sqrt(vb[c]/c2) + eps)
			}
		}
		valLoss, valAcc := evaluate(m, std, y, valIdx, weights)
		if cfg.Progress != nil {
			cfg.Progress(Progress{Epoch: epoch, MaxEpochs: cfg.MaxEpochs, TrainLoss: trainLoss / float64(len(order)), ValLoss: valLoss, ValAccuracy: valAcc})
		}
		if len(valIdx) == 0 { // FitAll: a fixed number of epochs, the last one kept
			best, bestEpoch = m, epoch
		} else if valLoss < bestLoss-1e-6 {
			best, bestLoss, bestEpoch = m.clone(), valLoss, epoch
		} else if epoch-bestEpoch >= cfg.Patience {
			break
		}
	}
	epoch = min(epoch, cfg.MaxEpochs)

	rep := Report{Labels: slices.Clone(labels), TrainSize: len(trainIdx), ValSize: len(valIdx), Epochs: epoch, BestEpoch: bestEpoch,
		ClassWeights: weights, Confusion: square(k)}
	rep.ValLoss, rep.ValAccuracy = evaluate(best, std, y, valIdx, weights)
	_, rep.TrainAccuracy = evaluate(best, std, y, trainIdx, weights)
	for _, i := range valIdx {
		best.logits(std[i], logit)
		rep.Confusion[y[i]][argmax(logit)]++
	}
	rep.PerClass = perClass(rep.Confusion, labels)

	h := foldStandardization(best, mu, sigma, cfg.L2Normalize)
	return h, rep, nil
}

// withAugmented returns the training split with the training images' augmented copies joined
// to it (after the originals, so that indexes into x keep their meaning).
func withAugmented(x [][]float32, y, trainIdx []int, augment [][][]float32) ([][]float32, []int, []int, error) {
	x, y, trainIdx = slices.Clone(x), slices.Clone(y), slices.Clone(trainIdx)
	for _, i := range trainIdx[:len(trainIdx):len(trainIdx)] {
		if i >= len(augment) {
			continue
		}
		for _, a := range augment[i] {
			if len(a) != len(x[0]) {
				return nil, nil, nil, fmt.Errorf("%w: augmented vector of sample %d has %d values, want %d", ErrData, i, len(a), len(x[0]))
			}
			trainIdx = append(trainIdx, len(x))
			x = append(x, a)
			y = append(y, y[i])
		}
	}
	return x, y, trainIdx, nil
}

// standardize returns the features as float64, normalised (l2), then standardised with the
// training split's mean mu and deviation sigma: each feature's own deviation, or with common
// the root mean square of them all for every feature.
func standardize(x [][]float32, trainIdx []int, l2, common bool) (std [][]float64, mu, sigma []float64) {
	d := len(x[0])
	feats := make([][]float64, len(x))
	for i, v := range x {
		f := make([]float64, d)
		for j, e := range v {
			f[j] = float64(e)
		}
		if l2 {
			normalize(f)
		}
		feats[i] = f
	}
	mu, sigma = make([]float64, d), make([]float64, d)
	for _, i := range trainIdx {
		for j, e := range feats[i] {
			mu[j] += e
		}
	}
	for j := range mu {
		mu[j] /= float64(len(trainIdx))
	}
	for _, i := range trainIdx {
		for j, e := range feats[i] {
			sigma[j] += (e - mu[j]) * (e - mu[j])
		}
	}
	for j := range sigma {
		sigma[j] = math.Sqrt(sigma[j] / float64(len(trainIdx)))
	}
	if common {
		rms := 0.0
		for _, sd := range sigma {
			rms += sd * sd
		}
		rms = math.Sqrt(rms / float64(d))
		for j := range sigma {
			sigma[j] = rms
		}
	}
	for j := range sigma {
		if sigma[j] < 1e-6 {
			sigma[j] = 1 // a constant feature carries nothing; leave it unscaled
		}
	}
	std = make([][]float64, len(feats))
	for i, f := range feats {
		s := make([]float64, d)
		for j, e := range f {
			s[j] = (e - mu[j]) / sigma[j]
		}
		std[i] = s
	}
	return std, mu, sigma
}

// classWeights weighs each of the k classes inversely to its share of the training split (all
// 1 when unweighted).
func classWeights(y, trainIdx []int, k int, unweighted bool) []float64 {
	weights := make([]float64, k)
	counts := make([]int, k)
	for _, i := range trainIdx {
		counts[y[i]]++
	}
	for c := range weights {
		weights[c] = 1
		if !unweighted && counts[c] > 0 {
			weights[c] = float64(len(trainIdx)) / float64(k*counts[c])
		}
	}
	return weights
}

// foldStandardization folds the standardisation into the weights of m, giving the head that
// takes the raw (normalised) features: W'[c][j] = W[c][j]/sigma[j],
// b'[c] = b[c] - sum_j W[c][j]*mu[j]/sigma[j].
func foldStandardization(m *model, mu, sigma []float64, l2 bool) *Head {
	k, d := m.k, m.d
	h := &Head{Classes: k, Dim: d, Weights: make([]float32, k*d), Bias: make([]float32, k), L2Normalize: l2}
	for c := 0; c < k; c++ {
		b := m.b[c]
		for j := 0; j < d; j++ {
			w := m.w[c*d+j] / sigma[j]
			h.Weights[c*d+j] = float32(w)
			b -= w * mu[j]
		}
		h.Bias[c] = float32(b)
	}
	return h
}

// evaluate returns the weighted mean cross-entropy and the accuracy of m on idx.
func evaluate(m *model, x [][]float64, y []int, idx []int, weights []float64) (loss, acc float64) {
	if len(idx) == 0 {
		return 0, 0
	}
	logit := make([]float64, m.k)
	wsum, ok := 0.0, 0
	for _, i := range idx {
		m.logits(x[i], logit)
		loss += weights[y[i]] * crossEntropy(logit, y[i])
		wsum += weights[y[i]]
		if argmax(logit) == y[i] {
			ok++
		}
	}
	return loss / wsum, float64(ok) / float64(len(idx))
}

// crossEntropy returns -log softmax(logits)[y], computed stably.
func crossEntropy(logits []float64, y int) float64 {
	mx := slices.Max(logits)
	s := 0.0
	for _, l := range logits {
		s += math.Exp(l - mx)
	}
	return math.Log(s) + mx - logits[y]
}

// softmax turns logits into probabilities in place.
func softmax(v []float64) {
	mx := slices.Max(v)
	s := 0.0
	for i, l := range v {
		v[i] = math.Exp(l - mx)
		s += v[i]
	}
	for i := range v {
		v[i] /= s
	}
}

func normalize(v []float64) {
	n := 0.0
	for _, e := range v {
		n += e * e
	}
	n = math.Sqrt(n)
	if n == 0 {
		return
	}
	for i := range v {
		v[i] /= n
	}
}

func argmax(v []float64) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}

func square(k int) [][]int {
	m := make([][]int, k)
	for i := range m {
		m[i] = make([]int, k)
	}
	return m
}

func perClass(conf [][]int, labels []string) []ClassMetrics {
	out := make([]ClassMetrics, len(labels))
	for c := range labels {
		tp, support, predicted := conf[c][c], 0, 0
		for j := range labels {
			support += conf[c][j]
			predicted += conf[j][c]
		}
		m := ClassMetrics{Label: labels[c], Support: support}
		if predicted > 0 {
			m.Precision = float64(tp) / float64(predicted)
		}
		if support > 0 {
			m.Recall = float64(tp) / float64(support)
		}
		if m.Precision+m.Recall > 0 {
			m.F1 = 2 * m.Precision * m.Recall / (m.Precision + m.Recall)
		}
		out[c] = m
	}
	return out
}

func meanStd(v []float64) (float64, float64) {
	if len(v) == 0 {
		return 0, 0
	}
	m := 0.0
	for _, e := range v {
		m += e
	}
	m /= float64(len(v))
	s := 0.0
	for _, e := range v {
		s += (e - m) * (e - m)
	}
	return m, math.Sqrt(s / float64(len(v)))
}

// byClass groups sample indexes by class, each group shuffled.
func byClass(y []int, k int, rng *rand.Rand) [][]int {
	groups := make([][]int, k)
	for i, c := range y {
		groups[c] = append(groups[c], i)
	}
	for _, g := range groups {
		rng.Shuffle(len(g), func(i, j int) { g[i], g[j] = g[j], g[i] })
	}
	return groups
}

// stratifiedSplit holds out round(frac*n) samples of each class (at least 1, leaving at
// least 1 for training).
func stratifiedSplit(y []int, k int, frac float64, rng *rand.Rand) (train, val []int) {
	for _, g := range byClass(y, k, rng) {
		if len(g) == 0 {
			continue
		}
		n := int(math.Round(frac * float64(len(g))))
		n = max(1, min(n, len(g)-1))
		val = append(val, g[:n]...)
		train = append(train, g[n:]...)
	}
	slices.Sort(train)
	slices.Sort(val)
	return train, val
}

// stratifiedFolds deals each class's samples round-robin into k folds.
func stratifiedFolds(y []int, k, folds int, rng *rand.Rand) [][]int {
	out := make([][]int, folds)
	next := 0
	for _, g := range byClass(y, k, rng) {
		for _, i := range g {
			out[next%folds] = append(out[next%folds], i)
			next++
		}
	}
	return out
}
