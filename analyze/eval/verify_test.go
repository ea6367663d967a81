package eval

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// unit returns the 2-d unit vector at angle a (radians): two of them have cosine cos(a-b).
func unit(a float64) []float32 { return []float32{float32(math.Cos(a)), float32(math.Sin(a))} }

func TestPairs(t *testing.T) {
	s := []Sample{
		{Identity: "x", Name: "x1", Embedding: unit(0)},
		{Identity: "x", Name: "x2", Embedding: unit(math.Pi / 3)},
		{Identity: "y", Name: "y1", Embedding: unit(math.Pi / 2)},
	}
	pairs, err := Pairs(s)
	if err != nil {
		t.Fatal(err)
	}
	want := []Pair{{0, 1, 0.5, true}, {0, 2, 0, false}, {1, 2, math.Cos(math.Pi / 6), false}}
	if len(pairs) != len(want) {
		t.Fatalf("%d pairs, want %d", len(pairs), len(want))
	}
	for i, p := range pairs {
		w := want[i]
		if p.A != w.A || p.B != w.B || p.Same != w.Same || math.Abs(p.Similarity-w.Similarity) > 1e-6 {
			t.Errorf("pair %d = %+v, want %+v", i, p, w)
		}
	}
	same, diff := Split(pairs)
	if len(same) != 1 || len(diff) != 2 {
		t.Errorf("Split: %v %v", same, diff)
	}
	if _, err := Pairs(append(s, Sample{Name: "short", Embedding: []float32{1}})); err == nil || !strings.Contains(err.Error(), "short") {
		t.Errorf("mixed lengths: %v", err)
	}
	if _, err := Pairs([]Sample{{Name: "none"}}); err == nil {
		t.Error("empty embedding accepted")
	}
}

func TestAUC(t *testing.T) {
	for _, c := range []struct {
		same, diff []float64
		want       float64
	}{
		{[]float64{0.9, 0.8}, []float64{0.1, 0.2, 0.3}, 1},
		{[]float64{0.1}, []float64{0.9}, 0},
		{[]float64{0.5}, []float64{0.5}, 0.5},
		// 0.6 beats 0.2 and 0.4, loses to 0.7; 0.4 beats 0.2, ties 0.4: (2 + 1.5) / 6.
		{[]float64{0.6, 0.4}, []float64{0.2, 0.4, 0.7}, 3.5 / 6},
	} {
		if got := AUC(c.same, c.diff); !near(got, c.want) {
			t.Errorf("AUC(%v, %v) = %v, want %v", c.same, c.diff, got, c.want)
		}
	}
	if !math.IsNaN(AUC(nil, []float64{1})) {
		t.Error("AUC without same-person pairs is not NaN")
	}
}

// TestAUCMatchesBruteForce compares the rank computation with counting every pair.
func TestAUCMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 50; trial++ {
		gen := func(n int, shift float64) []float64 {
			out := make([]float64, n)
			for i := range out {
				out[i] = math.Round((r.NormFloat64()+shift)*10) / 10 // coarse: many ties
			}
			return out
		}
		same, diff := gen(1+r.IntN(30), 1), gen(1+r.IntN(30), 0)
		var wins float64
		for _, s := range same {
			for _, d := range diff {
				switch {
				case s > d:
					wins++
				case s == d:
					wins += 0.5
				}
			}
		}
		want := wins / float64(len(same)*len(diff))
		if got := AUC(same, diff); !near(got, want) {
			t.Fatalf("AUC(%v, %v) = %v, brute force %v", same, diff, got, want)
		}
		// The best threshold's accuracy is the best over every threshold tried by brute force.
		thr, acc := BestThreshold(same, diff)
		best := 0.0
		for _, x := range append(append([]float64{math.Inf(1)}, same...), diff...) {
			best = math.Max(best, At(same, diff, x).Accuracy)
		}
		if !near(acc, best) || !near(At(same, diff, thr).Accuracy, acc) {
			t.Fatalf("BestThreshold(%v, %v) = %v at %v; brute force %v, At gives %v", same, diff, acc, thr, best, At(same, diff, thr).Accuracy)
		}
	}
}

