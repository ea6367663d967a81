package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"
)

// Role is the ingest role: one goroutine per stream, each reading its source and publishing
// frames. Fill the exported fields, then call Run.
type Role struct {
	// Conn is the NATS connection frames are published on. Required.
	Conn *nats.Conn
	// Streams lists the streams to ingest; defaults are applied and each is validated by Run.
	Streams []StreamConfig
	// DecodeSlots bounds the streams' file decoding, shared with whatever else holds it (a
	// Manager in the same process). Default nil: no bound.
	DecodeSlots *DecodeSlots
	// Log receives the role's logs. Default slog.Default().
	Log *slog.Logger

	mu      sync.Mutex
	runners []*streamRunner
}

// Run ingests every stream until ctx ends or, when every stream is finite (Once or a file
// without Loop), until all have ended. It returns the first stream error, joined with the
// others; streams keep running when a sibling fails.
func (r *Role) Run(ctx context.Context) error {
	if r.Conn == nil {
		return errors.New("ingest: no NATS connection")
	}
	if r.Log == nil {
		r.Log = slog.Default()
	}
	seen := map[string]bool{}
	for i := range r.Streams {
		r.Streams[i].SetDefaults()
		if err := r.Streams[i].Validate(); err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		if seen[r.Streams[i].Name] {
			return fmt.Errorf("ingest: stream %q listed twice", r.Streams[i].Name)
		}
		seen[r.Streams[i].Name] = true
	}
	var wg sync.WaitGroup
	errs := make([]error, len(r.Streams))
	for i, cfg := range r.Streams {
		cfg := cfg
		run := &streamRunner{cfg: cfg, nc: r.Conn, log: r.Log, decode: r.DecodeSlots}
		paced := cfg.Realtime && !cfg.Once
		run.open = func(ctx context.Context) (Source, error) {
			return Open(ctx, cfg.Source, run.sampling(paced).with(cfg.Loop && !cfg.Once, paced))
		}
		r.mu.Lock()
		r.runners = append(r.runners, run)
		r.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run.run(ctx); err != nil {
				r.Log.Error("stream stopped", "stream", cfg.Name, "err", err)
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Stats returns each stream's counters, keyed by stream name.
func (r *Role) Stats() map[string]StreamStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]StreamStats, len(r.runners))
	for _, run := range r.runners {
		out[run.cfg.Name] = run.stats()
	}
	return out
}
