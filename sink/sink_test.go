package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func publishJSON(t *testing.T, nc *nats.Conn, prefix, stream string, doc any) {
	t.Helper()
	subj, err := bus.Subject(prefix, stream)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(doc)
	if err := nc.Publish(subj, b); err != nil {
		t.Fatal(err)
	}
}

// TestAwaitCompletes: with Await, the role returns once the stream ended and every announced
// frame has a result or a drop; results reach both sinks; malformed documents are ignored.
func TestAwaitCompletes(t *testing.T) {
	srv := &bus.EmbeddedServer{}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	nc, err := bus.Connect(context.Background(), srv.ClientURL(), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var out bytes.Buffer
	path := filepath.Join(t.TempDir(), "r.jsonl")
	file, err := CreateJSONLinesFile(path)
	if err != nil {
		t.Fatal(err)
	}
	role := &Role{Conn: nc, Sinks: []Sink{NewJSONLines(&out), file}, Await: []string{"cam"}}
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() { done <- role.Run(ctx) }()
	<-role.Ready()
	publishJSON(t, nc, bus.ResultsPrefix, "cam", result.Result{Schema: 1, Stream: "cam", Seq: 1, Faces: []result.Face{{Score: 0.9}}})
	publishJSON(t, nc, bus.ResultsPrefix, "cam", map[string]any{"schema": 99, "stream": "cam"}) // ignored
	publishJSON(t, nc, bus.DropsPrefix, "cam", result.Drop{Schema: 1, Stream: "cam", Seq: 2, Reason: result.ReasonDeadline})
	publishJSON(t, nc, bus.EOSPrefix, "cam", result.EndOfStream{Schema: 1, Stream: "cam", Frames: 3})
	publishJSON(t, nc, bus.ResultsPrefix, "other", result.Result{Schema: 1, Stream: "other", Seq: 1})
	select {
	case err := <-done:
		t.Fatalf("Run returned before frame 3 had an outcome: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	publishJSON(t, nc, bus.ResultsPrefix, "cam", result.Result{Schema: 1, Stream: "cam", Seq: 3, Faces: []result.Face{}})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	p := role.Progress()["cam"]
	if !p.Complete() || p.Results != 2 || p.Drops != 1 || p.DropReasons[result.ReasonDeadline] != 1 || p.Faces != 1 {
		t.Fatalf("progress %+v", p)
	}
	fileData, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"stdout": out.String(), "file": string(fileData)} {
		lines := strings.Split(strings.TrimSpace(data), "\n")
		if len(lines) < 2 {
			t.Fatalf("%s: %d lines: %q", name, len(lines), data)
		}
		for _, l := range lines {
			if _, err := result.ParseResult([]byte(l)); err != nil {
				t.Fatalf("%s: line %q: %v", name, l, err)
			}
		}
	}
}

func TestJSONLinesFileErrors(t *testing.T) {
	if _, err := CreateJSONLinesFile(filepath.Join(t.TempDir(), "missing", "dir", "x.jsonl")); err == nil {
		t.Fatal("created a file in a missing directory")
	}
}
