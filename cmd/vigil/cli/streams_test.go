package cli

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/ingest/streams"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestManagedIngestFlags: --streams-file, --node and --source streams seed a managed ingest on
// a JetStream bucket; its HTTP API and metrics are mounted; bad files and node names are refused.
func TestManagedIngestFlags(t *testing.T) {
	video := filepath.Join(testenv.TestData(t), "video", "fer_test.mp4")
	dir := t.TempDir()
	file := filepath.Join(dir, "streams.yaml")
	if err := os.WriteFile(file, []byte("streams:\n  - name: door\n    source: push\n  - name: elsewhere\n    source: push\n    node: edge-9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var f streamFlags
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	f.register(fs)
	if err := fs.Parse([]string{"--streams-file", file, "--node", "edge-1", "--streams-key-file", filepath.Join(dir, "streams.key")}); err != nil {
		t.Fatal(err)
	}
	if err := f.check(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := &bus.EmbeddedServer{StoreDir: filepath.Join(dir, "js"), Logger: log}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	nc, err := bus.Connect(context.Background(), srv.ClientURL(), "ingest", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	frames, err := nc.SubscribeSync(bus.FramesPrefix + ".cam")
	if err != nil {
		t.Fatal(err)
	}
	api := &httpapi.Server{Addr: "127.0.0.1:0", Log: log}
	reg := prometheus.NewRegistry()
	flagStreams := []ingest.StreamConfig{{Name: "cam", Source: video, FPS: 5, MaxWidth: 320, MaxHeight: 240, JPEGQuality: 80, Loop: true, Realtime: true}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := f.newManaged(ctx, nc, js, 1, flagStreams, log)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Mount(api)
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := api.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	msg, err := frames.NextMsg(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if fr, err := frame.FromMsg(msg); err != nil || fr.Width > 320 {
		t.Fatalf("frame: %+v %v", fr, err)
	}
	resp, err := http.Get(api.URL() + "/v1/streams")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`"name":"cam"`, `"node":"edge-1"`, `"name":"door"`, `"state":"elsewhere"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("GET /v1/streams lacks %s: %s", want, body)
		}
	}
	if reply, err := nc.Request(streams.ControlSubject, []byte(`{"op":"get","name":"cam"}`), 10*time.Second); err != nil ||
		!strings.Contains(string(reply.Data), `"ok":true`) {
		t.Fatalf("control subject: %v %v", reply, err)
	}
	if fams, err := reg.Gather(); err != nil || len(fams) == 0 {
		t.Fatalf("metrics: %v %v", fams, err)
	}
	kv, err := js.KeyValue(ctx, "vigil-streams")
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := kv.Keys(ctx); err != nil || len(keys) != 3 {
		t.Fatalf("bucket keys %v %v", keys, err)
	}
	if _, err := f.newManaged(ctx, nc, nil, 1, []ingest.StreamConfig{{Name: "x", Source: video, Once: true}}, log); err == nil {
		t.Fatal("a --once stream was accepted")
	}

	for _, c := range []struct{ args, want string }{
		{"--node=a.b", "--node"},
		{"--streams-file=" + filepath.Join(dir, "missing.yaml"), "no such file"},
	} {
		var g streamFlags
		gfs := flag.NewFlagSet("x", flag.ContinueOnError)
		g.register(gfs)
		if err := gfs.Parse([]string{c.args}); err != nil {
			t.Fatal(err)
		}
		if err := g.check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.args, err)
		}
	}
}
