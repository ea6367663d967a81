// Package api is the HTTP API of custom classifiers, mounted on the shared httpapi.Server:
//
//	GET    /v1/classifiers                        list classifiers and their state
//	POST   /v1/classifiers                        register one (multipart: manifest, model)
//	GET    /v1/classifiers/{name}                 one classifier's state and manifest
//	DELETE /v1/classifiers/{name}                 delete one (every analyzer unloads it)
//	POST   /v1/classify?model=NAME[,NAME]         classify an image (body or multipart "image")
//	POST   /v1/classifier-projects                create a training project {name, backbone, target}
//	GET    /v1/classifier-projects                list projects
//	GET    /v1/classifier-projects/{project}      state, progress and training report
//	DELETE /v1/classifier-projects/{project}      delete a project and its files
//	PUT    /v1/classifier-projects/{project}/dataset  upload a ZIP of one folder per class
//	POST   /v1/classifier-projects/{project}/train    start training (202; poll the project)
//	POST   /v1/classifier-projects/{project}/predict  classify an image with the project's classifier
//
// Handlers stream uploads (no multipart temporary files), answer errors as httpapi JSON errors
// with stable codes, and reach models only through the Backend interface: the package is pure
// Go. classify.Service implements Backend.
package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-video/vigil/analyze/classify/dataset"
	"github.com/vigil-video/vigil/analyze/classify/manifest"
	"github.com/vigil-video/vigil/analyze/classify/project"
	"github.com/vigil-video/vigil/analyze/classify/store"
	"github.com/vigil-video/vigil/pkg/admit"
	"github.com/vigil-video/vigil/pkg/httpapi"
)

// Errors a Backend wraps so that handlers answer precisely.
var (
	// ErrImage: the bytes to classify are not a decodable image.
	ErrImage = errors.New("invalid image")
	// ErrUnknownClassifier: a classifier asked for is not loaded.
	ErrUnknownClassifier = errors.New("classifier not loaded")
)

// ClassifierInfo is a classifier's state as the API reports it.
type ClassifierInfo struct {
	// Name is the classifier's name.
	Name string `json:"name"`
	// State is "loaded" or "failed" (Error says why).
	State string `json:"state"`
	// Error says why a failed classifier does not run.
	Error string `json:"error,omitempty"`
	// Manifest is the registered manifest, with the model's sha256.
	Manifest *manifest.Manifest `json:"manifest,omitempty"`
	// Size is the model's size in bytes.
	Size uint64 `json:"size,omitempty"`
	// LoadedAt is when the serving process loaded it.
	LoadedAt time.Time `json:"loaded_at,omitzero"`
}

// Prediction is one classifier's verdict on one target of a classified image.
type Prediction struct {
	// Model is the classifier's name.
	Model string `json:"model"`
	// Target is what was classified: "frame", "region" or "face:N" (N indexes the faces found).
	Target string `json:"target"`
	// Label is the top label and Score its score.
	Label string  `json:"label"`
	Score float32 `json:"score"`
	// Reported says whether Score reaches the classifier's threshold, i.e. whether the analyzer
	// would put this prediction in a result's classifications.
	Reported bool `json:"reported"`
	// Scores holds every label's score.
	Scores map[string]float32 `json:"scores"`
}

// ClassifyResult answers POST /v1/classify.
type ClassifyResult struct {
	// Width and Height are the decoded image's size in pixels.
	Width  int `json:"width"`
	Height int `json:"height"`
	// Faces is the number of faces found (face classifiers run on each).
	Faces int `json:"faces"`
	// Predictions holds every classifier's verdict on every target, by classifier, then target.
	Predictions []Prediction `json:"predictions"`
}

