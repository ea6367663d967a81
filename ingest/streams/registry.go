package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/admit"
)

// Registry is the stream list of one ingest process: it seeds the store with the streams from
// flags and the streams file, watches the store and has its Runner run the streams assigned to
// this node, and serves the list over HTTP (Mount) and NATS (ServeNATS).
//
// Every change, from this process or another, goes through the store and reaches every
// Registry by its watch, in revision order; a request that changes a stream answers once this
// process has applied the change (the runner started, reconfigured or stopped), within
// ApplyTimeout.
//
// Fill the exported fields, Start, Mount and ServeNATS as needed; Close when done (before
// closing the Runner). Fields must not change after Start.
type Registry struct {
	// Runner runs the streams. Required.
	Runner Runner
	// Store persists the list. Default: a MemoryStore (this process only).
	Store Store
	// Node is this ingest's node name (ValidateNode); "" runs every stream. Default "".
	Node string
	// Seed are the streams from flags and the streams file. Start writes each to the store
	// (defaults set, validated; Node filled in when empty), replacing a stored stream of the same
	// name: the file is authoritative for the streams it names, and changes made to them at run
	// time last until the next start. Streams created at run time are kept. Enabled is taken as
	// given (ParseFile and ingest.SpecOf set it to true unless told otherwise). Default none.
	Seed []Spec
	// Policy says which sources streams created or changed through the API (HTTP and NATS) may
	// read; Seed streams are not subject to it. Default: the zero SourcePolicy (no local files,
	// no cameras, no loopback or link-local hosts).
	Policy SourcePolicy
	// SourceErrorDetails shows a failing source's own error (connection refused, an RTSP status,
	// a file error) in Status.Error. Default false: Status.Error says only that the source (its
	// URL redacted) could not be opened or read, because the details tell an API caller what a
	// remote host answered, which would make the API a scanner of networks the caller cannot
	// reach. The ingest's log always has the details.
	SourceErrorDetails bool
	// MaxStreams bounds the streams in the store; creating more fails with 409
	// too_many_streams. Default 1000.
	MaxStreams int
	// PushMaxBytes bounds a pushed image's body. Default DefaultPushMaxBytes (10 MiB); Mount
	// replaces it with the server's --max-push-mb (httpapi.Server.Limits[PushSetting]) when set.
	PushMaxBytes int64
	// PushMaxPixels bounds a pushed image's width x height. Default DefaultMaxPixels.
	PushMaxPixels int
	// PushAdmission bounds the push requests holding a body at once, over all streams
	// (admit.Gate.Enter: MaxConcurrent + MaxWaiting of them); beyond it a push gets 503
	// server_busy with Retry-After before its body is read. Default DefaultPushAdmission().
	PushAdmission *admit.Gate
	// ApplyTimeout bounds how long a request waits for its change to be applied here.
	// Default 20 s.
	ApplyTimeout time.Duration
	// Log receives one line per applied change and per failure, never per frame.
	// Default slog.Default().
	Log *slog.Logger
	// Attached, when set, lists the streams that run outside the list (browsers publishing over
	// WHIP: ingest.Attached.Statuses): List shows them beside the stored streams and Get finds
	// them; they cannot be changed through the Registry (they end with their publisher). A stored
	// stream of the same name hides one. Default none.
	Attached func() []Status

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the watch goroutine has exited

	mu      sync.Mutex
	desired map[string]Entry
	seen    uint64        // highest revision the watch has applied
	ready   bool          // the initial values have been applied
	changed chan struct{} // closed and replaced after each applied change

	subMu   sync.Mutex
	sub     *nats.Subscription
	closed  bool
	inFlite sync.WaitGroup // NATS requests being answered
}

func (r *Registry) setDefaults() {
	if r.Store == nil {
		r.Store = &MemoryStore{}
	}
	if r.MaxStreams <= 0 {
		r.MaxStreams = 1000
	}
	if r.PushMaxBytes <= 0 {
		r.PushMaxBytes = DefaultPushMaxBytes
	}
	if r.PushMaxPixels <= 0 {
		r.PushMaxPixels = DefaultMaxPixels
	}
	if r.PushAdmission == nil {
		r.PushAdmission = DefaultPushAdmission()
	}
	if r.ApplyTimeout <= 0 {
		r.ApplyTimeout = 20 * time.Second
	}
	if r.Log == nil {
		r.Log = slog.Default()
	}
}

