package track

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/result"
)

func TestAssignSmall(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		name string
		cost [][]float64
		want []int
	}{
		{"empty", nil, []int{}},
		{"greedy would be wrong", [][]float64{{0.1, 0.2}, {0.15, 0.9}}, []int{1, 0}},
		{"more rows than columns", [][]float64{{0.5}, {0.1}, {0.3}}, []int{-1, 0, -1}},
		{"more columns than rows", [][]float64{{0.5, 0.2, 0.9}}, []int{1}},
		{"forbidden pair stays unassigned", [][]float64{{inf, inf}, {0.2, inf}}, []int{-1, 0}},
		{"most allowed pairs first", [][]float64{{0.0, 0.9}, {0.1, inf}}, []int{1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Assign(tc.cost)
			if len(got) != len(tc.want) {
				t.Fatalf("Assign = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("Assign = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestAssignMatchesBruteForce compares Assign with an exhaustive search on random matrices.
func TestAssignMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for iter := 0; iter < 300; iter++ {
		n, m := 1+rng.IntN(5), 1+rng.IntN(5)
		cost := make([][]float64, n)
		for i := range cost {
			cost[i] = make([]float64, m)
			for j := range cost[i] {
				cost[i][j] = rng.Float64()
				if rng.IntN(4) == 0 {
					cost[i][j] = math.Inf(1)
				}
			}
		}
		got := Assign(cost)
		gotN, gotC := score(cost, got)
		bestN, bestC := bruteForce(cost)
		if gotN != bestN || math.Abs(gotC-bestC) > 1e-9 {
			t.Fatalf("cost %v: Assign %v has %d pairs costing %v; best has %d costing %v", cost, got, gotN, gotC, bestN, bestC)
		}
	}
}

func score(cost [][]float64, a []int) (int, float64) {
	n, c := 0, 0.0
	used := map[int]bool{}
	for i, j := range a {
		if j < 0 {
			continue
		}
		if used[j] || math.IsInf(cost[i][j], 1) {
			return -1, 0
		}
		used[j] = true
		n++
		c += cost[i][j]
	}
	return n, c
}

func bruteForce(cost [][]float64) (int, float64) {
	bestN, bestC := 0, 0.0
	used := make([]bool, len(cost[0]))
	var rec func(i, n int, c float64)
	rec = func(i, n int, c float64) {
		if i == len(cost) {
			if n > bestN || n == bestN && c < bestC {
				bestN, bestC = n, c
			}
			return
		}
		rec(i+1, n, c)
		for j := range cost[i] {
			if !used[j] && !math.IsInf(cost[i][j], 1) {
				used[j] = true
				rec(i+1, n+1, c+cost[i][j])
				used[j] = false
			}
		}
	}
	rec(0, 0, 0)
	return bestN, bestC
}

func TestReorder(t *testing.T) {
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	r := func(seq uint64) *result.Result { return &result.Result{Seq: seq} }
	seqs := func(rs []*result.Result) []uint64 {
		var out []uint64
		for _, x := range rs {
			out = append(out, x.Seq)
		}
		return out
	}
	var o reorder
	// Joining a stream at seq 5: it waits for lower ones, then starts there.
	if got := seqs(o.add(r(5), at(-300), 8)); len(got) != 0 {
		t.Fatalf("first result 5 released at once: %v", got)
	}
	if got := seqs(o.expire(at(0), 300*time.Millisecond)); !equal(got, []uint64{5}) {
		t.Fatalf("first result: released %v", got)
	}
	if got := seqs(o.add(r(7), at(10), 8)); len(got) != 0 {
		t.Fatalf("7 before 6: released %v", got)
	}
	if got := seqs(o.add(r(8), at(20), 8)); len(got) != 0 {
		t.Fatalf("8 before 6: released %v", got)
	}
	if got := seqs(o.add(r(6), at(30), 8)); !equal(got, []uint64{6, 7, 8}) {
		t.Fatalf("6 arrived: released %v", got)
	}
	// A drop closes a gap at once.
	o.add(r(10), at(40), 8)
	if got := seqs(o.drop(9, at(50))); !equal(got, []uint64{10}) {
		t.Fatalf("9 dropped: released %v", got)
	}
	// A gap nobody closes is skipped after the wait, counted from when it started holding.
	o.add(r(13), at(100), 8)
	if got := seqs(o.expire(at(350), 300*time.Millisecond)); len(got) != 0 {
		t.Fatalf("expired early: %v", got)
	}
	if got := seqs(o.expire(at(400), 300*time.Millisecond)); !equal(got, []uint64{13}) {
		t.Fatalf("expire: released %v", got)
	}
	// Too many held: the gap is skipped at once.
	for s := uint64(16); s < 16+9; s++ {
		got := seqs(o.add(r(s), at(500), 8))
		if s < 24 && len(got) != 0 || s == 24 && !equal(got, []uint64{16, 17, 18, 19, 20, 21, 22, 23, 24}) {
			t.Fatalf("add %d: released %v", s, got)
		}
	}
	o.add(r(27), at(600), 8)
	o.drop(29, at(600))
	if got := seqs(o.flush(at(700))); !equal(got, []uint64{27}) || len(o.held)+len(o.skip) != 0 || o.next != 30 {
		t.Fatalf("flush: released %v, left %d held %d skipped, next %d", got, len(o.held), len(o.skip), o.next)
	}
}