// Backend runs the registry and the classifiers behind the API. Methods get the request's
// context.
type Backend interface {
	// Classifiers lists the classifiers, by name.
	Classifiers(ctx context.Context) []ClassifierInfo
	// Register checks and stores a classifier, replacing one of the same name.
	Register(ctx context.Context, m manifest.Manifest, model []byte) (ClassifierInfo, error)
	// Delete removes a classifier (store.ErrNotFound when absent).
	Delete(ctx context.Context, name string) error
	// Classify runs the named classifiers (all loaded ones when models is empty) on an encoded
	// image (ErrImage when it is not one; ErrUnknownClassifier for a name not loaded).
	Classify(ctx context.Context, image []byte, models []string) (ClassifyResult, error)
}

// Config configures Mount.
type Config struct {
	// Backend serves /v1/classifiers and /v1/classify. Required.
	Backend Backend
	// Projects serves /v1/classifier-projects; nil leaves those routes out.
	Projects *project.Manager
	// Backbones serves /v1/classifier-backbones; nil leaves those routes out.
	Backbones Backbones
	// MaxImageBytes bounds an image to classify. Default 0: the server's upload limit
	// (--max-upload-mb) alone, as for every image route.
	MaxImageBytes int64
	// MaxModelBytes bounds a model upload (POST /v1/classifiers). Default
	// store.DefaultMaxModelBytes; the server's Limits[ModelSetting] (--max-model-mb) replaces it.
	MaxModelBytes int64
	// Log receives handler errors. Default slog.Default().
	Log *slog.Logger
	// Gate admits classifications (POST /v1/classify, .../predict): requests beyond its
	// concurrency and queue get 503 busy with Retry-After before their body is read, and each
	// image waits for room for the pixels its header declares. Default a Gate of NumCPU jobs
	// and admit.DefaultMaxPixels pixels.
	Gate *admit.Gate
}

// Mount adds the classifier routes and their OpenAPI description to srv. Call it before
// srv.Start.
func Mount(srv *httpapi.Server, cfg Config) {
	if cfg.MaxImageBytes <= 0 {
		cfg.MaxImageBytes = math.MaxInt64 - 1
	}
	if cfg.MaxModelBytes <= 0 {
		cfg.MaxModelBytes = store.DefaultMaxModelBytes
	}
	if cfg.MaxModelBytes = srv.UploadLimit(ModelSetting, cfg.MaxModelBytes); cfg.MaxModelBytes <= 0 {
		cfg.MaxModelBytes = math.MaxInt64 - manifest.MaxSize - formSlack
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Gate == nil {
		cfg.Gate = &admit.Gate{}
	}
	h := &handlers{cfg: cfg, modelUploads: &admit.Gate{MaxConcurrent: 1, MaxWaiting: 1}}
	srv.HandleFunc("GET /v1/classifiers", h.list)
	// The model's own limit names its setting; the form around it adds the manifest.
	srv.HandleUpload("POST /v1/classifiers", ModelSetting, cfg.MaxModelBytes+manifest.MaxSize+formSlack, http.HandlerFunc(h.register))
	srv.HandleFunc("GET /v1/classifiers/{name}", h.get)
	srv.HandleFunc("DELETE /v1/classifiers/{name}", h.delete)
	srv.HandleFunc("POST /v1/classify", h.classify)
	if cfg.Projects != nil {
		srv.HandleFunc("POST /v1/classifier-projects", h.createProject)
		srv.HandleFunc("GET /v1/classifier-projects", h.listProjects)
		srv.HandleFunc("GET /v1/classifier-projects/{project}", h.getProject)
		srv.HandleFunc("DELETE /v1/classifier-projects/{project}", h.deleteProject)
		srv.HandleUpload("PUT /v1/classifier-projects/{project}/dataset", DatasetSetting, cfg.Projects.MaxUploadBytes()+formSlack,
			http.HandlerFunc(h.uploadDataset))
		srv.HandleFunc("POST /v1/classifier-projects/{project}/train", h.train)
		srv.HandleFunc("POST /v1/classifier-projects/{project}/predict", h.predict)
	}
	if cfg.Backbones != nil {
		h.mountBackbones(srv)
	}
	srv.Describe(openAPI(cfg.Projects != nil))
}

type handlers struct {
	cfg Config
	// modelUploads bounds the model uploads held in memory at once (2 x MaxModelBytes).
	modelUploads *admit.Gate
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request) {
	list := h.cfg.Backend.Classifiers(r.Context())
	if list == nil {
		list = []ClassifierInfo{}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"classifiers": list})
}

