package streams

import (
	"context"
	"fmt"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-video/vigil/pkg/admit"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/httpapi"
)

// Mount mounts the stream-management API on srv (before srv starts):
//
//	GET    /v1/streams                  every stream: {"streams": [Status...]}
//	POST   /v1/streams                  create (Spec as JSON) → 201, 409 stream_exists
//	GET    /v1/streams/{stream}         one stream → Status, ETag "<revision>"
//	PUT    /v1/streams/{stream}         create (201) or replace (200); If-Match: "<revision>"
//	PATCH  /v1/streams/{stream}         change the fields given (Patch); If-Match
//	DELETE /v1/streams/{stream}         remove → 204, once its runner here has stopped
//	POST   /v1/streams/{stream}/frames  push one JPEG or PNG (body) on a push stream →
//	                                    202 {"published": true, "seq", "width", "height"}, or 200
//	                                    {"published": false, "reason": "sampled"}; optional
//	                                    header Vigil-Captured (Unix ns)
//
// Errors are JSON ({"error": {"code", "message"}}, see AsError). Bodies are limited to
// MaxBodyBytes (JSON, fixed) and PushMaxBytes (images, setting PushSetting). The routes are described in srv's OpenAPI
// document. Start the Registry before srv serves.
func (r *Registry) Mount(srv *httpapi.Server) {
	r.setDefaults()
	srv.HandleLimit("GET /v1/streams", MaxBodyBytes, http.HandlerFunc(r.httpList))
	srv.HandleLimit("POST /v1/streams", MaxBodyBytes, http.HandlerFunc(r.httpCreate))
	srv.HandleLimit("GET /v1/streams/{stream}", MaxBodyBytes, http.HandlerFunc(r.httpGet))
	srv.HandleLimit("PUT /v1/streams/{stream}", MaxBodyBytes, http.HandlerFunc(r.httpPut))
	srv.HandleLimit("PATCH /v1/streams/{stream}", MaxBodyBytes, http.HandlerFunc(r.httpPatch))
	srv.HandleLimit("DELETE /v1/streams/{stream}", MaxBodyBytes, http.HandlerFunc(r.httpDelete))
	if r.PushMaxBytes = srv.UploadLimit(PushSetting, r.PushMaxBytes); r.PushMaxBytes < 0 {
		r.PushMaxBytes = math.MaxInt64 - 1 // --max-push-mb 0: no limit
	}
	srv.HandleUpload("POST /v1/streams/{stream}/frames", PushSetting, r.PushMaxBytes, http.HandlerFunc(r.httpPush))
	srv.Describe(r.openAPI())
}

func writeErr(w http.ResponseWriter, err error) {
	e := AsError(err)
	if e.Code == CodeServerBusy || e.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(admit.RetryAfter))
	}
	httpapi.WriteError(w, e.Status, e.Code, e.Message)
}

// pathStream validates the {stream} path value; it answers 400 and returns false when invalid.
func pathStream(w http.ResponseWriter, req *http.Request) (string, bool) {
	name := req.PathValue("stream")
	if err := validName(name); err != nil {
		writeErr(w, err)
		return "", false
	}
	return name, true
}

func validName(name string) error {
	if err := frame.ValidateStream(name); err != nil {
		return fmt.Errorf("stream name in the path: %w", err)
	}
	return nil
}

func (r *Registry) reqCtx(req *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(req.Context(), r.ApplyTimeout)
}

// readJSON reads a JSON body: Content-Type absent or JSON, within the body limit.
func readJSON(w http.ResponseWriter, req *http.Request) ([]byte, bool) {
	if ct := req.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			httpapi.WriteError(w, http.StatusUnsupportedMediaType, CodeMediaType,
				fmt.Sprintf("Content-Type %q: send application/json", truncate(ct, 64)))
			return nil, false
		}
	}
	return httpapi.ReadBody(w, req, MaxBodyBytes, "")
}

// target validates the {stream} path value and the If-Match header of a request that changes
// a stream; it answers 400 and returns false when either is invalid.
func target(w http.ResponseWriter, req *http.Request) (name string, rev uint64, ok bool) {
	if name, ok = pathStream(w, req); !ok {
		return "", 0, false
	}
	if rev, ok = ifMatch(w, req); !ok {
		return "", 0, false
	}
	return name, rev, true
}

// readSpec reads and decodes a Spec body; it answers and returns false when it cannot.
func readSpec(w http.ResponseWriter, req *http.Request) (Spec, bool) {
	data, ok := readJSON(w, req)
	if !ok {
		return Spec{}, false
	}
	spec, err := DecodeSpec(data)
	if err != nil {
		writeErr(w, err)
		return Spec{}, false
	}
	return spec, true
}

