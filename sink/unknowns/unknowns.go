// Package unknowns files the tracks that end without an identity under persistent "unknown
// people": each face.left event without identity but with the track's embedding joins the
// unknown whose centroid it matches best (at least Config.Threshold), or starts a new one; one
// that carries the unknown_id the track role matched live joins that unknown while it still
// matches. The record format is pkg/unknown's, which the track role reads too.
// Unknowns live in a JetStream KV bucket (vigil_unknowns by default), one key per unknown, so
// every process shares them and they survive restarts; an unknown not seen for Config.MaxAge
// expires (the bucket's TTL: each sighting rewrites the key). Sink is the eventstore.EventSink
// that clusters; API serves them over HTTP (list, show, enrol as an identity, merge, delete).
//
// The package is pure Go.
package unknowns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/pkg/backoff"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/pkg/unknown"
)

// Defaults of Config.
const (
	DefaultBucket = unknown.DefaultBucket
	DefaultMaxAge = 30 * 24 * time.Hour
	// MaxTracks is the sightings (tracks) an unknown keeps, the newest.
	MaxTracks = 200
	// MaxExemplars is the track embeddings an unknown keeps for enrolment, the first ones.
	MaxExemplars = 5
	keyPrefix    = unknown.KeyPrefix
)

// Errors of the Store.
var (
	// ErrNotFound: no unknown with that id.
	ErrNotFound = errors.New("unknown person not found")
	// ErrInvalid is wrapped by errors for requests the store refuses (merging into itself, bad ids).
	ErrInvalid = errors.New("invalid request")
	// ErrExists: enrolling under a name the gallery already has.
	ErrExists = errors.New("an identity with that name exists")
)

// Config configures a Store.
type Config struct {
	// Bucket is the KV bucket. Default DefaultBucket.
	Bucket string
	// MaxAge expires unknowns unseen this long. Default DefaultMaxAge (30 days).
	MaxAge time.Duration
	// Threshold is the cosine similarity from which a track joins an unknown. Required: pass the
	// tracker's identity threshold (track.DefaultThreshold).
	Threshold float32
	// Replicas of the bucket. Default 1.
	Replicas int
	// Log receives watcher errors. Default slog.Default().
	Log *slog.Logger
}

// Track is one sighting of an unknown: a track that ended without identity.
type Track = unknown.Track

