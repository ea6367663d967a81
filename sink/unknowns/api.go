package unknowns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/vigil-video/vigil/pkg/httpapi"
)

// Enroller creates a gallery identity called name from embeddings and returns its id. Errors
// wrap ErrExists for a name the gallery has and ErrInvalid for a name it refuses.
type Enroller func(ctx context.Context, name string, embeddings [][]float32) (id string, err error)

// API serves the unknowns over HTTP, on an httpapi.Server:
//
//	GET    /v1/unknowns                 {"unknowns":[Unknown...]}, most sightings first
//	GET    /v1/unknowns/{id}            the Unknown with its tracks
//	POST   /v1/unknowns/{id}/enroll     {"name"}: 201 {"identity","name","unknown"}; 409 duplicate name
//	POST   /v1/unknowns/{id}/merge      {"into"}: 200 the merged Unknown
//	DELETE /v1/unknowns/{id}            204
type API struct {
	// Store holds the unknowns. Required.
	Store *Store
	// Enroll makes identities. Nil: enroll answers 501.
	Enroll Enroller
	// Snapshot returns the path of a track's snapshot ("" for none). Optional.
	Snapshot func(ctx context.Context, stream, trackID string) (string, error)
	// Relabel, when set, is told that unknown from's tracks now belong to to ("" when the unknown
	// was deleted or enrolled): the event store follows.
	Relabel func(ctx context.Context, from, to string) error
}

// EnrollResponse is the answer of POST /v1/unknowns/{id}/enroll.
type EnrollResponse struct {
	// Identity is the new gallery identity's id, Name its name, Unknown the unknown it came from.
	Identity string `json:"identity"`
	Name     string `json:"name"`
	Unknown  string `json:"unknown"`
}

// UnknownList is the answer of GET /v1/unknowns.
type UnknownList struct {
	Unknowns []Unknown `json:"unknowns"`
}

// Mount adds the routes and their description to srv.
func (a *API) Mount(srv *httpapi.Server) {
	srv.HandleFunc("GET /v1/unknowns", a.list)
	srv.HandleFunc("GET /v1/unknowns/{id}", a.get)
	srv.HandleFunc("POST /v1/unknowns/{id}/enroll", a.enroll)
	srv.HandleFunc("POST /v1/unknowns/{id}/merge", a.merge)
	srv.HandleFunc("DELETE /v1/unknowns/{id}", a.del)
	srv.Describe(openAPI())
}

func (a *API) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 10*time.Second)
}

func fail(w http.ResponseWriter, err error) {
	httpapi.WriteErrorCase(w, err,
		httpapi.ErrorCase{Err: ErrNotFound, Status: http.StatusNotFound, Code: "unknown_not_found"},
		httpapi.ErrorCase{Err: ErrExists, Status: http.StatusConflict, Code: "identity_exists"},
		httpapi.ErrorCase{Err: ErrInvalid, Status: http.StatusBadRequest, Code: "invalid_request"},
		httpapi.ErrorCase{Status: http.StatusInternalServerError, Code: "unknowns_error"})
}

func (a *API) snapshot(ctx context.Context, u *Unknown) {
	if a.Snapshot == nil {
		return
	}
	for i := len(u.Tracks) - 1; i >= 0; i-- {
		if p, err := a.Snapshot(ctx, u.Tracks[i].Stream, u.Tracks[i].TrackID); err == nil && p != "" {
			u.Snapshot = p
			return
		}
	}
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Query()) > 0 {
		fail(w, fmt.Errorf("%w: GET /v1/unknowns takes no parameters", ErrInvalid))
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	out := UnknownList{Unknowns: []Unknown{}}
	for _, u := range a.Store.List() {
		full, err := a.Store.Get(ctx, u.ID) // its tracks, for the snapshot
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			fail(w, err)
			return
		}
		a.snapshot(ctx, &full)
		full.Tracks = nil
		out.Unknowns = append(out.Unknowns, full)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.ctx(r)
	defer cancel()
	u, err := a.Store.Get(ctx, r.PathValue("id"))
	if err != nil {
		fail(w, err)
		return
	}
	a.snapshot(ctx, &u)
	httpapi.WriteJSON(w, http.StatusOK, u)
}

// decodeBody reads a small JSON object with exactly the field name (a string).
func decodeBody(r *http.Request, name string) (string, error) {
	var body map[string]json.RawMessage
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 4096))
	if err := dec.Decode(&body); err != nil {
		return "", fmt.Errorf("%w: want a JSON body {%q: \"...\"}: %w", ErrInvalid, name, err)
	}
	raw, ok := body[name]
	if !ok || len(body) != 1 {
		return "", fmt.Errorf("%w: want a JSON body with exactly the field %q", ErrInvalid, name)
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil || v == "" {
		return "", fmt.Errorf("%w: %q must be a non-empty string", ErrInvalid, name)
	}
	return v, nil
}

