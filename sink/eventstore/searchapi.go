package eventstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig: the pixels a JPEG declares
	_ "image/png"  // DecodeConfig: the pixels a PNG declares
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/vigil-video/vigil/pkg/admit"
	"github.com/vigil-video/vigil/pkg/httpapi"
)

// PathSearchFaces is the route of search by face.
const PathSearchFaces = "/v1/search/faces"

// ErrNoFace is wrapped by FaceEmbedder errors for an image without a face.
var ErrNoFace = errors.New("no face found in the image")

// FaceEmbedder computes the embedding a search by photo uses (the face models, outside this
// pure-Go package).
type FaceEmbedder interface {
	// EmbedFace decodes img (JPEG or PNG) and returns the L2-normalised embedding of its largest
	// face. Errors wrap ErrNoFace when it finds none and ErrInvalid when img does not decode.
	EmbedFace(ctx context.Context, img []byte) ([]float32, error)
}

// IdentityEmbeddings returns the gallery embeddings of an identity given by name or id, with
// its name. Errors wrap ErrNotFound for an unknown identity.
type IdentityEmbeddings func(ctx context.Context, nameOrID string) (name string, embs [][]float32, err error)

// SearchAPI serves search by face over the event store, on an httpapi.Server:
//
//	POST /v1/search/faces
//
// The body is multipart/form-data with the file field "image" (and the other fields as form
// fields), or JSON {"image": base64} or {"identity": name or id} or {"track_id": id}, with the
// optional filters stream, since, until (RFC 3339 or Unix seconds), limit and min_similarity.
// Exactly one of image, identity and track_id. The answer is {"sightings": [Sighting...]}, most
// similar first. A search by track leaves that track out.
type SearchAPI struct {
	// Store holds the sightings. Required.
	Store *Store
	// Faces embeds photos. Nil: searches by image answer 501.
	Faces FaceEmbedder
	// Identities looks identities up in the gallery. Nil: searches by identity answer 501.
	Identities IdentityEmbeddings
	// MinSimilarity is the default threshold of a search: pass the tracker's identity threshold
	// (track.DefaultThreshold). Required.
	MinSimilarity float32
	// Timeout bounds each search. Default 30s.
	Timeout time.Duration
	// Gate admits searches as the face API admits its requests: every search is counted in
	// (Gate.Enter) before its body is read, and a search by image runs Faces once the Gate has
	// room for the pixels its header declares (Gate.Acquire); beyond that it gets 503 busy with
	// Retry-After. Share the face API's Gate so that one limit bounds every model-running
	// request of the process. Default (nil at Mount): a Gate of its own with admit's defaults.
	Gate *admit.Gate
}

// SearchRequest is the JSON body of POST /v1/search/faces (also the multipart form's fields).
type SearchRequest struct {
	// Image is a JPEG or PNG (base64 in JSON).
	Image []byte `json:"image,omitempty"`
	// Identity is a gallery identity's name or id.
	Identity string `json:"identity,omitempty"`
	// TrackID is a stored track.
	TrackID string `json:"track_id,omitempty"`
	// Stream, Since, Until, Limit and MinSimilarity filter the sightings (see FaceQuery).
	Stream        string   `json:"stream,omitempty"`
	Since         string   `json:"since,omitempty"`
	Until         string   `json:"until,omitempty"`
	Limit         int      `json:"limit,omitempty"`
	MinSimilarity *float32 `json:"min_similarity,omitempty"`
}

// SearchResponse is the answer of POST /v1/search/faces.
type SearchResponse struct {
	// Sightings are most similar first.
	Sightings []Sighting `json:"sightings"`
}

// Mount adds the route and its OpenAPI description to srv.
func (a *SearchAPI) Mount(srv *httpapi.Server) {
	if a.Gate == nil {
		a.Gate = &admit.Gate{}
	}
	srv.HandleFunc("POST "+PathSearchFaces, a.serve)
	srv.Describe(searchOpenAPI())
}

// errEmptySearch: a search with neither image, identity nor track.
var errEmptySearch = errors.New("empty search: give an image, an identity or a track_id")

