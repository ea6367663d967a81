// Package gallery is the face gallery: enrolled identities with their photos' embeddings, kept in
// a JetStream KV bucket (Store) and mirrored into memory by every process that matches faces
// (Gallery, a KV watcher over an Index), so an enrollment anywhere takes effect everywhere within
// moments, without a restart.
//
// The package is pure Go: it sees embeddings as float32 slices and never touches images.
package gallery

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/pkg/backoff"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/result"
)

// Gallery keeps an in-memory Index of a Store's bucket up to date through a KV watcher and
// answers 1:N matches from it. Create it with Watch; Close stops the watcher. Safe for concurrent
// use.
type Gallery struct {
	idx       *Index
	kv        jetstream.KeyValue
	model     string
	threshold float32
	log       *slog.Logger

	corruptMu sync.Mutex
	corrupt   map[string]bool // ids whose current record does not decode

	ready     chan struct{}
	readyOnce sync.Once
	cancel    context.CancelFunc
	done      chan struct{}
}

// WatchConfig configures a Gallery.
type WatchConfig struct {
	// Threshold is Match's similarity threshold. Default DefaultThreshold.
	Threshold float32
	// Model is the embedding model the querying pipeline uses; records made with another model
	// are left out of the index (and logged). Default the store's model.
	Model string
	// Log receives the watcher's warnings. Default slog.Default().
	Log *slog.Logger
}

// Watch starts a Gallery over store's bucket and returns at once; Ready tells when the bucket's
// contents at start have been loaded (WaitReady waits for it). The watcher reconnects by itself
// and stops with Close.
func Watch(store *Store, cfg WatchConfig) *Gallery {
	if cfg.Threshold == 0 {
		cfg.Threshold = DefaultThreshold
	}
	if cfg.Model == "" {
		cfg.Model = store.cfg.Model
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gallery{idx: NewIndex(), kv: store.kv, model: cfg.Model, threshold: cfg.Threshold, log: cfg.Log,
		ready: make(chan struct{}), cancel: cancel, done: make(chan struct{}), corrupt: map[string]bool{}}
	go g.run(ctx)
	return g
}

// Close stops the watcher and waits for it. Match keeps answering from the last state.
func (g *Gallery) Close() {
	g.cancel()
	<-g.done
}

// Ready is closed once the identities present when the watch started are in the index.
func (g *Gallery) Ready() <-chan struct{} { return g.ready }

// WaitReady waits until Ready or ctx ends.
func (g *Gallery) WaitReady(ctx context.Context) error {
	select {
	case <-g.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("gallery: not loaded yet: %w", ctx.Err())
	}
}

// Threshold is the similarity threshold Match uses.
func (g *Gallery) Threshold() float32 { return g.threshold }

// Len returns the number of identities in the index.
func (g *Gallery) Len() int { return g.idx.Len() }

// Match returns the name of the enrolled identity most similar to emb (an L2-normalised
// embedding of the gallery's model) with its similarity and true, when that similarity reaches
// the threshold; otherwise "", the best similarity (0 with an empty gallery) and false.
func (g *Gallery) Match(emb []float32) (name string, similarity float32, ok bool) {
	return g.idx.Match(emb, g.threshold)
}

// Label sets faces[i].Identity to the match of embeddings[i] (see Match) wherever there is one,
// as an analyzer does before publishing a result, and returns the number of faces matched.
// Faces without an embedding, or whose embedding matches no one, are left as they are.
func (g *Gallery) Label(faces []result.Face, embeddings [][]float32) int {
	n := 0
	for i := range faces {
		if i >= len(embeddings) || embeddings[i] == nil {
			continue
		}
		if name, sim, ok := g.Match(embeddings[i]); ok {
			faces[i].Identity = &result.Identity{Name: name, Similarity: sim}
			n++
		}
	}
	return n
}

// Search returns up to k identities with similarity >= minSim to emb, most similar first.
func (g *Gallery) Search(emb []float32, k int, minSim float32) []Candidate {
	return g.idx.Search(emb, k, minSim)
}

// Apply puts ident into the index at once (a write-through after a Store write, so the writer
// reads its own write before the watcher delivers it). Older revisions never replace newer ones.
func (g *Gallery) Apply(ident Identity) {
	if ident.Model != g.model {
		return
	}
	embs := make([][]float32, len(ident.Photos))
	for i, p := range ident.Photos {
		embs[i] = p.Embedding
	}
	g.idx.Put(ident.ID, ident.Name, embs, ident.Revision)
}

// Forget removes identity id from the index at once (a write-through after Store.Delete). rev is
// the revision the deletion was made against, 0 when unknown.
func (g *Gallery) Forget(id string, rev uint64) { g.idx.Remove(id, rev+1) }

func (g *Gallery) run(ctx context.Context) {
	defer close(g.done)
	backoff.Loop(ctx, watchBackoff(), g.log, "gallery watcher", g.watch)
}

// watchBackoff spaces the watcher's restarts: 100 ms doubling up to 5 s, without jitter.
func watchBackoff() *backoff.Backoff {
	return &backoff.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: -1}
}

// watch follows the bucket until ctx ends or the watcher fails.
func (g *Gallery) watch(ctx context.Context) error {
	w, err := g.kv.Watch(ctx, KeyPrefix+">")
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	return bus.ConsumeWatch(ctx, w.Updates(), func() { g.readyOnce.Do(func() { close(g.ready) }) }, g.applyEntry)
}

func (g *Gallery) applyEntry(e jetstream.KeyValueEntry) {
	id := strings.TrimPrefix(e.Key(), KeyPrefix)
	ident, err := decodeRecord(id, e.Value())
	g.markCorrupt(id, e.Operation() == jetstream.KeyValuePut && err != nil)
	if e.Operation() != jetstream.KeyValuePut {
		g.idx.Remove(id, e.Revision())
		return
	}
	if err != nil {
		g.log.Warn("gallery: skipping a corrupt identity record", "key", e.Key(), "revision", e.Revision(), "err", err)
		g.idx.Remove(id, e.Revision())
		return
	}
	if ident.Model != g.model {
		g.log.Warn("gallery: skipping a record made with another embedding model", "key", e.Key(), "model", ident.Model, "want", g.model)
		g.idx.Remove(id, e.Revision())
		return
	}
	ident.Revision = e.Revision()
	g.Apply(ident)
}

func (g *Gallery) markCorrupt(id string, corrupt bool) {
	g.corruptMu.Lock()
	defer g.corruptMu.Unlock()
	if corrupt {
		g.corrupt[id] = true
	} else {
		delete(g.corrupt, id)
	}
}

// Corrupt returns how many records in the bucket, as last seen by the watcher, do not decode
// and are therefore left out of matching (each was logged when seen).
func (g *Gallery) Corrupt() int {
	g.corruptMu.Lock()
	defer g.corruptMu.Unlock()
	return len(g.corrupt)
}
