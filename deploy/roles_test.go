package deploy

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/ingest/streams"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/config"
)

// TestRolesConfig runs deploy/nats/roles.conf as a lone node and checks that each role's user
// can do its job and nothing else: frames flow ingest → analyze → sink, the stream list and the
// gallery are written by their owners only, results cannot be forged by a sink or frames by an
// analyzer, and nobody may delete a stream.
func TestRolesConfig(t *testing.T) {
	natsEnv(t)
	pw := map[string]string{"ingest": "pi", "analyze": "pa", "track": "pt", "sink": "ps", "api": "pp"}
	for role, p := range pw {
		t.Setenv("VIGIL_"+strings.ToUpper(role)+"_PASSWORD", p)
	}
	opts, err := server.ProcessConfigFile("nats/roles.conf")
	if err != nil {
		t.Fatalf("nats-server rejects nats/roles.conf: %v", err)
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.Routes, opts.Cluster, opts.NoLog, opts.NoSigs = nil, server.ClusterOpts{}, true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server from roles.conf did not start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	violations := map[string][]string{}
	conn := func(role string) *nats.Conn {
		t.Helper()
		nc, err := bus.Dial(ctx, config.NATS{URL: s.ClientURL(), User: role, Password: pw[role]}, "test-"+role, slog.New(slog.DiscardHandler), nil,
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				mu.Lock()
				violations[role] = append(violations[role], err.Error())
				mu.Unlock()
			}))
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	js := func(nc *nats.Conn) jetstream.JetStream {
		j, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	ingest, analyze, sink, api := conn("ingest"), conn("analyze"), conn("sink"), conn("api")
	violated := func(role, what string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, v := range violations[role] {
			if strings.Contains(strings.ToLower(v), "permissions violation") && strings.Contains(v, what) {
				return true
			}
		}
		return false
	}

	// JetStream set-up as every role does it at start, here by the sink.
	if err := bus.EnsureStreams(ctx, js(sink), config.Default().JetStream, nil); err != nil {
		t.Fatalf("sink ensuring the streams: %v", err)
	}
	// The stream list belongs to ingest, the gallery to the API.
	kv, err := streams.OpenKV(ctx, js(ingest), "", 1)
	if err != nil {
		t.Fatalf("ingest opening its stream list: %v", err)
	}
	if _, err := kv.Put(ctx, streams.Spec{Name: "cam1", Source: "push", Enabled: true, FPS: 5, MaxWidth: 640, MaxHeight: 480, JPEGQuality: 80}, 0); err != nil {
		t.Fatalf("ingest writing its stream list: %v", err)
	}
	g, err := gallery.OpenStore(ctx, js(api), gallery.StoreConfig{})
	if err != nil {
		t.Fatalf("api opening the gallery: %v", err)
	}
	if _, err := g.Create(ctx, "Ada", nil); err != nil {
		t.Fatalf("api enrolling: %v", err)
	}
	ga, err := gallery.OpenStore(ctx, js(analyze), gallery.StoreConfig{})
	if err != nil {
		t.Fatalf("analyze opening the gallery: %v", err)
	}
	if l, err := ga.List(ctx); err != nil || len(l) != 1 {
		t.Fatalf("analyze reading the gallery: %v %v", l, err)
	}
	refused, rcancel := context.WithTimeout(ctx, 2*time.Second) // a refused publish is never acknowledged
	defer rcancel()
	if _, err := ga.Create(refused, "Mallory", nil); err == nil {
		t.Fatal("analyze wrote the gallery")
	}

	// Frames and results flow along the pipeline.
	frames, err := analyze.QueueSubscribeSync(bus.All(bus.FramesPrefix), bus.AnalyzeQueue)
	if err != nil {
		t.Fatal(err)
	}
	results, err := sink.SubscribeSync(bus.All(bus.ResultsPrefix))
	if err != nil {
		t.Fatal(err)
	}
	for _, nc := range []*nats.Conn{analyze, sink} {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := ingest.Publish("vigil.frames.cam1", []byte("jpeg")); err != nil {
		t.Fatal(err)
	}
	if _, err := frames.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("analyze did not get ingest's frame: %v", err)
	}
	if err := analyze.Publish("vigil.results.cam1", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := results.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("sink did not get analyze's result: %v", err)
	}

	// What each role may not do.
	_ = sink.Publish("vigil.results.cam1", []byte("forged"))
	_ = analyze.Publish("vigil.frames.cam1", []byte("forged"))
	_, _ = ingest.SubscribeSync("vigil.events.>")
	for _, nc := range []*nats.Conn{sink, analyze, ingest} {
		_ = nc.Flush()
	}
	if m, err := results.NextMsg(500 * time.Millisecond); err == nil {
		t.Errorf("a sink forged a result: %q", m.Data)
	}
	if m, err := frames.NextMsg(500 * time.Millisecond); err == nil {
		t.Errorf("an analyzer forged a frame: %q", m.Data)
	}
	for _, c := range []struct{ role, what string }{{"sink", "vigil.results.cam1"}, {"analyze", "vigil.frames.cam1"}, {"ingest", "vigil.events.>"}} {
		waitUntil(t, c.role+" refused "+c.what, func() bool { return violated(c.role, c.what) })
	}
	dctx, dcancel := context.WithTimeout(ctx, 2*time.Second) // nor is a refused request answered
	defer dcancel()
	if err := js(sink).DeleteStream(dctx, "VIGIL_RESULTS"); err == nil || errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("sink deleting VIGIL_RESULTS: %v, want a refusal", err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
