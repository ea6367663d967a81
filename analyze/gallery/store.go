package gallery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Errors of Store operations; the HTTP API maps them to status codes.
var (
	// ErrNotFound: no identity with that id.
	ErrNotFound = errors.New("identity not found")
	// ErrExists: an identity with that id (the same name up to case, spacing and punctuation)
	// already exists.
	ErrExists = errors.New("identity already exists")
	// ErrPhotoNotFound: the identity has no photo with that id.
	ErrPhotoNotFound = errors.New("photo not found")
	// ErrDuplicatePhoto: the same image (by sha256) is already enrolled for the identity.
	ErrDuplicatePhoto = errors.New("photo already enrolled")
	// ErrTooManyPhotos: the identity would exceed StoreConfig.MaxPhotos.
	ErrTooManyPhotos = errors.New("too many photos")
	// ErrEmbedding: an embedding is empty, zero, not finite or of another length than the
	// identity's other photos.
	ErrEmbedding = errors.New("invalid embedding")
	// ErrConflict: the identity kept changing under concurrent writers; retry.
	ErrConflict = errors.New("identity changed concurrently")
)

// KeyPrefix is the KV key prefix of identity records: identity.<id>.
const KeyPrefix = "identity."

// StoreConfig configures a Store.
type StoreConfig struct {
	// Bucket is the JetStream KV bucket. Default "vigil_faces".
	Bucket string
	// Replicas is the bucket's replica count when Open creates it. Default 1.
	Replicas int
	// MaxPhotos bounds the photos per identity. Default 64 (a record of ~190 KB).
	MaxPhotos int
	// Model names the embedding model; written into records and checked by Gallery. Default
	// "fr_feature".
	Model string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Log receives a warning for each stored record a read finds corrupt (the record is
	// skipped, see Store.Get). Default slog.Default().
	Log *slog.Logger
}

// DefaultBucket is StoreConfig.Bucket's default.
const DefaultBucket = "vigil_faces"

// DefaultModel is StoreConfig.Model's default: the MobileFaceNet embedding of the pipeline.
const DefaultModel = "fr_feature"

func (c *StoreConfig) setDefaults() {
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxPhotos <= 0 {
		c.MaxPhotos = 64
	}
	if c.Model == "" {
		c.Model = DefaultModel
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Store reads and writes identities in a JetStream KV bucket, one key per identity holding its
// name and every photo's embedding. Each write is one KV operation, so an identity is never
// half-written: creating with photos is one Create, adding or removing a photo one
// compare-and-set Update on the revision read (retried on a concurrent change), deleting one
// Purge. It is safe for concurrent use, also from several processes.
type Store struct {
	kv  jetstream.KeyValue
	cfg StoreConfig
	// corruptReads counts reads that found a stored record corrupt.
	corruptReads atomic.Uint64
}

// OpenStore opens the bucket, creating it when missing (history 1, file storage, 1 MiB values).
func OpenStore(ctx context.Context, js jetstream.JetStream, cfg StoreConfig) (*Store, error) {
	cfg.setDefaults()
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: cfg.Bucket, Description: "Vigil face gallery: identities and their photos' embeddings",
			History: 1, Storage: jetstream.FileStorage, Replicas: cfg.Replicas, MaxValueSize: 1 << 20,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, cfg.Bucket) // created concurrently
		}
	}
	if err != nil {
		return nil, fmt.Errorf("gallery: open KV bucket %s: %w", cfg.Bucket, err)
	}
	return &Store{kv: kv, cfg: cfg}, nil
}

// KV returns the bucket, for a Gallery to watch.
func (s *Store) KV() jetstream.KeyValue { return s.kv }

// Config returns the store's configuration with defaults applied.
func (s *Store) Config() StoreConfig { return s.cfg }

func key(id string) string { return KeyPrefix + id }