// Start checks the configuration, writes the Seed streams to the store, and starts watching the
// store; it returns once every stored stream assigned to this node has been handed to the Runner
// (a restarted ingest resumes its streams here), or with the first error.
func (r *Registry) Start(ctx context.Context) error {
	if r.Runner == nil {
		return errors.New("streams: no Runner")
	}
	if r.ctx != nil {
		return errors.New("streams: registry already started")
	}
	if err := ValidateNode(r.Node); err != nil {
		return fmt.Errorf("streams: --node: %w", err)
	}
	if err := r.Policy.Validate(); err != nil {
		return err
	}
	r.setDefaults()
	seeds := make([]Spec, 0, len(r.Seed))
	names := map[string]bool{}
	for _, s := range r.Seed {
		s.SetDefaults()
		if s.Node == "" {
			s.Node = r.Node
		}
		if err := s.Validate(r.Runner.CheckSource); err != nil {
			return fmt.Errorf("streams: %w", err)
		}
		if names[s.Name] {
			return fmt.Errorf("streams: %w: stream %q given twice", ErrInvalid, s.Name)
		}
		names[s.Name] = true
		seeds = append(seeds, s)
	}
	for _, s := range seeds {
		e, err := r.Store.Get(ctx, s.Name)
		switch {
		case err == nil && e.Spec == s:
			continue
		case err != nil && !errors.Is(err, ErrNotFound):
			return fmt.Errorf("streams: seed %s: %w", s.Name, err)
		}
		if _, err := r.Store.Put(ctx, s, 0); err != nil {
			return fmt.Errorf("streams: seed %s: %w", s.Name, err)
		}
	}
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.done = make(chan struct{})
	r.desired = map[string]Entry{}
	r.changed = make(chan struct{})
	first := make(chan error, 1)
	go r.watchLoop(first)
	for {
		r.mu.Lock()
		ready, ch := r.ready, r.changed
		r.mu.Unlock()
		if ready {
			return nil
		}
		select {
		case <-ch:
		case err := <-first:
			r.cancel()
			<-r.done
			return fmt.Errorf("streams: %w", err)
		case <-ctx.Done():
			r.cancel()
			<-r.done
			return fmt.Errorf("streams: loading the stream list: %w", ctx.Err())
		}
	}
}

// Close stops answering NATS requests (waiting for the ones in progress) and stops watching the
// store. The streams keep running in the Runner until it is closed; they are not removed from the
// store, so the next start resumes them.
func (r *Registry) Close() error {
	r.subMu.Lock()
	r.closed = true
	sub := r.sub
	r.sub = nil
	r.subMu.Unlock()
	var err error
	if sub != nil {
		err = sub.Unsubscribe()
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
			err = nil
		}
	}
	if r.cancel != nil {
		r.cancel()
		<-r.done
	}
	r.inFlite.Wait()
	return err
}

