// Package project manages classifier training projects on disk: the "create a project, upload
// a dataset, train, check the status, predict" flow of the HTTP API. Each project lives in its
// own directory under the manager's data directory (project.json, the dataset under data/, the
// training report), every file is written through an os.Root on that directory, and uploads
// are staged inside it, so nothing a request sends can land anywhere else.
//
// Training itself is injected (TrainFunc: the cgo side computes features, fits, exports and
// registers); the manager runs at most one training at a time in a goroutine it owns, reports
// progress, and Close cancels and waits for it. The package is pure Go.
package project

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/vigil-video/vigil/analyze/classify/dataset"
	"github.com/vigil-video/vigil/analyze/classify/manifest"
)

// Errors of Manager operations; the HTTP API maps them to status codes.
var (
	// ErrNotFound: no project with that name.
	ErrNotFound = errors.New("project not found")
	// ErrExists: a project with that name exists.
	ErrExists = errors.New("project already exists")
	// ErrBusy: the project is training (or another training runs), so it cannot change now.
	ErrBusy = errors.New("project busy")
	// ErrNoDataset: training was asked for before a dataset was uploaded.
	ErrNoDataset = errors.New("project has no dataset")
	// ErrInvalid: a project name or setting is not acceptable.
	ErrInvalid = errors.New("invalid project")
)

// Project states.
const (
	StateNew         = "new"         // created, no dataset yet
	StateReady       = "ready"       // dataset imported
	StateTraining    = "training"    // a training runs
	StateTrained     = "trained"     // the last training succeeded; the classifier is registered
	StateFailed      = "failed"      // the last training failed (Error says why)
	StateInterrupted = "interrupted" // the process stopped during training
)

// Spec is what a project trains: its backbone and target.
type Spec struct {
	// Backbone names the backbone model (the TrainFunc resolves it). Default "default".
	Backbone string `json:"backbone"`
	// Target is "frame" (default) or "face".
	Target string `json:"target"`
}

// Project is a project's state, as project.json stores it and the API returns it.
type Project struct {
	// Name is the project's name, and the name its classifier is registered as.
	Name string `json:"name"`
	// Spec is what the project trains.
	Spec Spec `json:"spec"`
	// CreatedAt is when the project was created.
	CreatedAt time.Time `json:"created_at"`
	// State is one of the State* constants.
	State string `json:"state"`
	// Dataset describes the imported dataset, absent before one is uploaded.
	Dataset *DatasetInfo `json:"dataset,omitempty"`
	// Progress is the running training's progress.
	Progress *Progress `json:"progress,omitempty"`
	// Error says why the last training failed.
	Error string `json:"error,omitempty"`
	// Report is the last successful training's report (TrainOutcome.Report as JSON).
	Report json.RawMessage `json:"report,omitempty"`
	// Classifier names the classifier the last training registered.
	Classifier string `json:"classifier,omitempty"`
	// TrainedAt is when the last training finished.
	TrainedAt time.Time `json:"trained_at,omitzero"`
}

// DatasetInfo summarises an imported dataset.
type DatasetInfo struct {
	// Classes are the classes with their image counts, by name.
	Classes []ClassInfo `json:"classes"`
	// Images and Bytes count the images and their total size.
	Images int   `json:"images"`
	Bytes  int64 `json:"bytes"`
	// ImportedAt is when the dataset was uploaded.
	ImportedAt time.Time `json:"imported_at"`
}

// ClassInfo is one class of a dataset.
type ClassInfo struct {
	// Name is the class (folder) name; Images its number of images.
	Name   string `json:"name"`
	Images int    `json:"images"`
}

// Progress is a training's progress: Phase (as the TrainFunc reports it, e.g. "embed",
// "train", "export"), Done of Total.
type Progress struct {
	// Phase names the current step; Done of Total units of it are finished.
	Phase string `json:"phase"`
	Done  int    `json:"done"`
	Total int    `json:"total"`
	// StartedAt is when the training started.
	StartedAt time.Time `json:"started_at"`
}

// TrainRequest is what a TrainFunc gets.
type TrainRequest struct {
	// Project and Spec identify the project; Classifier is the name to register the result as
	// (the project's name).
	Project string
	// Spec is the project's spec.
	Spec Spec
	// Classifier is the name to register the result as.
	Classifier string
	// Dataset is the checked dataset, under the project's data directory.
	Dataset dataset.Dataset
	// Progress reports progress; call it as often as convenient.
	Progress func(phase string, done, total int)
}

// TrainOutcome is what a TrainFunc returns: a JSON-encodable report (stored and served as the
// project's report) and the classifier it registered.
type TrainOutcome struct {
	// Report is stored as the project's report (encoded as JSON).
	Report any
	// Classifier is the name the classifier was registered as.
	Classifier string
}

