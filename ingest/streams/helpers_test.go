package streams

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/httpapi"
)

// TestMain fails the package if a goroutine is left running. (pkg/testenv would pull in gocv;
// this package and its tests are pure Go.)
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quietLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testData returns the shared test data directory, or skips.
func testData(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("VIGIL_TESTDATA")
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(wd, "..", "..", "..", "shared", "testdata")
	}
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		t.Skipf("shared test data not found at %s (set VIGIL_TESTDATA): %v", dir, err)
	}
	return dir
}

// checkSource stands in for ingest.Classify's form check: file paths, and the URL schemes Vigil
// reads.
func checkSource(src string) error {
	if !strings.Contains(src, "://") {
		return nil
	}
	for _, p := range []string{"rtsp://", "rtsps://", "http://", "https://", "file://"} {
		if strings.HasPrefix(strings.ToLower(src), p) {
			return nil
		}
	}
	return fmt.Errorf("source %q: unsupported URL scheme", src)
}

// fakeRunner is a Runner that records what the Registry asks: the package's tests check the
// registry's own behaviour (store, HTTP, NATS); ingest's tests run the real Manager.
type fakeRunner struct {
	mu     sync.Mutex
	specs  map[string]Spec
	log    []string
	seq    map[string]uint64
	images map[string]int
}

func newFakeRunner() *fakeRunner {
	return &fakeRunner{specs: map[string]Spec{}, seq: map[string]uint64{}, images: map[string]int{}}
}

func (f *fakeRunner) CheckSource(src string) error { return checkSource(src) }

func (f *fakeRunner) Apply(spec Spec) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.specs[spec.Name] = spec
	f.log = append(f.log, "apply "+spec.Name)
}

func (f *fakeRunner) Remove(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.specs, name)
	f.log = append(f.log, "remove "+name)
}

func (f *fakeRunner) Settle(context.Context, string) error { return nil }

func (f *fakeRunner) Status(name string) (RunStatus, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.specs[name]
	if !ok {
		return RunStatus{}, false
	}
	st := RunStatus{State: StateLive, Published: f.seq[name]}
	if !s.Enabled {
		st.State = StateDisabled
	}
	return st, true
}

func (f *fakeRunner) Push(_ context.Context, name string, image []byte, _ time.Time) (PushResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.specs[name]; !ok || !s.IsPush() {
		return PushResult{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	f.seq[name]++
	f.images[name] = len(image)
	return PushResult{Published: true, Seq: f.seq[name], Width: 1, Height: 1}, nil
}

func (f *fakeRunner) spec(name string) (Spec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.specs[name]
	return s, ok
}

func (f *fakeRunner) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.specs {
		out = append(out, n)
	}
	return out
}

// startJetStream starts a NATS server with JetStream in a temporary directory and returns a
// connection factory.
func startJetStream(t *testing.T, dir string) (*bus.EmbeddedServer, func(name string) *nats.Conn) {
	t.Helper()
	srv := &bus.EmbeddedServer{StoreDir: dir, Logger: quietLog()}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv, func(name string) *nats.Conn {
		nc, err := bus.Connect(context.Background(), srv.ClientURL(), name, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
}

func openKV(t *testing.T, nc *nats.Conn) *KVStore {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := OpenKV(ctx, js, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// env is a started Registry with a fake runner, optionally behind an HTTP server.
type env struct {
	reg    *Registry
	runner *fakeRunner
	url    string
}

func startRegistry(t *testing.T, reg *Registry, withHTTP bool) *env {
	t.Helper()
	e := &env{reg: reg, runner: newFakeRunner()}
	if reg.Runner == nil {
		reg.Runner = e.runner
	} else {
		e.runner, _ = reg.Runner.(*fakeRunner)
	}
	reg.Log = quietLog()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := reg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := reg.Close(); err != nil {
			t.Error(err)
		}
	})
	if withHTTP {
		srv := &httpapi.Server{Addr: "127.0.0.1:0", Log: quietLog()}
		reg.Mount(srv)
		if err := srv.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Close() })
		e.url = srv.URL()
	}
	return e
}

// response is an HTTP answer: status, headers, body, and the body decoded when it is JSON.
type response struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (r response) code() string {
	if e, ok := r.json["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body)) }

// call makes one HTTP request; headers come in name, value pairs.
func call(t *testing.T, method, url string, body []byte, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &r.json)
	return r
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
