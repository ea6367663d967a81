// Package faceapi is the face HTTP API: detect, analyze, represent, verify, identify and annotate
// on uploaded images, and the gallery of enrolled identities (/v1/identities). It mounts on an
// httpapi.Server, which brings the policy (upload limit, CORS, API keys, rate limits, logs) and
// serves the OpenAPI document this package describes.
//
// The package is pure Go: the face models sit behind the Engine interface, which the cgo leaf
// analyze/faceengine implements over the analyze pipeline; the gallery is analyze/gallery.
// Results use the pkg/result Face schema.
package faceapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/pkg/admit"
	"github.com/vigil-video/vigil/pkg/heads"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/privacy"
	"github.com/vigil-video/vigil/pkg/result"
)

// Attribute head names a request may choose (the "heads" field of /v1/analyze and /v1/annotate).
const (
	HeadAge      = heads.Age
	HeadGender   = heads.Gender
	HeadEmotion  = heads.Emotion
	HeadLiveness = heads.Liveness
	HeadPose     = heads.Pose
)

// AttributeHeads returns every attribute head, in the order they run (heads.Attributes).
func AttributeHeads() []string { return heads.Attributes() }

// DefaultHeads returns the heads /v1/analyze runs when a request names none: all but emotion,
// whose model costs ~66 ms per face on one CPU core (30x the detector).
func DefaultHeads() []string { return heads.Without(heads.Default(), heads.Embedding) }

// Engine runs the face models on encoded images. Implementations must be safe for concurrent
// use; the API bounds how many calls run at once (Config.MaxConcurrent).
type Engine interface {
	// Analyze decodes img (a JPEG or PNG that passed CheckImage) and returns its faces, largest
	// first, with the attribute heads in opts.Heads and, when opts.Embeddings, every face's
	// L2-normalised embedding (nil for a face without landmarks). When opts.Annotate is set it
	// also returns the image as JPEG with the marks opts.Annotate gives for the faces drawn on
	// it. Bytes that do not decode give an error wrapping ErrInvalidImage; unknown heads an error
	// wrapping ErrUnknownHead.
	Analyze(ctx context.Context, img []byte, opts Options) (Analysis, error)
}

// ErrUnknownHead is wrapped by Engine errors for a head name it does not know.
var ErrUnknownHead = errors.New("unknown head")

// Options select what Engine.Analyze computes.
type Options struct {
	// Heads are attribute heads to run, from AttributeHeads.
	Heads []string
	// Embeddings asks for every face's embedding.
	Embeddings bool
	// Annotate, when set, is called with the faces found (and their embeddings, when asked for)
	// and returns what to draw; Analysis.JPEG then holds the annotated image.
	Annotate func(faces []result.Face, embeddings [][]float32) []Mark
}

// Analysis is what Engine.Analyze found in one image.
type Analysis struct {
	// Width and Height are the decoded image's size in pixels.
	Width, Height int
	// Faces are the faces, largest first; boxes and landmarks in image pixels.
	Faces []result.Face
	// Embeddings[i] is Faces[i]'s embedding, when Options.Embeddings (nil for a face without
	// landmarks).
	Embeddings [][]float32
	// JPEG is the annotated image when Options.Annotate was set.
	JPEG []byte
}

// Mark is what to draw for one face on an annotated image.
type Mark struct {
	Box result.Box
	// Title goes above the box: a name and similarity, or "unknown"; empty for none.
	Title string
	// Lines go under the box, one attribute each.
	Lines []string
	// Known draws the box in the colour of a gallery match.
	Known bool
}

// Config configures the API.
type Config struct {
	// Engine runs the models. Required.
	Engine Engine
	// Store is the gallery's KV store and Gallery its in-memory index; with both set the
	// /v1/identities routes, /v1/identify and names on /v1/annotate are available. Optional.
	Store   *gallery.Store
	Gallery *gallery.Gallery
	// Threshold is the default similarity threshold of /v1/verify and /v1/identify (a request
	// may pass its own). Default: the Gallery's threshold, else gallery.DefaultThreshold.
	Threshold float32
	// DefaultHeads are the heads /v1/analyze and /v1/annotate run when a request names none.
	// Default DefaultHeads().
	DefaultHeads []string
	// MaxPixels bounds uploaded images' size. Default DefaultMaxPixels (8192x8192).
	MaxPixels int
	// MaxConcurrent bounds the Engine calls running at once. Default runtime.NumCPU().
	MaxConcurrent int
	// MaxWaiting bounds the requests waiting for an Engine slot; more get 503 busy at once,
	// before their body is read. Default 4 * MaxConcurrent.
	MaxWaiting int
	// Gate admits each image's decode and Engine call, with the pixels its header declares:
	// beyond its concurrency, pixel budget, queue or wait a request gets 503 busy with
	// Retry-After. Share one between APIs to bound them together. Default a Gate of
	// MaxConcurrent jobs and MaxWaiting waiters holding at most admit.DefaultMaxPixels pixels.
	Gate *admit.Gate
	// Model names the embedding model in responses. Default gallery.DefaultModel ("fr_feature").
	Model string
	// Erase, when set, lets DELETE /v1/identities/{id}?erase=true remove every stored trace of
	// the person (event store, unknown people) before the identity itself: it is called with the
	// identity (photos with their embeddings) and returns a report of what it removed, the
	// answer's "erased". Optional: without it, or when it returns an error wrapping
	// ErrEraseUnavailable, erase=true answers 501 and deletes nothing.
	Erase func(ctx context.Context, ident gallery.Identity) (any, error)
	// Privacy blurs faces, irreversibly, in /v1/annotate's image: privacy.BlurUnknown those not
	// matched in the gallery, privacy.BlurAll every one. Default privacy.Off.
	Privacy privacy.Mode
	// Log receives errors the API answers with 500. Default slog.Default().
	Log *slog.Logger
}

