package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/analyze/classify/manifest"
)

// DefaultBackboneBucket is the object store bucket of uploaded backbones.
const DefaultBackboneBucket = "vigil_backbones"

// MetaSHA256 is the object metadata key holding a backbone's hex SHA-256, as registered at Put.
const MetaSHA256 = "vigil-sha256"

// ErrBackboneNotFound: no backbone with that name was uploaded.
var ErrBackboneNotFound = errors.New("backbone not found")

// BackboneEntry describes an uploaded backbone.
type BackboneEntry struct {
	// Name names it in training projects ("mobilenetv2").
	Name string `json:"name"`
	// SHA256 is the model's hex digest, checked on every Get.
	SHA256 string `json:"sha256"`
	// Size is the model's length in bytes, ModTime when it was stored.
	Size    uint64    `json:"size"`
	ModTime time.Time `json:"added_at"`
}

// Backbones keeps uploaded backbone models (ImageNet classifiers that frame classifiers are
// trained on) in a JetStream object store, one object per backbone named after it, with its
// SHA-256 in the metadata: uploaded once, every process that trains sees it. It is safe for
// concurrent use. The package never runs a model: checking that one is a usable backbone is the
// caller's job before Put.
type Backbones struct {
	obs jetstream.ObjectStore
	max int64
}

// OpenBackbones opens the backbone bucket (cfg.Bucket, default DefaultBackboneBucket), creating
// it (file storage) when missing. cfg.MaxModelBytes bounds a model as for classifiers.
func OpenBackbones(ctx context.Context, js jetstream.JetStream, cfg Config) (*Backbones, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBackboneBucket
	}
	cfg.setDefaults()
	obs, err := openObjectStore(ctx, js, cfg, "Vigil classifier backbones: ONNX ImageNet models frame classifiers are trained on")
	if err != nil {
		return nil, fmt.Errorf("backbones: %w", err)
	}
	return &Backbones{obs: obs, max: cfg.MaxModelBytes}, nil
}

func backboneEntry(info *jetstream.ObjectInfo) (BackboneEntry, error) {
	sum := info.Metadata[MetaSHA256]
	if len(sum) != 64 {
		return BackboneEntry{}, fmt.Errorf("%w: backbone object %q has no %s metadata", ErrBadObject, info.Name, MetaSHA256)
	}
	return BackboneEntry{Name: info.Name, SHA256: sum, Size: info.Size, ModTime: info.ModTime}, nil
}

// Put stores model as backbone name (a manifest.ValidName), replacing any earlier version, and
// returns its entry. A model over the size limit is ErrTooLarge.
func (b *Backbones) Put(ctx context.Context, name string, model []byte) (BackboneEntry, error) {
	if !manifest.ValidName(name) {
		return BackboneEntry{}, fmt.Errorf("backbone %q: %w: a name is 1-64 characters a-z, 0-9, '_' or '-', starting with a letter or digit", name, manifest.ErrInvalid)
	}
	if int64(len(model)) > b.max {
		return BackboneEntry{}, fmt.Errorf("backbone %s: %w: %d bytes, at most %d", name, ErrTooLarge, len(model), b.max)
	}
	digest := Digest(model)
	info, err := b.obs.Put(ctx, jetstream.ObjectMeta{Name: name, Description: "Vigil backbone " + name,
		Metadata: map[string]string{MetaSHA256: digest}}, bytes.NewReader(model))
	if err != nil {
		return BackboneEntry{}, fmt.Errorf("backbone %s: store: %w", name, err)
	}
	return BackboneEntry{Name: name, SHA256: digest, Size: info.Size, ModTime: info.ModTime}, nil
}

// Get returns backbone name's entry and model, after checking the model against the SHA-256
// registered at Put (ErrDigest). An unknown name is ErrBackboneNotFound.
func (b *Backbones) Get(ctx context.Context, name string) (BackboneEntry, []byte, error) {
	if !manifest.ValidName(name) {
		return BackboneEntry{}, nil, fmt.Errorf("backbone %q: %w", name, ErrBackboneNotFound)
	}
	r, err := b.obs.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return BackboneEntry{}, nil, fmt.Errorf("backbone %s: %w", name, ErrBackboneNotFound)
	}
	if err != nil {
		return BackboneEntry{}, nil, fmt.Errorf("backbone %s: %w", name, err)
	}
	defer r.Close()
	info, err := r.Info()
	if err != nil {
		return BackboneEntry{}, nil, fmt.Errorf("backbone %s: %w", name, err)
	}
	e, err := backboneEntry(info)
	if err != nil {
		return BackboneEntry{}, nil, err
	}
	if e.Size > uint64(b.max) {
		return BackboneEntry{}, nil, fmt.Errorf("backbone %s: %w: %d bytes, at most %d", name, ErrTooLarge, e.Size, b.max)
	}
	model, err := io.ReadAll(io.LimitReader(r, b.max+1))
	if errors.Is(err, jetstream.ErrDigestMismatch) {
		return BackboneEntry{}, nil, fmt.Errorf("backbone %s: %w: the object store's digest does not match the stored bytes", name, ErrDigest)
	}
	if err != nil {
		return BackboneEntry{}, nil, fmt.Errorf("backbone %s: read model: %w", name, err)
	}
	if got := Digest(model); got != e.SHA256 {
		return BackboneEntry{}, nil, fmt.Errorf("backbone %s: %w: registered sha256 %s, the stored model's is %s", name, ErrDigest, e.SHA256, got)
	}
	return e, model, nil
}

// List returns the uploaded backbones by name (objects without a digest are left out).
func (b *Backbones) List(ctx context.Context) ([]BackboneEntry, error) {
	infos, err := b.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("backbones: list: %w", err)
	}
	var out []BackboneEntry
	for _, info := range infos {
		if e, err := backboneEntry(info); err == nil {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete removes backbone name (ErrBackboneNotFound when there is none).
func (b *Backbones) Delete(ctx context.Context, name string) error {
	if !manifest.ValidName(name) {
		return fmt.Errorf("backbone %q: %w", name, ErrBackboneNotFound)
	}
	_, err := b.obs.GetInfo(ctx, name)
	if err == nil {
		err = b.obs.Delete(ctx, name)
	}
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("backbone %s: %w", name, ErrBackboneNotFound)
	}
	if err != nil {
		return fmt.Errorf("backbone %s: delete: %w", name, err)
	}
	return nil
}