// ifMatch parses If-Match: a revision as "N" or N (W/ prefix tolerated); absent or * means none.
func ifMatch(w http.ResponseWriter, req *http.Request) (uint64, bool) {
	v, err := parseIfMatch(req.Header.Get("If-Match"))
	if err != nil {
		writeErr(w, err)
		return 0, false
	}
	return v, true
}

func parseIfMatch(v string) (uint64, error) {
	v = strings.TrimSpace(v)
	if v == "" || v == "*" {
		return 0, nil
	}
	v = strings.TrimPrefix(v, "W/")
	v = strings.TrimSuffix(strings.TrimPrefix(v, `"`), `"`)
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%w: If-Match %q: want the stream's revision, e.g. \"12\" (its ETag)", ErrInvalid, truncate(v, 32))
	}
	return n, nil
}

func writeStatus(w http.ResponseWriter, code int, st Status) {
	w.Header().Set("ETag", `"`+strconv.FormatUint(st.Revision, 10)+`"`)
	httpapi.WriteJSON(w, code, st)
}

func (r *Registry) httpList(w http.ResponseWriter, _ *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, struct {
		Streams []Status `json:"streams"`
	}{r.List()})
}

func (r *Registry) httpGet(w http.ResponseWriter, req *http.Request) {
	name, ok := pathStream(w, req)
	if !ok {
		return
	}
	st, err := r.Get(name)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeStatus(w, http.StatusOK, st)
}

func (r *Registry) httpCreate(w http.ResponseWriter, req *http.Request) {
	spec, ok := readSpec(w, req)
	if !ok {
		return
	}
	ctx, cancel := r.reqCtx(req)
	defer cancel()
	st, err := r.Create(ctx, spec)
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("Location", "/v1/streams/"+st.Name)
	writeStatus(w, http.StatusCreated, st)
}