// API is the mounted face API. Its handlers are safe for concurrent use.
type API struct {
	cfg    Config
	routes []route
}

// New checks cfg and returns the API; Mount puts it on a server.
func New(cfg Config) (*API, error) {
	if cfg.Engine == nil {
		return nil, errors.New("faceapi: Config.Engine is required")
	}
	if (cfg.Store == nil) != (cfg.Gallery == nil) {
		return nil, errors.New("faceapi: Config.Store and Config.Gallery go together")
	}
	if cfg.Threshold == 0 {
		cfg.Threshold = gallery.DefaultThreshold
		if cfg.Gallery != nil {
			cfg.Threshold = cfg.Gallery.Threshold()
		}
	}
	if cfg.Threshold < -1 || cfg.Threshold > 1 {
		return nil, fmt.Errorf("faceapi: threshold %v is outside -1..1", cfg.Threshold)
	}
	if cfg.DefaultHeads == nil {
		cfg.DefaultHeads = DefaultHeads()
	}
	for _, h := range cfg.DefaultHeads {
		if !isHead(h) {
			return nil, fmt.Errorf("faceapi: default head %q: %w (choose from %s)", h, ErrUnknownHead, strings.Join(AttributeHeads(), ", "))
		}
	}
	if cfg.MaxPixels <= 0 {
		cfg.MaxPixels = DefaultMaxPixels
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = runtime.NumCPU()
	}
	if cfg.MaxWaiting <= 0 {
		cfg.MaxWaiting = 4 * cfg.MaxConcurrent
	}
	if cfg.Model == "" {
		cfg.Model = gallery.DefaultModel
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Gate == nil {
		cfg.Gate = &admit.Gate{MaxConcurrent: cfg.MaxConcurrent, MaxWaiting: cfg.MaxWaiting}
	}
	a := &API{cfg: cfg}
	a.routes = a.table()
	return a, nil
}

// Mount builds the API from cfg and mounts its routes, its OpenAPI description and a "gallery"
// readiness check (when a Gallery is configured) on srv. Call it before srv.Start.
func Mount(srv *httpapi.Server, cfg Config) (*API, error) {
	a, err := New(cfg)
	if err != nil {
		return nil, err
	}
	a.Mount(srv)
	return a, nil
}

// Mount mounts the API's routes, description and readiness check on srv.
func (a *API) Mount(srv *httpapi.Server) {
	for _, rt := range a.routes {
		srv.HandleFunc(rt.method+" "+rt.path, a.handler(rt))
	}
	srv.Describe(a.doc())
	if g := a.cfg.Gallery; g != nil {
		srv.ReadyCheck("gallery", func(context.Context) error {
			select {
			case <-g.Ready():
				return nil
			default:
				return errors.New("the gallery is still loading from NATS")
			}
		})
	}
}

// Routes lists the mounted routes as "METHOD /path" patterns.
func (a *API) Routes() []string {
	out := make([]string, len(a.routes))
	for i, rt := range a.routes {
		out[i] = rt.method + " " + rt.path
	}
	return out
}

// handler wraps a route: admission (503 busy beyond MaxWaiting), then the route, whose error
// becomes the JSON error response.
func (a *API) handler(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if rt.compute {
			leave, ok := a.cfg.Gate.Enter() // shared with every API that holds the same Gate
			if !ok {
				httpapi.WriteBusy(w, admit.RetryAfter,
					fmt.Sprintf("%d requests are being analysed or waiting; retry shortly", a.cfg.Gate.MaxConcurrent+a.cfg.Gate.MaxWaiting))
				return
			}
			defer leave()
		}
		if err := rt.handle(w, r); err != nil {
			if err.Code == "busy" {
				w.Header().Set("Retry-After", strconv.Itoa(admit.RetryAfter))
			}
			if err.Status >= 500 && err.Code == "internal" {
				a.cfg.Log.Error("face API request failed", "method", r.Method, "path", r.URL.Path, "err", err.Message)
				err.Message = "the server failed on this request; see its log"
			}
			httpapi.WriteError(w, err.Status, err.Code, err.Message)
		}
	}
}

