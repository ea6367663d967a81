// Package eval measures the face pipeline on labelled data: verification metrics over every pair
// of labelled embeddings (accuracy at the best threshold, ROC AUC, TAR at fixed FARs, the closest
// calls) and a detection report comparing face counts with expected ranges. It is pure Go and
// runs no model: callers (vigil eval) embed and detect, then hand the numbers here.
//
// Similarities are cosine similarities of L2-normalised embeddings (their dot product), and a
// pair is accepted as the same person when its similarity is at or above a threshold, as in
// verification and gallery matching.
package eval

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Sample is one labelled photo's embedding.
type Sample struct {
	// Identity is the person the photo shows; two samples with the same Identity make a
	// same-person pair.
	Identity string
	// Name identifies the photo in reports (e.g. its path).
	Name string
	// Embedding is the photo's L2-normalised face embedding.
	Embedding []float32
}

// Pair is two samples' similarity.
type Pair struct {
	// A and B index the samples (A < B).
	A, B int
	// Similarity is the dot product of their embeddings.
	Similarity float64
	// Same reports whether both samples have the same Identity.
	Same bool
}

// Pairs returns every unordered pair of samples (n·(n-1)/2 of them, A < B, in order). It fails
// when embeddings differ in length or one is empty.
func Pairs(samples []Sample) ([]Pair, error) {
	for i, s := range samples {
		if len(s.Embedding) == 0 {
			return nil, fmt.Errorf("eval: sample %d (%s) has no embedding", i, s.Name)
		}
		if len(s.Embedding) != len(samples[0].Embedding) {
			return nil, fmt.Errorf("eval: sample %d (%s) has a %d-d embedding, sample 0 (%s) %d-d",
				i, s.Name, len(s.Embedding), samples[0].Name, len(samples[0].Embedding))
		}
	}
	out := make([]Pair, 0, len(samples)*(len(samples)-1)/2)
	for i := range samples {
		for j := i + 1; j < len(samples); j++ {
			out = append(out, Pair{A: i, B: j, Similarity: dot(samples[i].Embedding, samples[j].Embedding),
				Same: samples[i].Identity == samples[j].Identity})
		}
	}
	return out, nil
}

// dot is the dot product of two equally long vectors, accumulated in float64.
func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// Split returns the similarities of the same-person and of the different-person pairs.
func Split(pairs []Pair) (same, different []float64) {
	for _, p := range pairs {
		if p.Same {
			same = append(same, p.Similarity)
		} else {
			different = append(different, p.Similarity)
		}
	}
	return same, different
}

// AUC is the area under the ROC curve: the probability that a random same-person pair scores
// above a random different-person pair, ties counting one half (the Mann-Whitney statistic). It
// is NaN when either list is empty.
func AUC(same, different []float64) float64 {
	if len(same) == 0 || len(different) == 0 {
		return math.NaN()
	}
	diff := sorted(different)
	var wins float64
	for _, s := range same {
		below := sort.SearchFloat64s(diff, s) // different scores < s
		atOrBelow := sort.Search(len(diff), func(i int) bool { return diff[i] > s })
		wins += float64(below) + float64(atOrBelow-below)/2
	}
	return wins / (float64(len(same)) * float64(len(different)))
}

// BestThreshold returns the threshold that classifies the most pairs correctly (same-person
// pairs at or above it, different-person pairs below) and that accuracy, the fraction of all
// pairs classified correctly. The threshold lies in the middle of the gap between the two
// neighbouring similarities it separates; among equally accurate cuts the widest gap wins. With
// both lists empty it returns NaN, NaN.
func BestThreshold(same, different []float64) (threshold, accuracy float64) {
	scores := labelled(same, different)
	n := len(scores)
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	// Cut k: scores[:k] are rejected, scores[k:] accepted. Start with everything accepted.
	correct := len(same)
	best, bestK, bestGap := correct, 0, -1.0
	for k := 1; k <= n; k++ {
		if scores[k-1].same {
			correct--
		} else {
			correct++
		}
		if k < n && scores[k].v == scores[k-1].v {
			continue // no threshold separates equal similarities
		}
		gap := 0.0
		if k < n {
			gap = scores[k].v - scores[k-1].v
		}
		if correct > best || (correct == best && gap > bestGap) {
			best, bestK, bestGap = correct, k, gap
		}
	}
	switch {
	case bestK == 0:
		threshold = scores[0].v
	case bestK == n:
		threshold = math.Nextafter(scores[n-1].v, math.Inf(1))
	default:
		threshold = between(scores[bestK-1].v, scores[bestK].v)
	}
	return threshold, float64(best) / float64(n)
}

