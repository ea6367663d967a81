package classify_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-video/vigil/analyze/classify"
	"github.com/vigil-video/vigil/analyze/classify/api"
	dt "github.com/vigil-video/vigil/analyze/classify/dataset/datasettest"
	"github.com/vigil-video/vigil/analyze/classify/project"
	"github.com/vigil-video/vigil/analyze/classify/store"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestUploadedBackbone: a server without an ImageNet backbone refuses to train a frame
// classifier with an error that says how to get one; a backbone uploaded once over HTTP (MobileNetV2)
// is listed with its digest, checked, and then used by the project's default target; a model that
// is not an ImageNet classifier is refused; deleting it works once.
func TestUploadedBackbone(t *testing.T) {
	testenv.NeedsTestData(t)
	ctx := context.Background()
	rt := newRuntime(t)
	js := natsJS(t)
	st, err := store.Open(ctx, js, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := store.OpenBackbones(ctx, js, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg := openRegistry(t, st)
	trainer := &classify.ProjectTrainer{Runtime: rt, Registry: reg, Stored: stored, Folds: -1}
	pm, err := project.Open(project.Config{Dir: filepath.Join(t.TempDir(), "projects"), Train: trainer.Train, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	srv := &httpapi.Server{Addr: "127.0.0.1:0", Log: quiet, MaxUploadBytes: 8 << 20}
	api.Mount(srv, api.Config{Backend: &classify.Service{Registry: reg}, Projects: pm, Backbones: trainer, Log: quiet})
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	base := srv.URL()
	var list struct {
		Backbones []api.BackboneInfo `json:"backbones"`
	}
	if code := do(t, "GET", base+"/v1/classifier-backbones", "", nil, &list); code != 200 || len(list.Backbones) != 0 {
		t.Fatalf("no backbones yet: %d %+v", code, list)
	}

	// Train on the default (frame) target without a backbone: the error says what to do.
	var p project.Project
	if code := do(t, "POST", base+"/v1/classifier-projects", "application/json", []byte(`{"name": "clothes"}`), &p); code != 201 {
		t.Fatalf("create: %d", code)
	}
	archive := dt.DirZIP(t, filepath.Join(testenv.TestData(t), "classify_train"), "classify_train/")
	if code := do(t, "PUT", base+"/v1/classifier-projects/clothes/dataset", "application/zip", archive, &p); code != 200 {
		t.Fatalf("upload: %d", code)
	}
	do(t, "POST", base+"/v1/classifier-projects/clothes/train", "", nil, &p)
	if err := pm.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	do(t, "GET", base+"/v1/classifier-projects/clothes", "", nil, &p)
	if p.State != project.StateFailed || !strings.Contains(p.Error, "vigil classifiers backbone add") || !strings.Contains(p.Error, "web UI") {
		t.Fatalf("training without a backbone: %s %q", p.State, p.Error)
	}
	t.Logf("without a backbone: %s", p.Error)

	// Not an ImageNet classifier: refused.
	var e struct {
		Error httpapi.Error `json:"error"`
	}
	model := mobileNet(t)
	if code := do(t, "PUT", base+"/v1/classifier-backbones/broken", "application/octet-stream", model[:50000], &e); code != 422 || e.Error.Code != "invalid_model" {
		t.Fatalf("truncated model: %d %+v", code, e)
	}
	if code := do(t, "PUT", base+"/v1/classifier-backbones/default", "application/octet-stream", model, &e); code != 400 {
		t.Fatalf("bad name: %d %+v", code, e)
	}
	var info api.BackboneInfo
	if code := do(t, "PUT", base+"/v1/classifier-backbones/mobilenetv2", "application/octet-stream", model, &info); code != 201 ||
		info.SHA256 != store.Digest(model) || info.Target != "frame" || info.Size != uint64(len(model)) {
		t.Fatalf("upload: %d %+v", code, info)
	}
	if code := do(t, "GET", base+"/v1/classifier-backbones", "", nil, &list); code != 200 || len(list.Backbones) != 1 || list.Backbones[0].SHA256 != info.SHA256 {
		t.Fatalf("list: %d %+v", code, list)
	}

	// The default target now trains on it.
	if code := do(t, "POST", base+"/v1/classifier-projects/clothes/train", "", nil, &p); code != 202 {
		t.Fatalf("train: %d %+v", code, p)
	}
	if err := pm.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	do(t, "GET", base+"/v1/classifier-projects/clothes", "", nil, &p)
	if p.State != project.StateTrained || !strings.Contains(string(p.Report), `"backbone":"mobilenetv2"`) {
		t.Fatalf("training on the uploaded backbone: %s %q %.300s", p.State, p.Error, p.Report)
	}

	if code := do(t, "DELETE", base+"/v1/classifier-backbones/mobilenetv2", "", nil, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code := do(t, "DELETE", base+"/v1/classifier-backbones/mobilenetv2", "", nil, &e); code != 404 || e.Error.Code != "backbone_not_found" {
		t.Fatalf("delete again: %d %+v", code, e)
	}
}