func (h *handlers) get(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	for _, c := range h.cfg.Backend.Classifiers(r.Context()) {
		if c.Name == name {
			httpapi.WriteJSON(w, http.StatusOK, c)
			return
		}
	}
	httpapi.WriteError(w, http.StatusNotFound, "classifier_not_found", fmt.Sprintf("no classifier called %q is registered", name))
}

func (h *handlers) delete(w http.ResponseWriter, r *http.Request) {
	if err := h.cfg.Backend.Delete(r.Context(), r.PathValue("name")); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// register reads a multipart form with a "manifest" part (YAML or JSON) and a "model" part
// (the ONNX file), streaming and bounding each.
func (h *handlers) register(w http.ResponseWriter, r *http.Request) {
	leave, ok := h.modelUploads.Enter()
	if !ok {
		httpapi.WriteBusy(w, admit.RetryAfter, "two model uploads are in progress; retry when one has finished")
		return
	}
	defer leave()
	mr, err := r.MultipartReader()
	if err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, "bad_request",
			"send multipart/form-data with a \"manifest\" part (YAML or JSON) and a \"model\" part (the .onnx file)")
		return
	}
	var manifestBytes, model []byte
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			h.readFail(w, r, err)
			return
		}
		switch part.FormName() {
		case "manifest":
			manifestBytes, err = readAtMost(part, manifest.MaxSize, "manifest")
		case "model":
			model, err = readAtMost(part, h.cfg.MaxModelBytes, "model")
		default:
			_, err = io.Copy(io.Discard, part)
		}
		part.Close()
		if err != nil {
			h.readFail(w, r, err)
			return
		}
	}
	if manifestBytes == nil || model == nil {
		httpapi.WriteError(w, http.StatusBadRequest, "bad_request", "both a \"manifest\" part and a \"model\" part are required")
		return
	}
	m, err := manifest.Parse(manifestBytes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	info, err := h.cfg.Backend.Register(r.Context(), m, model)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, info)
}

// classify takes the image as the body or as the "image" part of a multipart form; the models
// come from ?model= (repeatable, comma-separated) or "model" form fields.
func (h *handlers) classify(w http.ResponseWriter, r *http.Request) {
	leave, ok := h.enter(w)
	if !ok {
		return
	}
	defer leave()
	img, models, err := h.readImage(r)
	if err != nil {
		h.readFail(w, r, err)
		return
	}
	res, err := h.classifyAdmitted(r.Context(), img, models)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
}

// errBadRequest marks request problems readFail answers with 400.
var errBadRequest = errors.New("bad request")

// readImage returns the request's image and the classifiers it names.
func (h *handlers) readImage(r *http.Request) ([]byte, []string, error) {
	models := splitList(r.URL.Query()["model"])
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "multipart/form-data" {
		img, err := readAtMost(r.Body, h.cfg.MaxImageBytes, "image")
		if err == nil && len(img) == 0 {
			err = fmt.Errorf("%w: the body is empty; send the image (JPEG or PNG) as the body or as the \"image\" part of a form", errBadRequest)
		}
		return img, models, err
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	var img []byte
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		switch part.FormName() {
		case "image":
			img, err = readAtMost(part, h.cfg.MaxImageBytes, "image")
		case "model":
			var b []byte
			b, err = readAtMost(part, 4096, "model")
			models = append(models, splitList([]string{string(b)})...)
		default:
			_, err = io.Copy(io.Discard, part)
		}
		part.Close()
		if err != nil {
			return nil, nil, err
		}
	}
	if len(img) == 0 {
		return nil, nil, fmt.Errorf("%w: the form has no \"image\" part", errBadRequest)
	}
	return img, models, nil
}

