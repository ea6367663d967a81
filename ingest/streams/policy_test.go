package streams

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSourcePolicyHTTP: streams created through the API may not read local files (outside the
// allowed directories), cameras, loopback or link-local hosts (SSRF to metadata services and
// local daemons), and the refusal reads the same whether a file exists or not.
func TestSourcePolicyHTTP(t *testing.T) {
	videos := t.TempDir()
	if err := os.WriteFile(filepath.Join(videos, "clip.mp4"), []byte("not really a video"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(videos, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(videos, "escape.mp4")); err != nil {
		t.Fatal(err)
	}
	e := startRegistry(t, &Registry{Policy: SourcePolicy{FileDirs: []string{videos}, AllowHosts: []string{"127.0.0.2", "10.9.0.0/16"}}}, true)
	base := e.url + "/v1/streams"
	n := 0
	create := func(source string) response {
		t.Helper()
		n++
		return call(t, "POST", base, mustJSON(t, map[string]any{"name": "s" + strings.Repeat("x", n), "source": source}))
	}
	forbidden := []string{
		"/etc/passwd", "/etc/no-such-file", "file:///etc/passwd", "file:///etc/no-such-file", "relative.mp4",
		videos + "/../etc/passwd", videos + "/escape.mp4",
		"http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/x", "http://[fd00:ec2::254]/latest",
		"http://127.0.0.1:6379/", "rtsp://localhost/x", "rtsp://cam.localhost/x", "http://[::1]:8080/v1/identities",
		"http://[::ffff:127.0.0.1]/", "http://0.0.0.0:8080/", "rtsp://224.0.0.1/x",
		"device:0", "/dev/video0",
	}
	var outside string
	for _, src := range forbidden {
		r := create(src)
		if r.status != http.StatusForbidden || r.code() != CodeSourceNotAllowed {
			t.Errorf("source %q: %s, want 403 %s", src, r, CodeSourceNotAllowed)
			continue
		}
		msg := r.json["error"].(map[string]any)["message"].(string)
		msg = msg[strings.Index(msg, ": ")+2:] // after "stream NAME: "
		if strings.Contains(strings.ToLower(msg), "no such") || strings.Contains(msg, "exist") {
			t.Errorf("source %q: the refusal tells whether the file exists: %s", src, msg)
		}
		switch src {
		case "/etc/passwd":
			outside = strings.ReplaceAll(msg, "/etc/passwd", "X")
		case "/etc/no-such-file":
			if strings.ReplaceAll(msg, "/etc/no-such-file", "X") != outside {
				t.Errorf("an existing and a missing file outside the directories are refused differently:\n%s\n%s", outside, msg)
			}
		}
	}
	// Numeric host forms that C resolvers read as addresses (2130706433 is 127.0.0.1) are not names.
	for _, src := range []string{"http://2130706433/", "http://0x7f.1/", "http://127.1/", "http://017700000001/"} {
		if r := create(src); r.status != http.StatusBadRequest {
			t.Errorf("numeric host %q: %s, want 400", src, r)
		}
	}
	// A file the policy allows but that is missing is refused now, not retried for ever.
	if r := create(filepath.Join(videos, "missing.mp4")); r.status != http.StatusBadRequest || !strings.Contains(r.String(), "no such file") {
		t.Errorf("missing allowed file: %s, want 400 naming it", r)
	}
	if r := create(filepath.Join(videos, "sub")); r.status != http.StatusBadRequest {
		t.Errorf("a directory: %s, want 400", r)
	}
	for _, src := range []string{filepath.Join(videos, "clip.mp4"), "file://" + filepath.Join(videos, "sub", "..", "clip.mp4"),
		"rtsp://192.0.2.7/stream", "rtsp://10.1.2.3:554/x", "http://192.168.1.20/mjpeg", "rtsp://127.0.0.2:8554/x", "http://10.9.3.4/x"} {
		if r := create(src); r.status != http.StatusCreated {
			t.Errorf("allowed source %q: %s, want 201", src, r)
		}
	}
	// Changing an existing stream's source is checked the same way; other changes are not.
	if r := call(t, "PUT", base+"/cam", []byte(`{"source":"rtsp://192.0.2.8/x"}`)); r.status != http.StatusCreated {
		t.Fatalf("put: %s", r)
	}
	r := call(t, "PATCH", base+"/cam", []byte(`{"source":"http://169.254.169.254/"}`))
	if r.status != http.StatusForbidden {
		t.Errorf("patch to a metadata URL: %s, want 403", r)
	}
	if s, _ := e.runner.spec("cam"); s.Source != "rtsp://192.0.2.8/x" {
		t.Error("the refused source reached the runner")
	}
}

// TestSourcePolicyDefaults: the zero policy refuses every file, and the seed streams (the
// operator's own flags and file) are not subject to it.
func TestSourcePolicyDefaults(t *testing.T) {
	dir := t.TempDir()
	clip := filepath.Join(dir, "clip.mp4")
	if err := os.WriteFile(clip, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startRegistry(t, &Registry{Seed: []Spec{{Name: "seeded", Source: clip, Enabled: true}}}, false)
	if _, ok := e.runner.spec("seeded"); !ok {
		t.Fatal("the seed stream reading a local file did not run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.reg.Create(ctx, Spec{Name: "other", Source: clip, Enabled: true}); AsError(err).Code != CodeSourceNotAllowed {
		t.Fatalf("file through the API with the default policy: %v", err)
	}
	// The seeded stream keeps its source when other fields change.
	if _, err := e.reg.Patch(ctx, "seeded", Patch{FPS: ptr(2.0)}, 0); err != nil {
		t.Fatalf("patching the fps of a seeded file stream: %v", err)
	}
	for _, bad := range []SourcePolicy{{FileDirs: []string{"videos"}}, {Schemes: []string{"gopher"}}, {AllowHosts: []string{"http://x/"}}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate accepted %+v", bad)
		}
	}
	if err := (SourcePolicy{Schemes: []string{"rtsps"}}).Check(ctx, "rtsp://192.0.2.1/x", true); AsError(err).Code != CodeSourceNotAllowed {
		t.Errorf("rtsp with only rtsps allowed: %v", err)
	}
}

// TestSourcePolicyNATS: the control subject applies the same policy.
func TestSourcePolicyNATS(t *testing.T) {
	_, conn := startJetStream(t, t.TempDir())
	nc := conn("ingest")
	e := startRegistry(t, &Registry{Store: openKV(t, nc)}, false)
	if err := e.reg.ServeNATS(nc); err != nil {
		t.Fatal(err)
	}
	client := conn("client")
	for _, src := range []string{"/etc/passwd", "http://169.254.169.254/latest/meta-data/", "rtsp://127.0.0.1/x"} {
		m, err := client.Request(ControlSubject, mustJSON(t, map[string]any{"op": "create", "stream": map[string]any{"name": "x", "source": src}}), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var r Reply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
		if r.OK || r.Error == nil || r.Error.Code != CodeSourceNotAllowed {
			t.Errorf("NATS create %q: %s, want %s", src, m.Data, CodeSourceNotAllowed)
		}
	}
	if len(e.runner.names()) != 0 {
		t.Fatalf("refused streams reached the runner: %v", e.runner.names())
	}
}

// failingRunner reports every stream failing with what a remote host answered.
type failingRunner struct{ *fakeRunner }

func (f failingRunner) Status(name string) (RunStatus, bool) {
	st, ok := f.fakeRunner.Status(name)
	st.State, st.Error = StateBackoff, "source rtsp://10.0.0.5:22/x: cannot open the stream: SSH-2.0-OpenSSH_9.2 (connection closed)"
	return st, ok
}

// TestSourceErrorsHidden: a failing source's status does not tell the API caller what the
// remote host answered (the API would be a port scanner), unless the operator asks for details.
func TestSourceErrorsHidden(t *testing.T) {
	for _, details := range []bool{false, true} {
		fr := failingRunner{newFakeRunner()}
		e := startRegistry(t, &Registry{Runner: fr, SourceErrorDetails: details}, true)
		e.runner = fr.fakeRunner
		if r := call(t, "POST", e.url+"/v1/streams", []byte(`{"name":"probe","source":"rtsp://u:pw@10.0.0.5:22/x"}`)); r.status != http.StatusCreated {
			t.Fatalf("create: %s", r)
		}
		r := call(t, "GET", e.url+"/v1/streams/probe", nil)
		msg, _ := r.json["error"].(string)
		if got := strings.Contains(msg, "OpenSSH"); got != details {
			t.Errorf("details %v: status error %q", details, msg)
		}
		if !strings.Contains(msg, "10.0.0.5:22") || strings.Contains(msg, "pw@") {
			t.Errorf("details %v: the error should name the redacted source: %q", details, msg)
		}
	}
}
