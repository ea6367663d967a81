package ingest

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
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/ingest/streams"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// mgrEnv is an ingest as `vigil ingest` wires it: an embedded NATS server with JetStream (its
// store in dir), a Manager, a Registry on the key-value bucket, the HTTP API and the NATS
// control subject; plus an observer connection.
type mgrEnv struct {
	srv  *bus.EmbeddedServer
	nc   *nats.Conn // the ingest's
	obs  *nats.Conn // the test's
	mgr  *Manager
	reg  *streams.Registry
	http *httpapi.Server
	url  string // .../v1/streams
}

func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startManager starts an ingest on a JetStream store in dir; tune may adjust the Manager and
// Registry before they start. It stops when the test ends (or at stop).
func startManager(t *testing.T, dir string, tune func(*Manager, *streams.Registry)) *mgrEnv {
	t.Helper()
	e := &mgrEnv{srv: &bus.EmbeddedServer{StoreDir: dir, Logger: testLog()}}
	if err := e.srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.stop)
	conn := func(name string) *nats.Conn {
		nc, err := bus.Connect(context.Background(), e.srv.ClientURL(), name, testLog())
		if err != nil {
			t.Fatal(err)
		}
		return nc
	}
	e.nc, e.obs = conn("ingest"), conn("observer")
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := streams.OpenKV(ctx, js, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	e.mgr = &Manager{Conn: e.nc, Log: testLog(), Backoff: Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond}}
	// The API may read the shared test data and a local RTSP server, as an operator would allow
	// with --stream-file-dirs and --stream-allow-hosts.
	data := os.Getenv("VIGIL_TESTDATA")
	if data == "" {
		data = filepath.Join(testenv.RepoRoot(t), "..", "shared", "testdata")
	}
	if data, err = filepath.Abs(data); err != nil {
		t.Fatal(err)
	}
	e.reg = &streams.Registry{Runner: e.mgr, Store: store, Log: testLog(), PushMaxBytes: 1 << 20,
		Policy: streams.SourcePolicy{FileDirs: []string{data}, AllowHosts: []string{"127.0.0.1"}}}
	if tune != nil {
		tune(e.mgr, e.reg)
	}
	if err := e.mgr.Initialize(); err != nil {
		t.Fatal(err)
	}
	if err := e.reg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.reg.ServeNATS(e.nc); err != nil {
		t.Fatal(err)
	}
	e.http = &httpapi.Server{Addr: "127.0.0.1:0", Log: testLog()}
	e.reg.Mount(e.http)
	if err := e.http.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.url = e.http.URL() + "/v1/streams"
	return e
}

// stop shuts the ingest down in the order `vigil ingest` does: HTTP, registry, manager, NATS.
// Idempotent.
func (e *mgrEnv) stop() {
	if e.http != nil {
		_ = e.http.Close()
	}
	if e.reg != nil {
		_ = e.reg.Close()
	}
	if e.mgr != nil {
		_ = e.mgr.Close()
	}
	for _, nc := range []*nats.Conn{e.nc, e.obs} {
		if nc != nil {
			nc.Close()
		}
	}
	e.srv.Close()
}

// frames subscribes the observer to stream's frames.
func (e *mgrEnv) frames(t *testing.T, stream string) *nats.Subscription {
	t.Helper()
	sub, err := e.obs.SubscribeSync(bus.FramesPrefix + "." + stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(10000, 256<<20); err != nil {
		t.Fatal(err)
	}
	if err := e.obs.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return sub
}

// next returns the next frame on sub, failing after within.
func next(t *testing.T, sub *nats.Subscription, within time.Duration) frame.Frame {
	t.Helper()
	m, err := sub.NextMsg(within)
	if err != nil {
		t.Fatalf("no frame on %s within %v: %v", sub.Subject, within, err)
	}
	f, err := frame.FromMsg(m)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// apiResponse is an HTTP answer, with its JSON body decoded.
type apiResponse struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (r apiResponse) code() string {
	if e, ok := r.json["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (r apiResponse) stats() map[string]any { s, _ := r.json["stats"].(map[string]any); return s }

func (r apiResponse) String() string {
	b := bytes.TrimSpace(r.body)
	if len(b) > 400 {
		b = append(b[:400:400], "..."...)
	}
	return fmt.Sprintf("%d %s", r.status, b)
}

// httpCall makes one request; headers come in name, value pairs.
func httpCall(t *testing.T, method, url string, body []byte, headers ...string) apiResponse {
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
	r := apiResponse{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &r.json)
	return r
}

func specJSON(t *testing.T, s streams.Spec) []byte {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goroutinesIn counts the goroutines whose stack holds fn (a function name as in a stack
// dump, e.g. "ingest.(*managed).supervise").
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn+"(") {
			count++
		}
	}
	return count
}

// streamGoroutines counts the goroutines of managed streams: supervisors and runners.
func streamGoroutines() int {
	return goroutinesIn("ingest.(*managed).supervise") + goroutinesIn("ingest.(*streamRunner).run")
}

// wantStreamGoroutines fails unless the stream goroutines number want. A goroutine that has
// done its work (closed its done channel, left its WaitGroup) may take a moment to return, so
// the count is polled briefly.
func wantStreamGoroutines(t *testing.T, want int, when string) {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		n := streamGoroutines()
		if n == want {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("%d stream goroutines %s, want %d", n, when, want)
		case <-tick.C:
		}
	}
}

// ratio waits until stream has decoded n more frames and returns the share published.
func ratio(t *testing.T, m *Manager, stream string, n uint64) float64 {
	t.Helper()
	s0 := m.Stats()[stream]
	var s1 StreamStats
	testenv.Eventually(t, 60*time.Second, fmt.Sprintf("%d more decoded frames of %s", n, stream), func() bool {
		s1 = m.Stats()[stream]
		return s1.Decoded >= s0.Decoded+n
	})
	return float64(s1.Published-s0.Published) / float64(s1.Decoded-s0.Decoded)
}
