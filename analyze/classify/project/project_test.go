package project_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/analyze/classify/dataset"
	dt "github.com/vigil-video/vigil/analyze/classify/dataset/datasettest"
	"github.com/vigil-video/vigil/analyze/classify/project"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// tree lists every path under dir (relative, slash-separated), sorted.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func open(t *testing.T, cfg project.Config) (*project.Manager, string) {
	t.Helper()
	base := t.TempDir()
	cfg.Dir = filepath.Join(base, "projects")
	cfg.Log = quiet
	m, err := project.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m, base
}

func TestProjects(t *testing.T) {
	m, _ := open(t, project.Config{})
	p, err := m.Create("clothes", project.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	if p.State != project.StateNew || p.Spec.Backbone != "default" || p.Spec.Target != "frame" {
		t.Errorf("created %+v", p)
	}
	if _, err := m.Create("clothes", project.Spec{}); !errors.Is(err, project.ErrExists) {
		t.Errorf("second create: %v", err)
	}
	for _, bad := range []string{"", "../x", "Upper", "a/b", strings.Repeat("a", 65)} {
		if _, err := m.Create(bad, project.Spec{}); !errors.Is(err, project.ErrInvalid) {
			t.Errorf("Create(%q): %v", bad, err)
		}
	}
	if _, err := m.Create("faces", project.Spec{Target: "car"}); !errors.Is(err, project.ErrInvalid) {
		t.Errorf("bad target: %v", err)
	}
	if _, err := m.Create("faces", project.Spec{Target: "face"}); err != nil {
		t.Fatal(err)
	}
	if list := m.List(); len(list) != 2 || list[0].Name != "clothes" || list[1].Name != "faces" {
		t.Errorf("List = %+v", list)
	}
	if err := m.Delete("faces"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get("faces"); !errors.Is(err, project.ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
	if _, err := m.Get("../../etc"); !errors.Is(err, project.ErrNotFound) {
		t.Errorf("Get(../../etc): %v", err)
	}
}

func TestImportZIP(t *testing.T) {
	ctx := context.Background()
	m, base := open(t, project.Config{MaxUploadBytes: 1 << 20})
	if _, err := m.Create("pets", project.Spec{}); err != nil {
		t.Fatal(err)
	}
	good := dt.ZIP(t, dt.Classes(t, 5, "cats", "dogs")...)
	p, err := m.ImportZIP(ctx, "pets", bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if p.State != project.StateReady || p.Dataset == nil || p.Dataset.Images != 10 || len(p.Dataset.Classes) != 2 ||
		p.Dataset.Classes[1] != (project.ClassInfo{Name: "dogs", Images: 5}) {
		t.Fatalf("after import: %+v dataset %+v", p, p.Dataset)
	}
	before := tree(t, base)
	if want := "projects/pets/data/dogs/img04.jpg"; !contains(before, want) {
		t.Fatalf("%s missing from %v", want, before)
	}

	img := dt.JPEG(t, 8, 8, 1)
	hostile := map[string][]byte{
		"zip slip":      dt.ZIP(t, append(dt.Classes(t, 5, "a", "b"), dt.File{Name: "../../escaped.jpg", Data: img})...),
		"absolute path": dt.ZIP(t, append(dt.Classes(t, 5, "a", "b"), dt.File{Name: "/tmp/escaped.jpg", Data: img})...),
		"symlink":       dt.ZIP(t, append(dt.Classes(t, 5, "a", "b"), dt.File{Name: "a/l.jpg", Data: []byte("/etc/passwd"), Mode: fs.ModeSymlink | 0o777})...),
		"bomb":          dt.ZIP(t, append(dt.Classes(t, 5, "a", "b"), dt.File{Name: "a/z.jpg", Data: make([]byte, 16<<20)})...),
		"non-image":     dt.ZIP(t, append(dt.Classes(t, 5, "a", "b"), dt.File{Name: "a/x.jpg", Data: []byte("MZ\x90\x00 an executable")})...),
		"one image":     dt.ZIP(t, append(dt.Classes(t, 5, "a", "b"), dt.File{Name: "c/x.jpg", Data: img})...),
		"not a zip":     []byte("hello"),
		"oversized":     bytes.Repeat([]byte("x"), 2<<20),
	}
	for name, archive := range hostile {
		t.Run(name, func(t *testing.T) {
			_, err := m.ImportZIP(ctx, "pets", bytes.NewReader(archive))
			if err == nil {
				t.Fatal("accepted")
			}
			if name == "oversized" && !errors.Is(err, dataset.ErrTooLarge) {
				t.Errorf("oversized upload: %v", err)
			}
			// Nothing changed: the old dataset is intact and nothing was written anywhere.
			if after := tree(t, base); strings.Join(after, "\n") != strings.Join(before, "\n") {
				t.Errorf("files changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
	p, _ = m.Get("pets")
	if p.Dataset.Images != 10 {
		t.Errorf("dataset after refused uploads: %+v", p.Dataset)
	}
	// A new dataset replaces the old one completely.
	if _, err := m.ImportZIP(ctx, "pets", bytes.NewReader(dt.ZIP(t, dt.Classes(t, 6, "birds", "fish", "mice")...))); err != nil {
		t.Fatal(err)
	}
	after := tree(t, filepath.Join(base, "projects", "pets"))
	if contains(after, "data/cats") || !contains(after, "data/mice/img05.jpg") {
		t.Errorf("replacement left %v", after)
	}
	if _, err := m.ImportZIP(ctx, "nope", bytes.NewReader(good)); !errors.Is(err, project.ErrNotFound) {
		t.Errorf("import into a missing project: %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestTraining(t *testing.T) {
	ctx := context.Background()
	release := make(chan struct{})
	started := make(chan project.TrainRequest, 1)
	fail := false
	train := func(ctx context.Context, req project.TrainRequest) (project.TrainOutcome, error) {
		req.Progress("embed", 5, 10)
		started <- req
		select {
		case <-release:
		case <-ctx.Done():
			return project.TrainOutcome{}, ctx.Err()
		}
		req.Progress("train", 10, 10)
		if fail {
			return project.TrainOutcome{}, errors.New("the backbone exploded")
		}
		return project.TrainOutcome{Report: map[string]any{"val_accuracy": 0.95}, Classifier: req.Classifier}, nil
	}
	m, base := open(t, project.Config{Train: train})
	for _, name := range []string{"pets", "other"} {
		if _, err := m.Create(name, project.Spec{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.StartTraining("pets"); !errors.Is(err, project.ErrNoDataset) {
		t.Errorf("training without a dataset: %v", err)
	}
	archive := dt.ZIP(t, dt.Classes(t, 5, "cats", "dogs")...)
	for _, name := range []string{"pets", "other"} {
		if _, err := m.ImportZIP(ctx, name, bytes.NewReader(archive)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := m.StartTraining("pets")
	if err != nil {
		t.Fatal(err)
	}
	if p.State != project.StateTraining {
		t.Errorf("state %s", p.State)
	}
	req := <-started
	if req.Classifier != "pets" || len(req.Dataset.Images) != 10 || !strings.HasPrefix(req.Dataset.Dir, filepath.Join(base, "projects", "pets")) {
		t.Errorf("request %+v", req)
	}
	p, _ = m.Get("pets")
	if p.Progress == nil || p.Progress.Phase != "embed" || p.Progress.Done != 5 {
		t.Errorf("progress %+v", p.Progress)
	}
	// Busy: one training at a time, no dataset change or deletion while training.
	if _, err := m.StartTraining("other"); !errors.Is(err, project.ErrBusy) {
		t.Errorf("second training: %v", err)
	}
	if _, err := m.ImportZIP(ctx, "pets", bytes.NewReader(archive)); !errors.Is(err, project.ErrBusy) {
		t.Errorf("upload while training: %v", err)
	}
	if err := m.Delete("pets"); !errors.Is(err, project.ErrBusy) {
		t.Errorf("delete while training: %v", err)
	}
	close(release)
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	p, _ = m.Get("pets")
	var rep map[string]float64
	if err := json.Unmarshal(p.Report, &rep); err != nil || p.State != project.StateTrained || p.Classifier != "pets" ||
		rep["val_accuracy"] != 0.95 || p.Progress != nil || p.TrainedAt.IsZero() {
		t.Errorf("after training: %+v (report %s)", p, p.Report)
	}

	// A failing training records its error.
	fail = true
	release = make(chan struct{})
	close(release)
	if _, err := m.StartTraining("other"); err != nil {
		t.Fatal(err)
	}
	<-started
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if p, _ := m.Get("other"); p.State != project.StateFailed || !strings.Contains(p.Error, "exploded") {
		t.Errorf("failed training: %+v", p)
	}
}

func TestCloseInterruptsTraining(t *testing.T) {
	ctx := context.Background()
	started := make(chan struct{})
	train := func(ctx context.Context, req project.TrainRequest) (project.TrainOutcome, error) {
		close(started)
		<-ctx.Done()
		return project.TrainOutcome{}, ctx.Err()
	}
	base := t.TempDir()
	cfg := project.Config{Dir: filepath.Join(base, "p"), Train: train, Log: quiet}
	m, err := project.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create("pets", project.Spec{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ImportZIP(ctx, "pets", bytes.NewReader(dt.ZIP(t, dt.Classes(t, 5, "cats", "dogs")...))); err != nil {
		t.Fatal(err)
	}
	if _, err := m.StartTraining("pets"); err != nil {
		t.Fatal(err)
	}
	<-started
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// A project left "training" by a crashed process is marked interrupted on the next Open.
	pj := filepath.Join(cfg.Dir, "pets", "project.json")
	b, _ := os.ReadFile(pj)
	var p project.Project
	_ = json.Unmarshal(b, &p)
	if p.State != project.StateInterrupted {
		t.Errorf("after Close: state %s", p.State)
	}
	p.State = project.StateTraining
	b, _ = json.Marshal(p)
	if err := os.WriteFile(pj, b, 0o644); err != nil {
		t.Fatal(err)
	}
	m2, err := project.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if p, _ := m2.Get("pets"); p.State != project.StateInterrupted || p.Error == "" {
		t.Errorf("reopened: %+v", p)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := m2.Wait(wctx); err != nil {
		t.Error(err)
	}
}
