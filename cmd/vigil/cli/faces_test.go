package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-video/vigil/analyze/faceapi"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/testenv"
)

func TestParseArgs(t *testing.T) {
	for _, c := range []struct {
		args      []string
		pos, want string
	}{
		{[]string{"a.jpg", "b.jpg"}, "a.jpg,b.jpg", "default"},
		{[]string{"--heads", "all", "a.jpg"}, "a.jpg", "all"},
		{[]string{"a.jpg", "--heads", "age", "b.jpg"}, "a.jpg,b.jpg", "age"},
		{[]string{"a.jpg", "--", "--heads"}, "a.jpg,--heads", "default"},
	} {
		fs := newFlagSet("x", "")
		heads := fs.String("heads", "default", "")
		env := Env{Stderr: io.Discard, Getenv: func(string) string { return "" }}
		pos, err := parseArgs(fs, env, c.args)
		if err != nil || strings.Join(pos, ",") != c.pos || *heads != c.want {
			t.Errorf("parseArgs(%q) = %q, heads %q, %v", c.args, pos, *heads, err)
		}
	}
	fs := newFlagSet("x", "")
	fs.String("heads", "", "")
	env := Env{Stderr: io.Discard, Getenv: func(k string) string { return map[string]string{"VIGIL_HEADS": "pose"}[k] }}
	if _, err := parseArgs(fs, env, []string{"--nope", "a.jpg"}); err != errUsage {
		t.Errorf("unknown flag: %v", err)
	}
	if fs.Lookup("heads").Value.String() != "pose" {
		t.Errorf("VIGIL_HEADS not applied: %q", fs.Lookup("heads").Value)
	}
	// vigil analyze: image arguments choose the image command, none the role.
	for args, want := range map[string]bool{
		"": false, "--nats-url nats://x:4222": false, "--heads all a.jpg": true, "a.jpg --heads all": true,
		"--workers 2 --deadline 1s": false, "--bogus": false,
	} {
		if got := hasPositional(strings.Fields(args)); got != want {
			t.Errorf("hasPositional(%q) = %v", args, got)
		}
	}
}

// lines decodes JSON lines.
func lines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var res []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		res = append(res, m)
	}
	return res
}

func faceCount(m map[string]any) int {
	f, _ := m["faces"].([]any)
	return len(f)
}