// watchLoop applies the store's changes until Close, re-watching after a failure. Before the
// first Ready, a failure is sent to first and ends the loop.
func (r *Registry) watchLoop(first chan<- error) {
	defer close(r.done)
	wait := time.Second
	for {
		present := map[string]bool{}
		replaying := true
		err := r.Store.Watch(r.ctx, func(c Change) {
			if replaying && !c.Ready {
				present[c.Name] = true
			}
			if c.Ready {
				replaying = false
				r.forgetMissing(present)
			}
			r.apply(c)
		})
		if r.ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		ready := r.ready
		r.mu.Unlock()
		if !ready {
			first <- err
			return
		}
		r.Log.Warn("streams: watching the store failed; retrying", "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// forgetMissing removes the streams a re-watch did not deliver (purged from the store while the
// watch was down).
func (r *Registry) forgetMissing(present map[string]bool) {
	r.mu.Lock()
	var gone []Entry
	for name, e := range r.desired {
		if !present[name] {
			gone = append(gone, e)
			delete(r.desired, name)
		}
	}
	r.mu.Unlock()
	for _, e := range gone {
		r.Log.Info("stream removed", "stream", e.Spec.Name)
		if r.runsHere(e.Spec) {
			r.Runner.Remove(e.Spec.Name)
		}
	}
}

// runsHere reports whether this node runs spec (see the package comment).
func (r *Registry) runsHere(spec Spec) bool { return r.Node == "" || spec.Node == r.Node }

// apply hands one change to the Runner. Changes arrive in revision order from one goroutine.
func (r *Registry) apply(c Change) {
	if c.Ready {
		r.mu.Lock()
		r.ready = true
		r.broadcast()
		r.mu.Unlock()
		return
	}
	r.mu.Lock()
	old, had := r.desired[c.Name]
	if had && c.Revision <= old.Revision {
		r.mu.Unlock()
		return
	}
	if c.Deleted {
		// The Runner hears of the removal before Delete's waiters can see it, so that their
		// Settle finds the stream retired rather than still running.
		r.mu.Unlock()
		if had {
			r.Log.Info("stream removed", "stream", c.Name, "revision", c.Revision)
			if r.runsHere(old.Spec) {
				r.Runner.Remove(c.Name)
			}
		}
		r.mu.Lock()
		delete(r.desired, c.Name)
		r.mu.Unlock()
		r.notify(c.Revision)
		return
	}
	spec := c.Spec
	spec.SetDefaults()
	err := c.Err
	if err == nil {
		err = spec.Validate(r.Runner.CheckSource)
	}
	if err != nil {
		// Written by something other than this API: keep what runs, say why once.
		r.seen = max(r.seen, c.Revision)
		r.broadcast()
		r.mu.Unlock()
		r.Log.Error("streams: ignoring an invalid stored stream", "key", truncate(c.Name, 64), "revision", c.Revision, "err", err)
		return
	}
	r.desired[c.Name] = Entry{Spec: spec, Revision: c.Revision}
	r.mu.Unlock()
	here := r.runsHere(spec)
	r.Log.Info("stream configured", "stream", spec.Name, "revision", c.Revision, "source", RedactSource(spec.Source),
		"enabled", spec.Enabled, "fps", spec.FPS, "node", spec.Node, "runs_here", here)
	switch {
	case here:
		r.Runner.Apply(spec)
	case had && r.runsHere(old.Spec):
		r.Runner.Remove(spec.Name)
	}
	r.notify(c.Revision)
}

func (r *Registry) notify(rev uint64) {
	r.mu.Lock()
	r.seen = max(r.seen, rev)
	r.broadcast()
	r.mu.Unlock()
}

// broadcast wakes every waiter; r.mu is held.
func (r *Registry) broadcast() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// waitApplied waits until cond (called with r.mu held) holds, ctx ends or the Registry closes.
func (r *Registry) waitApplied(ctx context.Context, cond func() bool) error {
	for {
		r.mu.Lock()
		ok, ch := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-r.ctx.Done():
			return errors.New("the ingest is shutting down")
		}
	}
}

// settle waits until revision rev of stream name is applied here and the Runner carried it out.
func (r *Registry) settle(ctx context.Context, name string, rev uint64) error {
	if err := r.waitApplied(ctx, func() bool { return r.seen >= rev }); err != nil {
		return fmt.Errorf("stream %s revision %d is stored: %w", name, rev, err)
	}
	if err := r.Runner.Settle(ctx, name); err != nil {
		return fmt.Errorf("stream %s revision %d is stored: %w", name, rev, err)
	}
	return nil
}

// started reports whether Start has succeeded.
func (r *Registry) started() error {
	if r.ctx == nil {
		return errors.New("streams: registry not started")
	}
	return nil
}

// List returns every stream, sorted by name.
func (r *Registry) List() []Status {
	r.mu.Lock()
	names := make([]string, 0, len(r.desired))
	for n := range r.desired {
		names = append(names, n)
	}
	r.mu.Unlock()
	slices.Sort(names)
	out := make([]Status, 0, len(names))
	stored := make(map[string]bool, len(names))
	for _, n := range names {
		stored[n] = true
		if st, err := r.Get(n); err == nil {
			out = append(out, st)
		}
	}
	if r.Attached != nil {
		for _, st := range r.Attached() {
			if !stored[st.Name] {
				out = append(out, st)
			}
		}
		slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	}
	return out
}

// Get returns one stream's status, or an error wrapping ErrNotFound.
func (r *Registry) Get(name string) (Status, error) {
	r.mu.Lock()
	e, ok := r.desired[name]
	r.mu.Unlock()
	if !ok {
		if r.Attached != nil {
			for _, st := range r.Attached() {
				if st.Name == name {
					return st, nil
				}
			}
		}
		return Status{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	st := Status{Spec: e.Spec.Redacted(), Revision: e.Revision, RunsHere: r.runsHere(e.Spec)}
	switch {
	case !st.RunsHere:
		st.State = StateElsewhere
	default:
		rs, ok := r.Runner.Status(name)
		switch {
		case ok:
			st.State, st.Error = rs.State, rs.Error
			if st.Error != "" && !r.SourceErrorDetails {
				st.Error = fmt.Sprintf("source %s could not be opened or read; the ingest's log has the details", RedactSource(e.Spec.Source))
			}
			st.Stats = &RunStats{Decoded: rs.Decoded, Published: rs.Published, Dropped: rs.Dropped, SampledOut: rs.SampledOut, Reconnects: rs.Reconnects,
				FPS: rs.FPS, Width: rs.Width, Height: rs.Height}
			if !rs.LastPublished.IsZero() {
				t := rs.LastPublished.UTC()
				st.Stats.LastPublished = &t
			}
		case !e.Spec.Enabled:
			st.State = StateDisabled
		default:
			st.State = StateConnecting
		}
	}
	return st, nil
}

// prepare sets defaults, keeps a stored password the client only saw redacted, validates, and
// applies the source policy to a source the request sets or changes.
func (r *Registry) prepare(ctx context.Context, spec Spec, old *Entry) (Spec, error) {
	spec.SetDefaults()
	if old != nil && spec.Source != old.Spec.Source && spec.Source == RedactSource(old.Spec.Source) {
		spec.Source = old.Spec.Source
	}
	if err := spec.Validate(r.Runner.CheckSource); err != nil {
		return Spec{}, err
	}
	if !spec.IsPush() && (old == nil || spec.Source != old.Spec.Source) {
		if err := r.Policy.Check(ctx, spec.Source, r.runsHere(spec)); err != nil {
			return Spec{}, fmt.Errorf("stream %s: %w", spec.Name, err)
		}
	}
	return spec, nil
}

func (r *Registry) entry(name string) (Entry, bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.desired[name]
	return e, ok, len(r.desired)
}

// Create adds a stream that must not exist yet, and returns its status once applied here.
func (r *Registry) Create(ctx context.Context, spec Spec) (Status, error) {
	if err := r.started(); err != nil {
		return Status{}, err
	}
	spec, err := r.prepare(ctx, spec, nil)
	if err != nil {
		return Status{}, err
	}
	if _, ok, n := r.entry(spec.Name); !ok && n >= r.MaxStreams {
		return Status{}, fmt.Errorf("%w: the store holds %d streams (the limit)", ErrLimit, n)
	}
	rev, err := r.Store.Create(ctx, spec)
	if err != nil {
		return Status{}, err
	}
	if err := r.settle(ctx, spec.Name, rev); err != nil {
		return Status{}, err
	}
	return r.Get(spec.Name)
}

// Put creates or replaces stream name with spec (whose Name must be name or empty); with
// ifRev > 0 only if the stream's revision is still ifRev. It reports whether the stream is new.
func (r *Registry) Put(ctx context.Context, name string, spec Spec, ifRev uint64) (Status, bool, error) {
	if err := r.started(); err != nil {
		return Status{}, false, err
	}
	if spec.Name == "" {
		spec.Name = name
	} else if spec.Name != name {
		return Status{}, false, fmt.Errorf("%w: the body names stream %q, the path %q (streams are not renamed)", ErrInvalid, truncate(spec.Name, 64), name)
	}
	old, had, n := r.entry(name)
	var prev *Entry
	if had {
		prev = &old
	}
	spec, err := r.prepare(ctx, spec, prev)
	if err != nil {
		return Status{}, false, err
	}
	if !had && n >= r.MaxStreams {
		return Status{}, false, fmt.Errorf("%w: the store holds %d streams (the limit)", ErrLimit, n)
	}
	rev, err := r.Store.Put(ctx, spec, ifRev)
	if err != nil {
		return Status{}, false, err
	}
	if err := r.settle(ctx, name, rev); err != nil {
		return Status{}, false, err
	}
	st, err := r.Get(name)
	return st, !had, err
}

// Patch changes some fields of stream name; with ifRev > 0 only if its revision is still ifRev.
// Without ifRev, a concurrent change is merged by retrying on the newer revision.
func (r *Registry) Patch(ctx context.Context, name string, p Patch, ifRev uint64) (Status, error) {
	if err := r.started(); err != nil {
		return Status{}, err
	}
	for attempt := 0; ; attempt++ {
		e, err := r.Store.Get(ctx, name)
		if err != nil {
			return Status{}, err
		}
		if ifRev > 0 && e.Revision != ifRev {
			return Status{}, fmt.Errorf("%w: stream %s is at revision %d, not %d", ErrConflict, name, e.Revision, ifRev)
		}
		spec, err := p.Apply(e.Spec)
		if err != nil {
			return Status{}, err
		}
		if spec, err = r.prepare(ctx, spec, &e); err != nil {
			return Status{}, err
		}
		rev, err := r.Store.Put(ctx, spec, e.Revision)
		if errors.Is(err, ErrConflict) && ifRev == 0 && attempt < 5 {
			continue
		}
		if err != nil {
			return Status{}, err
		}
		if err := r.settle(ctx, name, rev); err != nil {
			return Status{}, err
		}
		return r.Get(name)
	}
}

// Delete removes stream name (with ifRev > 0 only at that revision) and returns once its runner
// here has stopped and its goroutines have been joined.
func (r *Registry) Delete(ctx context.Context, name string, ifRev uint64) error {
	if err := r.started(); err != nil {
		return err
	}
	e, err := r.Store.Get(ctx, name)
	if err != nil {
		return err
	}
	if ifRev > 0 && e.Revision != ifRev {
		return fmt.Errorf("%w: stream %s is at revision %d, not %d", ErrConflict, name, e.Revision, ifRev)
	}
	if err := r.Store.Delete(ctx, name, e.Revision); err != nil {
		return err
	}
	err = r.waitApplied(ctx, func() bool {
		d, ok := r.desired[name]
		return !ok || d.Revision > e.Revision
	})
	if err == nil {
		err = r.Runner.Settle(ctx, name)
	}
	if err != nil {
		return fmt.Errorf("stream %s is deleted from the store: %w", name, err)
	}
	return nil
}

// Push publishes one image on push stream name (see Runner.Push): the stream must exist, take
// pushed frames, be enabled and run on this node; data must pass CheckImage.
func (r *Registry) Push(ctx context.Context, name string, data []byte, captured time.Time) (PushResult, error) {
	if err := r.started(); err != nil {
		return PushResult{}, err
	}
	e, ok, _ := r.entry(name)
	switch {
	case !ok:
		return PushResult{}, fmt.Errorf("%w: %s (create it with \"source\": \"push\" first)", ErrNotFound, name)
	case !e.Spec.IsPush():
		return PushResult{}, newError(http.StatusConflict, CodeNotPush, nil,
			"stream %s reads %s; only streams whose source is \"push\" take pushed frames", name, RedactSource(e.Spec.Source))
	case !e.Spec.Enabled:
		return PushResult{}, newError(http.StatusConflict, CodeDisabled, nil, "stream %s is disabled: enable it first", name)
	case !r.runsHere(e.Spec):
		return PushResult{}, newError(http.StatusConflict, CodeWrongNode, nil,
			"stream %s runs on ingest node %q, not on this one (%q): push to that node", name, e.Spec.Node, r.Node)
	}
	if _, _, _, err := CheckImage(data, r.PushMaxPixels); err != nil {
		return PushResult{}, err
	}
	return r.Runner.Push(ctx, name, data, captured)
}
