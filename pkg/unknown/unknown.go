// Package unknown holds the shared format of Vigil's unknown people: the JetStream KV bucket
// (vigil_unknowns by default) where each unknown is one key "u.<id>" holding a Record, the
// vector encoding inside it, and Index, a read-only watcher of the bucket that matches an
// embedding to the nearest unknown. The sink side (sink/unknowns) writes the records; the track
// role reads them through Index to put unknown_id on live faces and events. Stages import it;
// it imports no stage.
//
// The package is pure Go.
package unknown

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// DefaultBucket is the KV bucket of the unknowns.
const DefaultBucket = "vigil_unknowns"

// KeyPrefix starts every unknown's key: KeyPrefix + id.
const KeyPrefix = "u."

// Schema is the value of Record.Schema this build reads and writes.
const Schema = 1

// Track is one sighting of an unknown: a track that ended without identity.
type Track struct {
	Stream    string    `json:"stream"`
	TrackID   string    `json:"track_id"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Similarity is the track's similarity to the unknown when it joined.
	Similarity float32 `json:"similarity"`
}

// Record is the stored JSON of one unknown (the value of key KeyPrefix + ID). Centroid and
// Exemplars are EncodeVec of L2-normalised embeddings: the centroid is what tracks are matched
// against, the exemplars the first tracks' embeddings (what enrolment turns into gallery photos).
type Record struct {
	Schema    int       `json:"schema"`
	ID        string    `json:"id"`
	Sightings int       `json:"sightings"`
	Streams   []string  `json:"streams"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Tracks    []Track   `json:"tracks"`
	Centroid  string    `json:"centroid"`
	Exemplars []string  `json:"exemplars"`
}

// ErrRecord is wrapped by ParseRecord for values it cannot accept.
var ErrRecord = errors.New("invalid unknown record")

// ParseRecord decodes a record and checks its schema and centroid; it returns the record and
// its decoded centroid.
func ParseRecord(data []byte) (Record, []float32, error) {
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return Record{}, nil, fmt.Errorf("%w: %w", ErrRecord, err)
	}
	if r.Schema != Schema {
		return Record{}, nil, fmt.Errorf("%w: schema %d (this build reads %d)", ErrRecord, r.Schema, Schema)
	}
	c, err := DecodeVec(r.Centroid)
	if err != nil {
		return Record{}, nil, fmt.Errorf("%w: centroid: %w", ErrRecord, err)
	}
	return r, c, nil
}

// EncodeVec encodes v as base64 of little-endian float32.
func EncodeVec(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// DecodeVec decodes EncodeVec's output; an empty or malformed string is an error.
func DecodeVec(s string) ([]float32, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b)%4 != 0 || len(b) == 0 {
		return nil, errors.New("bad vector encoding")
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// Normalize returns v scaled to unit length; nil when v is zero or not finite.
func Normalize(v []float32) []float32 {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 || math.IsNaN(ss) || math.IsInf(ss, 0) {
		return nil
	}
	inv := float32(1 / math.Sqrt(ss))
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = x * inv
	}
	return out
}

// Dot is the dot product of a and b (the cosine similarity of unit vectors); a and b must have
// the same length.
func Dot(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}