// TAR is the true accept rate at a target false accept rate.
type TAR struct {
	// FAR is the target false accept rate.
	FAR float64 `json:"far"`
	// TAR is the fraction of same-person pairs at or above Threshold.
	TAR float64 `json:"tar"`
	// Threshold lies midway between the highest different-person similarity it must reject and
	// the next higher similarity of any pair: it accepts the most pairs while keeping the false
	// accepts within AllowedFalseAccepts.
	Threshold float64 `json:"threshold"`
	// AllowedFalseAccepts is floor(FAR × different-person pairs); FalseAccepts is how many
	// different-person pairs Threshold accepts (at most the allowed, fewer where ties force a
	// higher threshold).
	AllowedFalseAccepts int `json:"allowed_false_accepts"`
	FalseAccepts        int `json:"false_accepts"`
	// Note is empty when the data can measure FAR; otherwise it says why not (too few
	// different-person pairs to allow a single false accept, so the figure is the TAR at FAR 0).
	Note string `json:"note,omitempty"`
}

// TARAtFAR returns the true accept rate at the lowest threshold that accepts at most
// floor(far × len(different)) different-person pairs. When that is zero the FAR cannot be
// measured on so few pairs and TAR.Note says so. TAR is NaN when same is empty, Threshold when
// both are.
func TARAtFAR(same, different []float64, far float64) TAR {
	out := TAR{FAR: far, TAR: math.NaN(), Threshold: math.NaN()}
	nd := len(different)
	allowed := int(math.Floor(far*float64(nd) + 1e-9))
	allowed = max(0, min(allowed, nd))
	out.AllowedFalseAccepts = allowed
	if nd > 0 && allowed == 0 {
		need := int(math.Ceil(1/far - 1e-9))
		out.Note = fmt.Sprintf("only %d different-person pairs: FAR %g needs at least %d to allow one false accept, so this is the TAR at FAR 0", nd, far, need)
	}
	all := labelled(same, different)
	if len(all) == 0 {
		return out
	}
	if allowed == nd {
		out.Threshold = all[0].v // accept everything
	} else {
		asc := sorted(different)
		cut := asc[nd-1-allowed] // the (allowed+1)-th highest: rejected, with all below it
		// The lowest threshold above cut: midway to the next higher similarity of any pair.
		i := sort.Search(len(all), func(i int) bool { return all[i].v > cut })
		if i < len(all) {
			out.Threshold = between(cut, all[i].v)
		} else {
			out.Threshold = math.Nextafter(cut, math.Inf(1))
		}
	}
	c := At(same, different, out.Threshold)
	out.TAR, out.FalseAccepts = c.TAR, c.FalseAccepts
	return out
}

// Confusion is how a threshold classifies the pairs.
type Confusion struct {
	// Threshold is the similarity from which a pair is accepted as the same person.
	Threshold float64 `json:"threshold"`
	// TrueAccepts and FalseRejects split the same-person pairs, TrueRejects and FalseAccepts
	// the different-person pairs.
	TrueAccepts  int `json:"true_accepts"`
	FalseRejects int `json:"false_rejects"`
	TrueRejects  int `json:"true_rejects"`
	FalseAccepts int `json:"false_accepts"`
	// Accuracy is the fraction of all pairs classified correctly; TAR of the same-person pairs
	// accepted; FAR of the different-person pairs accepted (NaN for an empty denominator).
	Accuracy float64 `json:"accuracy"`
	TAR      float64 `json:"tar"`
	FAR      float64 `json:"far"`
}

// At classifies the pairs at threshold: a similarity at or above it is accepted as the same
// person.
func At(same, different []float64, threshold float64) Confusion {
	c := Confusion{Threshold: threshold}
	for _, s := range same {
		if s >= threshold {
			c.TrueAccepts++
		} else {
			c.FalseRejects++
		}
	}
	for _, s := range different {
		if s >= threshold {
			c.FalseAccepts++
		} else {
			c.TrueRejects++
		}
	}
	c.Accuracy = ratio(c.TrueAccepts+c.TrueRejects, len(same)+len(different))
	c.TAR = ratio(c.TrueAccepts, len(same))
	c.FAR = ratio(c.FalseAccepts, len(different))
	return c
}