func splitList(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// errPartTooLarge is wrapped when a part exceeds its own limit (not the server's).
var errPartTooLarge = errors.New("part too large")

// readAtMost reads r completely, failing when it holds more than limit bytes.
func readAtMost(r io.Reader, limit int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: the %s exceeds %d bytes", errPartTooLarge, what, limit)
	}
	return b, nil
}

// readFail answers an error met while reading the request.
func (h *handlers) readFail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case httpapi.IsBodyTooLarge(err):
		httpapi.WriteTooLarge(w, r)
	case errors.Is(err, errPartTooLarge):
		httpapi.WriteError(w, http.StatusRequestEntityTooLarge, "body_too_large", err.Error())
	default:
		httpapi.WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
	}
}

// fail maps a Backend or Manager error to a response.
func (h *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code := http.StatusInternalServerError, "internal"
	switch {
	case httpapi.IsBodyTooLarge(err):
		httpapi.WriteTooLarge(w, r)
		return
	case errors.Is(err, manifest.ErrInvalid):
		status, code = http.StatusBadRequest, "invalid_manifest"
	case errors.Is(err, store.ErrDigest):
		status, code = http.StatusUnprocessableEntity, "digest_mismatch"
	case errors.Is(err, manifest.ErrModel):
		status, code = http.StatusUnprocessableEntity, "invalid_model"
	case errors.Is(err, store.ErrTooLarge), errors.Is(err, dataset.ErrTooLarge), errors.Is(err, errPartTooLarge):
		status, code = http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, store.ErrBackboneNotFound), errors.Is(err, ErrNoBackboneStore):
		status, code = http.StatusNotFound, "backbone_not_found"
	case errors.Is(err, store.ErrNotFound):
		status, code = http.StatusNotFound, "classifier_not_found"
	case errors.Is(err, ErrUnknownClassifier):
		status, code = http.StatusNotFound, "classifier_not_loaded"
	case errors.Is(err, ErrImage):
		status, code = http.StatusBadRequest, "invalid_image"
	case errors.Is(err, project.ErrNotFound):
		status, code = http.StatusNotFound, "project_not_found"
	case errors.Is(err, project.ErrExists):
		status, code = http.StatusConflict, "project_exists"
	case errors.Is(err, project.ErrBusy):
		status, code = http.StatusConflict, "project_busy"
	case errors.Is(err, project.ErrNoDataset):
		status, code = http.StatusConflict, "no_dataset"
	case errors.Is(err, project.ErrInvalid):
		status, code = http.StatusBadRequest, "invalid_project"
	case errors.Is(err, dataset.ErrUnsafe):
		status, code = http.StatusBadRequest, "unsafe_dataset"
	case errors.Is(err, dataset.ErrNotImage):
		status, code = http.StatusBadRequest, "invalid_image"
	case errors.Is(err, dataset.ErrLayout):
		status, code = http.StatusBadRequest, "bad_dataset_layout"
	case errors.Is(err, dataset.ErrArchive):
		status, code = http.StatusBadRequest, "invalid_archive"
	case errors.Is(err, admit.ErrBusy):
		w.Header().Set("Retry-After", strconv.Itoa(admit.RetryAfter))
		status, code = http.StatusServiceUnavailable, "busy"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		status, code = http.StatusServiceUnavailable, "timeout"
	}
	if status == http.StatusInternalServerError {
		h.cfg.Log.Error("classifier API", "path", r.URL.Path, "err", err)
	}
	httpapi.WriteError(w, status, code, err.Error())
}

// Settings of the routes' own upload limits (httpapi.Server.Limits keys, the flags' names):
// each 413 names the one in force.
const (
	// ModelSetting bounds a model upload (POST /v1/classifiers); default
	// store.DefaultMaxModelBytes (256 MiB).
	ModelSetting = "--max-model-mb"
	// DatasetSetting bounds a dataset archive (PUT .../dataset); default
	// project.DefaultMaxUploadBytes (512 MiB). Give the project.Manager the same value
	// (httpapi.Server.UploadLimit(DatasetSetting, ...)).
	DatasetSetting = "--max-dataset-mb"
)

// formSlack is what a multipart form may add around the file it carries.
const formSlack = 64 << 10