// TrainFunc trains and registers a project's classifier. It must return when ctx ends.
type TrainFunc func(ctx context.Context, req TrainRequest) (TrainOutcome, error)

// Config configures a Manager.
type Config struct {
	// Dir is the data directory; each project lives in Dir/<name>. Required; created if
	// missing.
	Dir string
	// Limits bound uploaded datasets. Default dataset.DefaultLimits().
	Limits dataset.Limits
	// MaxUploadBytes bounds a dataset archive. Default DefaultMaxUploadBytes (512 MiB).
	MaxUploadBytes int64
	// Train trains a project. Required for StartTraining.
	Train TrainFunc
	// Log receives training events. Default slog.Default().
	Log *slog.Logger
}

// Manager manages the projects under Config.Dir. Safe for concurrent use; Close stops the
// running training and waits for it.
type Manager struct {
	cfg  Config
	root *os.Root

	mu        sync.Mutex
	training  string          // project in training, "" when none
	importing map[string]bool // projects receiving a dataset
	cancel    context.CancelFunc
	idle      chan struct{} // closed while no training runs
	wg        sync.WaitGroup
	closed    bool
}

// DefaultMaxUploadBytes is Config.MaxUploadBytes's default: 512 MiB, the dataset limits'
// total (dataset.DefaultLimits).
const DefaultMaxUploadBytes = 512 << 20

// MaxUploadBytes returns the largest dataset archive ImportZIP accepts.
func (m *Manager) MaxUploadBytes() int64 { return m.cfg.MaxUploadBytes }

const (
	projectFile = "project.json"
	dataDir     = "data"
)

// Open opens (creating) the data directory and marks projects whose training was cut short by
// a previous process as interrupted.
func Open(cfg Config) (*Manager, error) {
	if cfg.Dir == "" {
		return nil, errors.New("projects: no data directory configured")
	}
	if cfg.MaxUploadBytes <= 0 {
		cfg.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("projects: %w", err)
	}
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("projects: %w", err)
	}
	idle := make(chan struct{})
	close(idle)
	m := &Manager{cfg: cfg, root: root, importing: map[string]bool{}, idle: idle}
	for _, p := range m.List() {
		if p.State == StateTraining {
			p.State, p.Progress, p.Error = StateInterrupted, nil, "the process stopped during training; start it again"
			if err := m.save(p); err != nil {
				root.Close()
				return nil, err
			}
		}
	}
	return m, nil
}

// Close cancels a running training, waits for it and releases the data directory.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	if m.cancel != nil {
		m.cancel()
	}
	m.mu.Unlock()
	m.wg.Wait()
	return m.root.Close()
}

func checkName(name string) error {
	if !manifest.ValidName(name) {
		return fmt.Errorf("%w: name %q: use 1-64 characters a-z, 0-9, '_' or '-', starting with a letter or digit (it becomes the classifier's name)", ErrInvalid, name)
	}
	return nil
}