// Unknown is an unknown person.
type Unknown struct {
	ID string `json:"id"`
	// Sightings counts the tracks filed under it (Tracks keeps the newest MaxTracks).
	Sightings int       `json:"sightings"`
	Streams   []string  `json:"streams"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Snapshot is the path of the newest sighting's snapshot in the event store; "" when none
	// (filled by the API).
	Snapshot string `json:"snapshot"`
	// Tracks are its sightings, newest last (GET /v1/unknowns/{id} only).
	Tracks []Track `json:"tracks,omitempty"`

	centroid  []float32
	exemplars [][]float32
	revision  uint64
}

// Exemplars returns the embeddings of its first tracks (at most MaxExemplars): what enrolment
// turns into gallery photos.
func (u Unknown) Exemplars() [][]float32 { return u.exemplars }

func (u Unknown) encode() ([]byte, error) {
	r := unknown.Record{Schema: unknown.Schema, ID: u.ID, Sightings: u.Sightings, Streams: u.Streams, FirstSeen: u.FirstSeen,
		LastSeen: u.LastSeen, Tracks: u.Tracks, Centroid: unknown.EncodeVec(u.centroid)}
	for _, e := range u.exemplars {
		r.Exemplars = append(r.Exemplars, unknown.EncodeVec(e))
	}
	return json.Marshal(r)
}

func decode(data []byte, rev uint64) (Unknown, error) {
	r, c, err := unknown.ParseRecord(data)
	if err != nil {
		return Unknown{}, err
	}
	u := Unknown{ID: r.ID, Sightings: r.Sightings, Streams: r.Streams, FirstSeen: r.FirstSeen, LastSeen: r.LastSeen, Tracks: r.Tracks,
		centroid: c, revision: rev}
	for _, s := range r.Exemplars {
		e, err := unknown.DecodeVec(s)
		if err != nil {
			return Unknown{}, err
		}
		u.exemplars = append(u.exemplars, e)
	}
	return u, nil
}

// Store holds the unknowns: the KV bucket and an in-memory copy a watcher keeps current.
type Store struct {
	cfg    Config
	kv     jetstream.KeyValue
	cancel context.CancelFunc
	done   chan struct{}
	ready  chan struct{}

	mu    sync.Mutex // serialises assignments of this process; guards cache
	cache map[string]Unknown
}

// Open opens (creating when missing) the bucket and starts watching it. Close stops it.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxAge < time.Second {
		return nil, fmt.Errorf("unknowns: max age %v below 1s", cfg.MaxAge)
	}
	if cfg.Threshold <= 0 || cfg.Threshold > 1 {
		return nil, fmt.Errorf("unknowns: threshold %v outside (0, 1]", cfg.Threshold)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: cfg.Bucket,
			Description: "Vigil unknown people: clusters of the tracks that ended without identity",
			History:     1, TTL: cfg.MaxAge, Storage: jetstream.FileStorage, Replicas: max(cfg.Replicas, 1), MaxValueSize: 1 << 20})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("unknowns: open KV bucket %s: %w", cfg.Bucket, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	s := &Store{cfg: cfg, kv: kv, cancel: cancel, done: make(chan struct{}), ready: make(chan struct{}), cache: map[string]Unknown{}}
	go s.run(wctx)
	select {
	case <-s.ready:
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("unknowns: load %s: %w", cfg.Bucket, ctx.Err())
	}
	return s, nil
}

// Close stops the watcher and waits for it.
func (s *Store) Close() {
	s.cancel()
	<-s.done
}

func (s *Store) run(ctx context.Context) {
	defer close(s.done)
	var once sync.Once
	ready := func() { once.Do(func() { close(s.ready) }) }
	backoff.Loop(ctx, &backoff.Backoff{Initial: time.Second, Max: 5 * time.Second}, s.cfg.Log, "unknowns watcher",
		func(ctx context.Context) error { return s.watch(ctx, ready) })
}

func (s *Store) watch(ctx context.Context, ready func()) error {
	w, err := s.kv.Watch(ctx, keyPrefix+">")
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	return bus.ConsumeWatch(ctx, w.Updates(), ready, s.apply)
}

func (s *Store) apply(e jetstream.KeyValueEntry) {
	id := strings.TrimPrefix(e.Key(), keyPrefix)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.cache[id]; ok && old.revision > e.Revision() {
		return
	}
	if e.Operation() != jetstream.KeyValuePut {
		delete(s.cache, id)
		return
	}
	u, err := decode(e.Value(), e.Revision())
	if err != nil {
		s.cfg.Log.Warn("unknowns: skipping a corrupt record", "key", e.Key(), "err", err)
		delete(s.cache, id)
		return
	}
	s.cache[id] = u
}

// List returns the unknowns, most sightings first (without their tracks).
func (s *Store) List() []Unknown {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Unknown, 0, len(s.cache))
	for _, u := range s.cache {
		u.Tracks = nil
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b Unknown) int {
		if a.Sightings != b.Sightings {
			return b.Sightings - a.Sightings
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Get returns unknown id, read from the bucket.
func (s *Store) Get(ctx context.Context, id string) (Unknown, error) {
	if !validID(id) {
		return Unknown{}, fmt.Errorf("%w: %q is not an unknown id", ErrNotFound, truncate(id))
	}
	e, err := s.kv.Get(ctx, keyPrefix+id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Unknown{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Unknown{}, fmt.Errorf("unknowns: %w", err)
	}
	u, err := decode(e.Value(), e.Revision())
	if err != nil {
		return Unknown{}, fmt.Errorf("unknowns: record %s: %w", id, err)
	}
	s.applyLocal(u)
	return u, nil
}

func (s *Store) applyLocal(u Unknown) {
	s.mu.Lock()
	if old, ok := s.cache[u.ID]; !ok || old.revision <= u.revision {
		s.cache[u.ID] = u
	}
	s.mu.Unlock()
}

func validID(id string) bool {
	if !strings.HasPrefix(id, "u-") || len(id) != 2+16 {
		return false
	}
	_, err := hex.DecodeString(id[2:])
	return err == nil
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "u-" + hex.EncodeToString(b)
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Sighting is a track that ended without identity.
type Sighting struct {
	Stream, TrackID     string
	FirstSeen, LastSeen time.Time
	// Embedding is the track's L2-normalised embedding.
	Embedding []float32
	// UnknownID is the unknown the track role matched the track to live (the event's
	// unknown_id), if any: the track joins it when it still exists and matches at the
	// threshold, so what the events said is what the store files. Optional.
	UnknownID string
}

// Assign files the track under the best-matching unknown, or a new one, and returns its id.
// A track already filed (same stream and track id) returns its unknown unchanged.
func (s *Store) Assign(ctx context.Context, sg Sighting) (string, error) {
	if len(sg.Embedding) == 0 {
		return "", fmt.Errorf("%w: no embedding", ErrInvalid)
	}
	v := normalize(sg.Embedding)
	if v == nil {
		return "", fmt.Errorf("%w: zero or non-finite embedding", ErrInvalid)
	}
	for attempt := 0; attempt < 5; attempt++ {
		best, sim := s.nearest(v, sg.UnknownID)
		if best.ID == "" || sim < s.cfg.Threshold {
			u := Unknown{ID: newID(), centroid: v, exemplars: [][]float32{v}}
			u.add(sg, v, 1)
			data, err := u.encode()
			if err != nil {
				return "", err
			}
			rev, err := s.kv.Create(ctx, keyPrefix+u.ID, data)
			if err != nil {
				return "", fmt.Errorf("unknowns: create: %w", err)
			}
			u.revision = rev
			s.applyLocal(u)
			return u.ID, nil
		}
		cur, err := s.Get(ctx, best.ID)
		if errors.Is(err, ErrNotFound) {
			s.forget(best.ID)
			continue
		}
		if err != nil {
			return "", err
		}
		for _, t := range cur.Tracks {
			if t.Stream == sg.Stream && t.TrackID == sg.TrackID {
				return cur.ID, nil // redelivered
			}
		}
		cur.add(sg, v, sim)
		if err := s.put(ctx, cur); err != nil {
			if isConflict(err) {
				continue
			}
			return "", err
		}
		return cur.ID, nil
	}
	return "", errors.New("unknowns: assign: the unknown kept changing concurrently")
}

func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// put writes u against its revision.
func (s *Store) put(ctx context.Context, u Unknown) error {
	data, err := u.encode()
	if err != nil {
		return err
	}
	rev, err := s.kv.Update(ctx, keyPrefix+u.ID, data, u.revision)
	if err != nil {
		return fmt.Errorf("unknowns: update %s: %w", u.ID, err)
	}
	u.revision = rev
	s.applyLocal(u)
	return nil
}

func (s *Store) forget(id string) {
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
}

// add records a sighting: centroid (running mean weighted by sightings), exemplars, tracks,
// streams and times.
func (u *Unknown) add(sg Sighting, v []float32, sim float32) {
	if u.Sightings > 0 {
		n := float32(u.Sightings)
		mix := make([]float32, len(v))
		for i := range mix {
			mix[i] = (u.centroid[i]*n + v[i]) / (n + 1)
		}
		u.centroid = normalize(mix)
		if len(u.exemplars) < MaxExemplars {
			u.exemplars = append(u.exemplars, v)
		}
	}
	u.Sightings++
	u.Tracks = append(u.Tracks, Track{Stream: sg.Stream, TrackID: sg.TrackID, FirstSeen: sg.FirstSeen, LastSeen: sg.LastSeen, Similarity: sim})
	if n := len(u.Tracks) - MaxTracks; n > 0 {
		u.Tracks = slices.Delete(u.Tracks, 0, n)
	}
	if !slices.Contains(u.Streams, sg.Stream) {
		u.Streams = append(u.Streams, sg.Stream)
		slices.Sort(u.Streams)
	}
	if !sg.FirstSeen.IsZero() && (u.FirstSeen.IsZero() || sg.FirstSeen.Before(u.FirstSeen)) {
		u.FirstSeen = sg.FirstSeen
	}
	if sg.LastSeen.After(u.LastSeen) {
		u.LastSeen = sg.LastSeen
	}
}

// nearest returns the cached unknown whose centroid is most similar to v; hint, when it is
// cached and matches v at the threshold, wins over a closer one.
func (s *Store) nearest(v []float32, hint string) (Unknown, float32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.cache[hint]; ok && len(u.centroid) == len(v) {
		if c := dot(u.centroid, v); c >= s.cfg.Threshold {
			return u, c
		}
	}
	var best Unknown
	bestSim := float32(-2)
	for _, u := range s.cache {
		if len(u.centroid) != len(v) {
			continue
		}
		if c := dot(u.centroid, v); c > bestSim {
			best, bestSim = u, c
		}
	}
	return best, bestSim
}

// Delete removes unknown id.
func (s *Store) Delete(ctx context.Context, id string) error {
	u, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := s.kv.Delete(ctx, keyPrefix+id, jetstream.LastRevision(u.revision)); err != nil {
		if isConflict(err) {
			return fmt.Errorf("unknowns: %s changed concurrently: retry", id)
		}
		return fmt.Errorf("unknowns: delete %s: %w", id, err)
	}
	s.forget(id)
	return nil
}

// Merge files every sighting of unknown id under unknown into and deletes id; it returns the
// merged unknown.
func (s *Store) Merge(ctx context.Context, id, into string) (Unknown, error) {
	if id == into {
		return Unknown{}, fmt.Errorf("%w: cannot merge %s into itself", ErrInvalid, id)
	}
	src, err := s.Get(ctx, id)
	if err != nil {
		return Unknown{}, err
	}
	dst, err := s.Get(ctx, into)
	if err != nil {
		return Unknown{}, err
	}
	if len(src.centroid) == len(dst.centroid) {
		a, b := float32(dst.Sightings), float32(src.Sightings)
		mix := make([]float32, len(dst.centroid))
		for i := range mix {
			mix[i] = (dst.centroid[i]*a + src.centroid[i]*b) / (a + b)
		}
		if c := normalize(mix); c != nil {
			dst.centroid = c
		}
	}
	dst.Sightings += src.Sightings
	dst.Tracks = append(dst.Tracks, src.Tracks...)
	slices.SortFunc(dst.Tracks, func(a, b Track) int { return a.LastSeen.Compare(b.LastSeen) })
	if n := len(dst.Tracks) - MaxTracks; n > 0 {
		dst.Tracks = slices.Delete(dst.Tracks, 0, n)
	}
	for _, st := range src.Streams {
		if !slices.Contains(dst.Streams, st) {
			dst.Streams = append(dst.Streams, st)
		}
	}
	slices.Sort(dst.Streams)
	for _, e := range src.exemplars {
		if len(dst.exemplars) < MaxExemplars {
			dst.exemplars = append(dst.exemplars, e)
		}
	}
	if src.FirstSeen.Before(dst.FirstSeen) {
		dst.FirstSeen = src.FirstSeen
	}
	if src.LastSeen.After(dst.LastSeen) {
		dst.LastSeen = src.LastSeen
	}
	if err := s.put(ctx, dst); err != nil {
		return Unknown{}, err
	}
	if err := s.Delete(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
		return Unknown{}, err
	}
	dst.revision = 0
	return dst, nil
}

// EraseMatching deletes the unknowns whose centroid or an exemplar is at least the threshold
// similar to one of vectors (a person being erased) and returns how many.
func (s *Store) EraseMatching(ctx context.Context, vectors [][]float32) (int, error) {
	var ids []string
	s.mu.Lock()
	for id, u := range s.cache {
		for _, v := range vectors {
			v = normalize(v)
			if v == nil {
				continue
			}
			match := len(u.centroid) == len(v) && dot(u.centroid, v) >= s.cfg.Threshold
			for _, e := range u.exemplars {
				match = match || (len(e) == len(v) && dot(e, v) >= s.cfg.Threshold)
			}
			if match {
				ids = append(ids, id)
				break
			}
		}
	}
	s.mu.Unlock()
	n := 0
	for _, id := range ids {
		if err := s.kv.Purge(ctx, keyPrefix+id); err != nil {
			return n, fmt.Errorf("unknowns: erase %s: %w", id, err)
		}
		s.forget(id)
		n++
	}
	return n, nil
}

// Sink is the eventstore.EventSink that files face.left events without identity under unknowns.
type Sink struct {
	// Store holds the unknowns. Required.
	Store *Store
	// OnAssign, when set, is told each track's unknown (the event store records it).
	OnAssign func(ctx context.Context, stream, trackID, unknownID string) error
}

// WriteEvent files ev when it is a face.left without identity that carries an embedding;
// other events pass.
func (k *Sink) WriteEvent(ctx context.Context, ev event.Event, _ []byte) error {
	if ev.Kind != event.KindLeft || ev.Identity != nil || len(ev.Embedding) == 0 {
		return nil
	}
	id, err := k.Store.Assign(ctx, Sighting{Stream: ev.Stream, TrackID: ev.TrackID, FirstSeen: ev.FirstSeen, LastSeen: ev.LastSeen,
		Embedding: ev.Embedding, UnknownID: ev.UnknownID})
	if errors.Is(err, ErrInvalid) {
		return nil // nothing to file
	}
	if err != nil {
		return err
	}
	if k.OnAssign != nil {
		return k.OnAssign(ctx, ev.Stream, ev.TrackID, id)
	}
	return nil
}

// Close does nothing: the Store is closed by its owner.
func (k *Sink) Close() error { return nil }

func normalize(v []float32) []float32 { return unknown.Normalize(v) }

func dot(a, b []float32) float32 { return unknown.Dot(a, b) }
