package cli

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// startupHandler holds back vigil run's start-up chatter: until started is set, it writes info
// records at debug level (every role, store and stream announces itself as it starts, and the
// user needs the web view's URL first); warnings and errors pass unchanged, and so does
// everything once started is set.
type startupHandler struct {
	slog.Handler
	started *atomic.Bool
}

// quietStartup wraps log's handler in a startupHandler; the returned flag, once set, lets info
// records through. Set it just before logging the line the user needs first.
func quietStartup(log *slog.Logger) (*slog.Logger, *atomic.Bool) {
	started := new(atomic.Bool)
	return slog.New(startupHandler{Handler: log.Handler(), started: started}), started
}

// Handle writes r, at debug level when it is an info record logged before start-up ended.
func (h startupHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo && !h.started.Load() {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs keeps the start-up state across loggers derived with With.
func (h startupHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return startupHandler{Handler: h.Handler.WithAttrs(attrs), started: h.started}
}

// WithGroup keeps the start-up state across loggers derived with WithGroup.
func (h startupHandler) WithGroup(name string) slog.Handler {
	return startupHandler{Handler: h.Handler.WithGroup(name), started: h.started}
}

// isClosed reports whether ch is closed (a Ready channel that fired), without waiting.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