// ParseSearchRequest reads a search from r's body (multipart/form-data or JSON).
func ParseSearchRequest(r *http.Request) (SearchRequest, error) {
	var req SearchRequest
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return req, fmt.Errorf("%w: Content-Type: send multipart/form-data or application/json", ErrQuery)
	}
	switch mt {
	case "application/json":
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return req, fmt.Errorf("%w: JSON body: %w", ErrQuery, err)
		}
		if dec.More() {
			return req, fmt.Errorf("%w: JSON body: more than one value", ErrQuery)
		}
	case "multipart/form-data":
		if params["boundary"] == "" {
			return req, fmt.Errorf("%w: multipart body without boundary", ErrQuery)
		}
		mr, err := r.MultipartReader()
		if err != nil {
			return req, fmt.Errorf("%w: multipart body: %w", ErrQuery, err)
		}
		seen := map[string]bool{}
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return req, fmt.Errorf("%w: multipart body: %w", ErrQuery, err)
			}
			name := p.FormName()
			if seen[name] {
				return req, fmt.Errorf("%w: field %q given twice", ErrQuery, truncate(name))
			}
			seen[name] = true
			if name == "image" {
				if req.Image, err = io.ReadAll(p); err != nil {
					return req, fmt.Errorf("%w: multipart body: %w", ErrQuery, err)
				}
				continue
			}
			b, err := io.ReadAll(io.LimitReader(p, 257))
			if err != nil {
				return req, fmt.Errorf("%w: multipart body: %w", ErrQuery, err)
			}
			if len(b) > 256 {
				return req, fmt.Errorf("%w: field %q longer than 256 bytes", ErrQuery, truncate(name))
			}
			v := string(b)
			switch name {
			case "identity":
				req.Identity = v
			case "track_id":
				req.TrackID = v
			case "stream":
				req.Stream = v
			case "since":
				req.Since = v
			case "until":
				req.Until = v
			case "limit":
				if req.Limit, err = strconv.Atoi(v); err != nil {
					return req, fmt.Errorf("%w: limit=%q is not a number", ErrQuery, truncate(v))
				}
			case "min_similarity":
				f, err := strconv.ParseFloat(v, 32)
				if err != nil {
					return req, fmt.Errorf("%w: min_similarity=%q is not a number", ErrQuery, truncate(v))
				}
				m := float32(f)
				req.MinSimilarity = &m
			default:
				return req, fmt.Errorf("%w: unknown field %q", ErrQuery, truncate(name))
			}
		}
	default:
		return req, fmt.Errorf("%w: Content-Type %q: send multipart/form-data or application/json", ErrQuery, truncate(mt))
	}
	n := 0
	for _, set := range []bool{len(req.Image) > 0, req.Identity != "", req.TrackID != ""} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return req, fmt.Errorf("%w: %w", ErrQuery, errEmptySearch)
	case n > 1:
		return req, fmt.Errorf("%w: give one of image, identity and track_id, not several", ErrQuery)
	}
	return req, nil
}

// query turns the request's filters into a FaceQuery (without vectors).
func (a *SearchAPI) query(req SearchRequest) (FaceQuery, error) {
	q := FaceQuery{MinSimilarity: a.MinSimilarity, Limit: req.Limit, Stream: req.Stream}
	if req.MinSimilarity != nil {
		q.MinSimilarity = *req.MinSimilarity
	}
	var err error
	if req.Since != "" {
		if q.Since, err = parseTime(req.Since); err != nil {
			return q, fmt.Errorf("%w: since=%q: %w", ErrQuery, truncate(req.Since), err)
		}
	}
	if req.Until != "" {
		if q.Until, err = parseTime(req.Until); err != nil {
			return q, fmt.Errorf("%w: until=%q: %w", ErrQuery, truncate(req.Until), err)
		}
	}
	q.Vectors = [][]float32{{1}} // validated below without the vectors
	if err := q.Validate(); err != nil {
		return q, err
	}
	q.Vectors = nil
	return q, nil
}

func (a *SearchAPI) serve(w http.ResponseWriter, r *http.Request) {
	leave, ok := a.Gate.Enter()
	if !ok {
		httpapi.WriteBusy(w, admit.RetryAfter, "too many requests are being read or analysed; retry shortly")
		return
	}
	defer leave()
	req, err := ParseSearchRequest(r)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			httpapi.WriteTooLarge(w, r)
			return
		}
		a.fail(w, err)
		return
	}
	q, err := a.query(req)
	if err != nil {
		a.fail(w, err)
		return
	}
	ctx, cancel := httpapi.Deadline(r, a.Timeout, 30*time.Second)
	defer cancel()
	switch {
	case len(req.Image) > 0:
		if a.Faces == nil {
			httpapi.WriteError(w, http.StatusNotImplemented, "no_models", "this server does not run the face models: search by identity or track_id")
			return
		}
		v, err := a.embedAdmitted(ctx, req.Image)
		if err != nil {
			a.fail(w, err)
			return
		}
		q.Vectors = [][]float32{v}
	case req.Identity != "":
		if a.Identities == nil {
			httpapi.WriteError(w, http.StatusNotImplemented, "no_gallery", "this server has no face gallery: search by image or track_id")
			return
		}
		_, embs, err := a.Identities(ctx, req.Identity)
		if err != nil {
			a.fail(w, err)
			return
		}
		if len(embs) == 0 {
			a.fail(w, fmt.Errorf("%w: identity %q has no photos", ErrNotFound, truncate(req.Identity)))
			return
		}
		q.Vectors = embs[:min(len(embs), MaxSearchVectors)]
	default:
		v, id, err := a.Store.TrackEmbedding(ctx, req.Stream, req.TrackID)
		if err != nil {
			a.fail(w, err)
			return
		}
		q.Vectors, q.ExcludeEvent = [][]float32{v}, id
	}
	out, err := a.Store.SearchFaces(ctx, q)
	if err != nil {
		a.fail(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, SearchResponse{Sightings: out})
}

