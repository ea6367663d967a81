package unknown

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vigil-video/vigil/pkg/bus"
)

// IndexConfig configures an Index.
type IndexConfig struct {
	// Bucket is the KV bucket. Default DefaultBucket.
	Bucket string
	// Threshold is the cosine similarity from which an embedding matches an unknown's centroid:
	// the one the clustering files tracks with (track.DefaultThreshold). Required, in (0, 1].
	Threshold float32
	// Retry is how long the watcher waits before it looks again for a missing bucket or restarts
	// after an error. Default 1s.
	Retry time.Duration
	// Log receives the watcher's warnings. Default slog.Default().
	Log *slog.Logger
}

// Index is a read-only, in-memory copy of the unknowns' centroids, kept current by a KV watcher,
// for matching live faces to unknown people. Open it; Close stops the watcher. Its methods are
// safe for concurrent use.
type Index struct {
	cfg    IndexConfig
	js     jetstream.JetStream
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.RWMutex
	centroids map[string]entry
}

type entry struct {
	rev uint64
	vec []float32
}

// Open loads the bucket's unknowns (waiting for the initial values, bounded by ctx) and keeps
// watching it. A bucket that does not exist yet (or a server without JetStream) is no error: the
// index starts empty and the watcher looks for the bucket every Retry until it appears.
func Open(ctx context.Context, js jetstream.JetStream, cfg IndexConfig) (*Index, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if !(cfg.Threshold > 0 && cfg.Threshold <= 1) {
		return nil, fmt.Errorf("unknown: index threshold %v outside (0, 1]", cfg.Threshold)
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	wctx, cancel := context.WithCancel(context.Background())
	x := &Index{cfg: cfg, js: js, cancel: cancel, done: make(chan struct{}), centroids: map[string]entry{}}
	loaded := make(chan struct{})
	go x.run(wctx, loaded)
	select {
	case <-loaded:
		return x, nil
	case <-ctx.Done():
		x.Close()
		return nil, fmt.Errorf("unknown: load %s: %w", cfg.Bucket, ctx.Err())
	}
}

// Close stops the watcher and waits for it. Safe on a nil *Index.
func (x *Index) Close() {
	if x == nil {
		return
	}
	x.cancel()
	<-x.done
}

// Len returns the number of unknowns held.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.centroids)
}

// Match returns the unknown whose centroid is most similar to emb, with that cosine similarity,
// and ok when it reaches the threshold. emb need not be normalised.
func (x *Index) Match(emb []float32) (id string, similarity float32, ok bool) {
	v := Normalize(emb)
	if v == nil {
		return "", 0, false
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	best := float32(-2)
	for k, e := range x.centroids {
		if len(e.vec) != len(v) {
			continue
		}
		if s := Dot(e.vec, v); s > best || s == best && k < id {
			id, best = k, s
		}
	}
	if id == "" {
		return "", 0, false
	}
	return id, best, best >= x.cfg.Threshold
}

// run watches the bucket until ctx ends; loaded is closed once the initial values are in (or
// the bucket turned out not to exist yet).
func (x *Index) run(ctx context.Context, loaded chan struct{}) {
	defer close(x.done)
	var once sync.Once
	ready := func() { once.Do(func() { close(loaded) }) }
	logged := ""
	for ctx.Err() == nil {
		err := x.watch(ctx, ready)
		if ctx.Err() != nil {
			return
		}
		// No bucket yet, or no JetStream: the index is empty until there is one.
		ready()
		if msg := err.Error(); !errors.Is(err, jetstream.ErrBucketNotFound) && msg != logged {
			logged = msg // once per distinct error, not every Retry
			x.cfg.Log.Warn("unknowns index: watching the bucket failed; retrying", "bucket", x.cfg.Bucket, "err", err)
		}
		t := time.NewTimer(x.cfg.Retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (x *Index) watch(ctx context.Context, ready func()) error {
	kv, err := x.js.KeyValue(ctx, x.cfg.Bucket)
	if err != nil {
		return err
	}
	w, err := kv.Watch(ctx, KeyPrefix+">")
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	fresh := map[string]entry{} // the initial values replace what a previous watch left
	initial := true
	initialDone := func() {
		if initial { // keys deleted while no watch ran are gone
			x.mu.Lock()
			for k := range x.centroids {
				if _, seen := fresh[k]; !seen {
					delete(x.centroids, k)
				}
			}
			x.mu.Unlock()
		}
		initial = false
		ready()
	}
	return bus.ConsumeWatch(ctx, w.Updates(), initialDone, func(e jetstream.KeyValueEntry) {
		id := strings.TrimPrefix(e.Key(), KeyPrefix)
		if initial {
			fresh[id] = entry{}
		}
		x.apply(id, e)
	})
}

func (x *Index) apply(id string, e jetstream.KeyValueEntry) {
	var vec []float32
	if e.Operation() == jetstream.KeyValuePut {
		_, c, err := ParseRecord(e.Value())
		if err != nil {
			x.cfg.Log.Warn("unknowns index: skipping a record", "key", e.Key(), "err", err)
		} else {
			vec = Normalize(c)
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.centroids[id]; ok && old.rev > e.Revision() {
		return
	}
	if vec == nil {
		delete(x.centroids, id)
		return
	}
	x.centroids[id] = entry{rev: e.Revision(), vec: vec}
}
