package facesearch

import (
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/cputime"
)

// faces generates synthetic face embeddings shaped like real ones: people are random directions
// around a shared mean (different people at cosine ~0.1-0.3, as MobileFaceNet gives), each
// sighting a noisy view of its person (same person at ~0.5-0.8).
type faces struct {
	rng    *rand.Rand
	dim    int
	mean   []float64
	people [][]float64
}

func newFaces(seed uint64, dim, people int) *faces {
	f := &faces{rng: rand.New(rand.NewPCG(seed, 1)), dim: dim}
	f.mean = f.unit()
	for range people {
		p := f.unit()
		for i := range p {
			p[i] = 0.45*f.mean[i] + p[i]
		}
		f.people = append(f.people, unitOf(p))
	}
	return f
}

func (f *faces) unit() []float64 {
	v := make([]float64, f.dim)
	for i := range v {
		v[i] = f.rng.NormFloat64()
	}
	return unitOf(v)
}

func unitOf(v []float64) []float64 {
	var ss float64
	for _, x := range v {
		ss += x * x
	}
	for i := range v {
		v[i] /= math.Sqrt(ss)
	}
	return v
}

// sighting returns a view of person p; noise sets how far from the person it is.
func (f *faces) sighting(p int, noise float64) []float32 {
	n := f.unit()
	out := make([]float32, f.dim)
	for i := range out {
		out[i] = float32(f.people[p][i] + noise*n[i])
	}
	return out
}

func cos(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

func TestEncodeRoundTrip(t *testing.T) {
	f := newFaces(1, 512, 1)
	v := f.sighting(0, 0.5)
	b, err := Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4+512+128 {
		t.Fatalf("encoded %d bytes, want 644", len(b))
	}
	d, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if c := cos(v, d); c < 0.9999 {
		t.Fatalf("cosine after int8 round trip %.6f, want >= 0.9999", c)
	}
	for _, bad := range [][]float32{nil, make([]float32, 8), {float32(math.NaN())}} {
		if _, err := Encode(bad); err == nil {
			t.Errorf("Encode(%v) accepted", bad)
		}
	}
	for _, bad := range [][]byte{nil, {1, 2, 3, 4}, make([]byte, EncodedLen(8))} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode(%v) accepted", bad)
		}
	}
}

