package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/sink/webhook"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// vigil runs the command line in-process and returns its exit code, stdout and stderr.
func vigil(t *testing.T, extraEnv map[string]string, args ...string) (int, string, string) {
	t.Helper()
	deps := testenv.DepsDir(t)
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string {
		if v, ok := extraEnv[k]; ok {
			return v
		}
		if k == "VIGIL_DEPS" {
			return deps
		}
		if k == "VIGIL_HTTP_ADDR" {
			return "127.0.0.1:0" // never the default port: tests run beside other servers
		}
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code := Main(ctx, Env{Args: args, Stdout: &stdout, Stderr: &stderr, Getenv: getenv, Version: "test"})
	return code, stdout.String(), stderr.String()
}

// liveEnv is the environment of an in-process vigil run: the models in deps, the HTTP API on
// any free port (never the default: tests run beside other servers).
func liveEnv(deps string) func(string) string {
	return func(k string) string {
		switch k {
		case "VIGIL_DEPS":
			return deps
		case "VIGIL_HTTP_ADDR":
			return "127.0.0.1:0"
		}
		return ""
	}
}

func readResults(t *testing.T, jsonl string) []result.Result {
	t.Helper()
	var out []result.Result
	for _, line := range strings.Split(strings.TrimSpace(jsonl), "\n") {
		if line == "" {
			continue
		}
		r, err := result.ParseResult([]byte(line))
		if err != nil {
			t.Fatalf("bad result line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// TestRunOnceFaceVideo is the whole pipeline on real parts: the embedded NATS server, OpenCV
// decoding a real face video, onnxruntime with the real models, results on stdout and in a file.
func TestRunOnceFaceVideo(t *testing.T) {
	video := filepath.Join(testenv.TestData(t), "video", "fer_test.mp4")
	jsonl := filepath.Join(t.TempDir(), "out.jsonl")
	code, stdout, stderr := vigil(t, nil, "run", "--once", "--nats-port", "0", "--source", video, "--stream", "fer",
		"--jsonl", jsonl, "--heads", "all")
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
	}
	results := readResults(t, stdout)
	fileData, err := os.ReadFile(jsonl)
	if err != nil {
		t.Fatal(err)
	}
	if got := readResults(t, string(fileData)); len(got) != len(results) {
		t.Fatalf("%d results in the file, %d on stdout", len(got), len(results))
	}
	// 4.6 s at the default 5 fps: about 23 frames, each with exactly one result.
	if len(results) < 20 || len(results) > 26 {
		t.Fatalf("%d results for a 4.6 s clip at 5 fps, want about 23", len(results))
	}
	seen := map[uint64]bool{}
	withFace := 0
	for _, r := range results {
		if r.Stream != "fer" || seen[r.Seq] {
			t.Fatalf("unexpected or duplicate result stream=%s seq=%d", r.Stream, r.Seq)
		}
		seen[r.Seq] = true
		if len(r.Faces) == 1 {
			withFace++
			f := r.Faces[0]
			if f.Age == nil || f.Gender == nil || f.Emotion == nil || f.Liveness == nil || f.Pose == nil || len(f.Landmarks) != 5 {
				t.Fatalf("seq %d: a head is missing with --heads all: %+v", r.Seq, f)
			}
			if _, ok := f.Emotion.Scores[f.Emotion.Label]; !ok || len(f.Emotion.Scores) != 7 {
				t.Fatalf("seq %d: emotion %+v", r.Seq, *f.Emotion)
			}
		}
		if r.LatencyMS < 0 || r.AnalyzedAt.Before(r.CapturedAt) {
			t.Fatalf("seq %d: latency %v", r.Seq, r.LatencyMS)
		}
	}
	for s := uint64(1); s <= uint64(len(results)); s++ {
		if !seen[s] {
			t.Fatalf("no result for seq %d", s)
		}
	}
	// "one face in most frames"
	if withFace < len(results)*3/4 {
		t.Fatalf("one face in %d of %d frames, want most", withFace, len(results))
	}
	if !strings.Contains(stderr, "stream summary") {
		t.Errorf("no summary on stderr:\n%s", stderr)
	}
}

// TestRunOnceDemoVideo is `make run`'s demo, read once.
func TestRunOnceDemoVideo(t *testing.T) {
	if _, err := os.Stat(DemoVideo); err != nil {
		t.Fatalf("demo video missing: run \"make setup\": %v", err)
	}
	code, stdout, stderr := vigil(t, nil, "run", "--once", "--nats-port", "0", "--fps", "2")
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
	}
	results := readResults(t, stdout)
	faces := 0
	for _, r := range results {
		if r.Stream != "megamind" {
			t.Fatalf("stream %q, want megamind (from the file name)", r.Stream)
		}
		faces += len(r.Faces)
	}
	if len(results) < 15 || faces < len(results)/2 {
		t.Fatalf("%d results with %d faces from Megamind.avi at 2 fps", len(results), faces)
	}
}

func TestRunOnceNoFaces(t *testing.T) {
	dir := t.TempDir()
	video := filepath.Join(dir, "pattern.mp4")
	out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-t", "2", "-pix_fmt", "yuv420p", video).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	code, stdout, stderr := vigil(t, nil, "run", "--once", "--nats-port", "0", "--source", video, "--heads", "none")
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
	}
	results := readResults(t, stdout)
	if len(results) < 8 {
		t.Fatalf("%d results for 2 s at 5 fps", len(results))
	}
	for _, r := range results {
		if len(r.Faces) != 0 {
			t.Fatalf("seq %d: %d faces in a test pattern", r.Seq, len(r.Faces))
		}
	}
}

// TestBadInput: each mistake gives exit code 1 and one line on stderr saying what to do.
func TestBadInput(t *testing.T) {
	testenv.NeedsTestData(t)
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.mp4")
	if err := os.WriteFile(corrupt, bytes.Repeat([]byte("not a video "), 500), 0o644); err != nil {
		t.Fatal(err)
	}
	wrongModels := filepath.Join(dir, "deps")
	real := testenv.DepsDir(t)
	if err := os.MkdirAll(filepath.Join(wrongModels, "models"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(wrongModels, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	lib, _ := os.ReadFile(filepath.Join(real, "lib", "libonnxruntime.so.1"))
	if err := os.WriteFile(filepath.Join(wrongModels, "lib", "libonnxruntime.so.1"), lib, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(wrongModels, "models", "fr_detect.onnx"), []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	video := filepath.Join(testenv.TestData(t), "video", "fer_test.mp4")

	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string // in the error line
	}{
		{"unreadable path", nil, []string{"run", "--once", "--nats-port", "0", "--source", "/nonexistent/video.mp4"}, "no such file"},
		{"unsupported scheme", nil, []string{"run", "--once", "--nats-port", "0", "--source", "ftp://example.com/x.mp4"}, "unsupported URL scheme"},
		{"corrupt video", nil, []string{"run", "--once", "--nats-port", "0", "--source", corrupt}, "corrupt"},
		{"bad stream name", nil, []string{"run", "--once", "--nats-port", "0", "--source", video, "--stream", "a.>"}, "invalid stream name"},
		{"missing models", map[string]string{"VIGIL_DEPS": filepath.Join(dir, "empty")}, []string{"run", "--once", "--nats-port", "0", "--source", video}, "make setup"},
		{"wrong sha256", map[string]string{"VIGIL_DEPS": wrongModels}, []string{"run", "--once", "--nats-port", "0", "--source", video}, "sha256"},
		{"port in use", nil, []string{"run", "--once", "--nats-port", busyPort, "--source", video}, "in use"},
		{"unknown head", nil, []string{"run", "--once", "--heads", "telepathy"}, "unknown head"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := vigil(t, c.env, c.args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1\nstderr:\n%s", code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout not empty: %q", stdout)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "vigil run: ") || !strings.Contains(last, c.want) {
				t.Fatalf("last stderr line %q, want \"vigil run: ...%s...\"", last, c.want)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	code, stdout, _ := vigil(t, nil, "--help")
	if code != 0 || !strings.Contains(stdout, "run") || !strings.Contains(stdout, "analyze") {
		t.Fatalf("--help: %d %q", code, stdout)
	}
	code, stdout, _ = vigil(t, nil, "version")
	if code != 0 || stdout != "vigil test\n" {
		t.Fatalf("version: %d %q", code, stdout)
	}
	for _, role := range []string{"run", "ingest", "analyze", "sink"} {
		code, _, stderr := vigil(t, nil, role, "--help")
		if code != 0 || !strings.Contains(stderr, "--log-level") {
			t.Fatalf("%s --help: %d %q", role, code, stderr)
		}
	}
	if code, _, _ := vigil(t, nil, "frobnicate"); code != 2 {
		t.Fatalf("unknown command exit %d, want 2", code)
	}
	if code, _, _ := vigil(t, nil, "run", "--no-such-flag"); code != 2 {
		t.Fatalf("unknown flag exit %d, want 2", code)
	}
	if code, _, stderr := vigil(t, map[string]string{"VIGIL_FPS": "fast"}, "run"); code != 2 || !strings.Contains(stderr, "VIGIL_FPS") {
		t.Fatalf("bad env: %d %q", code, stderr)
	}
}

func TestStreamNameFor(t *testing.T) {
	for src, want := range map[string]string{
		"/usr/share/doc/opencv-doc/examples/data/Megamind.avi": "megamind",
		"rtsp://user:secret@cam.local:554/live/1":              "cam-local-554-live-1",
		"device:0":       "camera0",
		"/tmp/x y.z.mp4": "x-y-z",
		"/tmp/" + strings.Repeat("a", 100) + ".mp4": strings.Repeat("a", 64),
	} {
		if got := StreamNameFor(src); got != want {
			t.Errorf("StreamNameFor(%q) = %q, want %q", src, got, want)
		}
	}
}

func TestResultJSONShape(t *testing.T) {
	// The README documents these field names; keep them stable.
	b, _ := json.Marshal(result.Result{Schema: 1, Stream: "s", Faces: []result.Face{{}}})
	for _, field := range []string{`"schema"`, `"stream"`, `"seq"`, `"captured_at"`, `"analyzed_at"`, `"latency_ms"`, `"faces"`, `"box"`, `"score"`} {
		if !bytes.Contains(b, []byte(field)) {
			t.Errorf("result JSON lacks %s: %s", field, b)
		}
	}
}

// TestRunOnceWebhook: `vigil run --webhook` delivers signed results (and track events) to a
// receiver while the recording is analysed.
func TestRunOnceWebhook(t *testing.T) {
	testenv.NeedsTestData(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	types := map[string]int{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify([]byte("s3cret"), r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, time.Now(), time.Minute); err != nil {
			t.Errorf("bad signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		types[r.Header.Get("X-Vigil-Type")]++
		mu.Unlock()
	}))
	defer recv.Close()
	video := filepath.Join(testenv.TestData(t), "video", "fer_test.mp4")
	code, stdout, stderr := vigil(t, nil, "run", "--once", "--nats-port", "0", "--source", video, "--heads", "none",
		"--webhook", recv.URL, "--webhook-secret-file", secret)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	results := readResults(t, stdout)
	mu.Lock()
	defer mu.Unlock()
	if types["result"] != len(results) || types["face.appeared"] == 0 {
		t.Fatalf("webhook got %v for %d results", types, len(results))
	}
}

// TestRunLiveStopsInOrder: a live `vigil run` (a looped file) stops cleanly on Ctrl-C (its
// context ends), in pipeline order: the sink writes every result the analyzer published before
// the process exits, so stdout holds whole lines and as many results as the summary counts.
func TestRunLiveStopsInOrder(t *testing.T) {
	video := filepath.Join(testenv.TestData(t), "video", "fer_test.mp4")
	deps := testenv.DepsDir(t)
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, Env{Args: []string{"run", "--nats-port", "0", "--source", video, "--stream", "fer", "--loop",
			"--heads", "none", "--log-json", "--print"}, Stdout: &stdout, Stderr: &stderr, Version: "test",
			Getenv: liveEnv(deps)})
	}()
	testenv.Eventually(t, 2*time.Minute, "three results on stdout", func() bool {
		select {
		case code := <-done:
			t.Fatalf("vigil run exited %d before Ctrl-C:\n%s", code, stderr.String())
		default:
		}
		return strings.Count(stdout.String(), "\n") >= 3
	})
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d after Ctrl-C\nstderr:\n%s", code, stderr.String())
	}
	results := readResults(t, stdout.String()) // whole lines only: fails on a torn one
	var summary map[string]any
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	stopping := false
	var first []any // the first two lines: the web view's URL, then the NATS line
	for sc.Scan() {
		var l map[string]any
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		if len(first) < 2 {
			first = append(first, l["msg"])
		}
		switch l["msg"] {
		case "stopping":
			stopping = true
		case "stream summary":
			if !stopping {
				t.Fatalf("stream summary before \"stopping\":\n%s", stderr.String())
			}
			summary = l
		}
	}
	if summary == nil {
		t.Fatalf("no stream summary:\n%s", stderr.String())
	}
	if len(first) != 2 || first[0] != "Vigil is running: open the web view" || first[1] != "results are on NATS subjects vigil.results.<stream>" {
		t.Errorf("vigil run's first lines are %q, want the web view's URL, then NATS:\n%s", first, stderr.String())
	}
	if n, _ := summary["results"].(float64); int(n) != len(results) {
		t.Fatalf("summary counts %v results, stdout holds %d: the sink stopped before writing what arrived", summary["results"], len(results))
	}
}
