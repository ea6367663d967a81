package classify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/analyze/classify/manifest"
	"github.com/vigil-video/vigil/analyze/classify/store"
	"github.com/vigil-video/vigil/pkg/backoff"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/onnx"
)

// RegistryConfig configures a Registry.
type RegistryConfig struct {
	// Runtime runs the classifiers. Required.
	Runtime *onnx.Runtime
	// Store is the object store the classifiers live in. Required.
	Store *store.Store
	// Session configures each classifier's onnxruntime session. Default: the zero value (one
	// thread, no spinning, batches of 16).
	Session onnx.SessionOptions
	// Log receives load and unload events. Default slog.Default().
	Log *slog.Logger
}

// Registry keeps every classifier of the store loaded: a watcher follows the bucket and loads
// each new or replaced classifier (checking its SHA-256 against the registered digest and
// running it once), and unloads deleted ones. A classifier that fails to load is not run, and
// Status says why. Create it with OpenRegistry; Close stops the watcher and closes the
// classifiers. Safe for concurrent use.
type Registry struct {
	cfg RegistryConfig
	log *slog.Logger

	mu        sync.Mutex
	loaded    map[string]*loadedClassifier
	failed    map[string]Status
	pending   map[string]*Classifier // by object NUID: loaded by Register, awaiting the watcher
	processed map[string]bool        // object NUIDs the watcher has handled
	changed   chan struct{}          // closed and replaced whenever processed grows
	closed    bool

	ready     chan struct{}
	readyOnce sync.Once
	cancel    context.CancelFunc
	done      chan struct{}
}

type loadedClassifier struct {
	c        *Classifier
	entry    store.Entry
	loadedAt time.Time
}

// Status describes one classifier of the store as this registry sees it.
type Status struct {
	// Name is the classifier's name.
	Name string `json:"name"`
	// State is "loaded" (it runs) or "failed" (it does not; Error says why).
	State string `json:"state"`
	// Error says why a failed classifier does not run.
	Error string `json:"error,omitempty"`
	// Manifest is the registered manifest (absent when it could not be read).
	Manifest *manifest.Manifest `json:"manifest,omitempty"`
	// Size is the model's size in bytes; LoadedAt when this process loaded it.
	Size uint64 `json:"size,omitempty"`
	// LoadedAt is when this process loaded the running version.
	LoadedAt time.Time `json:"loaded_at,omitzero"`
}

// Status states.
const (
	StateLoaded = "loaded"
	StateFailed = "failed"
)

// OpenRegistry starts a Registry over cfg.Store and returns at once; Ready tells when the
// classifiers present at start have been loaded (or have failed). The watcher restarts by
// itself after errors and stops with Close.
func OpenRegistry(cfg RegistryConfig) (*Registry, error) {
	if cfg.Runtime == nil || cfg.Store == nil {
		return nil, errors.New("classifiers: registry needs a Runtime and a Store")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registry{cfg: cfg, log: cfg.Log, loaded: map[string]*loadedClassifier{}, failed: map[string]Status{},
		pending: map[string]*Classifier{}, processed: map[string]bool{}, changed: make(chan struct{}),
		ready: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	go r.run(ctx)
	return r, nil
}

// Ready is closed once the classifiers in the store when the registry opened are loaded or
// have failed.
func (r *Registry) Ready() <-chan struct{} { return r.ready }

// WaitReady waits until Ready or ctx ends.
func (r *Registry) WaitReady(ctx context.Context) error {
	select {
	case <-r.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("classifiers: not loaded yet: %w", ctx.Err())
	}
}

// Close stops the watcher and closes every classifier (after their running predictions).
func (r *Registry) Close() error {
	r.cancel()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	var errs []error
	for name, l := range r.loaded {
		errs = append(errs, l.c.Close())
		delete(r.loaded, name)
	}
	for nuid, c := range r.pending {
		errs = append(errs, c.Close())
		delete(r.pending, nuid)
	}
	return errors.Join(errs...)
}

// Changes returns a channel that is closed at the registry's next change (a classifier loaded,
// replaced, refused or unloaded). Call it again for the change after that.
func (r *Registry) Changes() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Runtime returns the onnxruntime the registry loads classifiers into.
func (r *Registry) Runtime() *onnx.Runtime { return r.cfg.Runtime }

// Classifiers returns the loaded classifiers, sorted by name. A classifier unloaded after the
// call fails its predictions with onnx.ErrClosed, which Runner skips.
func (r *Registry) Classifiers() []*Classifier {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Classifier, 0, len(r.loaded))
	for _, l := range r.loaded {
		out = append(out, l.c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].m.Name < out[j].m.Name })
	return out
}