// Create makes a new project.
func (m *Manager) Create(name string, spec Spec) (Project, error) {
	if err := checkName(name); err != nil {
		return Project{}, err
	}
	if spec.Backbone == "" {
		spec.Backbone = "default"
	}
	if spec.Target == "" {
		spec.Target = manifest.TargetFrame
	}
	if spec.Target != manifest.TargetFrame && spec.Target != manifest.TargetFace {
		return Project{}, fmt.Errorf("%w: target %q: use frame or face", ErrInvalid, spec.Target)
	}
	if len(spec.Backbone) > 64 {
		return Project{}, fmt.Errorf("%w: backbone name longer than 64 bytes", ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.root.Mkdir(name, 0o750); err != nil {
		if errors.Is(err, os.ErrExist) {
			return Project{}, fmt.Errorf("%w: %s", ErrExists, name)
		}
		return Project{}, fmt.Errorf("projects: create %s: %w", name, err)
	}
	p := Project{Name: name, Spec: spec, CreatedAt: time.Now().UTC(), State: StateNew}
	if err := m.save(p); err != nil {
		_ = m.root.RemoveAll(name)
		return Project{}, err
	}
	return p, nil
}

// Get returns project name.
func (m *Manager) Get(name string) (Project, error) {
	if err := checkName(name); err != nil {
		return Project{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	b, err := m.root.ReadFile(filepath.Join(name, projectFile))
	if errors.Is(err, os.ErrNotExist) {
		return Project{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return Project{}, fmt.Errorf("projects: read %s: %w", name, err)
	}
	var p Project
	if err := json.Unmarshal(b, &p); err != nil {
		return Project{}, fmt.Errorf("projects: %s/%s: %w", name, projectFile, err)
	}
	return p, nil
}

// List returns every readable project, by name.
func (m *Manager) List() []Project {
	f, err := m.root.Open(".")
	if err != nil {
		return nil
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return nil
	}
	var out []Project
	for _, e := range entries {
		if !e.IsDir() || !manifest.ValidName(e.Name()) {
			continue
		}
		if p, err := m.Get(e.Name()); err == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Delete removes project name and its files. A training project is ErrBusy.
func (m *Manager) Delete(name string) error {
	if _, err := m.Get(name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.training == name || m.importing[name] {
		return fmt.Errorf("%w: %s is training or receiving a dataset", ErrBusy, name)
	}
	if err := m.root.RemoveAll(name); err != nil {
		return fmt.Errorf("projects: delete %s: %w", name, err)
	}
	return nil
}

// save writes p's project.json atomically (temporary file and rename inside the project).
func (m *Manager) save(p Project) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("projects: encode %s: %w", p.Name, err)
	}
	tmp := filepath.Join(p.Name, projectFile+"."+randomSuffix())
	if err := m.root.WriteFile(tmp, b, 0o640); err != nil {
		return fmt.Errorf("projects: save %s: %w", p.Name, err)
	}
	if err := m.root.Rename(tmp, filepath.Join(p.Name, projectFile)); err != nil {
		_ = m.root.Remove(tmp)
		return fmt.Errorf("projects: save %s: %w", p.Name, err)
	}
	return nil
}

// update applies fn to project name's state and saves it.
func (m *Manager) update(name string, fn func(*Project)) (Project, error) {
	p, err := m.Get(name)
	if err != nil {
		return Project{}, err
	}
	fn(&p)
	return p, m.save(p)
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ImportZIP replaces project name's dataset with the ZIP archive read from r (at most
// Config.MaxUploadBytes, else an error wrapping dataset.ErrTooLarge). The archive is staged
// and unpacked inside the project's directory (dataset.ExtractZIP, with Config.Limits); only a
// dataset that passes every check replaces the previous one. A training project is ErrBusy.
func (m *Manager) ImportZIP(ctx context.Context, name string, r io.Reader) (Project, error) {
	if _, err := m.Get(name); err != nil {
		return Project{}, err
	}
	if err := m.lockIdle(name); err != nil {
		return Project{}, err
	}
	defer m.unlock(name)

	pdir := filepath.Join(m.cfg.Dir, name)
	suffix := randomSuffix()
	staged := filepath.Join(name, "upload-"+suffix+".zip")
	f, err := m.root.OpenFile(staged, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return Project{}, fmt.Errorf("projects: stage upload: %w", err)
	}
	defer func() {
		f.Close()
		_ = m.root.Remove(staged)
	}()
	n, err := io.Copy(f, io.LimitReader(&ctxReader{ctx, r}, m.cfg.MaxUploadBytes+1))
	if err != nil {
		return Project{}, fmt.Errorf("projects: receive dataset: %w", err)
	}
	if n > m.cfg.MaxUploadBytes {
		return Project{}, fmt.Errorf("%w: the archive exceeds %d bytes", dataset.ErrTooLarge, m.cfg.MaxUploadBytes)
	}
	incoming := "incoming-" + suffix
	ds, err := dataset.ExtractZIP(f, n, filepath.Join(pdir, incoming), m.cfg.Limits)
	if err != nil {
		return Project{}, err
	}
	old := "old-" + suffix
	dataRel, incomingRel, oldRel := filepath.Join(name, dataDir), filepath.Join(name, incoming), filepath.Join(name, old)
	hadOld := m.root.Rename(dataRel, oldRel) == nil
	if err := m.root.Rename(incomingRel, dataRel); err != nil {
		_ = m.root.RemoveAll(incomingRel)
		if hadOld {
			_ = m.root.Rename(oldRel, dataRel)
		}
		return Project{}, fmt.Errorf("projects: install dataset: %w", err)
	}
	if hadOld {
		_ = m.root.RemoveAll(oldRel)
	}
	info := &DatasetInfo{Images: len(ds.Images), ImportedAt: time.Now().UTC()}
	for i, c := range ds.Counts() {
		info.Classes = append(info.Classes, ClassInfo{Name: ds.Classes[i], Images: c})
	}
	for _, im := range ds.Images {
		info.Bytes += im.Size
	}
	return m.update(name, func(p *Project) {
		p.Dataset = info
		if p.State == StateNew || p.State == StateFailed || p.State == StateInterrupted {
			p.State = StateReady
		}
	})
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

// Read reads from the underlying reader unless the context has ended.
func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// lockIdle marks project name as receiving a dataset, unless it is training or already
// receiving one (ErrBusy); unlock clears the mark.
func (m *Manager) lockIdle(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("projects: closed")
	}
	if m.training == name || m.importing[name] {
		return fmt.Errorf("%w: %s is training or receiving another dataset", ErrBusy, name)
	}
	m.importing[name] = true
	return nil
}

func (m *Manager) unlock(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.importing, name)
}

// StartTraining starts training project name in the background and returns its state (State
// "training"). The dataset is re-checked first. Only one training runs at a time: another
// running training gives ErrBusy. Poll Get for progress and the outcome.
func (m *Manager) StartTraining(name string) (Project, error) {
	p, err := m.Get(name)
	if err != nil {
		return Project{}, err
	}
	if m.cfg.Train == nil {
		return Project{}, errors.New("projects: training is not available in this process")
	}
	if p.Dataset == nil {
		return Project{}, fmt.Errorf("%w: upload a dataset (a ZIP of one folder per class) first", ErrNoDataset)
	}
	lim := m.cfg.Limits
	ds, err := dataset.Scan(filepath.Join(m.cfg.Dir, name, dataDir), lim)
	if err != nil {
		return Project{}, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return Project{}, errors.New("projects: closed")
	}
	if m.training != "" {
		busy := m.training
		m.mu.Unlock()
		return Project{}, fmt.Errorf("%w: project %s is training; one training runs at a time", ErrBusy, busy)
	}
	if m.importing[name] {
		m.mu.Unlock()
		return Project{}, fmt.Errorf("%w: %s is receiving a dataset", ErrBusy, name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.training, m.cancel, m.idle = name, cancel, make(chan struct{})
	m.wg.Add(1)
	m.mu.Unlock()

	started := time.Now().UTC()
	p, err = m.update(name, func(p *Project) {
		p.State, p.Error = StateTraining, ""
		p.Progress = &Progress{Phase: "start", StartedAt: started}
	})
	if err != nil {
		m.finish(cancel, nil)
		return Project{}, err
	}
	go func() {
		final := m.run(ctx, p, ds, started)
		m.finish(cancel, final)
	}()
	return p, nil
}

// finish records the outcome (when final is set) and releases the training slot in one step,
// so that nobody sees a finished project that is still busy.
func (m *Manager) finish(cancel context.CancelFunc, final func()) {
	m.mu.Lock()
	if final != nil {
		final()
	}
	cancel()
	m.training, m.cancel = "", nil
	close(m.idle)
	m.mu.Unlock()
	m.wg.Done()
}

// run trains p and returns the function that records the outcome.
func (m *Manager) run(ctx context.Context, p Project, ds dataset.Dataset, started time.Time) func() {
	var mu sync.Mutex
	last := time.Time{}
	progress := func(phase string, done, total int) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if now.Sub(last) < 200*time.Millisecond && done != total {
			return // bound the writes of project.json
		}
		last = now
		_, _ = m.update(p.Name, func(p *Project) {
			p.Progress = &Progress{Phase: phase, Done: done, Total: total, StartedAt: started}
		})
	}
	out, err := m.cfg.Train(ctx, TrainRequest{Project: p.Name, Spec: p.Spec, Classifier: p.Name, Dataset: ds, Progress: progress})
	var report []byte
	if err == nil {
		report, err = json.Marshal(out.Report)
	}
	return func() {
		mu.Lock()
		defer mu.Unlock()
		m.record(p.Name, out, report, err, ctx.Err() != nil, started)
	}
}

// record saves a finished training's outcome.
func (m *Manager) record(name string, out TrainOutcome, report []byte, err error, cancelled bool, started time.Time) {
	_, serr := m.update(name, func(p *Project) {
		p.Progress = nil
		p.TrainedAt = time.Now().UTC()
		if err != nil {
			p.State, p.Error = StateFailed, err.Error()
			if cancelled {
				p.State, p.Error = StateInterrupted, "training was cancelled: "+err.Error()
			}
			return
		}
		p.State, p.Error, p.Report, p.Classifier = StateTrained, "", report, out.Classifier
	})
	if err != nil {
		m.cfg.Log.Warn("training failed", "project", name, "err", err)
	} else {
		m.cfg.Log.Info("training done", "project", name, "classifier", out.Classifier, "seconds", time.Since(started).Seconds())
	}
	if serr != nil {
		m.cfg.Log.Error("training outcome not saved", "project", name, "err", serr)
	}
}

// Wait blocks until no training runs or ctx ends (for tests and orderly shutdown).
func (m *Manager) Wait(ctx context.Context) error {
	m.mu.Lock()
	idle := m.idle
	m.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
