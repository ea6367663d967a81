// Package facesearch is the in-memory index behind search by photo: one compact vector per
// stored sighting (a track's embedding), searched exactly at a similarity threshold.
//
// Each sighting keeps its embedding quantised to int8 with one scale (Encode: dim+4 bytes, the
// form the event store persists) and a 1024-bit sign code of two fixed random rotations of it
// (SimHash). A search computes the query's code, keeps the sightings whose Hamming distance is
// within what the threshold allows with a 4-sigma margin (a few XOR+popcounts each), and
// computes the cosine similarity of those against the int8 vectors. The margin makes the filter
// lose, in expectation, fewer than one in 30,000 sightings at the threshold (fewer above it);
// BenchmarkSearch measures speed, recall against exact float search and memory per sighting.
//
// The package is pure Go and has no state outside an Index.
package facesearch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sync"
)

// ErrVector is wrapped by the errors for vectors an Index cannot take.
var ErrVector = errors.New("facesearch: invalid vector")

// MaxDim bounds embedding dimensions.
const MaxDim = 4096

// codeBits is the length of a sign code: two rotations of (up to) 512 dimensions.
const codeBits = 1024

// sigma is the margin of the Hamming filter in standard deviations.
const sigma = 4.0

// Encode returns an embedding's stored form (any norm; it is L2-normalised first): a
// little-endian float32 scale, one int8 per dimension (value = scale * int8), then the 1024-bit
// sign code (16 little-endian uint64) the search filters on, so loading an index computes
// nothing. EncodedLen gives its length.
func Encode(v []float32) ([]byte, error) {
	if len(v) == 0 || len(v) > MaxDim {
		return nil, fmt.Errorf("%w: %d dimensions (1..%d)", ErrVector, len(v), MaxDim)
	}
	u, err := normalized(v)
	if err != nil {
		return nil, err
	}
	m := float32(0)
	for _, x := range u {
		m = max(m, float32(math.Abs(float64(x))))
	}
	scale := m / 127
	out := make([]byte, EncodedLen(len(v)))
	binary.LittleEndian.PutUint32(out, math.Float32bits(scale))
	deq := make([]float32, len(u))
	for i, x := range u {
		q := int8(math.Round(float64(x / scale)))
		out[4+i] = byte(q)
		deq[i] = float32(q) * scale
	}
	var code [codeWords]uint64
	rot := newRotation(len(v))
	rot.code(deq, &code)
	for w, c := range code {
		binary.LittleEndian.PutUint64(out[4+len(v)+8*w:], c)
	}
	return out, nil
}

// EncodedLen is the length of Encode's form of a dim-dimensional embedding.
func EncodedLen(dim int) int { return 4 + dim + codeWords*8 }

// Decode returns the embedding an Encode form holds (L2 norm within rounding of 1).
func Decode(b []byte) ([]float32, error) {
	q, scale, _, err := split(b)
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(q))
	for i, x := range q {
		out[i] = float32(x) * scale
	}
	return out, nil
}

func split(b []byte) ([]int8, float32, [codeWords]uint64, error) {
	var code [codeWords]uint64
	dim := len(b) - EncodedLen(0)
	if dim < 1 || dim > MaxDim {
		return nil, 0, code, fmt.Errorf("%w: encoded form of %d bytes", ErrVector, len(b))
	}
	scale := math.Float32frombits(binary.LittleEndian.Uint32(b))
	if !(scale > 0) || math.IsInf(float64(scale), 0) {
		return nil, 0, code, fmt.Errorf("%w: scale %v", ErrVector, scale)
	}
	q := make([]int8, dim)
	for i, x := range b[4 : 4+dim] {
		q[i] = int8(x)
	}
	for w := range code {
		code[w] = binary.LittleEndian.Uint64(b[4+dim+8*w:])
	}
	return q, scale, code, nil
}

// Meta is what a search filters sightings on.
type Meta struct {
	// Stream is the sighting's stream id.
	Stream string
	// FirstSeen and LastSeen are its first and last capture times (Unix nanoseconds).
	FirstSeen, LastSeen int64
}

// Query is one search.
type Query struct {
	// Vector is the query embedding (L2-normalised by Search).
	Vector []float32
	// MinSimilarity is the threshold: only sightings at least this similar are returned.
	MinSimilarity float32
	// Limit caps the hits (the most similar). 0: no cap.
	Limit int
	// Stream, when set, keeps only that stream's sightings.
	Stream string
	// Since and Until (Unix nanoseconds; 0: open) keep sightings seen within [Since, Until):
	// LastSeen >= Since and FirstSeen < Until.
	Since, Until int64
}

// Hit is a sighting found, with its cosine similarity to the query.
type Hit struct {
	ID         int64
	Similarity float32
}

// Index holds the sightings. Its methods are safe for concurrent use; the zero value is not:
// use New.
type Index struct {
	mu      sync.RWMutex
	dim     int // set by the first Add
	rot     rotation
	ids     []int64
	streams []uint32 // index into names
	first   []int64
	last    []int64
	scales  []float32
	vecs    []int8   // dim per sighting
	codes   []uint64 // codeWords per sighting
	pos     map[int64]int32
	names   []string
	nameIdx map[string]uint32
}

