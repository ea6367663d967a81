// Package webrtc ingests browser cameras: every WHIP session (package whip: POST /whip/{stream},
// the /publish/{stream} page) becomes a live ingest.Source whose frames GStreamer decodes
// through OpenCV (package gstdec), ready for the same sampling, encoding and publishing path as
// every other source.
//
// Wiring: fill an Endpoint, Initialize it, Mount it on the process's httpapi.Server before
// Start, and hand each Source OnSource delivers to a stream runner, which reads it and Closes
// it. Close the Endpoint on shutdown (after the HTTP server).
package webrtc

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/vigil-video/vigil/ingest/webrtc/whip"
	"github.com/vigil-video/vigil/pkg/httpapi"
)

// Endpoint accepts WHIP publishers and turns each session into a Source. Fill the exported
// fields, call Initialize, then Mount; Close when done.
type Endpoint struct {
	// WHIP tunes the WHIP endpoint: session limit, offer size, start bitrate, ICE and media
	// timeouts. Its zero value gives whip.Config's defaults.
	WHIP whip.Config
	// OnSource receives each new publisher as a live Source, once negotiation succeeded and
	// before the answer goes out. The receiver owns the Source: it reads it from one goroutine
	// and Closes it when Read fails (an error wrapping ingest.ErrEndOfStream when the publisher
	// left in order, another error when it was lost). OnSource runs on the HTTP request's
	// goroutine and must return promptly (start the reader, don't read); an error refuses the
	// publisher with 403 and its text, and the Source is closed for it.
	//
	// A stream has at most one Source at a time: a new publisher on a stream ends the previous
	// one's session first (its Read then returns an end-of-stream error), so the receiver may
	// briefly still be draining the old Source of a stream when the new one arrives.
	// Required.
	OnSource func(*Source) error
	// Log receives session lifecycle logs (never per frame). Default slog.Default().
	Log *slog.Logger

	ep whip.Endpoint

	mu      sync.Mutex
	sources map[*Source]struct{}
}

// Initialize validates the configuration and prepares the WebRTC stack.
func (e *Endpoint) Initialize() error {
	if e.OnSource == nil {
		return errors.New("webrtc: OnSource is required")
	}
	if e.Log == nil {
		e.Log = slog.Default()
	}
	e.sources = map[*Source]struct{}{}
	e.ep = whip.Endpoint{Config: e.WHIP, OnSession: e.onSession, Log: e.Log}
	if err := e.ep.Initialize(); err != nil {
		return fmt.Errorf("webrtc: %w", err)
	}
	e.WHIP = e.ep.Config // with defaults
	return nil
}

// Mount mounts the WHIP routes and the publish page on srv (see whip.Endpoint.Mount):
// POST /whip/{stream}, DELETE /whip/{stream}/{session}, GET /publish/{stream}.
func (e *Endpoint) Mount(srv *httpapi.Server) { e.ep.Mount(srv) }

// Sessions returns the number of WHIP sessions holding resources.
func (e *Endpoint) Sessions() int { return e.ep.Sessions() }

// Close refuses new publishers, ends every session and waits until every Source has released
// its decoder and goroutines. Sources already handed out stay safe to Read (an end-of-stream
// error) and Close (a no-op).
func (e *Endpoint) Close() error {
	err := e.ep.Close()
	e.mu.Lock()
	all := make([]*Source, 0, len(e.sources))
	for s := range e.sources {
		all = append(all, s)
	}
	e.mu.Unlock()
	for _, s := range all {
		s.Close()
	}
	return err
}

func (e *Endpoint) onSession(ws *whip.Session) error {
	s := newSource(e, ws)
	e.mu.Lock()
	e.sources[s] = struct{}{}
	e.mu.Unlock()
	if err := e.OnSource(s); err != nil {
		s.Close()
		return err
	}
	return nil
}

func (e *Endpoint) forget(s *Source) {
	e.mu.Lock()
	delete(e.sources, s)
	e.mu.Unlock()
}
