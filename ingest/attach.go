package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"
)

// Attached runs sources that were opened elsewhere (a browser's WHIP session) through the same
// sampling, downscaling, encoding and publishing path as the streams Role and Manager run. One
// source per stream at a time: attaching a new one to a stream stops the old one first.
// Fill the exported fields; Close stops every source and waits.
type Attached struct {
	// Conn is the NATS connection frames are published on. Required.
	Conn *nats.Conn
	// Defaults gives each attached stream its rate, size and quality; Name and Source are set
	// per attachment. Zero fields take StreamConfig's defaults.
	Defaults StreamConfig
	// Log receives the runners' logs. Default slog.Default().
	Log *slog.Logger

	mu      sync.Mutex
	closed  bool
	running map[string]*attachedRun
	wg      sync.WaitGroup
}

type attachedRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	cfg    StreamConfig
	obs    *streamObs // counters for Statuses and the collector
}

// ErrAttachedClosed is returned by Attach after Close.
var ErrAttachedClosed = errors.New("ingest: attached sources closed")

// Attach starts publishing src as stream name and returns at once; the runner reads src until it
// ends or fails, then Closes it. It takes ownership of src even when it returns an error.
func (a *Attached) Attach(name string, src Source) error {
	cfg := a.Defaults
	cfg.Name, cfg.Source = name, "attached:"+name
	cfg.Once, cfg.Loop, cfg.Realtime = false, false, false
	cfg.SetDefaults()
	if err := cfg.validateSettings(); err != nil {
		src.Close()
		return err
	}
	if a.Log == nil {
		a.Log = slog.Default()
	}
	a.mu.Lock()
	for a.running[name] != nil && !a.closed {
		old := a.running[name]
		old.cancel()
		a.mu.Unlock()
		<-old.done // the old runner has closed its source and left the map
		a.mu.Lock()
	}
	defer a.mu.Unlock()
	if a.closed {
		src.Close()
		return ErrAttachedClosed
	}
	if a.running == nil {
		a.running = map[string]*attachedRun{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &attachedRun{cancel: cancel, done: make(chan struct{}), cfg: cfg, obs: &streamObs{}}
	a.running[name] = run
	r := &streamRunner{cfg: cfg, nc: a.Conn, log: a.Log, obs: run.obs, open: func(context.Context) (Source, error) { return src, nil }}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(run.done)
		defer cancel()
		if err := r.run(ctx); err != nil && !errors.Is(err, ErrEndOfStream) {
			a.Log.Info("attached source ended", "stream", name, "err", err)
		}
		a.mu.Lock()
		if a.running[name] == run {
			delete(a.running, name)
		}
		a.mu.Unlock()
	}()
	return nil
}

// Close stops every attached source and waits for the runners to finish.
func (a *Attached) Close() {
	a.mu.Lock()
	a.closed = true
	for _, run := range a.running {
		run.cancel()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// validateSettings checks the rate, size and quality fields (not the name's source).
func (c StreamConfig) validateSettings() error {
	probe := c
	probe.Source = "/attached"
	if err := probe.Validate(); err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	return nil
}
