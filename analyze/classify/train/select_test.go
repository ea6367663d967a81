package train

import (
	"context"
	"math/rand/v2"
	"testing"
)

// TestFitAll: a fixed number of epochs on every sample, no validation split.
func TestFitAll(t *testing.T) {
	labels := []string{"a", "b"}
	x, y := blobs([]int{20, 20}, 8, 0.3, 3)
	var epochs int
	h, rep, err := FitAll(context.Background(), x, y, labels, 40, Config{Progress: func(p Progress) { epochs = p.Epoch }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.TrainSize != 40 || rep.ValSize != 0 || rep.Epochs != 40 || rep.BestEpoch != 40 || epochs != 40 {
		t.Errorf("report %+v after %d epochs: want 40 training samples, 40 epochs, the last kept", rep, epochs)
	}
	if acc := accuracy(h, x, y); acc < 0.99 {
		t.Errorf("accuracy %.2f on separable blobs", acc)
	}
}

// TestAugmentStaysWithItsImage: augmented copies join training only. Copies carrying the
// *other* class's features would wreck the held-out figures if they leaked into validation;
// here they are exact copies, so training takes them and accuracy holds; a wrong-length copy is
// refused.
func TestAugmentStaysWithItsImage(t *testing.T) {
	labels := []string{"a", "b"}
	x, y := blobs([]int{15, 15}, 8, 0.3, 4)
	aug := make([][][]float32, len(x))
	for i := range x {
		aug[i] = [][]float32{x[i], x[i]}
	}
	_, rep, err := Fit(context.Background(), x, y, labels, Config{Augment: aug})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ValSize != 6 || rep.TrainSize != 3*24 {
		t.Errorf("train %d, val %d: want the 24 training images with 2 copies each (72) and 6 held out alone", rep.TrainSize, rep.ValSize)
	}
	aug[0] = [][]float32{{1, 2}}
	if _, _, err := FitAll(context.Background(), x, y, labels, 3, Config{Augment: aug}); err == nil {
		t.Error("a short augmented vector was accepted")
	}
}

// TestSelectL2: on noisy, high-dimensional data with few samples, cross-validation prefers some
// weight decay over almost none, and reports every candidate.
func TestSelectL2(t *testing.T) {
	labels := []string{"a", "b", "c"}
	x, y := blobs([]int{12, 12, 12}, 64, 1.5, 5)
	grid := []float64{1e-6, 1e-1, 1}
	ch, err := SelectL2(context.Background(), x, y, labels, 3, grid, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Grid) != 3 || ch.CV.Folds != 3 {
		t.Fatalf("choice %+v", ch)
	}
	best := 0.0
	for _, g := range ch.Grid {
		best = max(best, g.Mean)
	}
	if ch.CV.Mean != best {
		t.Errorf("chose %g with %.3f, the best mean is %.3f (%+v)", ch.L2, ch.CV.Mean, best, ch.Grid)
	}
	t.Logf("grid %+v: chose %g", ch.Grid, ch.L2)
	if _, err := SelectL2(context.Background(), x, y, labels, 3, nil, Config{}); err == nil {
		t.Error("an empty grid was accepted")
	}
}

// TestCommonScale: an embedding whose class signal lies in a few dimensions of large variance,
// with many dimensions that barely vary and carry only noise. Scaling each feature by its own
// deviation blows the noise up to the signal's size; one common scale keeps it small, so the
// head generalises better from few samples. Its folded head works on the raw features.
func TestCommonScale(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 5))
	const signal, noise, perClass = 4, 200, 12
	var x [][]float32
	var y []int
	for c := 0; c < 2; c++ {
		for i := 0; i < perClass; i++ {
			v := make([]float32, signal+noise)
			for j := 0; j < signal; j++ {
				v[j] = float32(2*c-1) + float32(rng.NormFloat64())
			}
			for j := signal; j < len(v); j++ {
				v[j] = 0.01 * float32(rng.NormFloat64())
			}
			x = append(x, v)
			y = append(y, c)
		}
	}
	labels := []string{"a", "b"}
	own, err := CrossValidate(ctx, x, y, labels, 4, Config{L2: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	common, err := CrossValidate(ctx, x, y, labels, 4, Config{L2: 0.1, CommonScale: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("4-fold accuracy: own scales %.3f, common scale %.3f", own.Mean, common.Mean)
	if common.Mean < 0.9 || common.Mean < own.Mean+0.1 {
		t.Errorf("4-fold accuracy with a common scale %.3f, with each feature's own %.3f: want at least 0.9 and 0.1 better",
			common.Mean, own.Mean)
	}
	h, _, err := FitAll(ctx, x, y, labels, 100, Config{L2: 0.1, CommonScale: true})
	if err != nil {
		t.Fatal(err)
	}
	if a := accuracy(h, x, y); a < 0.95 {
		t.Errorf("common-scale head on raw features: accuracy %.2f", a)
	}
}
