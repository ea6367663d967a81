package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/analyze/classify/api"
	dt "github.com/vigil-video/vigil/analyze/classify/dataset/datasettest"
	"github.com/vigil-video/vigil/analyze/classify/manifest"
	"github.com/vigil-video/vigil/analyze/classify/project"
	"github.com/vigil-video/vigil/analyze/classify/store"
	"github.com/vigil-video/vigil/pkg/httpapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// fakeBackend keeps classifiers in memory; "models" are their bytes, accepted when they start
// with "onnx". Images are accepted when they start with "img".
type fakeBackend struct {
	mu   sync.Mutex
	regs map[string]manifest.Manifest
}

func (b *fakeBackend) Classifiers(context.Context) []api.ClassifierInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []api.ClassifierInfo
	for name, m := range b.regs {
		m := m
		out = append(out, api.ClassifierInfo{Name: name, State: "loaded", Manifest: &m})
	}
	return out
}

func (b *fakeBackend) Register(_ context.Context, m manifest.Manifest, model []byte) (api.ClassifierInfo, error) {
	if !bytes.HasPrefix(model, []byte("onnx")) {
		return api.ClassifierInfo{}, fmt.Errorf("%w: not an ONNX model", manifest.ErrModel)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	m.SHA256 = store.Digest(model)
	b.regs[m.Name] = m
	return api.ClassifierInfo{Name: m.Name, State: "loaded", Manifest: &m}, nil
}

func (b *fakeBackend) Delete(_ context.Context, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.regs[name]; !ok {
		return fmt.Errorf("classifier %s: %w", name, store.ErrNotFound)
	}
	delete(b.regs, name)
	return nil
}

func (b *fakeBackend) Classify(_ context.Context, image []byte, models []string) (api.ClassifyResult, error) {
	if !bytes.HasPrefix(image, []byte("img")) {
		return api.ClassifyResult{}, fmt.Errorf("%w: not JPEG or PNG", api.ErrImage)
	}
	res := api.ClassifyResult{Width: 4, Height: 3}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, name := range models {
		m, ok := b.regs[name]
		if !ok {
			return api.ClassifyResult{}, fmt.Errorf("%w: %s", api.ErrUnknownClassifier, name)
		}
		res.Predictions = append(res.Predictions, api.Prediction{Model: name, Target: "frame", Label: m.Labels[0], Score: 0.9, Reported: true})
	}
	return res, nil
}

// server mounts the API on a real httpapi.Server behind a real HTTP listener.
func server(t *testing.T, maxUpload int64, train project.TrainFunc) (*httptest.Server, *fakeBackend, string) {
	t.Helper()
	backend := &fakeBackend{regs: map[string]manifest.Manifest{}}
	dir := t.TempDir()
	pm, err := project.Open(project.Config{Dir: filepath.Join(dir, "projects"), Train: train, Log: quiet, MaxUploadBytes: maxUpload})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pm.Close() })
	srv := &httpapi.Server{Log: quiet, MaxUploadBytes: maxUpload, Limits: map[string]int64{api.ModelSetting: maxUpload}}
	api.Mount(srv, api.Config{Backend: backend, Projects: pm, Log: quiet})
	h, err := srv.Handler()
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts, backend, dir
}

// call sends a request and decodes the JSON answer.
func call(t *testing.T, method, url, contentType string, body []byte) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %d %q is not JSON", method, url, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out
}

