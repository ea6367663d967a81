package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/result"
)

// Role is the sink role: it subscribes to every stream's results, drops and end-of-stream
// records and writes results to its Sinks. It tracks, per stream, how many frames have an
// outcome, so that with Await set it can tell when finite streams are complete.
// Fill the exported fields, then call Run.
type Role struct {
	// Conn is the NATS connection. Required.
	Conn *nats.Conn
	// Sinks receive every result. At least one is required.
	Sinks []Sink
	// Await lists streams whose end Run waits for: Run returns once each has published its
	// end-of-stream record and every frame it announced has a result or a drop. Empty: run until
	// ctx ends.
	Await []string
	// Buffer bounds the messages waiting to be written; when full the NATS client drops and
	// reports a slow consumer. Default 4096.
	Buffer int
	// Log receives the role's logs. Default slog.Default().
	Log *slog.Logger

	mu        sync.Mutex
	streams   map[string]*StreamProgress
	readyOnce sync.Once
	ready     chan struct{}
}

// Ready is closed once Run has subscribed and the server has confirmed it.
func (r *Role) Ready() <-chan struct{} {
	r.readyOnce.Do(func() { r.ready = make(chan struct{}) })
	return r.ready
}

// StreamProgress counts a stream's outcomes as seen by the sink.
type StreamProgress struct {
	Results, Drops, Faces uint64
	// DropReasons counts drops per reason.
	DropReasons map[string]uint64
	// Ended is true once the end-of-stream record arrived; Announced is its frame count.
	Ended     bool
	Announced uint64
	// EndError is the source's error when it ended abnormally.
	EndError string
	// WriteErrors counts results a sink failed to take.
	WriteErrors uint64
}

// Complete reports whether the stream ended and every announced frame has an outcome.
func (p StreamProgress) Complete() bool { return p.Ended && p.Results+p.Drops >= p.Announced }

// Progress returns a copy of every stream's progress.
func (r *Role) Progress() map[string]StreamProgress {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]StreamProgress, len(r.streams))
	for k, v := range r.streams {
		c := *v
		c.DropReasons = make(map[string]uint64, len(v.DropReasons))
		for rk, rv := range v.DropReasons {
			c.DropReasons[rk] = rv
		}
		out[k] = c
	}
	return out
}

// Run writes results until ctx ends or, with Await set, until every awaited stream is complete.
// It closes the Sinks before returning.
func (r *Role) Run(ctx context.Context) error {
	if r.Conn == nil || len(r.Sinks) == 0 {
		return errors.New("sink: Conn and at least one Sink are required")
	}
	if r.Buffer <= 0 {
		r.Buffer = 4096
	}
	if r.Log == nil {
		r.Log = slog.Default()
	}
	r.streams = map[string]*StreamProgress{}
	defer func() {
		for _, s := range r.Sinks {
			if err := s.Close(); err != nil {
				r.Log.Error("sink close", "err", err)
			}
		}
	}()
	ch := make(chan *nats.Msg, r.Buffer)
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	for _, prefix := range []string{bus.ResultsPrefix, bus.DropsPrefix, bus.EOSPrefix} {
		s, err := r.Conn.ChanSubscribe(bus.All(prefix), ch)
		if err != nil {
			return fmt.Errorf("sink: subscribe: %w", err)
		}
		subs = append(subs, s)
	}
	if err := r.Conn.Flush(); err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	r.readyOnce.Do(func() { r.ready = make(chan struct{}) })
	close(r.ready)
	for {
		if len(r.Await) > 0 && r.allComplete() {
			return nil
		}
		select {
		case <-ctx.Done():
			// Write what already arrived, then stop.
			for {
				select {
				case m := <-ch:
					r.handle(ctx, m)
				default:
					return nil
				}
			}
		case m := <-ch:
			r.handle(ctx, m)
		}
	}
}

func (r *Role) progress(stream string) *StreamProgress {
	p := r.streams[stream]
	if p == nil {
		p = &StreamProgress{DropReasons: map[string]uint64{}}
		r.streams[stream] = p
	}
	return p
}

func (r *Role) handle(ctx context.Context, m *nats.Msg) {
	switch {
	case strings.HasPrefix(m.Subject, bus.ResultsPrefix+"."):
		res, err := result.ParseResult(m.Data)
		if err != nil {
			r.Log.Warn("ignoring malformed result", "subject", m.Subject, "err", err)
			return
		}
		var failed bool
		for _, s := range r.Sinks {
			if err := s.Write(ctx, res); err != nil {
				r.Log.Error("sink write", "stream", res.Stream, "seq", res.Seq, "err", err)
				failed = true
			}
		}
		r.mu.Lock()
		p := r.progress(res.Stream)
		p.Results++
		p.Faces += uint64(len(res.Faces))
		if failed {
			p.WriteErrors++
		}
		r.mu.Unlock()
	case strings.HasPrefix(m.Subject, bus.DropsPrefix+"."):
		d, err := result.ParseDrop(m.Data)
		if err != nil {
			r.Log.Warn("ignoring malformed drop", "subject", m.Subject, "err", err)
			return
		}
		r.mu.Lock()
		p := r.progress(d.Stream)
		p.Drops++
		p.DropReasons[d.Reason]++
		r.mu.Unlock()
	case strings.HasPrefix(m.Subject, bus.EOSPrefix+"."):
		e, err := result.ParseEndOfStream(m.Data)
		if err != nil {
			r.Log.Warn("ignoring malformed end of stream", "subject", m.Subject, "err", err)
			return
		}
		r.mu.Lock()
		p := r.progress(e.Stream)
		p.Ended, p.Announced, p.EndError = true, e.Frames, e.Error
		r.mu.Unlock()
	}
}

func (r *Role) allComplete() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.Await {
		p := r.streams[s]
		if p == nil || !p.Complete() {
			return false
		}
	}
	return true
}
