package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
)

// wrap returns the policy chain around the routes in mux.
func (s *Server) wrap(mux *http.ServeMux) http.Handler {
	routes := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			notFound(mux, w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		_, route := mux.Handler(r)
		sw := &statusWriter{ResponseWriter: w, route: route}
		id := newRequestID()
		sw.Header().Set("X-Request-Id", id)
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.Log.Error("http handler panicked", "method", r.Method, "path", r.URL.Path, "request_id", id,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !sw.wrote {
					WriteError(sw, http.StatusInternalServerError, "internal", "the server failed on this request (logged as "+id+")")
				}
			}
			s.logRequest(r, sw, id, start)
		}()
		if r.URL.Path != PathHealth && r.URL.Path != PathReady && !s.hosts.check(sw, r) {
			return
		}
		if !s.cors(sw, r) {
			return
		}
		public := s.isPublic(r.URL.Path) || r.Method == http.MethodOptions
		caller := "ip:" + clientIP(r)
		if len(s.keys) > 0 && !public {
			if s.refuseBadKeyClient(sw, caller) {
				return
			}
			name, code, msg := s.authenticate(r)
			if code == "invalid_api_key" && s.badKeys != nil {
				s.badKeys.allow(caller) // spends one of the address's wrong-key budget
			}
			if code != "" {
				sw.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
				WriteError(sw, http.StatusUnauthorized, code, msg)
				return
			}
			caller = name
		}
		sw.caller = caller
		ctx := context.WithValue(r.Context(), ctxCaller{}, caller)
		if s.limiter != nil && !public {
			if ok, wait := s.limiter.allow(caller); !ok {
				secs := int(math.Ceil(wait.Seconds()))
				sw.Header().Set("Retry-After", strconv.Itoa(max(1, secs)))
				WriteError(sw, http.StatusTooManyRequests, "rate_limited",
					fmt.Sprintf("rate limit of %g requests per minute exceeded for %s: retry in %d s", s.RatePerMinute, caller, max(1, secs)))
				return
			}
		}
		if limit, setting := s.bodyLimit(mux, r); limit > 0 {
			if r.ContentLength > limit {
				s.drain(r, r.Body, r.ContentLength-limit, limit)
				WriteLimitExceeded(sw, limit, setting)
				return
			}
			body := r.Body
			defer func() {
				if sw.status == http.StatusRequestEntityTooLarge {
					s.drain(r, body, -1, limit) // the handler found the body too large: let the client finish sending
				}
			}()
			r.Body = http.MaxBytesReader(sw, r.Body, limit)
			ctx = context.WithValue(ctx, ctxLimit{}, limit)
			ctx = context.WithValue(ctx, ctxSetting{}, setting)
		}
		routes.ServeHTTP(sw, r.WithContext(ctx))
	})
}

// bodyLimit is the body limit of the route r goes to and the setting that changes it: its
// HandleLimit or HandleUpload limit, else MaxUploadBytes (UploadSetting).
func (s *Server) bodyLimit(mux *http.ServeMux, r *http.Request) (int64, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.limits) > 0 {
		if _, pattern := mux.Handler(r); pattern != "" {
			if l, ok := s.limits[pattern]; ok {
				return l, s.settingOf(pattern)
			}
		}
	}
	return s.MaxUploadBytes, UploadSetting
}

// notFound answers a request no route takes with the mux's status (404, or 405 with its Allow
// header) as a JSON error.
func notFound(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	h, _ := mux.Handler(r)
	probe := &headerProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", probe.header.Get("Allow"))
		WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, probe.header.Get("Allow")))
		return
	}
	WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
}

