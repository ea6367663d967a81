// Package httpapi is Vigil's HTTP front: one server per process that the components mount their
// routes on (the face API, stream management, WHIP ingest, the web UI), with the cross-cutting
// policy in one place: upload limits, CORS, API keys, rate limits, request logs, JSON errors,
// health and readiness probes, and the OpenAPI document with its docs page.
//
// Every request passes, in order: panic recovery, request id and log line, CORS, API key, rate
// limit, body size limit, then the route. The public paths (/healthz, /readyz, /openapi.json,
// /docs) and CORS preflights need no API key and are not rate limited.
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
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultMaxUploadBytes is Server.MaxUploadBytes's default: 10 MiB.
const DefaultMaxUploadBytes = 10 << 20

// DefaultBadKeysPerMinute is Server.BadKeysPerMinute's default: 10 wrong keys per minute per
// client address.
const DefaultBadKeysPerMinute = 10

// DefaultMaxDrainBytes is Server.MaxDrainBytes's default: 64 MiB.
const DefaultMaxDrainBytes = 64 << 20

// Server is an HTTP server whose routes are mounted by the components. Fill the exported fields,
// Handle the routes, then Start; Close stops it. Fields must not change after Start.
type Server struct {
	// Addr is the listen address. Default "127.0.0.1:8080"; port 0 picks a free port.
	Addr string
	// Log receives request and server logs: one line per request, in the handler's format (JSON
	// with a JSON handler), at debug level for answers below 400 (a web view polls several times
	// a second), info for 4xx and warn for 5xx. Default slog.Default().
	Log *slog.Logger

	// MaxUploadBytes bounds every request body; a longer one gets 413 body_too_large. Default
	// DefaultMaxUploadBytes (10 MiB); negative: no limit.
	MaxUploadBytes int64
	// Limits replaces the own limits of routes mounted with HandleUpload, by setting name
	// (e.g. "--max-push-mb": 20 << 20; negative: no limit). Default none: each route's default.
	Limits map[string]int64
	// CORSOrigins are the origins browsers may call the API from, each "scheme://host[:port]"
	// exactly, or "*" for any. Requests and preflights from other origins get 403
	// origin_not_allowed; same-origin requests and requests without an Origin header always
	// pass. Default none.
	CORSOrigins []string
	// APIKeys, when not empty, are the accepted bearer tokens: every route except the public
	// ones needs "Authorization: Bearer KEY", else 401 missing_api_key or invalid_api_key. Keys
	// are never logged; logs name a caller "key-N" (N is the key's position, from 1). Default
	// none: no authentication.
	APIKeys []string
	// RatePerMinute limits each caller (API key, or client IP without keys) to this many
	// requests per minute, refilled continuously, with bursts up to RateBurst; beyond it 429
	// rate_limited with a Retry-After header. Default 0: no limit.
	RatePerMinute float64
	// RateBurst is the most requests a caller may make at once after being idle. Default
	// RatePerMinute (at least 1).
	RateBurst int
	// AllowedHosts are the host names (the Host header, port ignored) requests may name besides
	// the ones always served: IP addresses, localhost (and *.localhost) and the machine's host
	// name. An entry is a name ("vigil.example.com"), "*.example.com" for every name under it,
	// or "*" for any (turns the check off). Other hosts get 421 host_not_allowed, which defeats
	// DNS rebinding. The health probes are exempt. Default none.
	AllowedHosts []string
	// BadKeysPerMinute limits how many wrong API keys a client address may send per minute
	// (bursts of as many); beyond it every request from that address gets 429 rate_limited until
	// the budget refills, whatever key it carries. Only with APIKeys. Default
	// DefaultBadKeysPerMinute; negative: no limit.
	BadKeysPerMinute float64
	// MaxDrainBytes is how much of an over-limit request body the server reads and discards
	// before answering 413, so that clients which send the whole body before reading the answer
	// (Python requests, urllib, curl without Expect) see the 413 rather than a connection reset.
	// A body declaring more than this beyond the limit is answered at once. Default
	// DefaultMaxDrainBytes; negative: none.
	MaxDrainBytes int64
	// DisableDocs turns off GET /openapi.json and GET /docs. Default false: both served.
	DisableDocs bool
	// Title and Version head the OpenAPI document. Defaults "Vigil API" and "dev".
	Title, Version string

	// now is the clock of the rate limiter; tests replace it.
	now func() time.Time

	counts requestCounts // answered requests by route and status (Requests)

	mu       sync.Mutex
	mux      *http.ServeMux
	public   []string          // paths (exact) and path prefixes (ending in "/") served without a key
	limits   map[string]int64  // body limits of routes mounted with HandleLimit, by pattern
	settings map[string]string // the settings of those limits ("": fixed), by pattern
	docs     []Doc
	checks   []readyCheck
	limiter  *limiter
	badKeys  *limiter
	hosts    hostPolicy
	built    http.Handler
	keys     [][32]byte
	srv      *http.Server
	ln       net.Listener
	done     chan struct{}
	serveErr error
	once     sync.Once
}