func form(t *testing.T, parts map[string][]byte) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for name, data := range parts {
		w, err := mw.CreateFormFile(name, name+".bin")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(data)
	}
	_ = mw.Close()
	return mw.FormDataContentType(), b.Bytes()
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestClassifierRoutes(t *testing.T) {
	ts, _, _ := server(t, 1<<20, nil)
	man := "name: helmet\nlabels: [no, yes]\ninput: {width: 8, height: 8}\n"
	ct, body := form(t, map[string][]byte{"manifest": []byte(man), "model": []byte("onnx model")})
	if code, out := call(t, "POST", ts.URL+"/v1/classifiers", ct, body); code != http.StatusCreated || out["name"] != "helmet" {
		t.Fatalf("register: %d %v", code, out)
	}
	for _, tc := range []struct {
		name   string
		parts  map[string][]byte
		status int
		code   string
	}{
		{"bad manifest", map[string][]byte{"manifest": []byte("name: helmet\nlabels: [no, no]\n"), "model": []byte("onnx")}, 400, "invalid_manifest"},
		{"bad model", map[string][]byte{"manifest": []byte(man), "model": []byte("MZ not onnx")}, 422, "invalid_model"},
		{"missing model", map[string][]byte{"manifest": []byte(man)}, 400, "bad_request"},
		{"model over --max-model-mb", map[string][]byte{"manifest": []byte(man), "model": bytes.Repeat([]byte("x"), 2<<20)}, 413, "body_too_large"},
	} {
		ct, body := form(t, tc.parts)
		if code, out := call(t, "POST", ts.URL+"/v1/classifiers", ct, body); code != tc.status || errCode(out) != tc.code {
			t.Errorf("%s: %d %v, want %d %s", tc.name, code, out, tc.status, tc.code)
		}
	}
	if code, _ := call(t, "POST", ts.URL+"/v1/classifiers", "application/json", []byte("{}")); code != 400 {
		t.Errorf("register without a form: %d", code)
	}
	if code, out := call(t, "GET", ts.URL+"/v1/classifiers", "", nil); code != 200 || len(out["classifiers"].([]any)) != 1 {
		t.Errorf("list: %d %v", code, out)
	}
	if code, out := call(t, "GET", ts.URL+"/v1/classifiers/helmet", "", nil); code != 200 || out["state"] != "loaded" {
		t.Errorf("get: %d %v", code, out)
	}
	if code, out := call(t, "GET", ts.URL+"/v1/classifiers/nope", "", nil); code != 404 || errCode(out) != "classifier_not_found" {
		t.Errorf("get missing: %d %v", code, out)
	}

	// Classify: raw body or multipart, models from the query or the form.
	if code, out := call(t, "POST", ts.URL+"/v1/classify?model=helmet", "image/jpeg", []byte("img data")); code != 200 ||
		out["predictions"].([]any)[0].(map[string]any)["label"] != "no" {
		t.Errorf("classify: %d %v", code, out)
	}
	ct, body = form(t, map[string][]byte{"image": []byte("img data"), "model": []byte("helmet")})
	if code, out := call(t, "POST", ts.URL+"/v1/classify", ct, body); code != 200 || len(out["predictions"].([]any)) != 1 {
		t.Errorf("classify form: %d %v", code, out)
	}
	for _, tc := range []struct {
		url, ct string
		body    []byte
		status  int
		code    string
	}{
		{"/v1/classify?model=helmet", "image/jpeg", []byte("not an image"), 400, "invalid_image"},
		{"/v1/classify?model=nope", "image/jpeg", []byte("img"), 404, "classifier_not_loaded"},
		{"/v1/classify", "image/jpeg", nil, 400, "bad_request"},
		{"/v1/classify", "image/jpeg", bytes.Repeat([]byte("i"), 2<<20), 413, "body_too_large"},
	} {
		if code, out := call(t, "POST", ts.URL+tc.url, tc.ct, tc.body); code != tc.status || errCode(out) != tc.code {
			t.Errorf("POST %s: %d %v, want %d %s", tc.url, code, out, tc.status, tc.code)
		}
	}
	if code, _ := call(t, "DELETE", ts.URL+"/v1/classifiers/helmet", "", nil); code != 204 {
		t.Errorf("delete: %d", code)
	}
	if code, out := call(t, "DELETE", ts.URL+"/v1/classifiers/helmet", "", nil); code != 404 {
		t.Errorf("delete twice: %d %v", code, out)
	}
	if code, out := call(t, "GET", ts.URL+"/openapi.json", "", nil); code != 200 || out["paths"].(map[string]any)["/v1/classifier-projects/{project}/dataset"] == nil {
		t.Errorf("OpenAPI document lacks the classifier routes: %d", code)
	}
}

