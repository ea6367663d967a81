package classify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/vigil-video/vigil/analyze/classify"
	"github.com/vigil-video/vigil/analyze/classify/api"
	dt "github.com/vigil-video/vigil/analyze/classify/dataset/datasettest"
	"github.com/vigil-video/vigil/analyze/classify/project"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// do sends a request to the test server and decodes the JSON answer into out (when not nil).
func do(t *testing.T, method, url, contentType string, body []byte, out any) int {
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
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, raw)
		}
	}
	if resp.StatusCode >= 300 {
		t.Logf("%s %s: %d %s", method, url, resp.StatusCode, bytes.TrimSpace(raw))
	}
	return resp.StatusCode
}

// TestHTTPTrainingFlow is the old app's flow on real parts: create a project, upload the
// clothing photos as a ZIP, train on MobileNetV2, watch the status, predict; and the registry
// routes with a real model, a corrupt one and an oversized upload.
func TestHTTPTrainingFlow(t *testing.T) {
	testenv.NeedsTestData(t)
	ctx := context.Background()
	rt := newRuntime(t)
	reg := openRegistry(t, newStore(t))
	trainer := &classify.ProjectTrainer{Runtime: rt, Registry: reg,
		Backbones: map[string]classify.Backbone{"default": classify.ImageNetBackbone("mobilenetv2-12-int8", mobileNet(t))}}
	pm, err := project.Open(project.Config{Dir: filepath.Join(t.TempDir(), "projects"), Train: trainer.Train, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	srv := &httpapi.Server{Log: quiet, MaxUploadBytes: 8 << 20, Limits: map[string]int64{api.ModelSetting: 8 << 20}} // models have their own limit (--max-model-mb)
	api.Mount(srv, api.Config{Backend: &classify.Service{Registry: reg}, Projects: pm, Log: quiet})
	h, err := srv.Handler()
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	defer ts.Close()
	base := ts.URL + "/v1/classifier-projects"

	var p project.Project
	if code := do(t, "POST", base, "application/json", []byte(`{"name": "clothes"}`), &p); code != 201 {
		t.Fatalf("create: %d", code)
	}
	archive := dt.DirZIP(t, filepath.Join(testenv.TestData(t), "classify_train"), "classify_train/")
	if code := do(t, "PUT", base+"/clothes/dataset", "application/zip", archive, &p); code != 200 || p.Dataset.Images != 120 {
		t.Fatalf("upload: %d %+v", code, p.Dataset)
	}
	if code := do(t, "POST", base+"/clothes/train", "", nil, &p); code != 202 || p.State != project.StateTraining {
		t.Fatalf("train: %d %+v", code, p)
	}
	if err := pm.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if code := do(t, "GET", base+"/clothes", "", nil, &p); code != 200 || p.State != project.StateTrained || p.Classifier != "clothes" {
		t.Fatalf("status: %d %+v", code, p)
	}
	var report struct {
		ValAccuracy     float64 `json:"val_accuracy"`
		CrossValidation struct {
			Mean float64 `json:"mean"`
		} `json:"cross_validation"`
		Confusion [][]int `json:"confusion"`
	}
	if err := json.Unmarshal(p.Report, &report); err != nil || report.CrossValidation.Mean < 0.9 || len(report.Confusion) != 4 {
		t.Errorf("report %s: %v", p.Report, err)
	}

	ds := clothes(t)
	shoe, _ := ds.ReadImage(35) // shoes/...
	var res api.ClassifyResult
	if code := do(t, "POST", base+"/clothes/predict", "image/jpeg", shoe, &res); code != 200 || len(res.Predictions) != 1 ||
		res.Predictions[0].Label != "shoes" || len(res.Predictions[0].Scores) != 4 {
		t.Errorf("predict: %d %+v", code, res)
	}
	if code := do(t, "POST", ts.URL+"/v1/classify?model=clothes", "image/jpeg", shoe, &res); code != 200 || res.Predictions[0].Label != "shoes" {
		t.Errorf("classify: %d %+v", code, res)
	}

	// Bring your own: register MobileNetV2 itself, and refuse a corrupt copy.
	manifestJSON, _ := json.Marshal(imageNetManifest(t, "imagenet"))
	model := mobileNet(t)
	form := func(m, mod []byte) (string, []byte) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		w, _ := mw.CreateFormFile("manifest", "imagenet.json")
		_, _ = w.Write(m)
		w, _ = mw.CreateFormFile("model", "model.onnx")
		_, _ = w.Write(mod)
		_ = mw.Close()
		return mw.FormDataContentType(), b.Bytes()
	}
	var info api.ClassifierInfo
	ct, body := form(manifestJSON, model)
	if code := do(t, "POST", ts.URL+"/v1/classifiers", ct, body, &info); code != 201 || info.State != "loaded" {
		t.Fatalf("register: %d %+v", code, info)
	}
	var e struct {
		Error httpapi.Error `json:"error"`
	}
	ct, body = form(manifestJSON, model[:100000])
	if code := do(t, "POST", ts.URL+"/v1/classifiers", ct, body, &e); code != 422 || e.Error.Code != "invalid_model" {
		t.Errorf("corrupt model: %d %+v", code, e)
	}
	ct, body = form(manifestJSON, bytes.Repeat(model, 3))
	if code := do(t, "POST", ts.URL+"/v1/classifiers", ct, body, &e); code != 413 {
		t.Errorf("oversized upload: %d %+v", code, e)
	}
	var list struct {
		Classifiers []api.ClassifierInfo `json:"classifiers"`
	}
	if code := do(t, "GET", ts.URL+"/v1/classifiers", "", nil, &list); code != 200 || len(list.Classifiers) != 2 {
		t.Errorf("list: %d %+v", code, list)
	}
	if code := do(t, "POST", ts.URL+"/v1/classify", "image/jpeg", shoe, &res); code != 200 || len(res.Predictions) != 2 {
		t.Errorf("classify with all: %d %+v", code, res)
	}
	if code := do(t, "POST", ts.URL+"/v1/classify?model=clothes", "image/jpeg", []byte("GIF89a not really"), &e); code != 400 || e.Error.Code != "invalid_image" {
		t.Errorf("bad image: %d %+v", code, e)
	}
	if code := do(t, "DELETE", ts.URL+"/v1/classifiers/imagenet", "", nil, nil); code != 204 {
		t.Errorf("delete: %d", code)
	}
	if code := do(t, "POST", ts.URL+"/v1/classify?model=imagenet", "image/jpeg", shoe, &e); code != 404 || e.Error.Code != "classifier_not_loaded" {
		t.Errorf("classify with a deleted classifier: %d %+v", code, e)
	}
}