// Create enrolls a new identity called name with photos (possibly none), in one write. It fails
// with ErrInvalidName, ErrExists, ErrEmbedding, ErrDuplicatePhoto or ErrTooManyPhotos, writing
// nothing.
func (s *Store) Create(ctx context.Context, name string, photos []NewPhoto) (Identity, error) {
	id, err := IDFor(name)
	if err != nil {
		return Identity{}, err
	}
	canon, _ := CanonicalName(name)
	now := s.cfg.Now().UTC()
	ident := Identity{ID: id, Name: canon, CreatedAt: now, UpdatedAt: now, Model: s.cfg.Model}
	if ident, _, err = s.withPhotos(ident, photos, now); err != nil {
		return Identity{}, err
	}
	data, err := encodeRecord(ident)
	if err != nil {
		return Identity{}, err
	}
	rev, err := s.kv.Create(ctx, key(id), data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		existing, gerr := s.Get(ctx, id)
		if gerr == nil {
			return Identity{}, fmt.Errorf("%w: %q has id %s, taken by %q", ErrExists, canon, id, existing.Name)
		}
		return Identity{}, fmt.Errorf("%w: id %s", ErrExists, id)
	}
	if err != nil {
		return Identity{}, fmt.Errorf("gallery: create %s: %w", id, err)
	}
	ident.Revision = rev
	return ident, nil
}

// withPhotos returns ident with photos appended and the photos as added, checking them.
func (s *Store) withPhotos(ident Identity, photos []NewPhoto, now time.Time) (Identity, []Photo, error) {
	if len(ident.Photos)+len(photos) > s.cfg.MaxPhotos {
		return Identity{}, nil, fmt.Errorf("%w: %q would have %d photos, the limit is %d", ErrTooManyPhotos, ident.Name,
			len(ident.Photos)+len(photos), s.cfg.MaxPhotos)
	}
	ident = ident.clone()
	seen := map[string]bool{}
	for _, p := range ident.Photos {
		if p.SHA256 != "" {
			seen[p.SHA256] = true
		}
	}
	var added []Photo
	for i, np := range photos {
		e, err := normalize(np.Embedding)
		if err != nil {
			return Identity{}, nil, fmt.Errorf("%w: photo %d: %w", ErrEmbedding, i+1, err)
		}
		if len(ident.Photos) > 0 && len(e) != len(ident.Photos[0].Embedding) {
			return Identity{}, nil, fmt.Errorf("%w: photo %d: %d values, the identity's other photos have %d", ErrEmbedding, i+1,
				len(e), len(ident.Photos[0].Embedding))
		}
		if np.SHA256 != "" {
			if seen[np.SHA256] {
				return Identity{}, nil, fmt.Errorf("%w: photo %d (sha256 %s) is already enrolled for %q", ErrDuplicatePhoto, i+1,
					np.SHA256, ident.Name)
			}
			seen[np.SHA256] = true
		}
		p := Photo{ID: newPhotoID(), SHA256: np.SHA256, AddedAt: now, Box: np.Box, Embedding: e}
		ident.Photos = append(ident.Photos, p)
		added = append(added, p)
	}
	ident.UpdatedAt = now
	return ident, added, nil
}

