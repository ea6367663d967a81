package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable clock for the rate limiter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs s on a free loopback port with an echo route, a panicking route and a described
// operation, and stops it when the test ends.
func start(t *testing.T, s *Server) string {
	t.Helper()
	s.Addr = "127.0.0.1:0"
	s.HandleFunc("POST /v1/echo", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if IsBodyTooLarge(err) {
			WriteBodyTooLarge(w, MaxUpload(r))
			return
		}
		if err != nil {
			WriteError(w, http.StatusBadRequest, "bad_body", err.Error())
			return
		}
		WriteJSON(w, http.StatusOK, map[string]any{"bytes": len(b), "caller": Caller(r)})
	})
	s.HandleLimit("POST /v1/big", 3000, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if IsBodyTooLarge(err) {
			WriteBodyTooLarge(w, MaxUpload(r))
			return
		}
		WriteJSON(w, http.StatusOK, map[string]any{"bytes": len(b)})
	}))
	s.HandleFunc("GET /v1/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	s.Describe(Doc{
		Paths: map[string]map[string]any{"/v1/echo": {"post": map[string]any{"tags": []any{"test"}, "summary": "Echo the body size",
			"requestBody": map[string]any{"content": map[string]any{"application/octet-stream": map[string]any{}}},
			"responses":   map[string]any{"200": map[string]any{"description": "the size"}}}}},
		Tags: []map[string]any{{"name": "test", "description": "Test routes."}},
	})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s.URL()
}

type reply struct {
	status int
	header http.Header
	body   []byte
	err    struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
}

func do(t *testing.T, method, url string, body io.Reader, header map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode, header: resp.Header}
	r.body, _ = io.ReadAll(resp.Body)
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(r.body, &e) == nil && e.Error != nil {
		_ = json.Unmarshal(e.Error, &r.err)
	}
	return r
}

func (r reply) want(t *testing.T, what string, status int, code string) {
	t.Helper()
	if r.status != status || r.err.Code != code {
		t.Fatalf("%s: %d %s, want %d %q", what, r.status, r.body, status, code)
	}
	if code != "" && r.err.Message == "" {
		t.Fatalf("%s: error without a message: %s", what, r.body)
	}
}

