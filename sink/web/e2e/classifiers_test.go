package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/analyze/classify"
	"github.com/vigil-video/vigil/analyze/classify/api"
	"github.com/vigil-video/vigil/analyze/classify/dataset/datasettest"
	"github.com/vigil-video/vigil/analyze/classify/manifest"
	"github.com/vigil-video/vigil/analyze/classify/project"
	"github.com/vigil-video/vigil/analyze/classify/store"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/sink/web"
)

// TestClassifiers: the classifiers tab against the real classifier API (registry in a JetStream
// object store, onnxruntime, training projects on MobileNetV2): a server without the face API
// hides the gallery; uploading the ImageNet MobileNetV2 with its manifest registers it; one shoe
// photo is classified with it; a ZIP of the clothing photos trains a classifier with progress
// shown, and the trained classifier calls the shoe a shoe.
func TestClassifiers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	td := testenv.TestData(t)
	ns := &bus.EmbeddedServer{StoreDir: t.TempDir(), Logger: quiet}
	if err := ns.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	conn := func(name string) *nats.Conn {
		nc, err := bus.Connect(ctx, ns.ClientURL(), name, quiet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	js, err := jetstream.New(conn("classify"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, js, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := onnx.NewRuntime(filepath.Join(testenv.DepsDir(t), "lib", "libonnxruntime.so.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Error(err)
		}
	})
	reg, err := classify.OpenRegistry(classify.RegistryConfig{Runtime: rt, Store: st, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := reg.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := reg.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	modelPath := filepath.Join(td, "models", "mobilenetv2-12-int8.onnx")
	// No built-in frame backbone: the page uploads one (MobileNetV2) before training.
	stored, err := store.OpenBackbones(ctx, js, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	trainer := &classify.ProjectTrainer{Runtime: rt, Registry: reg, Stored: stored, Folds: -1}
	pm, err := project.Open(project.Config{Dir: filepath.Join(t.TempDir(), "projects"), Train: trainer.Train, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pm.Close() })

	srv := &httpapi.Server{Addr: "127.0.0.1:0", Log: quiet, MaxUploadBytes: 64 << 20}
	api.Mount(srv, api.Config{Backend: &classify.Service{Registry: reg}, Projects: pm, Backbones: trainer, Log: quiet})
	ui, err := web.New(web.Config{Conn: conn("web"), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ui.Mount(srv)
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ui.Close()
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})

	dir := t.TempDir()
	manifestPath := filepath.Join(dir, "imagenet.json")
	writeJSON(t, manifestPath, imageNetManifest(t, td))
	zipPath := filepath.Join(dir, "clothes.zip")
	if err := os.WriteFile(zipPath, datasettest.DirZIP(t, filepath.Join(td, "classify_train"), "clothes/"), 0o644); err != nil {
		t.Fatal(err)
	}
	shoes, err := filepath.Glob(filepath.Join(td, "classify_train", "shoes", "*"))
	if err != nil || len(shoes) == 0 {
		t.Fatalf("no shoe photo: %v", err)
	}
	shoe := shoes[0]

	page := browser(t, srv.URL()+web.PagePath)
	var tabs map[string]bool
	if err := page.Eval(ctx, `({gallery: !document.getElementById("tab-gallery").hidden, classifiers: !document.getElementById("tab-classifiers").hidden,
		camera: !document.getElementById("camera-box").hidden, projects: !document.getElementById("projects-col").hidden})`, &tabs); err != nil {
		t.Fatal(err)
	}
	if tabs["gallery"] || tabs["camera"] || !tabs["classifiers"] || !tabs["projects"] {
		t.Fatalf("panels shown %v: want the classifiers and training, no gallery or camera on this server", tabs)
	}
	if err := page.Click(ctx, `#tabs button[data-tab="classifiers"]`); err != nil {
		t.Fatal(err)
	}

	// Upload a model with its manifest.
	if err := page.SetInputFiles(ctx, "#clf-manifest", []string{manifestPath}); err != nil {
		t.Fatal(err)
	}
	if err := page.SetInputFiles(ctx, "#clf-model", []string{modelPath}); err != nil {
		t.Fatal(err)
	}
	if err := page.Click(ctx, "#clf-upload button"); err != nil {
		t.Fatal(err)
	}
	var status string
	if err := page.WaitFor(ctx, `(() => { const s = document.getElementById("clf-upload-status").textContent; return /^(Registered|Refused)/.test(s) && s; })()`,
		60*time.Second, &status); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(status, "Registered imagenet (loaded)") {
		t.Fatalf("upload: %s", status)
	}
	if err := page.WaitFor(ctx, `document.querySelector('#classifiers li[data-name="imagenet"][data-state="loaded"]') &&
		[...document.getElementById("clf-try-model").options].some((o) => o.value === "imagenet")`, 10*time.Second, nil); err != nil {
		t.Fatal(err)
	}

	// Try one image with it.
	label := tryImage(ctx, t, page, "imagenet", shoe)
	t.Logf("imagenet on %s: %s", filepath.Base(shoe), label)

	// No ImageNet backbone yet: the page says how to add one; add MobileNetV2 through the form,
	// and the backbone list offers it.
	var noBackbone bool
	if err := page.WaitFor(ctx, `document.getElementById("proj-backbone").dataset.count === "0" && !document.getElementById("proj-no-backbone").hidden`,
		10*time.Second, &noBackbone); err != nil {
		t.Fatal(err)
	}
	if err := page.SetInputFiles(ctx, "#bb-file", []string{modelPath}); err != nil {
		t.Fatal(err)
	}
	if err := page.Click(ctx, "#bb-form button"); err != nil {
		t.Fatal(err)
	}
	var added string
	if err := page.WaitFor(ctx, `(() => { const s = document.getElementById("bb-status").textContent; return /^(Added|Refused)/.test(s) && s; })()`,
		60*time.Second, &added); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(added, "Added backbone mobilenetv2-12-int8") {
		t.Fatalf("add a backbone: %s", added)
	}
	if err := page.WaitFor(ctx, `document.getElementById("proj-backbone").value === "mobilenetv2-12-int8" &&
		document.getElementById("proj-no-backbone").hidden && document.querySelector('#backbones li[data-name="mobilenetv2-12-int8"]')`, 10*time.Second, nil); err != nil {
		t.Fatal(err)
	}

	// Train from the ZIP, with progress.
	if err := page.Eval(ctx, `document.getElementById("proj-name").value = "clothes"`, nil); err != nil {
		t.Fatal(err)
	}
	if err := page.SetInputFiles(ctx, "#proj-zip", []string{zipPath}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := page.Click(ctx, "#proj-form button"); err != nil {
		t.Fatal(err)
	}
	var done struct{ Done, Text, Phases string }
	if err := page.WaitFor(ctx, `(() => { const s = document.getElementById("proj-status");
		return s.dataset.done && {Done: s.dataset.done, Text: s.textContent, Phases: s.dataset.phases}; })()`, 3*time.Minute, &done); err != nil {
		t.Fatal(err)
	}
	t.Logf("training in the browser took %v: %s (progress phases shown: %s)", time.Since(start).Round(100*time.Millisecond), done.Text, done.Phases)
	if done.Done != "trained" || done.Phases == "" {
		t.Fatalf("training: %+v", done)
	}
	if err := page.WaitFor(ctx, `document.querySelector('#projects li[data-name="clothes"][data-state="trained"]') &&
		[...document.getElementById("clf-try-model").options].some((o) => o.value === "clothes")`, 10*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if label := tryImage(ctx, t, page, "clothes", shoe); label != "shoes" {
		t.Fatalf("the trained classifier calls %s %q", filepath.Base(shoe), label)
	}
	screenshot(t, page, screenshotDir(t), "classifiers.png")
}

// tryImage classifies file with model through the "Try one image" form and returns the label.
func tryImage(ctx context.Context, t *testing.T, page interface {
	Eval(context.Context, string, any) error
	SetInputFiles(context.Context, string, []string) error
	Click(context.Context, string) error
	WaitFor(context.Context, string, time.Duration, any) error
}, model, file string) string {
	t.Helper()
	if err := page.Eval(ctx, `document.getElementById("clf-try-out").textContent = ""; document.getElementById("clf-try-model").value = "`+model+`"`, nil); err != nil {
		t.Fatal(err)
	}
	if err := page.SetInputFiles(ctx, "#clf-try-file", []string{file}); err != nil {
		t.Fatal(err)
	}
	if err := page.Click(ctx, "#clf-try button"); err != nil {
		t.Fatal(err)
	}
	var label string
	if err := page.WaitFor(ctx, `(() => { const h = document.querySelector("#clf-try-out h3[data-label]");
		if (h) return h.dataset.label; const o = document.getElementById("clf-try-out").textContent;
		if (o.startsWith("Failed")) throw new Error(o); })()`, 30*time.Second, &label); err != nil {
		t.Fatal(err)
	}
	return label
}

// imageNetManifest is the manifest of the shared test data's MobileNetV2: its 1000 ImageNet
// labels, ImageNet preprocessing, softmax over the output.
func imageNetManifest(t *testing.T, td string) manifest.Manifest {
	t.Helper()
	f, err := os.Open(filepath.Join(td, "models", "synset.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var labels []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if len(l) > 128 {
			l = strings.TrimSpace(l[:128])
		}
		labels = append(labels, l)
	}
	in := classify.ImageNetBackbone("", nil).Input
	in.Name = "input"
	m := manifest.Manifest{Name: "imagenet", Labels: labels, Target: manifest.TargetFrame, Input: in,
		Output: manifest.Output{Name: "output", Softmax: true}}
	m.SetDefaults()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