// Get returns the loaded classifier called name.
func (r *Registry) Get(name string) (*Classifier, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.loaded[name]
	if !ok {
		return nil, false
	}
	return l.c, true
}

// Status lists every classifier the registry knows, loaded or failed, by name.
func (r *Registry) Status() []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Status
	for name, l := range r.loaded {
		m := l.entry.Manifest.Clone()
		out = append(out, Status{Name: name, State: StateLoaded, Manifest: &m, Size: l.entry.Size, LoadedAt: l.loadedAt})
	}
	for _, s := range r.failed {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Register checks model against m by loading it (see Load: shapes, labels, a test run), stores
// both (the manifest gets the model's SHA-256), and waits until this registry's watcher has
// taken the new version in, so that it runs here when Register returns; every other registry on
// the bucket loads it moments later. It replaces a classifier of the same name. Nothing is
// stored when the check fails.
func (r *Registry) Register(ctx context.Context, m manifest.Manifest, model []byte) (Status, error) {
	m = m.Clone()
	m.SetDefaults()
	if err := m.Validate(); err != nil {
		return Status{}, err
	}
	c, err := Load(ctx, r.cfg.Runtime, m, model, r.cfg.Session)
	if err != nil {
		return Status{}, err
	}
	e, err := r.cfg.Store.Put(ctx, m, model)
	if err != nil {
		_ = c.Close()
		return Status{}, err
	}
	c.m.SHA256 = e.Manifest.SHA256
	r.mu.Lock()
	if r.processed[e.NUID] || r.closed {
		_ = c.Close() // the watcher was quicker and loaded it itself
	} else {
		r.pending[e.NUID] = c
	}
	r.mu.Unlock()
	if err := r.awaitProcessed(ctx, e.NUID); err != nil {
		return Status{}, err
	}
	for _, s := range r.Status() {
		if s.Name == m.Name {
			if s.State == StateFailed {
				return s, fmt.Errorf("classifier %s: stored, but loading it failed: %s", m.Name, s.Error)
			}
			return s, nil
		}
	}
	return Status{}, fmt.Errorf("classifier %s: replaced or deleted while registering", m.Name)
}

// PutChecked checks model against m as Load does (shapes, labels, a test run), then stores
// both in st (the manifest gets the model's SHA-256), without loading anything else: for
// processes that register classifiers but do not run them (the command line). Nothing is
// stored when the check fails.
func PutChecked(ctx context.Context, rt *onnx.Runtime, st *store.Store, m manifest.Manifest, model []byte) (store.Entry, error) {
	m = m.Clone()
	m.SetDefaults()
	c, err := Load(ctx, rt, m, model, onnx.SessionOptions{})
	if err != nil {
		return store.Entry{}, err
	}
	_ = c.Close()
	return st.Put(ctx, m, model)
}

// awaitProcessed waits until the watcher has handled object version nuid.
func (r *Registry) awaitProcessed(ctx context.Context, nuid string) error {
	for {
		r.mu.Lock()
		done, ch := r.processed[nuid], r.changed
		r.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("classifiers: stored, but not loaded yet: %w", ctx.Err())
		case <-r.done:
			return errors.New("classifiers: registry closed")
		}
	}
}

// Delete removes classifier name from the store (store.ErrNotFound if absent) and waits
// until this registry has unloaded it.
func (r *Registry) Delete(ctx context.Context, name string) error {
	if err := r.cfg.Store.Delete(ctx, name); err != nil {
		return err
	}
	for {
		r.mu.Lock()
		_, isLoaded := r.loaded[name]
		_, isFailed := r.failed[name]
		ch := r.changed
		r.mu.Unlock()
		if !isLoaded && !isFailed {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("classifier %s: deleted, but not unloaded yet: %w", name, ctx.Err())
		case <-r.done:
			return nil
		}
	}
}