func TestPolicy(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	var logs logBuffer
	ready := errors.New("models loading")
	var readyMu sync.Mutex
	s := &Server{Log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		APIKeys: []string{"secret-one", "secret-two"}, RatePerMinute: 3, MaxUploadBytes: 1000,
		CORSOrigins: []string{"https://app.example"}, now: clk.now}
	s.ReadyCheck("models", func(context.Context) error {
		readyMu.Lock()
		defer readyMu.Unlock()
		return ready
	})
	base := start(t, s)
	key1 := map[string]string{"Authorization": "Bearer secret-one"}
	key2 := map[string]string{"Authorization": "bearer secret-two"}

	// Probes are public and not limited.
	for range 5 {
		do(t, "GET", base+"/healthz", nil, nil).want(t, "healthz", 200, "")
	}
	do(t, "GET", base+"/readyz", nil, nil).want(t, "readyz while loading", 503, "not_ready")
	readyMu.Lock()
	ready = nil
	readyMu.Unlock()
	do(t, "GET", base+"/readyz", nil, nil).want(t, "readyz when ready", 200, "")

	// API keys.
	r := do(t, "POST", base+"/v1/echo", strings.NewReader("hi"), nil)
	r.want(t, "no key", 401, "missing_api_key")
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("401 without WWW-Authenticate: %v", r.header)
	}
	do(t, "POST", base+"/v1/echo", strings.NewReader("hi"), map[string]string{"Authorization": "Basic eDp5"}).want(t, "basic auth", 401, "missing_api_key")
	do(t, "POST", base+"/v1/echo", strings.NewReader("hi"), map[string]string{"Authorization": "Bearer secret-three"}).want(t, "wrong key", 401, "invalid_api_key")

	// Rate limit: 3 per minute per key, a burst of 3.
	for i := range 3 {
		r := do(t, "POST", base+"/v1/echo", strings.NewReader("hi"), key1)
		r.want(t, fmt.Sprintf("request %d", i+1), 200, "")
		if !strings.Contains(string(r.body), `"caller":"key-1"`) {
			t.Fatalf("caller not passed to the handler: %s", r.body)
		}
	}
	r = do(t, "POST", base+"/v1/echo", strings.NewReader("hi"), key1)
	r.want(t, "4th request in a minute", 429, "rate_limited")
	if r.header.Get("Retry-After") != "20" {
		t.Fatalf("Retry-After %q, want 20 (one request per 20 s)", r.header.Get("Retry-After"))
	}
	do(t, "POST", base+"/v1/echo", strings.NewReader("hi"), key2).want(t, "another key is not limited", 200, "")
	clk.advance(20 * time.Second)
	do(t, "POST", base+"/v1/echo", strings.NewReader("hi"), key1).want(t, "after 20 s", 200, "")
	do(t, "POST", base+"/v1/echo", strings.NewReader("hi"), key1).want(t, "right after", 429, "rate_limited")
	clk.advance(time.Hour)

	// Upload limit, with and without Content-Length.
	do(t, "POST", base+"/v1/echo", strings.NewReader(strings.Repeat("x", 1000)), key2).want(t, "at the limit", 200, "")
	r = do(t, "POST", base+"/v1/echo", strings.NewReader(strings.Repeat("x", 1001)), key2)
	r.want(t, "over the limit", 413, "body_too_large")
	if !strings.Contains(r.err.Message, "1000 bytes") {
		t.Fatalf("413 message does not give the limit: %q", r.err.Message)
	}
	do(t, "POST", base+"/v1/echo", io.MultiReader(strings.NewReader(strings.Repeat("x", 5000))), key2).want(t, "chunked over the limit", 413, "body_too_large")
	clk.advance(time.Hour)
	// A route with its own limit.
	do(t, "POST", base+"/v1/big", strings.NewReader(strings.Repeat("x", 3000)), key2).want(t, "3000 bytes on a 3000-byte route", 200, "")
	do(t, "POST", base+"/v1/big", io.MultiReader(strings.NewReader(strings.Repeat("x", 3001))), key2).want(t, "3001 bytes on a 3000-byte route", 413, "body_too_large")
	clk.advance(time.Hour)

	// CORS.
	pre := map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
	r = do(t, "OPTIONS", base+"/v1/echo", nil, pre)
	r.want(t, "preflight", 204, "")
	if r.header.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight headers: %v", r.header)
	}
	pre["Origin"] = "https://evil.example"
	do(t, "OPTIONS", base+"/v1/echo", nil, pre).want(t, "preflight from another origin", 403, "origin_not_allowed")
	do(t, "POST", base+"/v1/echo", strings.NewReader("hi"), map[string]string{"Origin": "https://evil.example", "Authorization": "Bearer secret-two"}).
		want(t, "request from another origin", 403, "origin_not_allowed")
	r = do(t, "POST", base+"/v1/echo", strings.NewReader("hi"), map[string]string{"Origin": "https://app.example", "Authorization": "Bearer secret-two"})
	r.want(t, "request from the allowed origin", 200, "")
	if r.header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("no Access-Control-Allow-Origin: %v", r.header)
	}
	do(t, "POST", base+"/v1/echo", strings.NewReader("hi"), map[string]string{"Origin": base, "Authorization": "Bearer secret-two"}).
		want(t, "same-origin request", 200, "")
	clk.advance(time.Hour)

	// JSON errors for unknown routes and methods; a panic is a 500 and the server stays up.
	do(t, "GET", base+"/v1/nothing", nil, key2).want(t, "unknown route", 404, "not_found")
	r = do(t, "GET", base+"/v1/echo", nil, key2)
	r.want(t, "wrong method", 405, "method_not_allowed")
	if !strings.Contains(r.header.Get("Allow"), "POST") {
		t.Fatalf("405 without Allow: %v", r.header)
	}
	do(t, "GET", base+"/v1/panic", nil, key2).want(t, "panicking handler", 500, "internal")
	do(t, "GET", base+"/healthz", nil, nil).want(t, "after the panic", 200, "")

	// Docs are public; the document carries the policy's responses.
	r = do(t, "GET", base+"/openapi.json", nil, nil)
	r.want(t, "openapi.json", 200, "")
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			Responses map[string]any `json:"responses"`
		} `json:"paths"`
		Components struct {
			SecuritySchemes map[string]any `json:"securitySchemes"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil || doc.OpenAPI != "3.0.3" {
		t.Fatalf("openapi.json: %v %s", err, r.body)
	}
	for _, st := range []string{"200", "401", "413", "429"} {
		if _, ok := doc.Paths["/v1/echo"]["post"].Responses[st]; !ok {
			t.Errorf("POST /v1/echo lacks response %s", st)
		}
	}
	if doc.Components.SecuritySchemes["bearer"] == nil || doc.Paths["/healthz"] == nil || doc.Paths["/readyz"] == nil {
		t.Fatalf("document lacks the bearer scheme or the probes")
	}
	r = do(t, "GET", base+"/docs", nil, nil)
	if r.status != 200 || !strings.Contains(string(r.body), "/v1/echo") || !strings.Contains(string(r.body), "Echo the body size") {
		t.Fatalf("docs page: %d %.300s", r.status, r.body)
	}

	// Request logs: one JSON line per request, never the key itself.
	out := logs.String()
	if strings.Contains(out, "secret-one") || strings.Contains(out, "secret-two") {
		t.Fatal("an API key appears in the logs")
	}
	var sawLimited, sawPanic bool
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if line["msg"] == "http request" {
			for _, k := range []string{"method", "path", "status", "duration_ms", "request_id"} {
				if _, ok := line[k]; !ok {
					t.Fatalf("request log lacks %s: %s", k, sc.Text())
				}
			}
			if line["status"] == float64(429) && line["caller"] == "key-1" {
				sawLimited = true
			}
		}
		if line["msg"] == "http handler panicked" {
			sawPanic = true
		}
	}
	if !sawLimited || !sawPanic {
		t.Fatalf("logs lack the 429 (%v) or the panic (%v):\n%s", sawLimited, sawPanic, out)
	}
}

func TestDocsOff(t *testing.T) {
	s := &Server{DisableDocs: true, Log: slog.New(slog.DiscardHandler)}
	base := start(t, s)
	do(t, "GET", base+"/openapi.json", nil, nil).want(t, "openapi.json when off", 404, "not_found")
	do(t, "GET", base+"/docs", nil, nil).want(t, "docs when off", 404, "not_found")
	// No keys configured: everything is open, and the default upload limit is 10 MiB.
	do(t, "POST", base+"/v1/echo", strings.NewReader(strings.Repeat("x", 10<<20)), nil).want(t, "10 MiB", 200, "")
	do(t, "POST", base+"/v1/echo", strings.NewReader(strings.Repeat("x", 10<<20+1)), nil).want(t, "10 MiB + 1", 413, "body_too_large")
}

func TestValidate(t *testing.T) {
	for _, bad := range []*Server{
		{CORSOrigins: []string{"app.example"}},
		{CORSOrigins: []string{"https://app.example/path"}},
		{CORSOrigins: []string{"ftp://app.example"}},
		{APIKeys: []string{""}},
		{APIKeys: []string{"a b"}},
		{RatePerMinute: -1},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate accepted %+v", bad)
		}
		if err := bad.Start(context.Background()); err == nil {
			_ = bad.Close()
			t.Errorf("Start accepted %+v", bad)
		}
	}
	ok := &Server{CORSOrigins: []string{"*", "http://localhost:3000", "https://app.example/"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLimiterBounded(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	l := newLimiter(1, 2, clk.now)
	for i := range maxCallers + 10 {
		if ok, _ := l.allow(fmt.Sprint(i)); !ok {
			t.Fatal("first request of a new caller refused")
		}
	}
	if len(l.buckets) > maxCallers {
		t.Fatalf("%d callers tracked, bound is %d", len(l.buckets), maxCallers)
	}
	l.allow("x")
	l.allow("x")
	if ok, wait := l.allow("x"); ok || wait != time.Second {
		t.Fatalf("third request at burst 2: %v, wait %v", ok, wait)
	}
}

// TestMarkPublic: pages a browser must load before it can present a key are served without one;
// everything else still needs it.
func TestMarkPublic(t *testing.T) {
	s := &Server{Addr: "127.0.0.1:0", APIKeys: []string{"sekrit"}}
	ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }
	s.HandleFunc("GET /{$}", ok)
	s.HandleFunc("GET /ui/{file}", ok)
	s.HandleFunc("GET /v1/data", ok)
	s.MarkPublic("/", "/ui/")
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for path, want := range map[string]int{"/": 200, "/ui/app.js": 200, "/v1/data": 401, "/uix": 401} {
		resp, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want && !(path == "/uix" && resp.StatusCode == 404) {
			t.Errorf("GET %s without a key: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
