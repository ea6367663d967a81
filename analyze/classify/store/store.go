// Package store keeps custom classifiers in a JetStream object store: one object per
// classifier, named after it, whose content is the ONNX model and whose metadata holds the
// manifest (with the model's SHA-256). Writing model and manifest as one object makes a
// registration atomic, and every process that watches the bucket sees it.
//
// Get checks the model's SHA-256 against the digest the manifest registered, on every read, and
// refuses a mismatch with ErrDigest. The package is pure Go and never runs a model: checking
// that a model fits its manifest is the caller's job before Put.
package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/analyze/classify/manifest"
)

// DefaultBucket is Config.Bucket's default.
const DefaultBucket = "vigil_classifiers"

// MetaManifest is the object metadata key holding the manifest as JSON.
const MetaManifest = "vigil-manifest"

// DefaultMaxModelBytes is Config.MaxModelBytes's default: 256 MiB.
const DefaultMaxModelBytes = 256 << 20

// Errors of Store operations.
var (
	// ErrNotFound: no classifier with that name.
	ErrNotFound = errors.New("classifier not found")
	// ErrDigest: the model's SHA-256 is not the one its manifest registered.
	ErrDigest = errors.New("model digest mismatch")
	// ErrBadObject: an object of the bucket has no readable manifest, or one whose name is not
	// the object's.
	ErrBadObject = errors.New("bad classifier object")
	// ErrTooLarge: the model exceeds Config.MaxModelBytes.
	ErrTooLarge = errors.New("model too large")
)

// Config configures a Store.
type Config struct {
	// Bucket is the object store bucket. Default DefaultBucket.
	Bucket string
	// Replicas is the bucket's replica count when Open creates it. Default 1.
	Replicas int
	// MaxModelBytes bounds a model. Default DefaultMaxModelBytes.
	MaxModelBytes int64
}

func (c *Config) setDefaults() {
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxModelBytes <= 0 {
		c.MaxModelBytes = DefaultMaxModelBytes
	}
}

// Store reads and writes classifiers in the bucket. It is safe for concurrent use, also from
// several processes.
type Store struct {
	obs jetstream.ObjectStore
	cfg Config
}

// Open opens the bucket, creating it (file storage) when missing.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	cfg.setDefaults()
	obs, err := openObjectStore(ctx, js, cfg, "Vigil custom classifiers: ONNX models with their manifests")
	if err != nil {
		return nil, fmt.Errorf("classifiers: %w", err)
	}
	return &Store{obs: obs, cfg: cfg}, nil
}