// headerProbe records the status and headers a handler writes and discards its body.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header { return p.header }
func (p *headerProbe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
func (p *headerProbe) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

// logRequest counts the request by route and status and logs it: at debug level when it
// succeeded (below 400), info for a client error, warn for a server error.
func (s *Server) logRequest(r *http.Request, sw *statusWriter, id string, start time.Time) {
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	s.counts.add(sw.route, status)
	level := slog.LevelDebug
	switch {
	case status >= 500:
		level = slog.LevelWarn
	case status >= 400:
		level = slog.LevelInfo
	}
	attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status),
		slog.Int64("bytes", sw.bytes), slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		slog.String("remote", clientIP(r)), slog.String("request_id", id)}
	if sw.caller != "" {
		attrs = append(attrs, slog.String("caller", sw.caller))
	}
	s.Log.LogAttrs(r.Context(), level, "http request", attrs...)
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
	caller string
	route  string // the pattern of the route that matched; "" for none
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// cors applies the CORS policy. It returns false when it has answered the request (a preflight,
// or a refused origin).
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	w.Header().Add("Vary", "Origin")
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	allowed, anyOrigin := false, false
	for _, o := range s.CORSOrigins {
		if o == "*" {
			allowed, anyOrigin = true, true
		} else if strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			allowed = true
		}
	}
	if !allowed && !preflight && sameOrigin(origin, r) {
		return true
	}
	if !allowed {
		WriteError(w, http.StatusForbidden, "origin_not_allowed",
			fmt.Sprintf("origin %s may not call this API (server setting --cors-origins)", origin))
		return false
	}
	if anyOrigin && len(s.keys) == 0 {
		w.Header().Set("Access-Control-Allow-Origin", "*")
	} else {
		w.Header().Set("Access-Control-Allow-Origin", origin)
	}
	w.Header().Set("Access-Control-Expose-Headers", "Retry-After, X-Request-Id")
	if !preflight {
		return true
	}
	w.Header().Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
	w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	w.Header().Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return false
}

// sameOrigin reports whether origin is the server's own (the browser calls its own pages' API).
func sameOrigin(origin string, r *http.Request) bool {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return strings.EqualFold(origin, scheme+"://"+r.Host)
}

func hashKeys(keys []string) [][32]byte {
	out := make([][32]byte, len(keys))
	for i, k := range keys {
		out[i] = sha256.Sum256([]byte(k))
	}
	return out
}

// authenticate checks the bearer token against every key in constant time. It returns the
// caller's name, or an error code and message.
func (s *Server) authenticate(r *http.Request) (name, code, msg string) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", "missing_api_key", `this server needs an API key: send "Authorization: Bearer <key>"`
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", "missing_api_key", `the Authorization header must be "Bearer <key>"`
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	found := -1
	for i, k := range s.keys {
		if subtle.ConstantTimeCompare(sum[:], k[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", "invalid_api_key", "the API key is not valid"
	}
	return fmt.Sprintf("key-%d", found+1), "", ""
}

// limiter is a token bucket per caller, with a bounded number of callers.
type limiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxCallers bounds the limiter's memory; idle callers are forgotten first.
const maxCallers = 10000

func newLimiter(perSecond float64, burst int, now func() time.Time) *limiter {
	return &limiter{rate: perSecond, burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// allow takes a token for caller; when there is none it returns false and the wait for one.
func (l *limiter) allow(caller string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[caller]
	if !ok {
		if len(l.buckets) >= maxCallers {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[caller] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = math.Min(l.burst, b.tokens+dt*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// blocked reports whether caller has no token left, without taking one, and the wait for one.
func (l *limiter) blocked(caller string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[caller]
	if !ok {
		return false, 0
	}
	tokens := math.Min(l.burst, b.tokens+max(0, l.now().Sub(b.last).Seconds())*l.rate)
	if tokens >= 1 {
		return false, 0
	}
	return true, time.Duration((1 - tokens) / l.rate * float64(time.Second))
}

// evict forgets the callers whose buckets have refilled (they lose nothing); if none has, all.
func (l *limiter) evict(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxCallers {
		clear(l.buckets)
	}
}
