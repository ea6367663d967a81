package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-video/vigil/analyze/faceapi"
	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/analyze/track"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/sink/eventstore"
)

// Search by photo: POST /v1/search/faces on the servers that hold an event store (vigil run,
// vigil serve --events-db/--events-dsn), with the face models and the gallery of the face API,
// and vigil search PHOTO, its client.

// faceEmbedder adapts the face engine to eventstore.FaceEmbedder.
type faceEmbedder struct{ eng faceapi.Engine }

// EmbedFace returns the embedding of img's largest face with an embedding.
func (f faceEmbedder) EmbedFace(ctx context.Context, img []byte) ([]float32, error) {
	if _, err := faceapi.CheckImage(img, faceapi.DefaultMaxPixels); err != nil {
		return nil, fmt.Errorf("%w: %w", eventstore.ErrInvalid, err)
	}
	an, err := f.eng.Analyze(ctx, img, faceapi.Options{Embeddings: true})
	if err != nil {
		if errors.Is(err, faceapi.ErrInvalidImage) {
			return nil, fmt.Errorf("%w: %w", eventstore.ErrInvalid, err)
		}
		return nil, err
	}
	for _, e := range an.Embeddings { // largest first
		if len(e) > 0 {
			return e, nil
		}
	}
	return nil, eventstore.ErrNoFace
}

// galleryEmbeddings looks identities up in the gallery for eventstore.SearchAPI.
func galleryEmbeddings(store *gallery.Store) eventstore.IdentityEmbeddings {
	return func(ctx context.Context, nameOrID string) (string, [][]float32, error) {
		id, err := gallery.IDFor(nameOrID)
		if err != nil {
			return "", nil, fmt.Errorf("%w: identity %q: %w", eventstore.ErrInvalid, nameOrID, err)
		}
		ident, err := store.Get(ctx, id)
		if errors.Is(err, gallery.ErrNotFound) {
			return "", nil, fmt.Errorf("%w: identity %q", eventstore.ErrNotFound, nameOrID)
		}
		if err != nil {
			return "", nil, err
		}
		var embs [][]float32
		for _, p := range ident.Photos {
			if len(p.Embedding) > 0 {
				embs = append(embs, p.Embedding)
			}
		}
		return ident.Name, embs, nil
	}
}

// mountSearch mounts POST /v1/search/faces over store on srv, with the face API's engine,
// gallery and admission gate when svc has them.
func mountSearch(srv *httpapi.Server, store *eventstore.Store, svc *faceService) {
	api := &eventstore.SearchAPI{Store: store, MinSimilarity: track.DefaultThreshold}
	if svc != nil {
		svc.events = store // erasure (DELETE /v1/identities/{id}?erase=true) cleans it
	}
	if svc != nil && svc.Engine != nil {
		api.Faces = faceEmbedder{svc.Engine}
	}
	if svc != nil {
		api.Gate = svc.Gate // one limit for every model-running request of the process
	}
	if svc != nil && svc.Store != nil {
		api.Identities = galleryEmbeddings(svc.Store)
	}
	api.Mount(srv)
}

// erase removes every stored trace of ident (faceapi.Config.Erase): its tracks in the event
// store, recognised or matching its embeddings at the tracker's identity threshold.
func (s *faceService) erase(ctx context.Context, ident gallery.Identity) (any, error) {
	if s.events == nil {
		return nil, faceapi.ErrEraseUnavailable
	}
	req := eventstore.EraseRequest{Identity: ident.Name, MinSimilarity: track.DefaultThreshold}
	for _, p := range ident.Photos {
		if len(p.Embedding) > 0 {
			req.Vectors = append(req.Vectors, p.Embedding)
		}
	}
	if req.Identity == "" && len(req.Vectors) == 0 { // a record that did not decode
		return eventstore.Erased{}, nil
	}
	erased, err := s.events.Erase(ctx, req)
	if err != nil {
		return nil, err
	}
	report := struct {
		eventstore.Erased
		Unknowns int `json:"unknowns"`
	}{Erased: erased}
	if s.unknowns != nil && len(req.Vectors) > 0 {
		if report.Unknowns, err = s.unknowns.EraseMatching(ctx, req.Vectors); err != nil {
			return report, err
		}
	}
	return report, nil
}

func searchCmd(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("search", "Where was this person seen? Sends PHOTO to a running Vigil (vigil run, or vigil serve with an event store)\n"+
		"as POST /v1/search/faces and prints the matching tracks as JSON, most similar first.")
	fs.Usage = usageWithArgs(fs, "search", "PHOTO")
	var (
		server, apiKey, stream, since, until string
		limit                                int
		minSim                               float64
		timeout                              time.Duration
	)
	fs.StringVar(&server, "server", "http://127.0.0.1:8080", "URL of the Vigil HTTP API")
	fs.StringVar(&apiKey, "api-key", "", "API key, when the server requires one (prefer VIGIL_API_KEY: flags show in the process list)")
	fs.StringVar(&stream, "stream", "", "only this stream's tracks")
	fs.StringVar(&since, "since", "", "only tracks seen from this time (RFC 3339 or Unix seconds)")
	fs.StringVar(&until, "until", "", "only tracks seen before this time (RFC 3339 or Unix seconds)")
	fs.IntVar(&limit, "limit", 0, "most tracks (default: the server's, 50)")
	fs.Float64Var(&minSim, "min-similarity", 0, "cosine similarity from which a track matches (default: the server's, the tracker's identity threshold)")
	fs.DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the answer")
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fmt.Fprintf(env.Stderr, "vigil search: want one photo, got %d (vigil search [flags] PHOTO)\n", len(pos))
		return errUsage
	}
	img, err := readImage(pos[0])
	if err != nil {
		return err
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("image", filepath.Base(pos[0]))
	if err != nil {
		return err
	}
	if _, err := fw.Write(img); err != nil {
		return err
	}
	fields := map[string]string{"stream": stream, "since": since, "until": until}
	if limit != 0 {
		fields["limit"] = strconv.Itoa(limit)
	}
	if minSim != 0 {
		fields["min_similarity"] = strconv.FormatFloat(minSim, 'f', -1, 32)
	}
	for k, v := range fields {
		if v != "" {
			if err := mw.WriteField(k, v); err != nil {
				return err
			}
		}
	}
	if err := mw.Close(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(server, "/")+eventstore.PathSearchFaces, &body)
	if err != nil {
		return fmt.Errorf("--server %q: %w", server, err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("search: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("search: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("search: %s (%d %s)", e.Error.Message, resp.StatusCode, e.Error.Code)
		}
		return fmt.Errorf("search: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var out eventstore.SearchResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("search: the answer is not a search result: %w", err)
	}
	return printJSON(env, out)
}
