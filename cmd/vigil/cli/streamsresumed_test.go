package cli

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/pkg/bus/bustest"
)

// lockedBuffer is a bytes.Buffer safe for a logger used from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestStreamsResumedLogged: a second start on the same stream bucket says which streams came
// back from it (those not given at this start), and from where; a start that resumes nothing
// says nothing.
func TestStreamsResumedLogged(t *testing.T) {
	srv := bustest.StartServer(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := &streamFlags{bucket: "vigil-test-streams", keyFile: filepath.Join(t.TempDir(), "streams.key")}
	start := func(seed ...ingest.StreamConfig) string {
		t.Helper()
		var logs lockedBuffer
		m, err := f.newManaged(ctx, nc, js, 1, seed, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		return logs.String()
	}
	push := func(name string) ingest.StreamConfig {
		return ingest.StreamConfig{Name: name, Source: "push", FPS: 5, MaxWidth: 320, MaxHeight: 240, JPEGQuality: 80}
	}
	if out := start(push("door")); strings.Contains(out, "resumed") {
		t.Fatalf("the first start resumed something:\n%s", out)
	}
	out := start(push("lobby"))
	if !strings.Contains(out, `msg="streams resumed from an earlier run" streams=[door]`) || !strings.Contains(out, "vigil-test-streams") {
		t.Fatalf("the second start does not say it resumed door from the bucket:\n%s", out)
	}
	if strings.Contains(out, "streams=[door lobby]") {
		t.Fatalf("a stream given at start is counted as resumed:\n%s", out)
	}
}