func (r *Registry) run(ctx context.Context) {
	defer close(r.done)
	// 100 ms doubling up to 5 s, without jitter, as the gallery's watcher.
	backoff.Loop(ctx, &backoff.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: -1},
		r.log, "classifier watcher", r.watch)
}

// watch follows the bucket until ctx ends or the watcher fails.
func (r *Registry) watch(ctx context.Context) error {
	w, err := r.cfg.Store.Watch(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	return bus.ConsumeWatch(ctx, w.Updates(), func() { r.readyOnce.Do(func() { close(r.ready) }) },
		func(info *jetstream.ObjectInfo) { r.apply(ctx, info) })
}

// apply loads, replaces or unloads the classifier an object update describes.
func (r *Registry) apply(ctx context.Context, info *jetstream.ObjectInfo) {
	name := info.Name
	r.mu.Lock()
	cur := r.loaded[name]
	pend := r.pending[info.NUID]
	delete(r.pending, info.NUID)
	// Versions of this classifier registered here but superseded before the watcher saw them
	// (a restarted watcher delivers only the last version): release them and their waiters.
	var stale []*Classifier
	for nuid, c := range r.pending {
		if c.m.Name == name {
			stale = append(stale, c)
			delete(r.pending, nuid)
			r.processed[nuid] = true
		}
	}
	r.mu.Unlock()
	for _, c := range stale {
		_ = c.Close()
	}
	if cur != nil && cur.entry.NUID == info.NUID && !info.Deleted {
		r.markProcessed(info.NUID)
		return // already running this version
	}
	var next *loadedClassifier
	var failure *Status
	switch {
	case info.Deleted:
		if pend != nil {
			_ = pend.Close()
		}
	case pend != nil:
		e, err := store.EntryOf(info)
		if err == nil && e.Manifest.SHA256 != pend.m.SHA256 {
			err = fmt.Errorf("%w: the stored manifest registers sha256 %s, the registered model's is %s", store.ErrDigest, e.Manifest.SHA256, pend.m.SHA256)
		}
		if err != nil {
			_ = pend.Close()
			failure = &Status{Name: name, State: StateFailed, Error: err.Error()}
			break
		}
		next = &loadedClassifier{c: pend, entry: e, loadedAt: time.Now().UTC()}
	default:
		e, model, err := r.cfg.Store.Get(ctx, name)
		var c *Classifier
		if err == nil && e.NUID != info.NUID {
			err = errSuperseded
		}
		if err == nil {
			c, err = Load(ctx, r.cfg.Runtime, e.Manifest, model, r.cfg.Session)
		}
		if errors.Is(err, errSuperseded) || errors.Is(err, store.ErrNotFound) || ctx.Err() != nil {
			if c != nil {
				_ = c.Close()
			}
			r.markProcessed(info.NUID)
			return // a later update (replacement or deletion) follows
		}
		if err != nil {
			st := Status{Name: name, State: StateFailed, Error: err.Error()}
			if e, ierr := store.EntryOf(info); ierr == nil {
				m := e.Manifest
				st.Manifest, st.Size = &m, e.Size
			}
			failure = &st
			break
		}
		next = &loadedClassifier{c: c, entry: e, loadedAt: time.Now().UTC()}
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		if next != nil {
			_ = next.c.Close()
		}
		return
	}
	old := r.loaded[name]
	delete(r.loaded, name)
	delete(r.failed, name)
	switch {
	case next != nil:
		r.loaded[name] = next
	case failure != nil:
		r.failed[name] = *failure
	}
	r.mu.Unlock()
	if old != nil {
		_ = old.c.Close() // waits for predictions still running on it
	}
	switch {
	case next != nil && old != nil:
		r.log.Info("classifier replaced", "classifier", name, "sha256", next.entry.Manifest.SHA256)
	case next != nil:
		r.log.Info("classifier loaded", "classifier", name, "sha256", next.entry.Manifest.SHA256, "labels", len(next.entry.Manifest.Labels))
	case failure != nil:
		r.log.Warn("classifier refused", "classifier", name, "err", failure.Error)
	case old != nil:
		r.log.Info("classifier unloaded", "classifier", name)
	}
	r.markProcessed(info.NUID)
}

var errSuperseded = errors.New("superseded")

func (r *Registry) markProcessed(nuid string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.processed[nuid] = true
	close(r.changed)
	r.changed = make(chan struct{})
}