func TestBestThreshold(t *testing.T) {
	for _, c := range []struct {
		name          string
		same, diff    []float64
		thr, accuracy float64
	}{
		{"separable: middle of the gap", []float64{0.58, 0.9}, []float64{0.0, 0.34}, 0.46, 1},
		// Cuts at 0.4 (between 0.3 and 0.5) and 0.65 each leave one error; 0.4's gap is wider.
		{"overlap: widest gap among the best", []float64{0.5, 0.7, 0.9}, []float64{0.1, 0.3, 0.6}, 0.4, 5.0 / 6},
		{"ties are not split", []float64{0.5, 0.5}, []float64{0.5, 0.1}, 0.3, 0.75},
		{"inverted: accept none", []float64{0.1}, []float64{0.9, 0.8}, math.Nextafter(0.9, 2), 2.0 / 3},
	} {
		thr, acc := BestThreshold(c.same, c.diff)
		if !near(thr, c.thr) || !near(acc, c.accuracy) {
			t.Errorf("%s: BestThreshold = %v, %v; want %v, %v", c.name, thr, acc, c.thr, c.accuracy)
		}
		if a := At(c.same, c.diff, thr).Accuracy; !near(a, acc) {
			t.Errorf("%s: At(threshold) accuracy %v, BestThreshold said %v", c.name, a, acc)
		}
	}
	if thr, acc := BestThreshold(nil, nil); !math.IsNaN(thr) || !math.IsNaN(acc) {
		t.Errorf("no pairs: %v %v", thr, acc)
	}
	// All accepted: the threshold is the lowest similarity itself (accepted: >=).
	if thr, acc := BestThreshold([]float64{0.2, 0.3}, nil); thr != 0.2 || acc != 1 {
		t.Errorf("only same-person pairs: %v %v", thr, acc)
	}
}

func TestTARAtFAR(t *testing.T) {
	diff := make([]float64, 200) // 0.000 .. 0.199
	for i := range diff {
		diff[i] = float64(i) / 1000
	}
	same := []float64{0.1975, 0.198, 0.5, 0.6}
	// FAR 1e-2 of 200: 2 false accepts allowed, 0.198 and 0.199; 0.197 is the cut, and the next
	// similarity above it is the same-person 0.1975.
	got := TARAtFAR(same, diff, 1e-2)
	if got.AllowedFalseAccepts != 2 || got.FalseAccepts != 2 || !near(got.Threshold, 0.19725) || !near(got.TAR, 1) || got.Note != "" {
		t.Errorf("FAR 1e-2: %+v", got)
	}
	// FAR 1e-3 of 200: none allowed; the threshold sits above the highest different pair.
	got = TARAtFAR(same, diff, 1e-3)
	if got.AllowedFalseAccepts != 0 || got.FalseAccepts != 0 || !near(got.Threshold, 0.3495) || !near(got.TAR, 0.5) {
		t.Errorf("FAR 1e-3: %+v", got)
	}
	if !strings.Contains(got.Note, "only 200 different-person pairs") || !strings.Contains(got.Note, "at least 1000") {
		t.Errorf("FAR 1e-3 note: %q", got.Note)
	}
	// Exactly 1/FAR different pairs allow one false accept: meaningful.
	thousand := make([]float64, 1000)
	if got := TARAtFAR(same, thousand, 1e-3); got.AllowedFalseAccepts != 1 || got.Note != "" {
		t.Errorf("1000 pairs at 1e-3: %+v", got)
	}
	// Ties at the cut: allowing one of two equal top scores rejects both.
	got = TARAtFAR([]float64{0.9}, []float64{0.1, 0.5, 0.5}, 0.34)
	if got.AllowedFalseAccepts != 1 || got.FalseAccepts != 0 || !near(got.Threshold, 0.7) {
		t.Errorf("ties: %+v", got)
	}
	// The highest pair is different-person and nothing may pass: a threshold just above it.
	got = TARAtFAR([]float64{0.2}, []float64{0.9}, 0.01)
	if got.FalseAccepts != 0 || got.TAR != 0 || got.Threshold <= 0.9 || got.Threshold > 0.9+1e-12 {
		t.Errorf("nothing above: %+v", got)
	}
	// FAR 1: everything accepted.
	if got := TARAtFAR([]float64{0.2}, []float64{0.9, 0.1}, 1); got.TAR != 1 || got.FalseAccepts != 2 || got.Threshold != 0.1 {
		t.Errorf("FAR 1: %+v", got)
	}
}

