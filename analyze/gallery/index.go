package gallery

import (
	"sort"
	"sync"
)

// DefaultThreshold is the cosine similarity from which two faces are taken to be the same person,
// for verification and gallery matching alike.
//
// It was chosen on ../shared/testdata/faces (5 identities, 39 photos, the default pipeline with
// B,G,R input to the embedding model): over the 172 same-person pairs the lowest similarity is
// 0.579 (two photos of Joe Biden; median 0.85), over the 569 different-person pairs the highest
// is 0.339 (median 0.03). Any threshold in between separates the set; 0.46 is the middle of that
// gap, 0.12 from either side (TestThresholdFromData in analyze/faceengine measures it again).
// Thirty-nine photos are little evidence: raise it for fewer false matches on a large gallery,
// lower it for harder photos (profile, low light, ageing).
const DefaultThreshold = 0.46

// Candidate is one identity's similarity to a query embedding: the best over its photos.
type Candidate struct {
	ID         string  `json:"id"`
	Name       string  `json:"name"`
	Similarity float32 `json:"similarity"`
}

// Index is an in-memory 1:N matcher over identities' embeddings. It is safe for concurrent use;
// Gallery keeps one up to date from the KV bucket.
type Index struct {
	mu      sync.RWMutex
	entries map[string]*entry
}

type entry struct {
	rev     uint64
	deleted bool
	name    string
	embs    [][]float32
}

// NewIndex returns an empty index.
func NewIndex() *Index { return &Index{entries: map[string]*entry{}} }

// Put sets identity id's name and embeddings as of KV revision rev. An update older than the one
// the index holds for id (a lower rev) is ignored, so a watcher and a local write-through can feed
// the same index in any order. embs must be L2-normalised and are not copied.
func (x *Index) Put(id, name string, embs [][]float32, rev uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e, ok := x.entries[id]; ok && rev != 0 && e.rev > rev {
		return
	}
	x.entries[id] = &entry{rev: rev, name: name, embs: embs}
}

// Remove deletes identity id as of revision rev (ignored when the index holds a newer revision).
func (x *Index) Remove(id string, rev uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e, ok := x.entries[id]; ok && rev != 0 && e.rev > rev {
		return
	}
	x.entries[id] = &entry{rev: rev, deleted: true}
}

// Len returns the number of identities in the index.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n := 0
	for _, e := range x.entries {
		if !e.deleted {
			n++
		}
	}
	return n
}

// Search returns the k identities most similar to emb (an L2-normalised embedding), most
// similar first, with similarity >= minSim. An identity's similarity is the highest cosine
// similarity between emb and any of its photos; embeddings of another length never match.
func (x *Index) Search(emb []float32, k int, minSim float32) []Candidate {
	if k <= 0 || len(emb) == 0 {
		return nil
	}
	x.mu.RLock()
	var out []Candidate
	for id, e := range x.entries {
		best, found := float32(-2), false
		for _, v := range e.embs {
			if len(v) != len(emb) {
				continue
			}
			if s := dot(emb, v); s > best {
				best, found = s, true
			}
		}
		if found && best >= minSim {
			out = append(out, Candidate{ID: id, Name: e.name, Similarity: best})
		}
	}
	x.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Similarity != out[j].Similarity {
			return out[i].Similarity > out[j].Similarity
		}
		return out[i].ID < out[j].ID
	})
	if len(out) > k {
		out = out[:k]
	}
	return out
}

// Match returns the identity most similar to emb when its similarity reaches threshold:
// its name, the similarity and true; otherwise "", the best similarity seen (or 0) and false.
func (x *Index) Match(emb []float32, threshold float32) (string, float32, bool) {
	c := x.Search(emb, 1, -2)
	if len(c) == 0 {
		return "", 0, false
	}
	if c[0].Similarity < threshold {
		return "", c[0].Similarity, false
	}
	return c[0].Name, c[0].Similarity, true
}

// Cosine is the cosine similarity of two L2-normalised embeddings (their dot product); 0 when
// their lengths differ.
func Cosine(a, b []float32) float32 {
	if len(a) != len(b) {
		return 0
	}
	return dot(a, b)
}

func dot(a, b []float32) float32 {
	var s float32
	b = b[:len(a)]
	for i, v := range a {
		s += v * b[i]
	}
	return s
}