// DefaultFARs are the false accept rates vigil eval reports the TAR at: 1e-2 and 1e-3.
func DefaultFARs() []float64 { return []float64{1e-2, 1e-3} }

// NamedPair is a pair by the samples' names, for reports.
type NamedPair struct {
	A          string  `json:"a"`
	B          string  `json:"b"`
	Similarity float64 `json:"similarity"`
}

// Verification is the verification report over every pair of a labelled set.
type Verification struct {
	// Samples is the number of embeddings and Identities the number of distinct identities.
	Samples    int `json:"samples"`
	Identities int `json:"identities"`
	// Pairs = Same + Different.
	Pairs     int `json:"pairs"`
	Same      int `json:"same"`
	Different int `json:"different"`
	// Accuracy is the fraction of pairs classified correctly at BestThreshold.
	Accuracy      float64 `json:"accuracy"`
	BestThreshold float64 `json:"best_threshold"`
	// AUC is the area under the ROC curve.
	AUC float64 `json:"auc"`
	// TARs are the true accept rates at the requested FARs, in their order.
	TARs []TAR `json:"tar_at_far"`
	// LowestSame is the least similar same-person pair, HighestDifferent the most similar
	// different-person pair: the data separates at some threshold exactly when
	// LowestSame.Similarity > HighestDifferent.Similarity.
	LowestSame       NamedPair `json:"lowest_same"`
	HighestDifferent NamedPair `json:"highest_different"`
	// AtThreshold is the classification at the threshold Verify was given (the one in use).
	AtThreshold Confusion `json:"at_threshold"`
}

// ErrTooFewPairs is wrapped by Verify's error when the samples give no same-person or no
// different-person pair.
var ErrTooFewPairs = errors.New("eval: too few pairs")

// Verify computes the verification report over every pair of samples: the metrics above, the
// TAR at each of fars (see TARAtFAR) and the classification at threshold. It needs at least one
// same-person and one different-person pair (two photos of one identity and a second identity).
func Verify(samples []Sample, fars []float64, threshold float64) (Verification, error) {
	pairs, err := Pairs(samples)
	if err != nil {
		return Verification{}, err
	}
	same, different := Split(pairs)
	ids := map[string]bool{}
	for _, s := range samples {
		ids[s.Identity] = true
	}
	v := Verification{Samples: len(samples), Identities: len(ids), Pairs: len(pairs), Same: len(same), Different: len(different)}
	if len(same) == 0 || len(different) == 0 {
		return v, fmt.Errorf("%w: %d same-person and %d different-person pairs from %d photos of %d identities; "+
			"need at least one of each (two photos of one person, and a second person)", ErrTooFewPairs, len(same), len(different), len(samples), len(ids))
	}
	v.BestThreshold, v.Accuracy = BestThreshold(same, different)
	v.AUC = AUC(same, different)
	for _, far := range fars {
		v.TARs = append(v.TARs, TARAtFAR(same, different, far))
	}
	v.AtThreshold = At(same, different, threshold)
	lo, hi := -1, -1
	for i, p := range pairs {
		if p.Same && (lo < 0 || p.Similarity < pairs[lo].Similarity) {
			lo = i
		}
		if !p.Same && (hi < 0 || p.Similarity > pairs[hi].Similarity) {
			hi = i
		}
	}
	name := func(p Pair) NamedPair {
		return NamedPair{A: samples[p.A].Name, B: samples[p.B].Name, Similarity: p.Similarity}
	}
	v.LowestSame, v.HighestDifferent = name(pairs[lo]), name(pairs[hi])
	return v, nil
}

type score struct {
	v    float64
	same bool
}

// labelled returns both lists' similarities with their labels, ascending.
func labelled(same, different []float64) []score {
	out := make([]score, 0, len(same)+len(different))
	for _, s := range same {
		out = append(out, score{s, true})
	}
	for _, s := range different {
		out = append(out, score{s, false})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].v < out[j].v })
	return out
}

// sorted returns an ascending copy of xs.
func sorted(xs []float64) []float64 {
	out := append([]float64(nil), xs...)
	sort.Float64s(out)
	return out
}

// between returns a threshold t with lo < t <= hi, the midpoint where it is representable.
func between(lo, hi float64) float64 {
	if m := lo + (hi-lo)/2; m > lo {
		return m
	}
	return hi
}

func ratio(n, d int) float64 {
	if d == 0 {
		return math.NaN()
	}
	return float64(n) / float64(d)
}