const codeWords = codeBits / 64

// New returns an empty index.
func New() *Index {
	return &Index{pos: map[int64]int32{}, nameIdx: map[string]uint32{}}
}

// Len returns the number of sightings.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.ids)
}

// Dim returns the embeddings' dimension (0 while empty and never filled).
func (x *Index) Dim() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.dim
}

// IDs returns the ids held, in no particular order.
func (x *Index) IDs() []int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return slices.Clone(x.ids)
}

// Has reports whether id is held.
func (x *Index) Has(id int64) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.pos[id]
	return ok
}

// Add puts sighting id with its metadata and its encoded embedding (Encode's form), replacing
// what id held. Every embedding of an Index has the dimension of the first one added.
func (x *Index) Add(id int64, m Meta, encoded []byte) error {
	q, scale, code, err := split(encoded)
	if err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.dim == 0 {
		x.dim = len(q)
		x.rot = newRotation(len(q))
	}
	if len(q) != x.dim {
		return fmt.Errorf("%w: %d dimensions, the index holds %d", ErrVector, len(q), x.dim)
	}
	s, ok := x.nameIdx[m.Stream]
	if !ok {
		s = uint32(len(x.names))
		x.names = append(x.names, m.Stream)
		x.nameIdx[m.Stream] = s
	}
	if p, ok := x.pos[id]; ok {
		i := int(p)
		x.streams[i], x.first[i], x.last[i], x.scales[i] = s, m.FirstSeen, m.LastSeen, scale
		copy(x.vecs[i*x.dim:], q)
		copy(x.codes[i*codeWords:], code[:])
		return nil
	}
	x.pos[id] = int32(len(x.ids))
	x.ids = append(x.ids, id)
	x.streams = append(x.streams, s)
	x.first = append(x.first, m.FirstSeen)
	x.last = append(x.last, m.LastSeen)
	x.scales = append(x.scales, scale)
	x.vecs = append(x.vecs, q...)
	x.codes = append(x.codes, code[:]...)
	return nil
}

// Remove drops sighting id; it reports whether it was held.
func (x *Index) Remove(id int64) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	p, ok := x.pos[id]
	if !ok {
		return false
	}
	i, last := int(p), len(x.ids)-1
	if i != last { // move the last sighting into the hole
		x.ids[i], x.streams[i], x.first[i], x.last[i], x.scales[i] = x.ids[last], x.streams[last], x.first[last], x.last[last], x.scales[last]
		copy(x.vecs[i*x.dim:(i+1)*x.dim], x.vecs[last*x.dim:])
		copy(x.codes[i*codeWords:(i+1)*codeWords], x.codes[last*codeWords:])
		x.pos[x.ids[i]] = int32(i)
	}
	delete(x.pos, id)
	x.ids, x.streams, x.first, x.last, x.scales = x.ids[:last], x.streams[:last], x.first[:last], x.last[:last], x.scales[:last]
	x.vecs, x.codes = x.vecs[:last*x.dim], x.codes[:last*codeWords]
	return true
}

// Search returns the sightings at least q.MinSimilarity similar to q.Vector that pass q's
// filters, most similar first (ties by id), at most q.Limit. It runs on the calling goroutine
// (one core). A query whose dimension differs from the index's is an error wrapping ErrVector;
// an empty index returns nothing.
func (x *Index) Search(q Query) ([]Hit, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(x.ids) == 0 {
		return nil, nil
	}
	if len(q.Vector) != x.dim {
		return nil, fmt.Errorf("%w: query of %d dimensions, the index holds %d", ErrVector, len(q.Vector), x.dim)
	}
	v, err := normalized(q.Vector)
	if err != nil {
		return nil, err
	}
	var code [codeWords]uint64
	x.rot.code(v, &code)
	bound := hammingBound(q.MinSimilarity)
	stream, byStream := uint32(0), q.Stream != ""
	if byStream {
		s, ok := x.nameIdx[q.Stream]
		if !ok {
			return nil, nil
		}
		stream = s
	}
	var hits []Hit
	n := len(x.ids)
	for i := 0; i < n; i++ {
		c := (*[codeWords]uint64)(x.codes[i*codeWords:])
		d := bits.OnesCount64(c[0]^code[0]) + bits.OnesCount64(c[1]^code[1]) + bits.OnesCount64(c[2]^code[2]) +
			bits.OnesCount64(c[3]^code[3]) + bits.OnesCount64(c[4]^code[4]) + bits.OnesCount64(c[5]^code[5]) +
			bits.OnesCount64(c[6]^code[6]) + bits.OnesCount64(c[7]^code[7])
		if d > bound { // half the code already rules it out
			continue
		}
		d += bits.OnesCount64(c[8]^code[8]) + bits.OnesCount64(c[9]^code[9]) + bits.OnesCount64(c[10]^code[10]) +
			bits.OnesCount64(c[11]^code[11]) + bits.OnesCount64(c[12]^code[12]) + bits.OnesCount64(c[13]^code[13]) +
			bits.OnesCount64(c[14]^code[14]) + bits.OnesCount64(c[15]^code[15])
		if d > bound {
			continue
		}
		if (byStream && x.streams[i] != stream) || (q.Since != 0 && x.last[i] < q.Since) || (q.Until != 0 && x.first[i] >= q.Until) {
			continue
		}
		sim := dot(v, x.vecs[i*x.dim:(i+1)*x.dim]) * x.scales[i]
		if sim >= q.MinSimilarity {
			hits = append(hits, Hit{ID: x.ids[i], Similarity: sim})
		}
	}
	slices.SortFunc(hits, func(a, b Hit) int {
		switch {
		case a.Similarity > b.Similarity:
			return -1
		case a.Similarity < b.Similarity:
			return 1
		}
		return int(min(max(a.ID-b.ID, -1), 1))
	})
	if q.Limit > 0 && len(hits) > q.Limit {
		hits = hits[:q.Limit]
	}
	return hits, nil
}

