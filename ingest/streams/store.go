package streams

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
)

// Entry is one stored stream configuration and its revision.
type Entry struct {
	Spec     Spec
	Revision uint64
}

// Change is one event of Store.Watch.
type Change struct {
	// Name is the stream the change is about ("" for the Ready marker).
	Name string
	// Revision orders changes: later changes have higher revisions.
	Revision uint64
	// Deleted reports the stream's removal; otherwise Spec is its new configuration.
	Deleted bool
	// Spec is the configuration as stored (not validated: see Err).
	Spec Spec
	// Err is set when the stored value does not decode (written by something else than Vigil).
	Err error
	// Ready marks the end of the initial values: every stream stored when Watch started has been
	// delivered before it.
	Ready bool
}

// Store persists the stream list. Implementations: KVStore (a JetStream key-value bucket, shared
// by every ingest) and MemoryStore (one process, lost at exit). Methods are safe for concurrent
// use; errors wrap ErrNotFound, ErrExists and ErrConflict where those apply.
type Store interface {
	// Get returns a stream's entry, or ErrNotFound.
	Get(ctx context.Context, name string) (Entry, error)
	// Create stores a new stream and returns its revision, or ErrExists.
	Create(ctx context.Context, spec Spec) (uint64, error)
	// Put stores spec and returns its revision. With lastRev > 0 it succeeds only if the stream's
	// revision is lastRev (ErrConflict otherwise, ErrNotFound if it does not exist).
	Put(ctx context.Context, spec Spec, lastRev uint64) (uint64, error)
	// Delete removes a stream (ErrNotFound if it does not exist). With lastRev > 0 it succeeds
	// only if the stream's revision is lastRev (ErrConflict).
	Delete(ctx context.Context, name string, lastRev uint64) error
	// Watch calls fn with every stored stream, then a Ready change, then every change, in
	// revision order, until ctx ends (it returns ctx's error) or the watch fails. fn runs on
	// Watch's goroutine.
	Watch(ctx context.Context, fn func(Change)) error
}

// DefaultBucket is the key-value bucket the stream list persists in.
const DefaultBucket = "vigil-streams"

// KVStore keeps the stream list in a JetStream key-value bucket: one key per stream (its name),
// whose value is the Spec as JSON. The revision is the bucket's.
type KVStore struct {
	// KV is the bucket. Required.
	KV jetstream.KeyValue
	// Sealer seals the passwords of source URLs before they are written and opens them when
	// read (see Sealer); every ingest sharing the bucket needs the same key. Default nil: a
	// source URL with a password is refused (ErrInvalid wrapping ErrSealed) rather than stored in
	// plaintext, and a sealed one read from the bucket is reported as not decoding.
	Sealer *Sealer
}

// OpenKV opens the key-value bucket named bucket (DefaultBucket when ""), creating it with
// replicas copies (at least 1) and a history of 5 revisions per stream when it does not exist.
func OpenKV(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*KVStore, error) {
	if bucket == "" {
		bucket = DefaultBucket
	}
	kv, err := bus.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket: bucket, Description: "Vigil ingest streams (one key per stream, JSON configuration)",
		History: 5, Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("streams: %w", err)
	}
	return &KVStore{KV: kv}, nil
}

func kvError(name string, err error) error {
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return fmt.Errorf("%w: stream %s changed since that revision", ErrConflict, name)
	case errors.Is(err, jetstream.ErrKeyExists):
		return fmt.Errorf("%w: %s", ErrExists, name)
	}
	return fmt.Errorf("streams store: %s: %w", name, err)
}

// Get returns a stream's entry.
func (s *KVStore) Get(ctx context.Context, name string) (Entry, error) {
	if err := frame.ValidateStream(name); err != nil {
		return Entry{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	e, err := s.KV.Get(ctx, name)
	if err != nil {
		return Entry{}, kvError(name, err)
	}
	spec, err := s.decode(e.Value())
	if err != nil {
		return Entry{}, fmt.Errorf("streams store: %s revision %d: %w", name, e.Revision(), err)
	}
	return Entry{Spec: spec, Revision: e.Revision()}, nil
}

// Create stores a new stream.
func (s *KVStore) Create(ctx context.Context, spec Spec) (uint64, error) {
	b, err := s.encode(spec)
	if err != nil {
		return 0, err
	}
	rev, err := s.KV.Create(ctx, spec.Name, b)
	if err != nil {
		return 0, kvError(spec.Name, err)
	}
	return rev, nil
}

// Put stores spec, with lastRev > 0 only over that revision.
func (s *KVStore) Put(ctx context.Context, spec Spec, lastRev uint64) (uint64, error) {
	b, err := s.encode(spec)
	if err != nil {
		return 0, err
	}
	var rev uint64
	if lastRev > 0 {
		rev, err = s.KV.Update(ctx, spec.Name, b, lastRev)
		if err != nil && errors.Is(err, jetstream.ErrKeyExists) {
			err = jetstream.ErrKeyRevisionMismatch
		}
	} else {
		rev, err = s.KV.Put(ctx, spec.Name, b)
	}
	if err != nil {
		if lastRev > 0 {
			if _, gerr := s.KV.Get(ctx, spec.Name); gerr != nil && (errors.Is(gerr, jetstream.ErrKeyNotFound) || errors.Is(gerr, jetstream.ErrKeyDeleted)) {
				return 0, kvError(spec.Name, gerr)
			}
		}
		return 0, kvError(spec.Name, err)
	}
	return rev, nil
}

// Delete removes a stream (a delete marker in the bucket; the history keeps older revisions).
func (s *KVStore) Delete(ctx context.Context, name string, lastRev uint64) error {
	e, err := s.KV.Get(ctx, name)
	if err != nil {
		return kvError(name, err)
	}
	if lastRev > 0 && e.Revision() != lastRev {
		return kvError(name, jetstream.ErrKeyRevisionMismatch)
	}
	if err := s.KV.Delete(ctx, name, jetstream.LastRevision(e.Revision())); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			err = jetstream.ErrKeyRevisionMismatch
		}
		return kvError(name, err)
	}
	return nil
}

