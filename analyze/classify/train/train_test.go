package train

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// blobs returns n[c] samples of each class c around its own random centre in d dimensions, with
// noise of the given spread, plus an offset and scale that standardisation must undo.
func blobs(n []int, d int, spread float64, seed uint64) ([][]float32, []int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	centres := make([][]float64, len(n))
	for c := range centres {
		centres[c] = make([]float64, d)
		for j := range centres[c] {
			centres[c][j] = rng.NormFloat64()
		}
	}
	var x [][]float32
	var y []int
	for c, k := range n {
		for i := 0; i < k; i++ {
			v := make([]float32, d)
			for j := range v {
				v[j] = float32(100 + 5*(centres[c][j]+spread*rng.NormFloat64()))
			}
			x = append(x, v)
			y = append(y, c)
		}
	}
	return x, y
}

func accuracy(h *Head, x [][]float32, y []int) float64 {
	ok := 0
	for i := range x {
		if p, _ := h.Predict(x[i]); p == y[i] {
			ok++
		}
	}
	return float64(ok) / float64(len(x))
}

func TestFit(t *testing.T) {
	ctx := context.Background()
	labels := []string{"a", "b", "c"}
	x, y := blobs([]int{30, 30, 30}, 16, 0.3, 1)
	var epochs []int
	h, rep, err := Fit(ctx, x, y, labels, Config{Progress: func(p Progress) { epochs = append(epochs, p.Epoch) }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ValAccuracy < 0.99 || rep.TrainAccuracy < 0.99 {
		t.Errorf("separable blobs: train %.2f val %.2f", rep.TrainAccuracy, rep.ValAccuracy)
	}
	if rep.TrainSize != 72 || rep.ValSize != 18 {
		t.Errorf("split %d/%d, want 72/18 (20%% of each class held out)", rep.TrainSize, rep.ValSize)
	}
	if rep.BestEpoch > rep.Epochs || rep.Epochs-rep.BestEpoch > 30 {
		t.Errorf("ran %d epochs, best %d", rep.Epochs, rep.BestEpoch)
	}
	if len(epochs) != rep.Epochs {
		t.Errorf("progress reported %d epochs, report says %d", len(epochs), rep.Epochs)
	}
	total := 0
	for _, row := range rep.Confusion {
		for _, n := range row {
			total += n
		}
	}
	if total != rep.ValSize || len(rep.PerClass) != 3 || rep.PerClass[0].Support != 6 {
		t.Errorf("confusion holds %d samples, per class %+v", total, rep.PerClass)
	}
	// The head works on raw features: the folded standardisation gives the same accuracy.
	if a := accuracy(h, x, y); a < 0.99 {
		t.Errorf("head accuracy on raw features %.2f", a)
	}
	p := h.Probabilities(x[0])
	sum := float32(0)
	for _, v := range p {
		sum += v
	}
	if math.Abs(float64(sum-1)) > 1e-5 {
		t.Errorf("probabilities sum to %v", sum)
	}

	// Deterministic for a seed.
	h2, rep2, err := Fit(ctx, x, y, labels, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h, h2) || rep.Epochs != rep2.Epochs {
		t.Error("two fits with the same seed differ")
	}

	// L2 normalisation is recorded in the head and applied by it.
	hn, _, err := Fit(ctx, x, y, labels, Config{L2Normalize: true})
	if err != nil {
		t.Fatal(err)
	}
	if !hn.L2Normalize || accuracy(hn, x, y) < 0.95 {
		t.Errorf("L2-normalised head: flag %v accuracy %.2f", hn.L2Normalize, accuracy(hn, x, y))
	}
}

func TestClassWeights(t *testing.T) {
	ctx := context.Background()
	labels := []string{"common", "rare"}
	x, y := blobs([]int{90, 10}, 4, 2.5, 3)
	_, weighted, err := Fit(ctx, x, y, labels, Config{})
	if err != nil {
		t.Fatal(err)
	}
	// 72 and 8 training samples after holding out 20%.
	if w := weighted.ClassWeights; math.Abs(w[0]-80.0/(2*72)) > 1e-9 || math.Abs(w[1]-80.0/(2*8)) > 1e-9 {
		t.Errorf("class weights %v, want n/(k*n_c) = [0.556 5]", w)
	}
	if weighted.Epochs >= 500 || weighted.Epochs-weighted.BestEpoch != 30 {
		t.Errorf("overlapping classes: ran %d epochs, best %d; early stopping should end 30 epochs after the best", weighted.Epochs, weighted.BestEpoch)
	}
	if r := weighted.PerClass[1].Recall; r < plainRecall(t, x, y, labels) {
		t.Errorf("class weights did not help the rare class: recall %.2f", r)
	}
}

// plainRecall fits without class weights and returns the rare class's validation recall.
func plainRecall(t *testing.T, x [][]float32, y []int, labels []string) float64 {
	_, plain, err := Fit(context.Background(), x, y, labels, Config{Unweighted: true})
	if err != nil {
		t.Fatal(err)
	}
	if plain.ClassWeights[0] != 1 || plain.ClassWeights[1] != 1 {
		t.Errorf("unweighted class weights %v", plain.ClassWeights)
	}
	return plain.PerClass[1].Recall
}

func TestCrossValidate(t *testing.T) {
	ctx := context.Background()
	x, y := blobs([]int{20, 20, 20, 20}, 12, 0.4, 5)
	cv, err := CrossValidate(ctx, x, y, []string{"a", "b", "c", "d"}, 5, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if cv.Folds != 5 || len(cv.Accuracy) != 5 || cv.Mean < 0.95 || cv.Pooled < 0.95 {
		t.Errorf("cv %+v", cv)
	}
	n := 0
	for _, row := range cv.Confusion {
		for _, v := range row {
			n += v
		}
	}
	if n != len(x) {
		t.Errorf("pooled confusion holds %d predictions, want one per sample (%d)", n, len(x))
	}
	if _, err := CrossValidate(ctx, x, y, []string{"a", "b", "c", "d"}, 1, Config{}); !errors.Is(err, ErrData) {
		t.Errorf("1 fold: %v", err)
	}
}

func TestFitRejects(t *testing.T) {
	ctx := context.Background()
	x, y := blobs([]int{5, 5}, 4, 0.3, 9)
	nan := append([][]float32(nil), x...)
	nan[3] = []float32{1, float32(math.NaN()), 0, 0}
	short := append([][]float32(nil), x...)
	short[2] = []float32{1}
	tests := []struct {
		name   string
		x      [][]float32
		y      []int
		labels []string
	}{
		{"one class", x, y, []string{"a"}},
		{"no data", nil, nil, []string{"a", "b"}},
		{"length mismatch", x, y[:3], []string{"a", "b"}},
		{"label out of range", x, append(append([]int(nil), y[:9]...), 7), []string{"a", "b"}},
		{"NaN feature", nan, y, []string{"a", "b"}},
		{"ragged", short, y, []string{"a", "b"}},
		{"class with one sample", x[:6], y[:6], []string{"a", "b"}},
	}
	for _, tc := range tests {
		if _, _, err := Fit(ctx, tc.x, tc.y, tc.labels, Config{}); !errors.Is(err, ErrData) {
			t.Errorf("%s: error = %v, want ErrData", tc.name, err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := Fit(cctx, x, y, []string{"a", "b"}, Config{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