func TestProjectRoutes(t *testing.T) {
	trained := make(chan struct{})
	train := func(ctx context.Context, req project.TrainRequest) (project.TrainOutcome, error) {
		defer close(trained)
		req.Progress("train", 1, 1)
		return project.TrainOutcome{Report: map[string]any{"val_accuracy": 1}, Classifier: req.Classifier}, nil
	}
	ts, backend, dir := server(t, 1<<20, train)
	base := ts.URL + "/v1/classifier-projects"
	if code, out := call(t, "POST", base, "application/json", []byte(`{"name": "pets", "target": "frame"}`)); code != 201 || out["state"] != "new" {
		t.Fatalf("create: %d %v", code, out)
	}
	for _, tc := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"name": "pets"}`, 409, "project_exists"},
		{`{"name": "../x"}`, 400, "invalid_project"},
		{`{"name": "x", "colour": 1}`, 400, "bad_request"},
	} {
		if code, out := call(t, "POST", base, "application/json", []byte(tc.body)); code != tc.status || errCode(out) != tc.code {
			t.Errorf("create %s: %d %v", tc.body, code, out)
		}
	}
	if code, out := call(t, "POST", base+"/pets/train", "", nil); code != 409 || errCode(out) != "no_dataset" {
		t.Errorf("train without data: %d %v", code, out)
	}
	if code, out := call(t, "POST", base+"/pets/predict", "image/jpeg", []byte("img")); code != 409 || errCode(out) != "not_trained" {
		t.Errorf("predict before training: %d %v", code, out)
	}

	// Hostile uploads: each refused with its code, nothing written outside the project.
	img := dt.JPEG(t, 8, 8, 1)
	good := dt.Classes(t, 5, "cats", "dogs")
	for _, tc := range []struct {
		name    string
		archive []byte
		status  int
		code    string
	}{
		{"zip slip", dt.ZIP(t, append(good, dt.File{Name: "../../../../evil.jpg", Data: img})...), 400, "unsafe_dataset"},
		{"non-image", dt.ZIP(t, append(good, dt.File{Name: "cats/x.jpg", Data: []byte("<html>")})...), 400, "invalid_image"},
		{"class with one image", dt.ZIP(t, append(good, dt.File{Name: "fish/x.jpg", Data: img})...), 400, "bad_dataset_layout"},
		{"oversized", bytes.Repeat([]byte("z"), 2<<20), 413, "body_too_large"},
	} {
		if code, out := call(t, "PUT", base+"/pets/dataset", "application/zip", tc.archive); code != tc.status || errCode(out) != tc.code {
			t.Errorf("%s: %d %v, want %d %s", tc.name, code, out, tc.status, tc.code)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "evil.jpg")); err == nil {
		t.Fatal("zip slip wrote outside the data directory")
	}
	ct, body := form(t, map[string][]byte{"dataset": dt.ZIP(t, good...)})
	if code, out := call(t, "PUT", base+"/pets/dataset", ct, body); code != 200 || out["state"] != "ready" {
		t.Fatalf("upload: %d %v", code, out)
	}
	if code, out := call(t, "POST", base+"/pets/train", "", nil); code != 202 || out["state"] != "training" {
		t.Fatalf("train: %d %v", code, out)
	}
	<-trained
	// The manager records the outcome right after the TrainFunc returns: poll its state.
	var out map[string]any
	for i := 0; i < 1000; i++ {
		if _, out = call(t, "GET", base+"/pets", "", nil); out["state"] != "training" {
			break
		}
	}
	if out["state"] != "trained" || out["classifier"] != "pets" {
		t.Fatalf("after training: %v", out)
	}
	// The fake trainer registers nothing; register "pets" so that predict finds it.
	backend.mu.Lock()
	backend.regs["pets"] = manifest.Manifest{Name: "pets", Labels: []string{"cats", "dogs"}}
	backend.mu.Unlock()
	if code, out := call(t, "POST", base+"/pets/predict", "image/jpeg", []byte("img")); code != 200 ||
		!strings.Contains(fmt.Sprint(out["predictions"]), "cats") {
		t.Errorf("predict: %d %v", code, out)
	}
	if code, out := call(t, "GET", base, "", nil); code != 200 || len(out["projects"].([]any)) != 1 {
		t.Errorf("list: %d %v", code, out)
	}
	if code, _ := call(t, "DELETE", base+"/pets", "", nil); code != 204 {
		t.Errorf("delete: %d", code)
	}
	if code, out := call(t, "GET", base+"/pets", "", nil); code != 404 || errCode(out) != "project_not_found" {
		t.Errorf("get deleted: %d %v", code, out)
	}
}