// Watch delivers the bucket's streams, Ready, then every change until ctx ends.
func (s *KVStore) Watch(ctx context.Context, fn func(Change)) error {
	w, err := s.KV.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("streams store: watch: %w", err)
	}
	defer func() { _ = w.Stop() }()
	err = bus.ConsumeWatch(ctx, w.Updates(), func() { fn(Change{Ready: true}) }, func(e jetstream.KeyValueEntry) {
		c := Change{Name: e.Key(), Revision: e.Revision()}
		if e.Operation() != jetstream.KeyValuePut {
			c.Deleted = true
		} else if c.Spec, c.Err = s.decode(e.Value()); c.Err == nil && c.Spec.Name != c.Name {
			c.Err = fmt.Errorf("%w: the value names stream %q", ErrInvalid, truncate(c.Spec.Name, 64))
		}
		fn(c)
	})
	if errors.Is(err, bus.ErrWatchClosed) {
		return fmt.Errorf("streams store: watch ended: %w", err)
	}
	return err
}

// encode is the stored JSON of spec, its source's password sealed.
func (s *KVStore) encode(spec Spec) ([]byte, error) {
	if err := frame.ValidateStream(spec.Name); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var err error
	if spec.Source, err = s.Sealer.sealSource(spec.Name, spec.Source); err != nil {
		return nil, err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("streams store: %w", err)
	}
	return b, nil
}

// MemoryStore keeps the stream list in this process only: for an ingest without JetStream. The
// zero value is ready to use.
type MemoryStore struct {
	mu       sync.Mutex
	rev      uint64
	entries  map[string]Entry
	watchers map[*memWatch]struct{}
}

type memWatch struct {
	ch   chan Change
	done <-chan struct{}
}

// Get returns a stream's entry.
func (m *MemoryStore) Get(_ context.Context, name string) (Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[name]
	if !ok {
		return Entry{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return e, nil
}

// Create stores a new stream.
func (m *MemoryStore) Create(ctx context.Context, spec Spec) (uint64, error) {
	if err := frame.ValidateStream(spec.Name); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.entries[spec.Name]; ok {
		return 0, fmt.Errorf("%w: %s", ErrExists, spec.Name)
	}
	return m.set(ctx, spec), nil
}

// Put stores spec, with lastRev > 0 only over that revision.
func (m *MemoryStore) Put(ctx context.Context, spec Spec, lastRev uint64) (uint64, error) {
	if err := frame.ValidateStream(spec.Name); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if lastRev > 0 {
		e, ok := m.entries[spec.Name]
		if !ok {
			return 0, fmt.Errorf("%w: %s", ErrNotFound, spec.Name)
		}
		if e.Revision != lastRev {
			return 0, fmt.Errorf("%w: stream %s changed since that revision", ErrConflict, spec.Name)
		}
	}
	return m.set(ctx, spec), nil
}

// Delete removes a stream.
func (m *MemoryStore) Delete(ctx context.Context, name string, lastRev uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if lastRev > 0 && e.Revision != lastRev {
		return fmt.Errorf("%w: stream %s changed since that revision", ErrConflict, name)
	}
	delete(m.entries, name)
	m.rev++
	m.notify(ctx, Change{Name: name, Revision: m.rev, Deleted: true})
	return nil
}

// set stores spec under a new revision; m.mu is held.
func (m *MemoryStore) set(ctx context.Context, spec Spec) uint64 {
	if m.entries == nil {
		m.entries = map[string]Entry{}
	}
	m.rev++
	m.entries[spec.Name] = Entry{Spec: spec, Revision: m.rev}
	m.notify(ctx, Change{Name: spec.Name, Revision: m.rev, Spec: spec})
	return m.rev
}

// notify hands c to every watcher; m.mu is held, so changes reach watchers in revision order. A
// watcher's buffer bounds how far it may lag; beyond it the writer waits for it (or for ctx).
func (m *MemoryStore) notify(ctx context.Context, c Change) {
	for w := range m.watchers {
		select {
		case w.ch <- c:
		case <-w.done:
		case <-ctx.Done():
		}
	}
}

// Watch delivers the stored streams, Ready, then every change until ctx ends.
func (m *MemoryStore) Watch(ctx context.Context, fn func(Change)) error {
	w := &memWatch{ch: make(chan Change, 64), done: ctx.Done()}
	m.mu.Lock()
	initial := make([]Entry, 0, len(m.entries))
	for _, e := range m.entries {
		initial = append(initial, e)
	}
	if m.watchers == nil {
		m.watchers = map[*memWatch]struct{}{}
	}
	m.watchers[w] = struct{}{}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.watchers, w)
		m.mu.Unlock()
	}()
	slices.SortFunc(initial, func(a, b Entry) int { return cmp.Compare(a.Revision, b.Revision) })
	for _, e := range initial {
		fn(Change{Name: e.Spec.Name, Revision: e.Revision, Spec: e.Spec})
	}
	fn(Change{Ready: true})
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c := <-w.ch:
			fn(c)
		}
	}
}

// decode parses a stored value and opens its source's sealed password.
func (s *KVStore) decode(b []byte) (Spec, error) {
	spec, err := DecodeSpec(b)
	if err != nil {
		return Spec{}, err
	}
	if spec.Source, err = s.Sealer.openSource(spec.Name, spec.Source); err != nil {
		return Spec{}, err
	}
	return spec, nil
}