func TestSearchFindsSamePersonFirstAndFilters(t *testing.T) {
	f := newFaces(2, 512, 50)
	x := New()
	add := func(id int64, p int, stream string, first int64) {
		t.Helper()
		b, err := Encode(f.sighting(p, 0.7))
		if err != nil {
			t.Fatal(err)
		}
		if err := x.Add(id, Meta{Stream: stream, FirstSeen: first, LastSeen: first + 10}, b); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 500 {
		add(int64(i+1), i%50, []string{"a", "b"}[i%2], int64(i*100))
	}
	q := Query{Vector: f.sighting(7, 0.3), MinSimilarity: 0.45}
	hits, err := x.Search(q)
	if err != nil {
		t.Fatal(err)
	}
	// Person 7's sightings are ids 8, 58, 108, ... (10 of them), all of stream "b".
	if len(hits) != 10 {
		t.Fatalf("%d hits, want person 7's 10 sightings: %v", len(hits), hits)
	}
	for i, h := range hits {
		if (h.ID-1)%50 != 7 {
			t.Errorf("hit %d is sighting %d (person %d), want person 7", i, h.ID, (h.ID-1)%50)
		}
		if i > 0 && h.Similarity > hits[i-1].Similarity {
			t.Errorf("hits not most similar first: %v", hits)
		}
	}
	exact, _ := x.Exact(q)
	if len(exact) != len(hits) {
		t.Errorf("exact search finds %d, the index %d", len(exact), len(hits))
	}
	if h, _ := x.Search(Query{Vector: q.Vector, MinSimilarity: 0.45, Stream: "a"}); len(h) != 0 {
		t.Errorf("stream a: %d hits, want 0 (person 7 is only on b)", len(h))
	}
	if h, _ := x.Search(Query{Vector: q.Vector, MinSimilarity: 0.45, Limit: 3}); len(h) != 3 || h[0] != hits[0] {
		t.Errorf("limit 3: %v, want the 3 best of %v", h, hits)
	}
	// Sightings of person 7 start at 700, 5700, ... 45700 (+10): since 20000 keeps 6.
	if h, _ := x.Search(Query{Vector: q.Vector, MinSimilarity: 0.45, Since: 20000}); len(h) != 6 {
		t.Errorf("since: %d hits, want 6", len(h))
	}
	if h, _ := x.Search(Query{Vector: q.Vector, MinSimilarity: 0.45, Until: 20000}); len(h) != 4 {
		t.Errorf("until: %d hits, want 4", len(h))
	}
	// Removing keeps the others findable (the last slot moves into the hole).
	for _, h := range hits[:5] {
		if !x.Remove(h.ID) {
			t.Fatalf("Remove(%d) = false", h.ID)
		}
	}
	if x.Remove(hits[0].ID) {
		t.Error("second Remove reported true")
	}
	if x.Len() != 495 {
		t.Errorf("Len %d, want 495", x.Len())
	}
	after, _ := x.Search(q)
	if !slices.Equal(after, hits[5:]) {
		t.Errorf("after removal %v, want %v", after, hits[5:])
	}
	if _, err := x.Search(Query{Vector: make([]float32, 128), MinSimilarity: 0.45}); err == nil {
		t.Error("a query of another dimension was accepted")
	}
}

// BenchmarkSearch measures a search over 1,000,000 synthetic 512-d sightings on one core
// (searches run one after another on the benchmark goroutine), its recall against exact search
// at the match threshold (the tracker's 0.45), and the heap per sighting:
//
//	go test -run '^$' -bench Search -benchtime 20x -cpu 1 ./sink/eventstore/facesearch/
//
// -short uses 100,000 sightings.
func BenchmarkSearch(b *testing.B) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	const people = 20_000
	const threshold = 0.45
	f := newFaces(3, 512, people)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	x := New()
	for i := range n {
		enc, err := Encode(f.sighting(i%people, 0.8))
		if err != nil {
			b.Fatal(err)
		}
		if err := x.Add(int64(i+1), Meta{Stream: "cam", FirstSeen: int64(i), LastSeen: int64(i)}, enc); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	queries := make([][]float32, 50)
	for i := range queries {
		queries[i] = f.sighting(i*(people/len(queries)), 0.8)
	}
	// CPU time of this thread: wall time on a shared machine counts other processes too.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var took, cpu time.Duration
	searches := 0
	for b.Loop() { // the setup above runs once
		start, cpu0 := time.Now(), threadCPU(b)
		if _, err := x.Search(Query{Vector: queries[searches%len(queries)], MinSimilarity: threshold}); err != nil {
			b.Fatal(err)
		}
		took += time.Since(start)
		cpu += threadCPU(b) - cpu0
		searches++
	}
	found, want := 0, 0
	for _, q := range queries {
		got, _ := x.Search(Query{Vector: q, MinSimilarity: threshold})
		exact, _ := x.Exact(Query{Vector: q, MinSimilarity: threshold})
		in := map[int64]bool{}
		for _, h := range got {
			in[h.ID] = true
		}
		for _, h := range exact {
			want++
			if in[h.ID] {
				found++
			}
		}
	}
	recall := 1.0
	if want > 0 {
		recall = float64(found) / float64(want)
	}
	b.ReportMetric(took.Seconds()*1000/float64(searches), "ms/search")
	b.ReportMetric(cpu.Seconds()*1000/float64(searches), "cpu-ms/search")
	b.ReportMetric(recall, "recall")
	b.ReportMetric(float64(want)/float64(len(queries)), "matches/query")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "bytes/sighting")
	b.ReportMetric(float64(n), "sightings")
	if recall < 0.99 {
		b.Errorf("recall %.4f below 0.99", recall)
	}
}

// threadCPU returns the CPU time the calling OS thread used (user + system).
func threadCPU(b *testing.B) time.Duration {
	d, err := cputime.Thread()
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// FuzzDecode: any bytes either decode to a vector an Index accepts or fail with ErrVector.
func FuzzDecode(f *testing.F) {
	enc, _ := Encode(newFaces(4, 16, 1).sighting(0, 0.3))
	f.Add(enc)
	f.Add([]byte{})
	f.Add(make([]byte, EncodedLen(3)))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrVector) {
				t.Fatalf("error %v does not wrap ErrVector", err)
			}
			return
		}
		if len(v) != len(b)-EncodedLen(0) {
			t.Fatalf("%d dimensions from %d bytes", len(v), len(b))
		}
		x := New()
		if err := x.Add(1, Meta{Stream: "s"}, b); err != nil {
			t.Fatalf("Decode accepted what Add refuses: %v", err)
		}
	})
}
