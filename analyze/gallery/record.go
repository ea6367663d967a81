package gallery

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/vigil-video/vigil/pkg/result"
)

// RecordSchema is the "schema" field of the identity records in the KV bucket.
const RecordSchema = 1

// ErrRecord is wrapped by the errors for KV values that are not valid identity records.
var ErrRecord = errors.New("invalid identity record")

// Identity is one enrolled person: a name and the embeddings of their photos. Values returned by
// this package are copies the caller may keep.
type Identity struct {
	// ID is IDFor(Name), the identity's key.
	ID string `json:"id"`
	// Name is the canonical name (see CanonicalName).
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Model names the embedding model the photos' embeddings come from.
	Model string `json:"model"`
	// Photos are the enrolled photos, oldest first.
	Photos []Photo `json:"photos"`
	// Revision is the KV revision this value was read at (0 when not from the store).
	Revision uint64 `json:"revision"`
}

// Photo is one enrolled photo of an identity. The image itself is not stored, only what the
// pipeline made of its single face.
type Photo struct {
	// ID is 16 hex digits, unique within the identity.
	ID string `json:"id"`
	// SHA256 is the hex digest of the uploaded image bytes; the same image is not enrolled twice.
	SHA256  string    `json:"sha256"`
	AddedAt time.Time `json:"added_at"`
	// Box is where the face was in the photo.
	Box result.Box `json:"box"`
	// Embedding is the face's L2-normalised embedding. Not part of the API's JSON.
	Embedding []float32 `json:"-"`
}

// NewPhoto is a photo to enroll: its single face's embedding and where it came from.
type NewPhoto struct {
	// Embedding is the L2-normalised embedding of the photo's only face. Required.
	Embedding []float32
	// SHA256 is the hex sha256 of the image bytes (for duplicate detection). Optional.
	SHA256 string
	// Box is the face's box in the photo. Optional.
	Box result.Box
}

// record is the stored JSON form of an Identity.
type record struct {
	Schema    int           `json:"schema"`
	ID        string        `json:"id"`
	Name      string        `json:"name"`
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
	Model     string        `json:"model"`
	Dim       int           `json:"dim"`
	Photos    []photoRecord `json:"photos"`
}

type photoRecord struct {
	ID      string     `json:"id"`
	SHA256  string     `json:"sha256,omitempty"`
	AddedAt time.Time  `json:"added_at"`
	Box     result.Box `json:"box"`
	// Embedding is base64 (standard, padded) of the little-endian float32 values.
	Embedding string `json:"embedding"`
}

// maxDim bounds an embedding's length in a record.
const maxDim = 4096

// encodeRecord returns the stored form of id. All photos' embeddings must have the same length.
func encodeRecord(id Identity) ([]byte, error) {
	r := record{Schema: RecordSchema, ID: id.ID, Name: id.Name, CreatedAt: id.CreatedAt.UTC(), UpdatedAt: id.UpdatedAt.UTC(),
		Model: id.Model, Photos: make([]photoRecord, len(id.Photos))}
	for i, p := range id.Photos {
		if i == 0 {
			r.Dim = len(p.Embedding)
		} else if len(p.Embedding) != r.Dim {
			return nil, fmt.Errorf("%w: photo %s has a %d-d embedding, the others %d-d", ErrRecord, p.ID, len(p.Embedding), r.Dim)
		}
		buf := make([]byte, 4*len(p.Embedding))
		for k, v := range p.Embedding {
			binary.LittleEndian.PutUint32(buf[4*k:], math.Float32bits(v))
		}
		r.Photos[i] = photoRecord{ID: p.ID, SHA256: p.SHA256, AddedAt: p.AddedAt.UTC(), Box: p.Box,
			Embedding: base64.StdEncoding.EncodeToString(buf)}
	}
	return json.Marshal(r)
}

// decodeRecord parses a stored value and checks it: schema, an id matching key's id and the name,
// embeddings of one length, finite and non-zero (they are re-normalised to unit length).
func decodeRecord(id string, data []byte) (Identity, error) {
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return Identity{}, fmt.Errorf("%w %s: %w", ErrRecord, id, err)
	}
	if r.Schema != RecordSchema {
		return Identity{}, fmt.Errorf("%w %s: schema %d (this build reads %d)", ErrRecord, id, r.Schema, RecordSchema)
	}
	if want, err := IDFor(r.Name); err != nil || want != id || r.ID != id {
		return Identity{}, fmt.Errorf("%w %s: id %q and name %q do not belong to this key", ErrRecord, id, r.ID, r.Name)
	}
	if r.Dim < 0 || r.Dim > maxDim || (len(r.Photos) > 0 && r.Dim == 0) {
		return Identity{}, fmt.Errorf("%w %s: embedding dimension %d", ErrRecord, id, r.Dim)
	}
	out := Identity{ID: r.ID, Name: r.Name, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Model: r.Model,
		Photos: make([]Photo, len(r.Photos))}
	seen := map[string]bool{}
	for i, p := range r.Photos {
		if !validPhotoID(p.ID) || seen[p.ID] {
			return Identity{}, fmt.Errorf("%w %s: photo id %q is malformed or repeated", ErrRecord, id, p.ID)
		}
		seen[p.ID] = true
		buf, err := base64.StdEncoding.DecodeString(p.Embedding)
		if err != nil || len(buf) != 4*r.Dim {
			return Identity{}, fmt.Errorf("%w %s: photo %s: embedding is not %d base64 float32 values", ErrRecord, id, p.ID, r.Dim)
		}
		e := make([]float32, r.Dim)
		for k := range e {
			e[k] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*k:]))
		}
		if e, err = normalize(e); err != nil {
			return Identity{}, fmt.Errorf("%w %s: photo %s: %w", ErrRecord, id, p.ID, err)
		}
		out.Photos[i] = Photo{ID: p.ID, SHA256: p.SHA256, AddedAt: p.AddedAt, Box: p.Box, Embedding: e}
	}
	return out, nil
}

// normalize returns v scaled to unit length; it refuses empty, zero and non-finite vectors.
func normalize(v []float32) ([]float32, error) {
	if len(v) == 0 {
		return nil, errors.New("empty embedding")
	}
	var s float64
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, errors.New("embedding holds a non-finite value")
		}
		s += float64(x) * float64(x)
	}
	if s == 0 || math.IsInf(s, 0) {
		return nil, errors.New("embedding has zero or infinite length")
	}
	inv := 1 / math.Sqrt(s)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) * inv)
	}
	return out, nil
}

// newPhotoID returns 16 random hex digits.
func newPhotoID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// clone returns a deep copy of id (embeddings are shared: they are never modified in place).
func (id Identity) clone() Identity {
	id.Photos = append([]Photo(nil), id.Photos...)
	return id
}
