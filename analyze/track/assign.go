package track

import "math"

// forbidden is the cost of a pair the gates exclude. It is large enough that the assignment
// only uses such a pair when nothing else is possible, and Assign then drops it.
const forbidden = 1e9

// Assign solves the rectangular assignment problem for cost (rows × cols, every row the same
// length) with the Hungarian method (Kuhn-Munkres, O(n²m)) and returns, for each row, the column
// assigned to it, or -1. A pair whose cost is +Inf, NaN or above 1e9 is forbidden and never part
// of the answer, so a row may stay unassigned while columns remain free. Among the assignments
// with the most allowed pairs, the answer has the least total cost (allowed costs are assumed
// to be far below 1e9, as the tracker's costs in 0..1 are).
func Assign(cost [][]float64) []int {
	n := len(cost)
	out := make([]int, n)
	for i := range out {
		out[i] = -1
	}
	if n == 0 || len(cost[0]) == 0 {
		return out
	}
	m := len(cost[0])
	transposed := n > m
	if transposed {
		t := make([][]float64, m)
		for j := range t {
			t[j] = make([]float64, n)
			for i := range cost {
				t[j][i] = cost[i][j]
			}
		}
		cost, n, m = t, m, n
	}
	c := func(i, j int) float64 {
		v := cost[i][j]
		if math.IsInf(v, 0) || math.IsNaN(v) || v > forbidden {
			return forbidden
		}
		return v
	}
	// e-maxx formulation, 1-based: p[j] is the row matched to column j, way[j] the previous
	// column on the augmenting path.
	u := make([]float64, n+1)
	v := make([]float64, m+1)
	p := make([]int, m+1)
	way := make([]int, m+1)
	minv := make([]float64, m+1)
	used := make([]bool, m+1)
	for i := 1; i <= n; i++ {
		p[0] = i
		j0 := 0
		for j := range minv {
			minv[j] = math.Inf(1)
			used[j] = false
		}
		for {
			used[j0] = true
			i0 := p[j0]
			delta := math.Inf(1)
			j1 := 0
			for j := 1; j <= m; j++ {
				if used[j] {
					continue
				}
				cur := c(i0-1, j-1) - u[i0] - v[j]
				if cur < minv[j] {
					minv[j] = cur
					way[j] = j0
				}
				if minv[j] < delta {
					delta = minv[j]
					j1 = j
				}
			}
			for j := 0; j <= m; j++ {
				if used[j] {
					u[p[j]] += delta
					v[j] -= delta
				} else {
					minv[j] -= delta
				}
			}
			j0 = j1
			if p[j0] == 0 {
				break
			}
		}
		for j0 != 0 {
			j1 := way[j0]
			p[j0] = p[j1]
			j0 = j1
		}
	}
	for j := 1; j <= m; j++ {
		i := p[j]
		if i == 0 || c(i-1, j-1) >= forbidden {
			continue
		}
		if transposed {
			out[j-1] = i - 1
		} else {
			out[i-1] = j - 1
		}
	}
	return out
}
