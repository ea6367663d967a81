// Package httpapi is Vigil's HTTP front: one server per process that the components mount their
// routes on (the face API, stream management, WHIP ingest, the web UI), with the cross-cutting
// policy in one place: upload limits, CORS, API keys, rate limits, request logs, JSON errors.
//
// The package is pure Go.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is an HTTP server whose routes are mounted by the components. Fill the exported fields,
// Handle the routes, then Start; Close stops it.
type Server struct {
	// Addr is the listen address. Default "127.0.0.1:8080"; port 0 picks a free port.
	Addr string
	// Log receives request and server logs. Default slog.Default().
	Log *slog.Logger

	mux      *http.ServeMux
	srv      *http.Server
	ln       net.Listener
	done     chan struct{}
	serveErr error
	once     sync.Once
}

// Handle mounts h on pattern (net/http patterns: "POST /v1/detect", "GET /v1/streams/{stream}").
// Call it before Start.
func (s *Server) Handle(pattern string, h http.Handler) {
	if s.mux == nil {
		s.mux = http.NewServeMux()
	}
	s.mux.Handle(pattern, h)
}

// HandleFunc mounts f on pattern.
func (s *Server) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	s.Handle(pattern, http.HandlerFunc(f))
}

// Start listens and serves in the background until Close.
func (s *Server) Start(ctx context.Context) error {
	if s.Addr == "" {
		s.Addr = "127.0.0.1:8080"
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.mux == nil {
		s.mux = http.NewServeMux()
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("http: listen on %s: %w (choose another address with --http-addr)", s.Addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.Log.Handler(), slog.LevelWarn)}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveErr = err
		}
	}()
	return nil
}

// URL is the server's base URL, e.g. "http://127.0.0.1:8080"; empty before Start.
func (s *Server) URL() string {
	if s.ln == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String()
}

// Close shuts the server down, giving in-flight requests up to 5 s, and waits for it to stop.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		if s.srv == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = s.srv.Shutdown(ctx)
		<-s.done
		if err == nil {
			err = s.serveErr
		}
	})
	return err
}

// Error is the JSON body of every error response: a stable machine-readable code and a message
// for people.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteError writes status with an Error body.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	WriteJSON(w, status, struct {
		Error Error `json:"error"`
	}{Error{Code: code, Message: message}})
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