func (a *API) enroll(w http.ResponseWriter, r *http.Request) {
	if a.Enroll == nil {
		httpapi.WriteError(w, http.StatusNotImplemented, "no_gallery", "this server has no face gallery")
		return
	}
	name, err := decodeBody(r, "name")
	if err != nil {
		fail(w, err)
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	u, err := a.Store.Get(ctx, r.PathValue("id"))
	if err != nil {
		fail(w, err)
		return
	}
	identity, err := a.Enroll(ctx, name, u.Exemplars())
	if err != nil {
		fail(w, err)
		return
	}
	if err := a.Store.Delete(ctx, u.ID); err != nil && !errors.Is(err, ErrNotFound) {
		fail(w, err)
		return
	}
	if a.Relabel != nil {
		_ = a.Relabel(ctx, u.ID, "")
	}
	httpapi.WriteJSON(w, http.StatusCreated, EnrollResponse{Identity: identity, Name: name, Unknown: u.ID})
}

func (a *API) merge(w http.ResponseWriter, r *http.Request) {
	into, err := decodeBody(r, "into")
	if err != nil {
		fail(w, err)
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	id := r.PathValue("id")
	u, err := a.Store.Merge(ctx, id, into)
	if err != nil {
		fail(w, err)
		return
	}
	if a.Relabel != nil {
		_ = a.Relabel(ctx, id, into)
	}
	a.snapshot(ctx, &u)
	httpapi.WriteJSON(w, http.StatusOK, u)
}

func (a *API) del(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.ctx(r)
	defer cancel()
	id := r.PathValue("id")
	if err := a.Store.Delete(ctx, id); err != nil {
		fail(w, err)
		return
	}
	if a.Relabel != nil {
		_ = a.Relabel(ctx, id, "")
	}
	w.WriteHeader(http.StatusNoContent)
}

func openAPI() httpapi.Doc {
	str := func(d string) map[string]any { return map[string]any{"type": "string", "description": d} }
	idParam := map[string]any{"name": "id", "in": "path", "required": true, "description": "unknown id (u-<16 hex>)", "schema": map[string]any{"type": "string"}}
	ref := func(s string) map[string]any {
		return map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/" + s}}}
	}
	body := func(field, desc string) map[string]any {
		return map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{
			"type": "object", "required": []any{field}, "properties": map[string]any{field: str(desc)}}}}}
	}
	nf := httpapi.ErrorResponse("no such unknown (unknown_not_found)")
	return httpapi.Doc{
		Tags: []map[string]any{{"name": "unknowns", "description": "Unknown people: tracks that ended without identity, clustered by face."}},
		Paths: map[string]map[string]any{
			"/v1/unknowns": {"get": map[string]any{"tags": []any{"unknowns"}, "summary": "List unknown people, most sightings first",
				"responses": map[string]any{"200": map[string]any{"description": "the unknowns", "content": ref("UnknownList")}}}},
			"/v1/unknowns/{id}": {
				"get": map[string]any{"tags": []any{"unknowns"}, "summary": "An unknown person with its sightings", "parameters": []any{idParam},
					"responses": map[string]any{"200": map[string]any{"description": "the unknown", "content": ref("Unknown")}, "404": nf}},
				"delete": map[string]any{"tags": []any{"unknowns"}, "summary": "Delete an unknown person", "parameters": []any{idParam},
					"responses": map[string]any{"204": map[string]any{"description": "deleted"}, "404": nf}}},
			"/v1/unknowns/{id}/enroll": {"post": map[string]any{"tags": []any{"unknowns"}, "summary": "Name an unknown person: enrol it as a gallery identity",
				"parameters": []any{idParam}, "requestBody": body("name", "the identity's name"),
				"responses": map[string]any{"201": map[string]any{"description": "enrolled; live streams name the person from now on"},
					"400": httpapi.ErrorResponse("bad body or name (invalid_request)"), "404": nf,
					"409": httpapi.ErrorResponse("the gallery has an identity of that name (identity_exists)")}}},
			"/v1/unknowns/{id}/merge": {"post": map[string]any{"tags": []any{"unknowns"}, "summary": "Merge an unknown person into another",
				"parameters": []any{idParam}, "requestBody": body("into", "the unknown that absorbs this one"),
				"responses": map[string]any{"200": map[string]any{"description": "the merged unknown", "content": ref("Unknown")},
					"400": httpapi.ErrorResponse("bad body, or merging into itself (invalid_request)"), "404": nf}}},
		},
		Schemas: map[string]any{
			"Unknown": map[string]any{"type": "object", "properties": map[string]any{
				"id": str("u-<16 hex>"), "sightings": map[string]any{"type": "integer"},
				"streams":    map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
				"first_seen": str("RFC 3339"), "last_seen": str("RFC 3339"), "snapshot": str("path of a snapshot; empty when none"),
				"tracks": map[string]any{"type": "array", "items": map[string]any{"type": "object"}}}},
			"UnknownList": map[string]any{"type": "object", "properties": map[string]any{
				"unknowns": map[string]any{"type": "array", "items": map[string]any{"$ref": "#/components/schemas/Unknown"}}}},
		},
	}
}