// Analyze runs the Engine on img as the routes do: vetted by CheckImage, then admitted by the
// Gate (an *Error 503 busy when it is full). Use it, not the Engine, for images from clients.
func (a *API) Analyze(ctx context.Context, img []byte, opts Options) (Analysis, error) {
	res, err := a.analyzeImage(ctx, "image", img, opts)
	if err != nil {
		return Analysis{}, err
	}
	return res, nil
}

// analyzeImage vets img and runs the engine on it once the Gate admits its pixels.
func (a *API) analyzeImage(ctx context.Context, what string, img []byte, opts Options) (Analysis, *Error) {
	info, err := CheckImage(img, a.cfg.MaxPixels)
	if err != nil {
		return Analysis{}, imageError(what, err)
	}
	release, err := a.cfg.Gate.Acquire(ctx, int64(info.Width)*int64(info.Height))
	if errors.Is(err, admit.ErrBusy) {
		return Analysis{}, errorf(http.StatusServiceUnavailable, "busy", "%s: %v", what, err)
	}
	if err != nil {
		return Analysis{}, errorf(http.StatusServiceUnavailable, "canceled", "request canceled while waiting: %v", err)
	}
	defer release()
	res, err := a.cfg.Engine.Analyze(ctx, img, opts)
	if err != nil {
		switch {
		case errors.Is(err, ErrInvalidImage), errors.Is(err, ErrImageTooLarge):
			return Analysis{}, imageError(what, err)
		case errors.Is(err, ErrUnknownHead):
			return Analysis{}, errorf(http.StatusBadRequest, "unknown_head", "%v", err)
		case ctx.Err() != nil:
			return Analysis{}, errorf(http.StatusServiceUnavailable, "canceled", "request canceled: %v", ctx.Err())
		}
		return Analysis{}, errorf(http.StatusInternalServerError, "internal", "%s: %v", what, err)
	}
	return res, nil
}

func imageError(what string, err error) *Error {
	if errors.Is(err, ErrImageTooLarge) {
		return errorf(http.StatusUnprocessableEntity, "image_too_large", "%s: %v", what, err)
	}
	return errorf(http.StatusBadRequest, "invalid_image", "%s: %v", what, err)
}

func isHead(h string) bool {
	for _, k := range AttributeHeads() {
		if k == h {
			return true
		}
	}
	return false
}

// ParseHeads parses a "heads" value: a comma-separated list of attribute heads, or all, default
// (Config.DefaultHeads), none. An unknown head is a 400 unknown_head *Error.
func (a *API) ParseHeads(s string) ([]string, error) {
	h, err := a.parseHeads(s)
	if err != nil {
		return nil, err
	}
	return h, nil
}

func (a *API) parseHeads(s string) ([]string, *Error) {
	s = strings.TrimSpace(s)
	switch s {
	case "", "default":
		return append([]string(nil), a.cfg.DefaultHeads...), nil
	case "all":
		return AttributeHeads(), nil
	case "none":
		return nil, nil
	}
	var out []string
	seen := map[string]bool{}
	for _, h := range strings.Split(s, ",") {
		h = strings.TrimSpace(h)
		if !isHead(h) {
			return nil, errorf(http.StatusBadRequest, "unknown_head", "unknown head %q (choose from %s, or all, default, none)",
				h, strings.Join(AttributeHeads(), ", "))
		}
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out, nil
}

// parseFloat reads an optional number field in [lo, hi].
func parseFloat(f form, name string, def, lo, hi float32) (float32, *Error) {
	s := strings.TrimSpace(f.fields[name])
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseFloat(s, 32)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || !(v >= float64(lo) && v <= float64(hi)) { // NaN compares false both ways
		return 0, errorf(http.StatusBadRequest, "invalid_field", "%s %q: want a number from %g to %g", name, s, lo, hi)
	}
	return float32(v), nil
}

// parseInt reads an optional integer field in [lo, hi].
func parseInt(f form, name string, def, lo, hi int) (int, *Error) {
	s := strings.TrimSpace(f.fields[name])
	if s == "" {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, errorf(http.StatusBadRequest, "invalid_field", "%s %q: want an integer from %d to %d", name, s, lo, hi)
	}
	return v, nil
}

// oneImage returns the single image of field name.
func oneImage(f form, name string) ([]byte, *Error) {
	imgs := f.images[name]
	if len(imgs) == 0 {
		return nil, errorf(http.StatusBadRequest, "missing_image",
			"no image: send it as the multipart file field %q, the JSON base64 field %q, or as the raw image/jpeg or image/png body", name, name)
	}
	return imgs[0], nil
}

func since(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