func (r *Registry) httpPut(w http.ResponseWriter, req *http.Request) {
	name, rev, ok := target(w, req)
	if !ok {
		return
	}
	spec, ok := readSpec(w, req)
	if !ok {
		return
	}
	ctx, cancel := r.reqCtx(req)
	defer cancel()
	st, created, err := r.Put(ctx, name, spec, rev)
	if err != nil {
		writeErr(w, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
		w.Header().Set("Location", "/v1/streams/"+name)
	}
	writeStatus(w, code, st)
}

func (r *Registry) httpPatch(w http.ResponseWriter, req *http.Request) {
	name, rev, ok := target(w, req)
	if !ok {
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "" {
		// JSON merge patch is what this is; accept its media type as well.
		if mt, _, _ := mime.ParseMediaType(ct); mt == "application/merge-patch+json" {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	data, ok := readJSON(w, req)
	if !ok {
		return
	}
	p, err := DecodePatch(data)
	if err != nil {
		writeErr(w, err)
		return
	}
	ctx, cancel := r.reqCtx(req)
	defer cancel()
	st, err := r.Patch(ctx, name, p, rev)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeStatus(w, http.StatusOK, st)
}

func (r *Registry) httpDelete(w http.ResponseWriter, req *http.Request) {
	name, rev, ok := target(w, req)
	if !ok {
		return
	}
	ctx, cancel := r.reqCtx(req)
	defer cancel()
	if err := r.Delete(ctx, name, rev); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// pushTypes are the Content-Types a pushed image may declare ("" too: the body is sniffed).
var pushTypes = map[string]string{"image/jpeg": "jpeg", "image/jpg": "jpeg", "image/png": "png", "application/octet-stream": ""}

func (r *Registry) httpPush(w http.ResponseWriter, req *http.Request) {
	name, ok := pathStream(w, req)
	if !ok {
		return
	}
	leave, ok := r.PushAdmission.Enter()
	if !ok {
		writeErr(w, fmt.Errorf("%w: too many images are being pushed at once; retry shortly", admit.ErrBusy))
		return
	}
	defer leave()
	want := ""
	if ct := req.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		f, known := pushTypes[mt]
		if err != nil || !known {
			httpapi.WriteError(w, http.StatusUnsupportedMediaType, CodeMediaType,
				fmt.Sprintf("Content-Type %q: send image/jpeg or image/png", truncate(ct, 64)))
			return
		}
		want = f
	}
	captured, err := ParseCaptured(req.Header.Get(CapturedHeader), time.Now())
	if err != nil {
		writeErr(w, err)
		return
	}
	data, ok := httpapi.ReadBody(w, req, r.PushMaxBytes, PushSetting)
	if !ok {
		return
	}
	if want != "" {
		if format, _, _, err := CheckImage(data, r.PushMaxPixels); err == nil && format != want {
			httpapi.WriteError(w, http.StatusUnsupportedMediaType, CodeMediaType,
				fmt.Sprintf("the body is a %s image but Content-Type says %s", format, req.Header.Get("Content-Type")))
			return
		}
	}
	ctx, cancel := r.reqCtx(req)
	defer cancel()
	res, err := r.Push(ctx, name, data, captured)
	if err != nil {
		writeErr(w, err)
		return
	}
	code := http.StatusAccepted
	if !res.Published {
		code = http.StatusOK
	}
	httpapi.WriteJSON(w, code, struct {
		Stream string `json:"stream"`
		PushResult
	}{name, res})
}

// openAPI describes the routes for srv's OpenAPI document.
func (r *Registry) openAPI() httpapi.Doc {
	ref := func(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }
	jsonBody := func(schema map[string]any) map[string]any {
		return map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": schema}}}
	}
	jsonResp := func(desc string, schema map[string]any) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{"schema": schema}}}
	}
	streamParam := map[string]any{"name": "stream", "in": "path", "required": true,
		"description": "stream name: 1-64 of A-Z a-z 0-9 _ -", "schema": map[string]any{"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}}
	ifMatchParam := map[string]any{"name": "If-Match", "in": "header", "required": false,
		"description": "change the stream only if its revision (ETag) is still this one", "schema": map[string]any{"type": "string"}}
	tags := []any{"streams"}
	bad := httpapi.ErrorResponse("invalid configuration, name or body (invalid_request, invalid_stream_name)")
	notFound := httpapi.ErrorResponse("no such stream (stream_not_found)")
	unavailable := httpapi.ErrorResponse("the store is unreachable, or the change was not applied in time (store_unavailable, not_applied)")
	specProps := map[string]any{
		"name":         map[string]any{"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
		"source":       map[string]any{"type": "string", "description": "file path, file://, rtsp://, rtsps://, http(s)://, device:N, /dev/videoN, or push", "maxLength": MaxSourceLen},
		"node":         map[string]any{"type": "string", "description": "the ingest node that runs it (--node); empty: unnamed ingests"},
		"enabled":      map[string]any{"type": "boolean", "default": true},
		"fps":          map[string]any{"type": "number", "default": DefaultFPS, "exclusiveMinimum": 0, "maximum": MaxFPS},
		"max_width":    map[string]any{"type": "integer", "default": DefaultMaxWidth, "minimum": MinDimension},
		"max_height":   map[string]any{"type": "integer", "default": DefaultMaxHeight, "minimum": MinDimension},
		"jpeg_quality": map[string]any{"type": "integer", "default": DefaultJPEGQuality, "minimum": 1, "maximum": 100},
		"loop":         map[string]any{"type": "boolean", "default": false, "description": "restart a file at its end"},
		"realtime":     map[string]any{"type": "boolean", "default": false, "description": "pace a file at its frame rate"},
	}
	statusProps := map[string]any{
		"revision":  map[string]any{"type": "integer"},
		"runs_here": map[string]any{"type": "boolean"},
		"state":     map[string]any{"type": "string", "enum": []any{StateConnecting, StateLive, StateBackoff, StateEnded, StateDisabled, StateStopped, StateElsewhere}},
		"error":     map[string]any{"type": "string"},
		"stats": map[string]any{"type": "object", "properties": map[string]any{
			"decoded": map[string]any{"type": "integer"}, "published": map[string]any{"type": "integer"},
			"dropped":     map[string]any{"type": "integer", "description": "frames lost: replaced by a newer live frame, not encoded or published, invalid or refused pushed images"},
			"sampled_out": map[string]any{"type": "integer", "description": "frames skipped by design: the source sampled down to the stream's fps (not a loss)"},
			"reconnects":  map[string]any{"type": "integer"},
			"fps":         map[string]any{"type": "number"}, "width": map[string]any{"type": "integer"}, "height": map[string]any{"type": "integer"},
			"last_published": map[string]any{"type": "string", "format": "date-time"}}},
	}
	for k, v := range specProps {
		statusProps[k] = v
	}
	return httpapi.Doc{
		Tags: []map[string]any{{"name": "streams", "description": "Streams ingested: what each reads, at which rate and size; push frames"}},
		Schemas: map[string]any{
			"StreamSpec":   map[string]any{"type": "object", "required": []any{"name", "source"}, "properties": specProps, "additionalProperties": false},
			"StreamPatch":  map[string]any{"type": "object", "description": "the fields to change", "properties": specProps, "additionalProperties": false},
			"StreamStatus": map[string]any{"type": "object", "properties": statusProps},
			"PushResult": map[string]any{"type": "object", "properties": map[string]any{
				"stream": map[string]any{"type": "string"}, "published": map[string]any{"type": "boolean"},
				"seq": map[string]any{"type": "integer"}, "width": map[string]any{"type": "integer"}, "height": map[string]any{"type": "integer"},
				"reason": map[string]any{"type": "string"}}},
		},
		Paths: map[string]map[string]any{
			"/v1/streams": {
				"get": map[string]any{"tags": tags, "summary": "List the streams", "responses": map[string]any{
					"200": jsonResp("every stream", map[string]any{"type": "object", "properties": map[string]any{
						"streams": map[string]any{"type": "array", "items": ref("StreamStatus")}}})}},
				"post": map[string]any{"tags": tags, "summary": "Create a stream", "requestBody": jsonBody(ref("StreamSpec")),
					"responses": map[string]any{"201": jsonResp("created and applied", ref("StreamStatus")), "400": bad,
						"409": httpapi.ErrorResponse("exists (stream_exists) or too many streams (too_many_streams)"), "503": unavailable}},
			},
			"/v1/streams/{stream}": {
				"parameters": []any{streamParam},
				"get": map[string]any{"tags": tags, "summary": "Show a stream", "responses": map[string]any{
					"200": jsonResp("the stream (ETag: its revision)", ref("StreamStatus")), "400": bad, "404": notFound}},
				"put": map[string]any{"tags": tags, "summary": "Create or replace a stream", "parameters": []any{ifMatchParam},
					"requestBody": jsonBody(ref("StreamSpec")),
					"responses": map[string]any{"200": jsonResp("replaced and applied", ref("StreamStatus")), "201": jsonResp("created and applied", ref("StreamStatus")),
						"400": bad, "409": httpapi.ErrorResponse("too many streams (too_many_streams)"),
						"412": httpapi.ErrorResponse("the revision is not the If-Match one (revision_mismatch)"), "503": unavailable}},
				"patch": map[string]any{"tags": tags, "summary": "Change some fields of a stream (fps, size, quality, enabled, ...)", "parameters": []any{ifMatchParam},
					"requestBody": jsonBody(ref("StreamPatch")),
					"responses": map[string]any{"200": jsonResp("changed and applied", ref("StreamStatus")), "400": bad, "404": notFound,
						"412": httpapi.ErrorResponse("the revision is not the If-Match one (revision_mismatch)"), "503": unavailable}},
				"delete": map[string]any{"tags": tags, "summary": "Delete a stream (returns once its runner here stopped)", "parameters": []any{ifMatchParam},
					"responses": map[string]any{"204": map[string]any{"description": "deleted"}, "400": bad, "404": notFound,
						"412": httpapi.ErrorResponse("the revision is not the If-Match one (revision_mismatch)"), "503": unavailable}},
			},
			"/v1/streams/{stream}/frames": {
				"parameters": []any{streamParam},
				"post": map[string]any{"tags": tags, "summary": "Push one frame (JPEG or PNG) on a push stream",
					"description": "The image is scaled down to the stream's max size, JPEG-encoded and published on vigil.frames.<stream> with the next sequence number; images arriving faster than the stream's fps are sampled out (200, published false).",
					"parameters": []any{map[string]any{"name": CapturedHeader, "in": "header", "required": false,
						"description": "capture time, Unix nanoseconds (default: arrival)", "schema": map[string]any{"type": "string"}}},
					"requestBody": map[string]any{"required": true, "content": map[string]any{
						"image/jpeg": map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}},
						"image/png":  map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}}},
					"responses": map[string]any{
						"202": jsonResp("published", ref("PushResult")), "200": jsonResp("sampled out (not published)", ref("PushResult")),
						"400": httpapi.ErrorResponse("not a JPEG or PNG, or it does not decode (invalid_image)"), "404": notFound,
						"409": httpapi.ErrorResponse("not a push stream, disabled, or run by another node (not_push_stream, stream_disabled, wrong_node)"),
						"413": httpapi.ErrorResponse("too many bytes (body_too_large) or pixels (image_too_large)"),
						"415": httpapi.ErrorResponse("not image/jpeg or image/png (unsupported_media_type)"),
						"429": httpapi.ErrorResponse("too many frames of this stream in progress (stream_busy); see Retry-After"),
						"503": httpapi.ErrorResponse("server_busy: as many pushed images are being read or decoded as the server admits; see Retry-After")}},
			},
		},
	}
}