// Exact is Search without the Hamming filter and without filters, sort or limit: every
// sighting's similarity is computed. For tests and benchmarks (recall).
func (x *Index) Exact(q Query) ([]Hit, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(x.ids) == 0 {
		return nil, nil
	}
	if len(q.Vector) != x.dim {
		return nil, fmt.Errorf("%w: query of %d dimensions, the index holds %d", ErrVector, len(q.Vector), x.dim)
	}
	v, err := normalized(q.Vector)
	if err != nil {
		return nil, err
	}
	var hits []Hit
	for i := range x.ids {
		if sim := dot(v, x.vecs[i*x.dim:(i+1)*x.dim]) * x.scales[i]; sim >= q.MinSimilarity {
			hits = append(hits, Hit{ID: x.ids[i], Similarity: sim})
		}
	}
	return hits, nil
}

// hammingBound is the largest Hamming distance between sign codes that a pair of vectors with
// cosine similarity minSim reaches within sigma standard deviations: each bit differs with
// probability angle/pi.
func hammingBound(minSim float32) int {
	c := math.Max(-1, math.Min(1, float64(minSim)))
	p := math.Acos(c) / math.Pi
	b := float64(codeBits)*p + sigma*math.Sqrt(float64(codeBits)*p*(1-p)) + 1
	return int(math.Ceil(b))
}

func normalized(v []float32) ([]float32, error) {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 || math.IsNaN(ss) || math.IsInf(ss, 0) {
		return nil, fmt.Errorf("%w: zero or not finite", ErrVector)
	}
	inv := float32(1 / math.Sqrt(ss))
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = x * inv
	}
	return out, nil
}

func dot(a []float32, b []int8) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+3 < len(a); i += 4 {
		s0 += a[i] * float32(b[i])
		s1 += a[i+1] * float32(b[i+1])
		s2 += a[i+2] * float32(b[i+2])
		s3 += a[i+3] * float32(b[i+3])
	}
	for ; i < len(a); i++ {
		s0 += a[i] * float32(b[i])
	}
	return s0 + s1 + s2 + s3
}

// rotation is two fixed random orthogonal transforms of the (zero-padded) embedding, each three
// rounds of random sign flips and a Walsh-Hadamard transform; a code bit is the sign of one
// rotated coordinate. The seed is fixed, so codes are the same in every process.
type rotation struct {
	n     int          // padded dimension, a power of two, at least codeBits/2
	signs [2][3][]int8 // per rotation, per round
}

func newRotation(dim int) rotation {
	n := codeBits / 2
	for n < dim {
		n *= 2
	}
	r := rotation{n: n}
	rng := rand.New(rand.NewPCG(0x76696769, 0x6c666163)) // fixed: "vigil" "lfac"
	for k := range r.signs {
		for j := range r.signs[k] {
			s := make([]int8, n)
			for i := range s {
				s[i] = int8(1 - 2*int(rng.Uint32()&1))
			}
			r.signs[k][j] = s
		}
	}
	return r
}

// code writes the sign code of v (len(v) <= r.n).
func (r *rotation) code(v []float32, out *[codeWords]uint64) {
	buf := make([]float32, r.n)
	for k := range r.signs {
		clear(buf)
		copy(buf, v)
		for _, s := range r.signs[k] {
			for i := range buf {
				buf[i] *= float32(s[i])
			}
			fwht(buf)
		}
		// The first codeBits/2 coordinates of the rotation give its bits.
		for i := 0; i < codeBits/2; i++ {
			if buf[i] > 0 {
				b := k*codeBits/2 + i
				out[b/64] |= 1 << (b % 64)
			}
		}
	}
}

// fwht is the unnormalised fast Walsh-Hadamard transform in place (len(a) a power of two); the
// scale does not change signs.
func fwht(a []float32) {
	for h := 1; h < len(a); h *= 2 {
		for i := 0; i < len(a); i += 2 * h {
			for j := i; j < i+h; j++ {
				x, y := a[j], a[j+h]
				a[j], a[j+h] = x+y, x-y
			}
		}
	}
}
