package api_test

import (
	"bytes"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-video/vigil/analyze/classify/api"
	dt "github.com/vigil-video/vigil/analyze/classify/dataset/datasettest"
	"github.com/vigil-video/vigil/analyze/classify/project"
	"github.com/vigil-video/vigil/pkg/httpapi"
)

// A dataset upload is bounded by its own limit (--max-dataset-mb, the project manager's), not
// by the image upload limit: the probe found datasets capped at 10 MiB while projects allowed
// 512. Over its limit, the 413 names --max-dataset-mb.
func TestDatasetUploadHasItsOwnLimit(t *testing.T) {
	srv := &httpapi.Server{Log: quiet, MaxUploadBytes: 4 << 10, Limits: map[string]int64{api.DatasetSetting: 2 << 20}}
	pm, err := project.Open(project.Config{Dir: filepath.Join(t.TempDir(), "projects"), Log: quiet,
		MaxUploadBytes: srv.UploadLimit(api.DatasetSetting, project.DefaultMaxUploadBytes)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pm.Close() })
	api.Mount(srv, api.Config{Backend: &fakeBackend{}, Projects: pm, Log: quiet})
	h, err := srv.Handler()
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	base := ts.URL + "/v1/classifier-projects"
	if code, out := call(t, "POST", base, "application/json", []byte(`{"name": "pets", "target": "frame"}`)); code != 201 {
		t.Fatalf("create: %d %v", code, out)
	}
	var files []dt.File
	for i, f := range dt.Classes(t, 5, "cats", "dogs") {
		files = append(files, dt.File{Name: f.Name, Data: dt.JPEG(t, 96, 96, uint8(i))})
	}
	archive := dt.ZIP(t, files...)
	if len(archive) <= 4<<10 {
		t.Fatalf("the archive is %d bytes; the test needs more than the 4 KiB image limit", len(archive))
	}
	if code, out := call(t, "PUT", base+"/pets/dataset", "application/zip", archive); code != 200 {
		t.Fatalf("a %d-byte dataset under --max-dataset-mb: %d %v", len(archive), code, out)
	}
	code, out := call(t, "PUT", base+"/pets/dataset", "application/zip", bytes.Repeat([]byte("z"), 3<<20))
	if msg := errMessage(out); code != 413 || !strings.Contains(msg, api.DatasetSetting) {
		t.Fatalf("3 MiB dataset: %d %v, want 413 naming %s", code, out, api.DatasetSetting)
	}
	code, out = call(t, "POST", ts.URL+"/v1/classify", "image/jpeg", bytes.Repeat([]byte("i"), 5<<10))
	if msg := errMessage(out); code != 413 || !strings.Contains(msg, httpapi.UploadSetting) {
		t.Fatalf("5 KiB image: %d %v, want 413 naming %s", code, out, httpapi.UploadSetting)
	}
}

func errMessage(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}