// Get returns the identity with id, or ErrNotFound. A stored record that does not decode
// (written by something else, or damaged) is treated as every reader treats it, skipped: Get
// fails with an error wrapping ErrRecord, logs a warning and counts it (CorruptReads). Delete
// still removes such a record.
func (s *Store) Get(ctx context.Context, id string) (Identity, error) {
	if !ValidID(id) {
		return Identity{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	e, err := s.kv.Get(ctx, key(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Identity{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Identity{}, fmt.Errorf("gallery: get %s: %w", id, err)
	}
	ident, err := decodeRecord(id, e.Value())
	if err != nil {
		s.corruptReads.Add(1)
		s.cfg.Log.Warn("gallery: skipping a corrupt identity record", "key", e.Key(), "revision", e.Revision(), "err", err)
		return Identity{}, err
	}
	ident.Revision = e.Revision()
	return ident, nil
}

// CorruptReads returns how many reads (Get, List and the writes that read first) found a stored
// record that does not decode.
func (s *Store) CorruptReads() uint64 { return s.corruptReads.Load() }

// List returns every identity, sorted by id. A record that does not decode is skipped (as Get
// skips it: logged and counted) and reported in the joined error, wrapping ErrRecord, returned
// with the rest; SkippedRecords tells how many such an error stands for.
func (s *Store) List(ctx context.Context) ([]Identity, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, KeyPrefix+">")
	if err != nil {
		return nil, fmt.Errorf("gallery: list: %w", err)
	}
	defer func() { _ = lister.Stop() }()
	var ids []string
	for k := range lister.Keys() {
		ids = append(ids, strings.TrimPrefix(k, KeyPrefix))
	}
	sort.Strings(ids)
	var out []Identity
	var errs []error
	for _, id := range ids {
		ident, err := s.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since listed
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, ident)
	}
	return out, errors.Join(errs...)
}

// update applies f to the current identity id and writes the result with a compare-and-set on
// the revision read, retrying a few times when another writer got there first.
func (s *Store) update(ctx context.Context, id string, f func(Identity) (Identity, error)) (Identity, error) {
	for attempt := 0; attempt < 8; attempt++ {
		cur, err := s.Get(ctx, id)
		if err != nil {
			return Identity{}, err
		}
		next, err := f(cur)
		if err != nil {
			return Identity{}, err
		}
		data, err := encodeRecord(next)
		if err != nil {
			return Identity{}, err
		}
		rev, err := s.kv.Update(ctx, key(id), data, cur.Revision)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return Identity{}, fmt.Errorf("gallery: update %s: %w", id, err)
		}
		next.Revision = rev
		return next, nil
	}
	return Identity{}, fmt.Errorf("%w: %s", ErrConflict, id)
}

// AddPhotos enrolls more photos for identity id in one write and returns the identity and the
// photos as added. It fails with ErrNotFound, ErrEmbedding, ErrDuplicatePhoto or
// ErrTooManyPhotos, writing nothing.
func (s *Store) AddPhotos(ctx context.Context, id string, photos []NewPhoto) (Identity, []Photo, error) {
	var added []Photo
	ident, err := s.update(ctx, id, func(cur Identity) (Identity, error) {
		next, a, err := s.withPhotos(cur, photos, s.cfg.Now().UTC())
		added = a
		return next, err
	})
	if err != nil {
		return Identity{}, nil, err
	}
	return ident, added, nil
}

// RemovePhoto removes one photo of identity id; ErrNotFound or ErrPhotoNotFound when missing.
func (s *Store) RemovePhoto(ctx context.Context, id, photoID string) (Identity, error) {
	return s.update(ctx, id, func(cur Identity) (Identity, error) {
		next := cur.clone()
		for i, p := range next.Photos {
			if p.ID == photoID {
				next.Photos = append(next.Photos[:i], next.Photos[i+1:]...)
				next.UpdatedAt = s.cfg.Now().UTC()
				return next, nil
			}
		}
		return Identity{}, fmt.Errorf("%w: %s has no photo %q", ErrPhotoNotFound, id, photoID)
	})
}

// Delete removes identity id and every revision of it (its embeddings are gone from the bucket,
// not only hidden), a corrupt record too; ErrNotFound when there is none.
func (s *Store) Delete(ctx context.Context, id string) error {
	for attempt := 0; attempt < 8; attempt++ {
		cur, err := s.Get(ctx, id)
		if errors.Is(err, ErrRecord) { // a corrupt record can still be removed
			e, gerr := s.kv.Get(ctx, key(id))
			if errors.Is(gerr, jetstream.ErrKeyNotFound) || errors.Is(gerr, jetstream.ErrKeyDeleted) {
				return fmt.Errorf("%w: %s", ErrNotFound, id)
			}
			if gerr != nil {
				return fmt.Errorf("gallery: delete %s: %w", id, gerr)
			}
			cur, err = Identity{ID: id, Revision: e.Revision()}, nil
		}
		if err != nil {
			return err
		}
		err = s.kv.Purge(ctx, key(id), jetstream.LastRevision(cur.Revision))
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // changed since read: check again that it exists
		}
		if err != nil {
			return fmt.Errorf("gallery: delete %s: %w", id, err)
		}
		return nil
	}
	return fmt.Errorf("%w: %s", ErrConflict, id)
}

// SkippedRecords returns how many corrupt records an error from List stands for (0 for nil or
// any other error).
func SkippedRecords(err error) int {
	if err == nil {
		return 0
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		n := 0
		for _, e := range j.Unwrap() {
			n += SkippedRecords(e)
		}
		return n
	}
	if errors.Is(err, ErrRecord) {
		return 1
	}
	return 0
}