func TestAt(t *testing.T) {
	c := At([]float64{0.46, 0.45, 0.9}, []float64{0.46, 0.1}, 0.46)
	want := Confusion{Threshold: 0.46, TrueAccepts: 2, FalseRejects: 1, TrueRejects: 1, FalseAccepts: 1, Accuracy: 0.6, TAR: 2.0 / 3, FAR: 0.5}
	if c.TrueAccepts != want.TrueAccepts || c.FalseRejects != want.FalseRejects || c.TrueRejects != want.TrueRejects ||
		c.FalseAccepts != want.FalseAccepts || !near(c.Accuracy, want.Accuracy) || !near(c.TAR, want.TAR) || !near(c.FAR, want.FAR) {
		t.Errorf("At = %+v, want %+v", c, want)
	}
}

func TestVerify(t *testing.T) {
	// Two identities on either side of the circle: same-person cosines >= cos(0.3), different
	// ones <= cos(pi/2 - 0.3).
	s := []Sample{
		{"a", "a/1.jpg", unit(0)}, {"a", "a/2.jpg", unit(0.2)}, {"a", "a/3.jpg", unit(-0.1)},
		{"b", "b/1.jpg", unit(math.Pi / 2)}, {"b", "b/2.jpg", unit(math.Pi/2 + 0.2)},
		{"c", "c/1.jpg", unit(math.Pi + 0.05)},
	}
	v, err := Verify(s, DefaultFARs(), 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if v.Samples != 6 || v.Identities != 3 || v.Pairs != 15 || v.Same != 4 || v.Different != 11 {
		t.Fatalf("counts: %+v", v)
	}
	if v.Accuracy != 1 || v.AUC != 1 || len(v.TARs) != 2 || v.TARs[0].FAR != 1e-2 || v.TARs[0].TAR != 1 || v.TARs[0].Note == "" {
		t.Errorf("metrics: %+v", v)
	}
	if v.LowestSame.A != "a/2.jpg" || v.LowestSame.B != "a/3.jpg" || math.Abs(v.LowestSame.Similarity-math.Cos(0.3)) > 1e-6 {
		t.Errorf("lowest same: %+v", v.LowestSame)
	}
	if v.HighestDifferent.A != "a/2.jpg" || v.HighestDifferent.B != "b/1.jpg" {
		t.Errorf("highest different: %+v", v.HighestDifferent)
	}
	if lo, hi := v.LowestSame.Similarity, v.HighestDifferent.Similarity; v.BestThreshold <= hi || v.BestThreshold > lo {
		t.Errorf("best threshold %v not in (%v, %v]", v.BestThreshold, hi, lo)
	}
	if v.AtThreshold.Threshold != 0.5 || v.AtThreshold.Accuracy != 1 {
		t.Errorf("at 0.5: %+v", v.AtThreshold)
	}
	if _, err := Verify(s[:1], DefaultFARs(), 0.5); !errors.Is(err, ErrTooFewPairs) {
		t.Errorf("one sample: %v", err)
	}
	if _, err := Verify([]Sample{s[0], s[3]}, DefaultFARs(), 0.5); !errors.Is(err, ErrTooFewPairs) || !strings.Contains(err.Error(), "0 same-person") {
		t.Errorf("no same-person pair: %v", err)
	}
}