type readyCheck struct {
	name  string
	check func(context.Context) error
}

// Public paths, served to anyone without an API key or rate limit.
const (
	PathHealth  = "/healthz"
	PathReady   = "/readyz"
	PathOpenAPI = "/openapi.json"
	PathDocs    = "/docs"
)

// Handle mounts h on pattern (net/http patterns: "POST /v1/detect", "GET /v1/streams/{stream}").
// Call it before Start.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mux == nil {
		s.mux = http.NewServeMux()
	}
	s.mux.Handle(pattern, h)
}

// HandleLimit mounts h on pattern with its own fixed request body limit in bytes (negative:
// none) instead of MaxUploadBytes, e.g. for JSON-only routes; HandleUpload mounts a limit that
// a setting changes.
func (s *Server) HandleLimit(pattern string, maxBytes int64, h http.Handler) {
	s.Handle(pattern, h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limits == nil {
		s.limits = map[string]int64{}
	}
	s.limits[pattern] = maxBytes
}

// HandleFunc mounts f on pattern.
func (s *Server) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	s.Handle(pattern, http.HandlerFunc(f))
}

// ReadyCheck adds a readiness check: GET /readyz answers 200 only while every check returns nil
// (each gets 2 s), else 503 naming the failing checks. Call it before Start.
func (s *Server) ReadyCheck(name string, check func(context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, readyCheck{name, check})
}

// Validate checks the policy fields: well-formed CORS origins, non-empty API keys, a
// non-negative rate.
func (s *Server) Validate() error {
	for _, o := range s.CORSOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("http: CORS origin %q: want scheme://host[:port], e.g. https://app.example.com, or *", o)
		}
	}
	for i, k := range s.APIKeys {
		if strings.TrimSpace(k) == "" || strings.ContainsAny(k, " \t\r\n") {
			return fmt.Errorf("http: API key %d is empty or contains white space", i+1)
		}
	}
	for _, h := range s.AllowedHosts {
		if err := validateAllowedHost(h); err != nil {
			return err
		}
	}
	if s.RatePerMinute < 0 || s.RateBurst < 0 {
		return fmt.Errorf("http: rate limit %v/min burst %d: must not be negative", s.RatePerMinute, s.RateBurst)
	}
	return nil
}

