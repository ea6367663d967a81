package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/result"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// testData returns the shared test data directory ($VIGIL_TESTDATA, else ../shared/testdata
// beside the repository), skipping the test when it is absent.
func testData(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("VIGIL_TESTDATA")
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				dir = filepath.Join(d, "..", "shared", "testdata")
				break
			}
			if filepath.Dir(d) == d {
				t.Fatal("go.mod not found above the working directory")
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		t.Skipf("shared test data not found at %s (set VIGIL_TESTDATA): %v", dir, err)
	}
	return dir
}

// photo returns a real JPEG from the shared test data and its size.
func photo(t testing.TB, rel string) ([]byte, int, int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testData(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return b, cfg.Width, cfg.Height
}

// fixture is the UI on real parts: an embedded NATS server (with JetStream), a publisher
// connection, and an httpapi.Server on loopback with the UI mounted.
type fixture struct {
	ui  *UI
	srv *httpapi.Server
	url string
	pub *nats.Conn
	ns  *bus.EmbeddedServer
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	return newFixtureWith(t, func(*nats.Conn) Config { return cfg })
}

// newFixtureWith is newFixture with the configuration made by setup, given the UI's connection.
func newFixtureWith(t *testing.T, setup func(*nats.Conn) Config) *fixture {
	t.Helper()
	ctx := context.Background()
	ns := &bus.EmbeddedServer{StoreDir: t.TempDir(), Logger: quiet}
	if err := ns.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	conn := func(name string) *nats.Conn {
		nc, err := bus.Connect(ctx, ns.ClientURL(), name, quiet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	nc := conn("web")
	cfg := setup(nc)
	cfg.Conn = nc
	if cfg.Log == nil {
		cfg.Log = quiet
	}
	ui, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &httpapi.Server{Addr: "127.0.0.1:0", Log: quiet}
	ui.Mount(srv)
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ui.Close()
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return &fixture{ui: ui, srv: srv, url: srv.URL(), pub: conn("publisher"), ns: ns}
}

func (f *fixture) publishFrame(t testing.TB, stream string, seq uint64, jpg []byte, w, h int) {
	t.Helper()
	subj, err := bus.Subject(bus.FramesPrefix, stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := frame.Frame{Stream: stream, Seq: seq, Captured: time.Now(), Width: w, Height: h, Encoding: frame.EncodingJPEG, Data: jpg}.Msg(subj)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.pub.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) publishJSON(t testing.TB, prefix, stream string, v any) {
	t.Helper()
	subj, err := bus.Subject(prefix, stream)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.pub.Publish(subj, b); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) publishEvent(t testing.TB, e event.Event) {
	t.Helper()
	subj, err := event.EventSubject(e.Stream, e.Kind)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.pub.Publish(subj, b); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) flush(t testing.TB) {
	t.Helper()
	if err := f.pub.Flush(); err != nil {
		t.Fatal(err)
	}
}

// resultFor is a result for a frame of w x h with one face.
func resultFor(stream string, seq uint64, w, h int, name string) result.Result {
	age := float32(41)
	f := result.Face{Box: result.Box{X1: float32(w) * 0.3, Y1: float32(h) * 0.2, X2: float32(w) * 0.6, Y2: float32(h) * 0.6}, Score: 0.99,
		TrackID: "t1-1", Age: &age, Embedding: make([]float32, 512)}
	if name != "" {
		f.Identity = &result.Identity{Name: name, Similarity: 0.8}
	}
	now := time.Now().UTC()
	return result.Result{Schema: result.SchemaVersion, Stream: stream, Seq: seq, CapturedAt: now, AnalyzedAt: now, Width: w, Height: h,
		Faces: []result.Face{f}}
}

// getJSON GETs url and decodes its JSON body into v; it returns the status.
func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if v != nil {
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %d: %v", url, res.StatusCode, err)
		}
	}
	return res.StatusCode
}

func (f *fixture) streamInfo(t testing.TB, name string) StreamInfo {
	t.Helper()
	var out struct{ Streams []StreamInfo }
	getJSON(t, f.url+"/v1/ui/streams", &out)
	for _, s := range out.Streams {
		if s.Name == name {
			return s
		}
	}
	return StreamInfo{}
}

// liveRecord is one record of the live stream, decoded.
type liveRecord struct {
	sendMS float64
	meta   map[string]any
	raw    []byte
	image  []byte
}

// liveReader reads the records of a live stream.
type liveReader struct {
	body io.ReadCloser
	r    *bufio.Reader
}

func openLive(t testing.TB, url string) *liveReader {
	t.Helper()
	// The whole stream may last a minute: a test that waits for a record in vain fails then.
	res, err := (&http.Client{Timeout: time.Minute}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != LiveContentType {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Fatalf("GET %s: %d %s: %s", url, res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	t.Cleanup(func() { res.Body.Close() })
	return &liveReader{body: res.Body, r: bufio.NewReader(res.Body)}
}

func readRecord(r io.Reader) (liveRecord, error) {
	var hdr [recordHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return liveRecord{}, err
	}
	jl, il := binary.BigEndian.Uint32(hdr[0:]), binary.BigEndian.Uint32(hdr[4:])
	if jl > 1<<20 || il > 64<<20 {
		return liveRecord{}, fmt.Errorf("record of %d + %d bytes", jl, il)
	}
	rec := liveRecord{sendMS: math.Float64frombits(binary.BigEndian.Uint64(hdr[8:])), raw: make([]byte, jl), image: make([]byte, il)}
	if _, err := io.ReadFull(r, rec.raw); err != nil {
		return liveRecord{}, err
	}
	if _, err := io.ReadFull(r, rec.image); err != nil {
		return liveRecord{}, err
	}
	if err := json.Unmarshal(rec.raw, &rec.meta); err != nil {
		return liveRecord{}, fmt.Errorf("record JSON %q: %w", rec.raw, err)
	}
	return rec, nil
}

// next returns the next record of type typ, skipping others.
func (l *liveReader) next(t testing.TB, typ string) liveRecord {
	t.Helper()
	for {
		rec, err := readRecord(l.r)
		if err != nil {
			t.Fatalf("reading the live stream: %v", err)
		}
		if rec.meta["type"] == typ {
			return rec
		}
	}
}
