package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/vigil-video/vigil/pkg/httpapi"
)

// BackboneInfo is a backbone training projects may name.
type BackboneInfo struct {
	// Name is what a project's "backbone" names.
	Name string `json:"name"`
	// Target is what classifiers trained on it look at: "frame" or "face".
	Target string `json:"target"`
	// Builtin is true for backbones that come with the server (the face embedding model).
	Builtin bool `json:"builtin,omitempty"`
	// SHA256, Size and AddedAt describe an uploaded backbone.
	SHA256  string    `json:"sha256,omitempty"`
	Size    uint64    `json:"size,omitempty"`
	AddedAt time.Time `json:"added_at,omitzero"`
}

// ErrNoBackboneStore: the server keeps no uploaded backbones.
var ErrNoBackboneStore = errors.New("this server stores no uploaded backbones")

// Backbones lists, uploads and deletes the backbones training projects may name.
// classify.ProjectTrainer implements it.
type Backbones interface {
	// ListBackbones lists them: built-in first, then uploaded, by name.
	ListBackbones(ctx context.Context) ([]BackboneInfo, error)
	// AddBackbone checks an ImageNet classifier model and stores it under name (errors wrap
	// manifest.ErrModel for an unusable model, manifest.ErrInvalid for a bad name).
	AddBackbone(ctx context.Context, name string, model []byte) (BackboneInfo, error)
	// DeleteBackbone removes an uploaded backbone (store.ErrBackboneNotFound when absent).
	DeleteBackbone(ctx context.Context, name string) error
}

// mountBackbones adds the backbone routes:
//
//	GET    /v1/classifier-backbones         list the backbones
//	PUT    /v1/classifier-backbones/{name}  upload an ImageNet classifier .onnx as backbone name (the body)
//	DELETE /v1/classifier-backbones/{name}  delete an uploaded backbone
func (h *handlers) mountBackbones(srv *httpapi.Server) {
	srv.HandleFunc("GET /v1/classifier-backbones", h.listBackbones)
	srv.HandleLimit("PUT /v1/classifier-backbones/{name}", h.cfg.MaxModelBytes, http.HandlerFunc(h.addBackbone))
	srv.HandleFunc("DELETE /v1/classifier-backbones/{name}", h.deleteBackbone)
	srv.Describe(backbonesOpenAPI())
}

// backbonesOpenAPI documents the backbone routes.
func backbonesOpenAPI() httpapi.Doc {
	tag := []any{"classifiers"}
	name := map[string]any{"name": "name", "in": "path", "required": true, "schema": map[string]any{"type": "string"},
		"description": "backbone name: 1-64 characters a-z, 0-9, '_' or '-', starting with a letter or digit"}
	info := map[string]any{"$ref": "#/components/schemas/BackboneInfo"}
	ok := func(desc string, schema map[string]any) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{"schema": schema}}}
	}
	return httpapi.Doc{
		Paths: map[string]map[string]any{
			"/v1/classifier-backbones": {"get": map[string]any{"tags": tag, "summary": "List the backbones training projects may name",
				"description": "Built-in backbones (face: the face embedding model) and uploaded ImageNet classifiers for frame classifiers. " +
					"A project's backbone \"default\" is face for face targets and the first uploaded backbone for frame targets.",
				"responses": map[string]any{"200": ok("the backbones", map[string]any{"type": "object", "properties": map[string]any{
					"backbones": map[string]any{"type": "array", "items": info}}})}}},
			"/v1/classifier-backbones/{name}": {
				"put": map[string]any{"tags": tag, "summary": "Upload an ImageNet classifier as a backbone",
					"description": "The body is the .onnx file: one float32 image input [N, 3, 224, 224] (shorter side 256, centre crop 224, RGB, " +
						"ImageNet mean and std) and a last linear layer, whose input frame classifiers learn from (MobileNetV2 from the ONNX model zoo works). " +
						"Stored once in the JetStream object store with its SHA-256, checked on every read; it replaces a backbone of the same name.",
					"parameters": []any{name},
					"requestBody": map[string]any{"required": true, "content": map[string]any{"application/octet-stream": map[string]any{
						"schema": map[string]any{"type": "string", "format": "binary"}}}},
					"responses": map[string]any{"201": ok("stored", info), "400": httpapi.ErrorResponse("invalid_manifest (a bad or built-in name) or bad_request (empty body)"),
						"413": httpapi.ErrorResponse("too_large"), "422": httpapi.ErrorResponse("invalid_model: not an ImageNet classifier (input, no last linear layer)")}},
				"delete": map[string]any{"tags": tag, "summary": "Delete an uploaded backbone", "parameters": []any{name},
					"responses": map[string]any{"204": map[string]any{"description": "deleted"}, "404": httpapi.ErrorResponse("backbone_not_found")}},
			},
		},
		Schemas: map[string]any{"BackboneInfo": map[string]any{"type": "object", "required": []any{"name", "target"}, "properties": map[string]any{
			"name":     map[string]any{"type": "string"},
			"target":   map[string]any{"type": "string", "enum": []any{"frame", "face"}, "description": "what classifiers trained on it look at"},
			"builtin":  map[string]any{"type": "boolean", "description": "comes with the server"},
			"sha256":   map[string]any{"type": "string", "description": "uploaded model's digest"},
			"size":     map[string]any{"type": "integer", "description": "bytes"},
			"added_at": map[string]any{"type": "string", "format": "date-time"}}}},
	}
}

func (h *handlers) listBackbones(w http.ResponseWriter, r *http.Request) {
	list, err := h.cfg.Backbones.ListBackbones(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if list == nil {
		list = []BackboneInfo{}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"backbones": list})
}

func (h *handlers) addBackbone(w http.ResponseWriter, r *http.Request) {
	model, err := readAtMost(r.Body, h.cfg.MaxModelBytes, "model")
	if err != nil {
		h.readFail(w, r, err)
		return
	}
	if len(model) == 0 {
		httpapi.WriteError(w, http.StatusBadRequest, "bad_request", "the body is empty: send the backbone's .onnx file as the body")
		return
	}
	info, err := h.cfg.Backbones.AddBackbone(r.Context(), r.PathValue("name"), model)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, info)
}

func (h *handlers) deleteBackbone(w http.ResponseWriter, r *http.Request) {
	if err := h.cfg.Backbones.DeleteBackbone(r.Context(), r.PathValue("name")); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