func (s *Server) setDefaults() {
	if s.Addr == "" {
		s.Addr = "127.0.0.1:8080"
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.MaxUploadBytes == 0 {
		s.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if s.BadKeysPerMinute == 0 {
		s.BadKeysPerMinute = DefaultBadKeysPerMinute
	}
	if s.MaxDrainBytes == 0 {
		s.MaxDrainBytes = DefaultMaxDrainBytes
	}
	if s.Title == "" {
		s.Title = "Vigil API"
	}
	if s.Version == "" {
		s.Version = "dev"
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.mux == nil {
		s.mux = http.NewServeMux()
	}
}

// Handler returns the server's whole handler (policy and routes), for use without Start (tests,
// or mounting under another server). The first call (or Start) applies the defaults and fixes
// the policy; routes may still be added after it.
func (s *Server) Handler() (http.Handler, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.built != nil {
		return s.built, nil
	}
	s.setDefaults()
	s.keys = hashKeys(s.APIKeys)
	s.hosts = newHostPolicy(s.AllowedHosts)
	if len(s.keys) > 0 && s.BadKeysPerMinute > 0 && s.badKeys == nil {
		s.badKeys = newLimiter(s.BadKeysPerMinute/60, max(1, int(s.BadKeysPerMinute)), s.now)
	}
	if s.RatePerMinute > 0 && s.limiter == nil {
		burst := s.RateBurst
		if burst == 0 {
			burst = max(1, int(s.RatePerMinute))
		}
		s.limiter = newLimiter(s.RatePerMinute/60, burst, s.now)
	}
	if !s.DisableDocs {
		s.mux.HandleFunc("GET "+PathOpenAPI, s.serveOpenAPI)
		s.mux.HandleFunc("GET "+PathDocs, s.serveDocs)
	}
	s.mux.HandleFunc("GET "+PathHealth, func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET "+PathReady, s.serveReady)
	s.built = s.wrap(s.mux)
	return s.built, nil
}

// Start validates the policy, listens and serves in the background until Close.
func (s *Server) Start(ctx context.Context) error {
	h, err := s.Handler()
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("http: listen on %s: %w (choose another address with --http-addr)", s.Addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute,
		IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(s.Log.Handler(), slog.LevelWarn)}
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

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	checks := append([]readyCheck(nil), s.checks...)
	s.mu.Unlock()
	status, results := http.StatusOK, map[string]string{}
	for _, c := range checks {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		err := c.check(ctx)
		cancel()
		if err != nil {
			status = http.StatusServiceUnavailable
			results[c.name] = err.Error()
		} else {
			results[c.name] = "ok"
		}
	}
	body := map[string]any{"status": "ready", "checks": results}
	if status != http.StatusOK {
		body["status"] = "not ready"
		body["error"] = Error{Code: "not_ready", Message: "a readiness check failed: see checks"}
	}
	WriteJSON(w, status, body)
}

// Error is the JSON body of every error response: a stable machine-readable code and a message
// for people.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteError writes status with an Error body: {"error": {"code": ..., "message": ...}}.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	WriteJSON(w, status, struct {
		Error Error `json:"error"`
	}{Error{Code: code, Message: message}})
}

// WriteBusy answers 503 with code "busy" and message, asking the client to retry after
// retryAfter seconds (Retry-After): what a full admission gate answers.
func WriteBusy(w http.ResponseWriter, retryAfter int, message string) {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	WriteError(w, http.StatusServiceUnavailable, "busy", message)
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// IsBodyTooLarge reports whether err comes from reading a request body past the server's
// MaxUploadBytes; a handler answers it with WriteBodyTooLarge.
func IsBodyTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// WriteBodyTooLarge writes the 413 body_too_large error for a body over limit bytes.
func WriteBodyTooLarge(w http.ResponseWriter, limit int64) {
	WriteError(w, http.StatusRequestEntityTooLarge, "body_too_large",
		fmt.Sprintf("the request body exceeds the upload limit of %s (server setting --max-upload-mb)", formatBytes(limit)))
}

func formatBytes(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// MaxUpload returns the body limit in force for r (the server's MaxUploadBytes), or -1 when
// unlimited or r did not come through a Server.
func MaxUpload(r *http.Request) int64 {
	if v, ok := r.Context().Value(ctxLimit{}).(int64); ok {
		return v
	}
	return -1
}

// Caller returns the name the request was authenticated or rate-limited as: "key-N" with API
// keys, else "ip:ADDR"; empty for requests that did not come through a Server.
func Caller(r *http.Request) string {
	v, _ := r.Context().Value(ctxCaller{}).(string)
	return v
}

type (
	ctxLimit  struct{}
	ctxCaller struct{}
)

// MarkPublic exempts paths from API keys and rate limits: an entry ending in "/" (other than
// "/" itself) covers every path under it, any other entry that exact path. Use it only for routes that serve no data
// (the web UI's static page and assets, the WHIP publish page), which a browser must load
// before it can present a key. Call it before Start.
func (s *Server) MarkPublic(paths ...string) {
	s.public = append(s.public, paths...)
}

// isPublic reports whether path is served without a key: the health probes, the API
// documentation, and what MarkPublic named.
func (s *Server) isPublic(path string) bool {
	switch path {
	case PathHealth, PathReady, PathOpenAPI, PathDocs:
		return true
	}
	for _, p := range s.public {
		if path == p || p != "/" && strings.HasSuffix(p, "/") && strings.HasPrefix(path, p) && !strings.Contains(path[len(p):], "..") {
			return true
		}
	}
	return false
}