// TestImageCommands runs vigil detect, analyze, represent and verify on the shared photos.
func TestImageCommands(t *testing.T) {
	td := testenv.TestData(t)
	det := func(n string) string { return filepath.Join(td, "detect", n) }
	obama := filepath.Join(td, "faces", "Barack_Obama", "obama.jpg")
	obama2 := filepath.Join(td, "faces", "Barack_Obama", "obama2.jpg")
	biden := filepath.Join(td, "faces", "Joe_Biden", "biden.jpg")
	notImage := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notImage, []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := vigil(t, nil, "detect", det("two_people.jpg"), det("no-faces.jpg"), det("dogs.jpg"), "--log-level", "warn")
	if code != 0 {
		t.Fatalf("detect: exit %d\n%s", code, stderr)
	}
	got := lines(t, stdout)
	if len(got) != 3 || faceCount(got[0]) != 2 || faceCount(got[1]) != 0 || faceCount(got[2]) != 0 || got[0]["image"] != det("two_people.jpg") {
		t.Fatalf("detect output:\n%s", stdout)
	}

	code, stdout, stderr = vigil(t, nil, "detect", det("two_people.jpg"), notImage)
	if code != 1 || !strings.Contains(stderr, "1 of 2 images failed") {
		t.Fatalf("detect with a text file: exit %d\n%s", code, stderr)
	}
	got = lines(t, stdout)
	if len(got) != 2 || faceCount(got[0]) != 2 || got[1]["error"].(map[string]any)["code"] != "invalid_image" {
		t.Fatalf("detect with a text file:\n%s", stdout)
	}

	// vigil analyze IMAGE... (analyzeOrImagesCmd, the command the analyze entry runs).
	var out bytes.Buffer
	env := Env{Stdout: &out, Stderr: io.Discard, Getenv: func(k string) string {
		if k == "VIGIL_DEPS" {
			return testenv.DepsDir(t)
		}
		return ""
	}}
	if err := analyzeOrImagesCmd(context.Background(), env, []string{"--heads", "age,gender", obama}); err != nil {
		t.Fatal(err)
	}
	var res imageResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.FacesResponse == nil || len(res.Faces) != 1 {
		t.Fatalf("analyze: %v\n%s", err, out.String())
	}
	if f := res.Faces[0]; f.Age == nil || f.Gender == nil || f.Gender.Label != "male" || f.Pose != nil {
		t.Fatalf("analyze --heads age,gender: %+v", f)
	}

	code, stdout, stderr = vigil(t, nil, "represent", obama)
	if code != 0 {
		t.Fatalf("represent: exit %d\n%s", code, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || len(res.Faces) != 1 || len(res.Faces[0].Embedding) != 512 || res.Model != "fr_feature" {
		t.Fatalf("represent: %v\n%.300s", err, stdout)
	}

	for _, c := range []struct {
		a, b     string
		verified bool
	}{{obama, obama2, true}, {obama, biden, false}} {
		code, stdout, stderr = vigil(t, nil, "verify", c.a, c.b)
		var v verifyResult
		if code != 0 || json.Unmarshal([]byte(stdout), &v) != nil || v.Verified != c.verified || v.Threshold != 0.46 || v.Image2 != c.b {
			t.Fatalf("verify %s %s: exit %d, %+v\n%s", filepath.Base(c.a), filepath.Base(c.b), code, v, stderr)
		}
	}
	code, _, stderr = vigil(t, nil, "verify", obama, det("no-faces.jpg"))
	if code != 1 || !strings.Contains(stderr, "no_face: image2") {
		t.Fatalf("verify without a face: exit %d\n%s", code, stderr)
	}
	code, _, stderr = vigil(t, nil, "verify", obama)
	if code != 2 || !strings.Contains(stderr, "want two images") {
		t.Fatalf("verify with one image: exit %d\n%s", code, stderr)
	}
}

// syncBuffer is a bytes.Buffer safe for a command writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type apiReply struct {
	status int
	body   []byte
}

func post(t *testing.T, url, key, ct string, body []byte) apiReply {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apiReply{resp.StatusCode, b}
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestServeAndFaces runs vigil serve against a real NATS server with JetStream, configured from
// the environment, and manages its gallery with vigil faces: an enrollment from the command line
// is identified by the running server within a second, without a restart.
func TestServeAndFaces(t *testing.T) {
	td := testenv.TestData(t)
	photo := func(id, n string) string { return filepath.Join(td, "faces", id, n) }
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ns := &bus.EmbeddedServer{StoreDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}
	if err := ns.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	natsURL := ns.ClientURL()

	deps := testenv.DepsDir(t)
	envVars := map[string]string{"VIGIL_DEPS": deps, "VIGIL_NATS_URL": natsURL, "VIGIL_HTTP_ADDR": "127.0.0.1:0",
		"VIGIL_MAX_UPLOAD_MB": "1", "VIGIL_API_KEYS": "key-a,key-b", "VIGIL_CORS_ORIGINS": "https://ui.example",
		"VIGIL_ENABLE_DOCS": "false", "VIGIL_LOG_JSON": "true"}
	var stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, Env{Args: []string{"serve"}, Stdout: io.Discard, Stderr: &stderr, Version: "test",
			Getenv: func(k string) string { return envVars[k] }})
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d\n%s", code, stderr.String())
		}
	}()
	var base string
	testenv.Eventually(t, 2*time.Minute, "serve starts", func() bool {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("serve exited %d:\n%s", code, stderr.String())
		default:
		}
		sc := bufio.NewScanner(strings.NewReader(stderr.String()))
		for sc.Scan() {
			var l map[string]any
			if json.Unmarshal(sc.Bytes(), &l) == nil && l["msg"] == "face API listening" {
				base, _ = l["url"].(string)
			}
		}
		return base != ""
	})
	testenv.Eventually(t, 10*time.Second, "readyz", func() bool { return get(t, base+"/readyz") == 200 })
	if c := get(t, base+"/docs"); c != 404 {
		t.Fatalf("/docs with VIGIL_ENABLE_DOCS=false: %d", c)
	}
	twoPeople := read(filepath.Join(td, "detect", "two_people.jpg"))
	if r := post(t, base+"/v1/detect", "", "image/jpeg", twoPeople); r.status != 401 || !strings.Contains(string(r.body), "missing_api_key") {
		t.Fatalf("no key: %d %s", r.status, r.body)
	}
	r := post(t, base+"/v1/detect", "key-b", "image/jpeg", twoPeople)
	var fr faceapi.FacesResponse
	if r.status != 200 || json.Unmarshal(r.body, &fr) != nil || len(fr.Faces) != 2 {
		t.Fatalf("detect: %d %.200s", r.status, r.body)
	}
	if r := post(t, base+"/v1/detect", "key-a", "image/jpeg", make([]byte, 1<<20+1)); r.status != 413 || !strings.Contains(string(r.body), "1 MiB") {
		t.Fatalf("VIGIL_MAX_UPLOAD_MB=1: %d %s", r.status, r.body)
	}

	identify := func(p string) string {
		r := post(t, base+"/v1/identify", "key-a", "image/jpeg", read(p))
		var out faceapi.IdentifyResponse
		if r.status != 200 || json.Unmarshal(r.body, &out) != nil || len(out.Faces) != 1 {
			t.Fatalf("identify %s: %d %s", p, r.status, r.body)
		}
		if out.Faces[0].Identity == nil {
			return ""
		}
		return out.Faces[0].Identity.Name
	}
	obamaTest := photo("Barack_Obama", "knn_test_obama1.jpg")
	if name := identify(obamaTest); name != "" {
		t.Fatalf("empty gallery identified %q", name)
	}

	faces := func(args ...string) (int, string, string) {
		return vigil(t, map[string]string{"VIGIL_NATS_URL": natsURL}, append([]string{"faces"}, args...)...)
	}
	code, stdout, errOut := faces("add", "Barack Obama", photo("Barack_Obama", "obama.jpg"), photo("Barack_Obama", "obama2.jpg"), photo("Barack_Obama", "obama3.jpg"))
	if code != 0 || !strings.Contains(errOut, "3/3 photos analysed") {
		t.Fatalf("faces add: exit %d\n%s", code, errOut)
	}
	var enrolled faceapi.EnrollResponse
	if err := json.Unmarshal([]byte(stdout), &enrolled); err != nil || enrolled.Identity.ID != "barack-obama" || len(enrolled.Identity.Photos) != 3 {
		t.Fatalf("faces add output: %v\n%s", err, stdout)
	}
	start := time.Now()
	testenv.Eventually(t, time.Second, "the running server identifies the enrollment", func() bool { return identify(obamaTest) == "Barack Obama" })
	t.Logf("enrollment from the CLI identified by the server %v later", time.Since(start).Round(time.Millisecond))
	if name := identify(photo("Joe_Biden", "biden.jpg")); name != "" {
		t.Fatalf("Biden identified as %q", name)
	}

	// Bad photos: nothing written; --skip-bad enrolls the good ones.
	code, _, errOut = faces("add", "Crowd", filepath.Join(td, "detect", "two_people.jpg"))
	if code != 1 || !strings.Contains(errOut, "multiple_faces") || !strings.Contains(errOut, "nothing was enrolled") {
		t.Fatalf("faces add with two faces: exit %d\n%s", code, errOut)
	}
	code, _, errOut = faces("add", "Joe Biden", photo("Joe_Biden", "biden.jpg"), filepath.Join(td, "detect", "no-faces.jpg"))
	if code != 1 || !strings.Contains(errOut, "no_face") {
		t.Fatalf("faces add with a faceless photo: exit %d\n%s", code, errOut)
	}
	code, stdout, errOut = faces("list")
	var list faceapi.IdentityList
	if code != 0 || json.Unmarshal([]byte(stdout), &list) != nil || len(list.Identities) != 1 || list.Identities[0].Photos != 3 {
		t.Fatalf("faces list after refused adds: exit %d\n%s\n%s", code, stdout, errOut)
	}
	code, stdout, errOut = faces("add", "--skip-bad", "Joe Biden", photo("Joe_Biden", "biden.jpg"), filepath.Join(td, "detect", "no-faces.jpg"))
	if code != 0 || !strings.Contains(errOut, "skipped no_face") || json.Unmarshal([]byte(stdout), &enrolled) != nil || len(enrolled.Identity.Photos) != 1 {
		t.Fatalf("faces add --skip-bad: exit %d\n%s\n%s", code, stdout, errOut)
	}
	code, _, errOut = faces("add", "joe biden", photo("Joe_Biden", "biden.jpg"))
	if code != 1 || !strings.Contains(errOut, "duplicate_photo") {
		t.Fatalf("same photo again: exit %d\n%s", code, errOut)
	}
	code, stdout, _ = faces("show", "Joe Biden")
	if code != 0 || !strings.Contains(stdout, `"name": "Joe Biden"`) {
		t.Fatalf("faces show: exit %d\n%s", code, stdout)
	}

	// rm: by name or id; the server forgets at once; an unknown name fails.
	code, stdout, errOut = faces("rm", "barack obama")
	if code != 0 || !strings.Contains(stdout, "barack-obama") {
		t.Fatalf("faces rm: exit %d\n%s\n%s", code, stdout, errOut)
	}
	testenv.Eventually(t, time.Second, "the server forgets the deleted identity", func() bool { return identify(obamaTest) == "" })
	code, _, errOut = faces("rm", "Nobody Here")
	if code != 1 || !strings.Contains(errOut, "identity not found") {
		t.Fatalf("faces rm unknown: exit %d\n%s", code, errOut)
	}
	code, _, errOut = faces("add", "a/b", photo("Joe_Biden", "biden.jpg"))
	if code != 1 || !strings.Contains(errOut, "invalid identity name") {
		t.Fatalf("faces add with a bad name: exit %d\n%s", code, errOut)
	}

	// The request log is JSON lines and names the caller, never the key.
	logs := stderr.String()
	if strings.Contains(logs, "key-a") || strings.Contains(logs, "key-b") || !strings.Contains(logs, `"msg":"http request"`) ||
		!strings.Contains(logs, `"caller":"key-1"`) {
		t.Fatalf("request logs:\n%s", logs)
	}
}