// openObjectStore opens bucket cfg.Bucket, creating it (file storage, cfg.Replicas, described as
// description) when missing; a concurrent creator's bucket is opened.
func openObjectStore(ctx context.Context, js jetstream.JetStream, cfg Config, description string) (jetstream.ObjectStore, error) {
	obs, err := js.ObjectStore(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obs, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket: cfg.Bucket, Description: description, Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			obs, err = js.ObjectStore(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open object store %s: %w", cfg.Bucket, err)
	}
	return obs, nil
}

// Config returns the store's configuration with defaults applied.
func (s *Store) Config() Config { return s.cfg }

// Entry describes a stored classifier.
type Entry struct {
	// Manifest is the registered manifest; Manifest.SHA256 is the model's digest.
	Manifest manifest.Manifest `json:"manifest"`
	// Size is the model's length in bytes, ModTime when it was stored.
	Size    uint64    `json:"size"`
	ModTime time.Time `json:"mod_time"`
	// NUID identifies this version of the object; a re-registration gets a new one.
	NUID string `json:"-"`
}

// Digest returns the hex SHA-256 of model.
func Digest(model []byte) string {
	sum := sha256.Sum256(model)
	return hex.EncodeToString(sum[:])
}

// Put stores model under m.Name, replacing any earlier version. m must be valid (Validate);
// its SHA256 is set to the model's digest, and if it was set already it must equal it
// (ErrDigest). It returns the stored entry.
func (s *Store) Put(ctx context.Context, m manifest.Manifest, model []byte) (Entry, error) {
	m = m.Clone()
	digest := Digest(model)
	if m.SHA256 != "" && m.SHA256 != digest {
		return Entry{}, fmt.Errorf("classifier %s: %w: the manifest says sha256 %s, the model's is %s", m.Name, ErrDigest, m.SHA256, digest)
	}
	m.SHA256 = digest
	if err := m.Validate(); err != nil {
		return Entry{}, err
	}
	if int64(len(model)) > s.cfg.MaxModelBytes {
		return Entry{}, fmt.Errorf("classifier %s: %w: %d bytes, at most %d", m.Name, ErrTooLarge, len(model), s.cfg.MaxModelBytes)
	}
	mj, err := json.Marshal(m)
	if err != nil {
		return Entry{}, fmt.Errorf("classifier %s: encode manifest: %w", m.Name, err)
	}
	info, err := s.obs.Put(ctx, jetstream.ObjectMeta{
		Name: m.Name, Description: "Vigil classifier " + m.Name,
		Metadata: map[string]string{MetaManifest: string(mj)},
	}, bytes.NewReader(model))
	if err != nil {
		return Entry{}, fmt.Errorf("classifier %s: store: %w", m.Name, err)
	}
	return Entry{Manifest: m, Size: info.Size, ModTime: info.ModTime, NUID: info.NUID}, nil
}

// EntryOf decodes the manifest of an object's info (as List, Info and watchers return it),
// checking that it is valid, names the object and carries a digest. Errors wrap ErrBadObject.
func EntryOf(info *jetstream.ObjectInfo) (Entry, error) {
	raw, ok := info.Metadata[MetaManifest]
	if !ok {
		return Entry{}, fmt.Errorf("%w: object %q has no %s metadata", ErrBadObject, info.Name, MetaManifest)
	}
	m, err := manifest.Parse([]byte(raw))
	if err != nil {
		return Entry{}, fmt.Errorf("%w: object %q: %w", ErrBadObject, info.Name, err)
	}
	if m.Name != info.Name {
		return Entry{}, fmt.Errorf("%w: object %q holds the manifest of %q", ErrBadObject, info.Name, m.Name)
	}
	if m.SHA256 == "" {
		return Entry{}, fmt.Errorf("%w: object %q: the manifest registers no sha256", ErrBadObject, info.Name)
	}
	return Entry{Manifest: m, Size: info.Size, ModTime: info.ModTime, NUID: info.NUID}, nil
}

// Info returns the entry of classifier name without reading the model.
func (s *Store) Info(ctx context.Context, name string) (Entry, error) {
	if !manifest.ValidName(name) {
		return Entry{}, fmt.Errorf("classifier %q: %w", name, ErrNotFound)
	}
	info, err := s.obs.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return Entry{}, fmt.Errorf("classifier %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("classifier %s: %w", name, err)
	}
	return EntryOf(info)
}

// Get returns classifier name's entry and model, after checking the model against the SHA-256
// its manifest registered (ErrDigest) and the object store's own digest.
func (s *Store) Get(ctx context.Context, name string) (Entry, []byte, error) {
	e, err := s.Info(ctx, name)
	if err != nil {
		return Entry{}, nil, err
	}
	if e.Size > uint64(s.cfg.MaxModelBytes) {
		return Entry{}, nil, fmt.Errorf("classifier %s: %w: %d bytes, at most %d", name, ErrTooLarge, e.Size, s.cfg.MaxModelBytes)
	}
	r, err := s.obs.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return Entry{}, nil, fmt.Errorf("classifier %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Entry{}, nil, fmt.Errorf("classifier %s: %w", name, err)
	}
	defer r.Close()
	info, err := r.Info()
	if err != nil {
		return Entry{}, nil, fmt.Errorf("classifier %s: %w", name, err)
	}
	if e, err = EntryOf(info); err != nil { // the version actually read
		return Entry{}, nil, err
	}
	model, err := io.ReadAll(io.LimitReader(r, s.cfg.MaxModelBytes+1))
	if errors.Is(err, jetstream.ErrDigestMismatch) {
		return Entry{}, nil, fmt.Errorf("classifier %s: %w: the object store's digest does not match the stored bytes", name, ErrDigest)
	}
	if err != nil {
		return Entry{}, nil, fmt.Errorf("classifier %s: read model: %w", name, err)
	}
	if got := Digest(model); got != e.Manifest.SHA256 {
		return Entry{}, nil, fmt.Errorf("classifier %s: %w: registered sha256 %s, the stored model's is %s", name, ErrDigest, e.Manifest.SHA256, got)
	}
	return e, model, nil
}

// List returns every classifier with a readable manifest, by name, and the errors of objects
// without one.
func (s *Store) List(ctx context.Context) ([]Entry, []error, error) {
	infos, err := s.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("classifiers: list: %w", err)
	}
	var out []Entry
	var bad []error
	for _, info := range infos {
		e, err := EntryOf(info)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Manifest.Name < out[j].Manifest.Name })
	return out, bad, nil
}

// Delete removes classifier name (ErrNotFound when there is none).
func (s *Store) Delete(ctx context.Context, name string) error {
	if !manifest.ValidName(name) {
		return fmt.Errorf("classifier %q: %w", name, ErrNotFound)
	}
	_, err := s.obs.GetInfo(ctx, name) // Delete alone would "delete" a deleted object again
	if err == nil {
		err = s.obs.Delete(ctx, name)
	}
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("classifier %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("classifier %s: delete: %w", name, err)
	}
	return nil
}

// Watch follows the bucket: the returned watcher first delivers every current object, then nil
// (the initial values are in), then every change, deletions included (ObjectInfo.Deleted).
// Decode updates with EntryOf. Stop the watcher (or cancel ctx) when done.
func (s *Store) Watch(ctx context.Context) (jetstream.ObjectWatcher, error) {
	w, err := s.obs.Watch(ctx)
	if err != nil {
		return nil, fmt.Errorf("classifiers: watch: %w", err)
	}
	return w, nil
}