// embedAdmitted runs Faces on img once the Gate has room for the pixels its header declares (a
// header that does not parse counts as one pixel: Faces refuses the image before decoding).
// Errors wrap admit.ErrBusy when there is no room.
func (a *SearchAPI) embedAdmitted(ctx context.Context, img []byte) ([]float32, error) {
	pixels := int64(1)
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(img)); err == nil {
		pixels = int64(cfg.Width) * int64(cfg.Height)
	}
	release, err := a.Gate.Acquire(ctx, pixels)
	if err != nil {
		return nil, err
	}
	defer release()
	return a.Faces.EmbedFace(ctx, img)
}

func (a *SearchAPI) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, admit.ErrBusy):
		httpapi.WriteBusy(w, admit.RetryAfter, err.Error())
	case errors.Is(err, errEmptySearch):
		httpapi.WriteError(w, http.StatusBadRequest, "empty_search", err.Error())
	case errors.Is(err, ErrNoFace):
		httpapi.WriteError(w, http.StatusUnprocessableEntity, "no_face", err.Error())
	default:
		(&API{}).fail(w, err)
	}
}

// searchOpenAPI describes the route.
func searchOpenAPI() httpapi.Doc {
	str := func(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
	fields := map[string]any{
		"identity":       str("a gallery identity's name or id: find where that person was seen"),
		"track_id":       str("a stored track: find the other tracks of that person"),
		"stream":         str("only this stream"),
		"since":          str("seen from (RFC 3339 or Unix seconds)"),
		"until":          str("seen before (RFC 3339 or Unix seconds)"),
		"limit":          map[string]any{"type": "integer", "description": "most sightings, 1..1000 (default 50)"},
		"min_similarity": map[string]any{"type": "number", "description": "cosine similarity from which a track matches (default: the tracker's identity threshold)"},
	}
	withImage := func(format string) map[string]any {
		props := map[string]any{"image": map[string]any{"type": "string", "format": format, "description": "a photo (JPEG or PNG) of the face to find; its largest face is searched"}}
		for k, v := range fields {
			props[k] = v
		}
		return map[string]any{"schema": map[string]any{"type": "object", "properties": props}}
	}
	return httpapi.Doc{
		Tags: []map[string]any{{"name": "search", "description": "Search the event store's tracks by face: a photo, an identity or a track."}},
		Paths: map[string]map[string]any{
			PathSearchFaces: {"post": map[string]any{"tags": []any{"search"}, "summary": "Where was this person seen? Tracks most similar first",
				"requestBody": map[string]any{"required": true, "content": map[string]any{
					"multipart/form-data": withImage("binary"), "application/json": withImage("byte")}},
				"responses": map[string]any{
					"200": map[string]any{"description": "the matching sightings", "content": map[string]any{"application/json": map[string]any{
						"schema": map[string]any{"$ref": "#/components/schemas/SearchFaces"}}}},
					"400": httpapi.ErrorResponse("invalid request (invalid_query), or none of image, identity and track_id (empty_search)"),
					"404": httpapi.ErrorResponse("unknown identity, or a track without a stored embedding"),
					"422": httpapi.ErrorResponse("no face in the image (no_face)"),
					"501": httpapi.ErrorResponse("this server has no face models or no gallery for that kind of search"),
					"503": httpapi.ErrorResponse("too many requests are being analysed (busy, with Retry-After), or the store is closed or did not answer in time"),
				}}},
		},
		Schemas: map[string]any{
			"SearchFaces": map[string]any{"type": "object", "properties": map[string]any{
				"sightings": map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
					"event_id": map[string]any{"type": "integer", "description": "the track's face.left event"},
					"stream":   str("stream id"), "track_id": str("track id"),
					"identity":   str("the name the track was recognised as; empty when none"),
					"unknown_id": str("the unknown person the track was filed under; empty when none"),
					"first_seen": str("RFC 3339"), "last_seen": str("RFC 3339"),
					"similarity": map[string]any{"type": "number"},
					"snapshot":   str("path of the track's best snapshot; empty when none"),
				}}}}},
		},
	}
}
