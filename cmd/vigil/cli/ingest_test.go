package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/bus/bustest"
	"github.com/vigil-video/vigil/pkg/testenv"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// runIngest runs `vigil ingest` in-process until the returned stop is called; stop returns the
// exit code. Streams created through its API may read the shared test data.
func runIngest(t *testing.T, natsURL, httpAddr string) (stop func() int) {
	t.Helper()
	data := testenv.TestData(t)
	key := filepath.Join(t.TempDir(), "streams.key")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- Main(ctx, Env{Args: []string{"ingest", "--nats-url", natsURL, "--http-addr", httpAddr, "--stream-file-dirs", data, "--streams-key-file", key},
			Stdout: &bytes.Buffer{}, Stderr: &stderr, Getenv: func(string) string { return "" }, Version: "test"})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case code := <-done:
			t.Fatalf("vigil ingest exited %d:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vigil ingest did not serve HTTP:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func() int { cancel(); return <-done }
}

// TestIngestManagedResumes: `vigil ingest` with no --source waits for streams; a stream added
// over HTTP publishes frames; a restarted ingest resumes it from the JetStream bucket.
func TestIngestManagedResumes(t *testing.T) {
	testenv.NeedsTestData(t)
	srv := bustest.StartServer(t)
	nc, err := bus.Connect(context.Background(), srv.ClientURL(), "observer", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	frames, err := nc.SubscribeSync(bus.All(bus.FramesPrefix))
	if err != nil {
		t.Fatal(err)
	}
	video := filepath.Join(testenv.TestData(t), "video", "fer_test.mp4")
	addr := freeAddr(t)
	stop := runIngest(t, srv.ClientURL(), addr)
	body := fmt.Sprintf(`{"name":"lobby","source":%q,"fps":10,"loop":true}`, video)
	resp, err := http.Post("http://"+addr+"/v1/streams", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST /v1/streams: %s", resp.Status)
	}
	expectFrame(t, frames, "lobby")
	if code := stop(); code != 0 {
		t.Fatalf("vigil ingest exited %d", code)
	}
	for { // forget what the first process published
		if _, err := frames.NextMsg(10 * time.Millisecond); err != nil {
			break
		}
	}
	stop = runIngest(t, srv.ClientURL(), freeAddr(t))
	expectFrame(t, frames, "lobby") // resumed from the bucket, nobody added it again
	if code := stop(); code != 0 {
		t.Fatalf("vigil ingest exited %d", code)
	}
}

func expectFrame(t *testing.T, sub *nats.Subscription, stream string) {
	t.Helper()
	m, err := sub.NextMsg(30 * time.Second)
	if err != nil {
		t.Fatalf("no frame: %v", err)
	}
	if got := m.Header.Get("Vigil-Stream"); got != stream {
		t.Fatalf("frame of stream %q, want %q", got, stream)
	}
}
