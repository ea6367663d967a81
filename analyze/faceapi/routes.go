package faceapi

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/privacy"
	"github.com/vigil-video/vigil/pkg/result"
)

// route is one operation: its pattern, what it accepts, its handler and its documentation.
type route struct {
	method, path     string
	tag              string
	summary, details string
	// spec is what the body may hold; nil for routes without a body.
	spec *formSpec
	// compute marks routes that run the models (admission-controlled).
	compute bool
	// params documents path and query parameters: name, in, description.
	params [][3]string
	// ok is the success status and its response schema name ("" for no body; "jpeg" for an image).
	okStatus int
	okSchema string
	// errors documents the route's own error statuses and codes.
	errors map[int]string
	handle func(w http.ResponseWriter, r *http.Request) *Error
}

// FacesResponse is the answer of /v1/detect, /v1/analyze and /v1/represent.
type FacesResponse struct {
	// Schema is result.SchemaVersion: the Face schema of the analyzers' results.
	Schema int `json:"schema"`
	Width  int `json:"width"`
	Height int `json:"height"`
	// Faces are the faces found, largest first; empty (not null) when there are none.
	Faces []result.Face `json:"faces"`
	// Heads are the attribute heads that ran.
	Heads []string `json:"heads"`
	// Model names the embedding model (/v1/represent only).
	Model string `json:"model,omitempty"`
	// TookMS is the time spent on the request, in milliseconds.
	TookMS float64 `json:"took_ms"`
}

// VerifyResponse is the answer of /v1/verify.
type VerifyResponse struct {
	// Verified is Similarity >= Threshold: the two largest faces are the same person.
	Verified   bool    `json:"verified"`
	Similarity float32 `json:"similarity"`
	Threshold  float32 `json:"threshold"`
	Model      string  `json:"model"`
	// Faces are the compared faces: the largest of image1 and of image2.
	Faces [2]result.Face `json:"faces"`
	// FaceCounts are the numbers of faces found in image1 and image2.
	FaceCounts [2]int  `json:"face_counts"`
	TookMS     float64 `json:"took_ms"`
}

// IdentifiedFace is a face of /v1/identify: the Face (its identity set to the best match at or
// above the threshold, absent when unknown) and the matches at or above the threshold.
type IdentifiedFace struct {
	result.Face
	Matches []gallery.Candidate `json:"matches"`
}

// IdentifyResponse is the answer of /v1/identify.
type IdentifyResponse struct {
	Schema    int              `json:"schema"`
	Width     int              `json:"width"`
	Height    int              `json:"height"`
	Threshold float32          `json:"threshold"`
	Model     string           `json:"model"`
	Faces     []IdentifiedFace `json:"faces"`
	TookMS    float64          `json:"took_ms"`
}

// IdentitySummary is an identity in the /v1/identities list.
type IdentitySummary struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Photos    int       `json:"photos"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// IdentityList is the answer of GET /v1/identities.
type IdentityList struct {
	Identities []IdentitySummary `json:"identities"`
	// Skipped counts stored records left out because they do not decode (corrupt; each is
	// logged and counted in vigil_gallery_corrupt_reads_total). Absent when none.
	Skipped int `json:"skipped,omitempty"`
}

// EnrollResponse is the answer of POST /v1/identities and POST /v1/identities/{id}/photos: the
// identity as stored and the ids of the photos just added.
type EnrollResponse struct {
	Identity gallery.Identity `json:"identity"`
	Added    []string         `json:"added"`
	// Faces says, for each photo of the request in order, which face was enrolled and why.
	Faces []EnrolledFace `json:"faces"`
}

// The request forms of the routes.
func imageSpec() formSpec { return formSpec{images: []imageField{{name: "image"}}} }
func analyzeSpec() formSpec {
	return formSpec{images: []imageField{{name: "image"}}, fields: []string{"heads"}}
}
func verifySpec() formSpec {
	return formSpec{images: []imageField{{name: "image1", aliases: []string{"img1"}}, {name: "image2", aliases: []string{"img2"}}},
		fields: []string{"threshold"}}
}
func identifySpec() formSpec {
	return formSpec{images: []imageField{{name: "image"}}, fields: []string{"threshold", "top_k"}}
}
func annotateSpec() formSpec {
	return formSpec{images: []imageField{{name: "image"}}, fields: []string{"heads", "threshold"}}
}
func createSpec() formSpec {
	return formSpec{images: []imageField{{name: "photos", aliases: []string{"photo"}, multi: true}}, fields: []string{"name", "box"}}
}
func photosSpec() formSpec {
	return formSpec{images: []imageField{{name: "photos", aliases: []string{"photo"}, multi: true}}, fields: []string{"box"}}
}

func ptr[T any](v T) *T { return &v }

func imageErrors(extra map[int]string) map[int]string {
	m := map[int]string{
		400: "invalid_image (not a complete JPEG or PNG), missing_image, invalid_json, invalid_base64, unknown_field, invalid_field, unknown_head",
		415: "unsupported_media_type",
		422: "image_too_large (more pixels than the server allows)",
		503: "busy: too many requests waiting for the models (see Retry-After)",
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func (a *API) table() []route {
	rs := []route{
		{method: "POST", path: "/v1/detect", tag: "faces", summary: "Detect faces",
			details: "Finds the faces in an image: box, detector score and 5 landmarks each, largest first.",
			spec:    ptr(imageSpec()), compute: true, okStatus: 200, okSchema: "FacesResponse", errors: imageErrors(nil),
			handle: a.faces(imageSpec(), func(form) (Options, *Error) { return Options{}, nil })},
		{method: "POST", path: "/v1/analyze", tag: "faces", summary: "Detect faces and estimate their attributes",
			details: "Runs the chosen heads on every face: age, gender, emotion, liveness, pose. heads is a comma-separated list, " +
				"or all, default (" + strings.Join(a.cfg.DefaultHeads, ",") + "), none.",
			spec: ptr(analyzeSpec()), compute: true, okStatus: 200, okSchema: "FacesResponse", errors: imageErrors(nil),
			handle: a.faces(analyzeSpec(), func(f form) (Options, *Error) {
				heads, err := a.parseHeads(f.fields["heads"])
				return Options{Heads: heads}, err
			})},
		{method: "POST", path: "/v1/represent", tag: "faces", summary: "Face embeddings",
			details: "Every face with its L2-normalised 512-d embedding (" + a.cfg.Model + "); compare two with the dot product.",
			spec:    ptr(imageSpec()), compute: true, okStatus: 200, okSchema: "FacesResponse", errors: imageErrors(nil),
			handle: a.faces(imageSpec(), func(form) (Options, *Error) { return Options{Embeddings: true}, nil })},
		{method: "POST", path: "/v1/verify", tag: "faces", summary: "Are two faces the same person?",
			details: fmt.Sprintf("Compares the largest face of image1 with the largest face of image2: verified when their cosine "+
				"similarity reaches the threshold (default %.2f, chosen on the project's labelled photos).", a.cfg.Threshold),
			spec: ptr(verifySpec()), compute: true, okStatus: 200, okSchema: "VerifyResponse",
			errors: imageErrors(map[int]string{422: "no_face: an image has no face with landmarks; image_too_large"}), handle: a.verify},
		{method: "POST", path: "/v1/annotate", tag: "faces", summary: "The image with faces drawn",
			details: "Returns the image as JPEG with every face's box, its gallery name (when a gallery is configured) and the chosen " +
				"heads' attributes drawn. The X-Faces header gives the number of faces.",
			spec: ptr(annotateSpec()), compute: true, okStatus: 200, okSchema: "jpeg", errors: imageErrors(nil), handle: a.annotate},
	}
	if a.cfg.Gallery == nil {
		return rs
	}
	idParam := [3]string{"id", "path", "identity id: the name in lower case, spaces and punctuation as '-' (Barack Obama: barack-obama)"}
	enrollErrors := imageErrors(map[int]string{
		404: "identity_not_found",
		409: "identity_exists (the same name up to case, spacing and punctuation), duplicate_photo",
		422: "no_face, multiple_faces (an enrollment photo must show exactly one face, or one much larger or more certain than the others), " +
			"no_face_in_box (the box field matches no face), face_too_small, no_landmarks, too_many_photos, image_too_large",
		503: "busy; gallery_unavailable (NATS unreachable)",
	})
	return append(rs,
		route{method: "POST", path: "/v1/identify", tag: "faces", summary: "Who is it? (1:N against the gallery)",
			details: "For every face: the enrolled identities whose similarity reaches the threshold (best first, at most top_k, " +
				"default 3), and the best of them as its identity; a face with no match is unknown (no identity).",
			spec: ptr(identifySpec()), compute: true, okStatus: 200, okSchema: "IdentifyResponse", errors: imageErrors(nil), handle: a.identify},
		route{method: "GET", path: "/v1/identities", tag: "gallery", summary: "List identities", okStatus: 200, okSchema: "IdentityList",
			errors: map[int]string{503: "gallery_unavailable"}, handle: a.listIdentities},
		route{method: "POST", path: "/v1/identities", tag: "gallery", summary: "Enroll an identity",
			details: "Creates an identity from a name and any number of photos, each showing exactly one face, or one dominant face " +
				"(every other face at most a quarter of its area or 0.2 less certain), or with the face's box in the box field. " +
				"faces in the answer says which face of each photo was enrolled. Nothing is written unless every photo is accepted. " +
				"Every analyzer matches against it within a second.",
			spec: ptr(createSpec()), compute: true, okStatus: 201, okSchema: "EnrollResponse",
			errors: withStatus(enrollErrors, 400, enrollErrors[400]+", invalid_name"), handle: a.createIdentity},
		route{method: "GET", path: "/v1/identities/{id}", tag: "gallery", summary: "Get an identity and its photos",
			params: [][3]string{idParam}, okStatus: 200, okSchema: "GalleryIdentity",
			errors: map[int]string{404: "identity_not_found, identity_corrupt (the stored record does not decode: DELETE it)", 503: "gallery_unavailable"}, handle: a.getIdentity},
		route{method: "DELETE", path: "/v1/identities/{id}", tag: "gallery", summary: "Delete an identity and its embeddings",
			details: "With erase=true it first erases every stored trace of the person (the event store's tracks recognised as them or " +
				"matching their embeddings, with their events, snapshots and embeddings; the result summaries naming them; matching " +
				"unknown people) and answers 200 with what it removed (EraseResponse); without, 204.",
			params:   [][3]string{idParam, {"erase", "query", "true: erase every stored trace of the person too (default false)"}},
			okStatus: 204, errors: map[int]string{400: "invalid_query", 404: "identity_not_found", 500: "erase_failed",
				501: "erase_unavailable (this server has no event store)", 503: "gallery_unavailable"},
			handle: a.deleteIdentity},
		route{method: "POST", path: "/v1/identities/{id}/photos", tag: "gallery", summary: "Add photos to an identity",
			details: "Each photo must show exactly one face or one dominant face, or come with its box (as for POST /v1/identities); " +
				"nothing is written unless every photo is accepted.",
			spec: ptr(photosSpec()), compute: true, params: [][3]string{idParam}, okStatus: 201, okSchema: "EnrollResponse",
			errors: enrollErrors, handle: a.addPhotos},
		route{method: "DELETE", path: "/v1/identities/{id}/photos/{photo}", tag: "gallery", summary: "Remove a photo from an identity",
			params:   [][3]string{idParam, {"photo", "path", "photo id (16 hex digits)"}},
			okStatus: 200, okSchema: "GalleryIdentity", errors: map[int]string{404: "identity_not_found, photo_not_found", 503: "gallery_unavailable"},
			handle: a.removePhoto},
	)
}

func withStatus(m map[int]string, status int, desc string) map[int]string {
	out := map[int]string{}
	for k, v := range m {
		out[k] = v
	}
	out[status] = desc
	return out
}

// faces is the handler of the single-image routes answering FacesResponse.
func (a *API) faces(spec formSpec, options func(form) (Options, *Error)) func(http.ResponseWriter, *http.Request) *Error {
	return func(w http.ResponseWriter, r *http.Request) *Error {
		f, err := parseForm(r, spec)
		if err != nil {
			return err
		}
		img, err := oneImage(f, "image")
		if err != nil {
			return err
		}
		opts, err := options(f)
		if err != nil {
			return err
		}
		out, ferr := a.Faces(r.Context(), img, opts)
		if ferr != nil {
			return asError(ferr)
		}
		httpapi.WriteJSON(w, http.StatusOK, out)
		return nil
	}
}

// Faces runs the models on one image (JPEG or PNG) and returns what /v1/detect, /v1/analyze and
// /v1/represent answer: the faces with the attribute heads in opts.Heads and, when
// opts.Embeddings, each face's embedding. Errors are *Error.
func (a *API) Faces(ctx context.Context, img []byte, opts Options) (FacesResponse, error) {
	start := time.Now()
	opts.Annotate = nil
	res, err := a.analyzeImage(ctx, "image", img, opts)
	if err != nil {
		return FacesResponse{}, err
	}
	out := FacesResponse{Schema: result.SchemaVersion, Width: res.Width, Height: res.Height, Faces: nonNil(res.Faces),
		Heads: append([]string{}, opts.Heads...)}
	if opts.Embeddings {
		out.Model = a.cfg.Model
		for i := range out.Faces {
			if i < len(res.Embeddings) {
				out.Faces[i].Embedding = res.Embeddings[i]
			}
		}
	}
	out.TookMS = since(start)
	return out, nil
}

// asError returns err as an *Error: itself, or a 500 internal error.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return errorf(http.StatusInternalServerError, "internal", "%v", err)
}

func nonNil(f []result.Face) []result.Face {
	if f == nil {
		return []result.Face{}
	}
	return f
}

func (a *API) verify(w http.ResponseWriter, r *http.Request) *Error {
	f, err := parseForm(r, verifySpec())
	if err != nil {
		return err
	}
	thr, err := parseFloat(f, "threshold", a.cfg.Threshold, -1, 1)
	if err != nil {
		return err
	}
	var imgs [2][]byte
	for i, name := range []string{"image1", "image2"} {
		if imgs[i], err = oneImage(f, name); err != nil {
			return err
		}
	}
	out, verr := a.Verify(r.Context(), imgs[0], imgs[1], thr)
	if verr != nil {
		return asError(verr)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// Threshold is the default similarity threshold of Verify and /v1/identify.
func (a *API) Threshold() float32 { return a.cfg.Threshold }

// Verify compares the largest face (with landmarks) of img1 with that of img2: verified when
// their cosine similarity reaches threshold. An image without such a face is a 422 no_face
// *Error.
func (a *API) Verify(ctx context.Context, img1, img2 []byte, threshold float32) (VerifyResponse, error) {
	start := time.Now()
	out := VerifyResponse{Threshold: threshold, Model: a.cfg.Model}
	var embs [2][]float32
	for i, img := range [][]byte{img1, img2} {
		name := fmt.Sprintf("image%d", i+1)
		res, err := a.analyzeImage(ctx, name, img, Options{Embeddings: true})
		if err != nil {
			return VerifyResponse{}, err
		}
		out.FaceCounts[i] = len(res.Faces)
		for j := range res.Faces {
			if j < len(res.Embeddings) && res.Embeddings[j] != nil {
				out.Faces[i], embs[i] = res.Faces[j], res.Embeddings[j]
				break
			}
		}
		if embs[i] == nil {
			if len(res.Faces) > 0 && res.Faces[0].TooSmall {
				b := res.Faces[0].Box
				return VerifyResponse{}, errorf(http.StatusUnprocessableEntity, "no_face",
					"%s: the largest face is %.0f px across, too small to recognise; use a larger or closer photo", name, min(b.X2-b.X1, b.Y2-b.Y1))
			}
			return VerifyResponse{}, errorf(http.StatusUnprocessableEntity, "no_face", "%s: no face found (%d detected, none with landmarks to align)", name, len(res.Faces))
		}
	}
	out.Similarity = gallery.Cosine(embs[0], embs[1])
	out.Verified = out.Similarity >= threshold
	out.TookMS = since(start)
	return out, nil
}

func (a *API) identify(w http.ResponseWriter, r *http.Request) *Error {
	start := time.Now()
	f, err := parseForm(r, identifySpec())
	if err != nil {
		return err
	}
	img, err := oneImage(f, "image")
	if err != nil {
		return err
	}
	thr, err := parseFloat(f, "threshold", a.cfg.Threshold, -1, 1)
	if err != nil {
		return err
	}
	k, err := parseInt(f, "top_k", 3, 1, 100)
	if err != nil {
		return err
	}
	res, err := a.analyzeImage(r.Context(), "image", img, Options{Embeddings: true})
	if err != nil {
		return err
	}
	out := IdentifyResponse{Schema: result.SchemaVersion, Width: res.Width, Height: res.Height, Threshold: thr, Model: a.cfg.Model,
		Faces: make([]IdentifiedFace, len(res.Faces))}
	for i, face := range res.Faces {
		out.Faces[i] = IdentifiedFace{Face: face, Matches: []gallery.Candidate{}}
		if i < len(res.Embeddings) && res.Embeddings[i] != nil {
			m := a.cfg.Gallery.Search(res.Embeddings[i], k, thr)
			if len(m) > 0 {
				out.Faces[i].Matches = m
				out.Faces[i].Identity = &result.Identity{Name: m[0].Name, Similarity: m[0].Similarity}
			}
		}
	}
	out.TookMS = since(start)
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) annotate(w http.ResponseWriter, r *http.Request) *Error {
	f, err := parseForm(r, annotateSpec())
	if err != nil {
		return err
	}
	img, err := oneImage(f, "image")
	if err != nil {
		return err
	}
	heads, err := a.parseHeads(f.fields["heads"])
	if err != nil {
		return err
	}
	thr, err := parseFloat(f, "threshold", a.cfg.Threshold, -1, 1)
	if err != nil {
		return err
	}
	g := a.cfg.Gallery
	var drawn []Mark // what Annotate marked, for privacy
	opts := Options{Heads: heads, Embeddings: g != nil, Annotate: func(faces []result.Face, embs [][]float32) []Mark {
		marks := make([]Mark, len(faces))
		defer func() { drawn = marks }()
		for i, face := range faces {
			marks[i] = Mark{Box: face.Box, Lines: attributeLines(face)}
			if g == nil {
				if face.TooSmall {
					marks[i].Lines = append([]string{"too small"}, marks[i].Lines...)
				}
				continue
			}
			marks[i].Title = "unknown"
			if face.TooSmall {
				marks[i].Title = "too small" // not embedded: no guess at who it is
			}
			if i < len(embs) && embs[i] != nil {
				if m := g.Search(embs[i], 1, thr); len(m) > 0 {
					marks[i].Title = fmt.Sprintf("%s %.2f", m[0].Name, m[0].Similarity)
					marks[i].Known = true
				}
			}
		}
		return marks
	}}
	res, err := a.analyzeImage(r.Context(), "image", img, opts)
	if err != nil {
		return err
	}
	if a.cfg.Privacy != "" && a.cfg.Privacy != privacy.Off {
		var rs []image.Rectangle
		for _, m := range drawn {
			if a.cfg.Privacy.Blurs(m.Known) {
				rs = append(rs, image.Rect(int(m.Box.X1), int(m.Box.Y1), int(math.Ceil(float64(m.Box.X2))), int(math.Ceil(float64(m.Box.Y2)))))
			}
		}
		blurred, berr := privacy.BlurJPEGRegions(res.JPEG, rs, 90)
		if berr != nil {
			a.cfg.Log.Error("blur the annotated image", "err", berr)
			return errorf(http.StatusInternalServerError, "internal", "could not blur the faces of the annotated image")
		}
		res.JPEG = blurred
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("X-Faces", strconv.Itoa(len(res.Faces)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.JPEG)
	return nil
}

// attributeLines renders a face's attributes as short lines for an annotated image.
func attributeLines(f result.Face) []string {
	var out []string
	if f.Age != nil {
		out = append(out, fmt.Sprintf("age %.0f", *f.Age))
	}
	if f.Gender != nil {
		out = append(out, fmt.Sprintf("%s %.2f", f.Gender.Label, f.Gender.Score))
	}
	if f.Emotion != nil {
		out = append(out, fmt.Sprintf("%s %.2f", f.Emotion.Label, f.Emotion.Scores[f.Emotion.Label]))
	}
	if f.Liveness != nil {
		label := "spoof?"
		if f.Liveness.Real {
			label = "real"
		}
		out = append(out, fmt.Sprintf("%s %.2f", label, f.Liveness.Score))
	}
	if f.Pose != nil {
		out = append(out, fmt.Sprintf("yaw %.0f pitch %.0f roll %.0f", f.Pose.Yaw, f.Pose.Pitch, f.Pose.Roll))
	}
	return out
}

// galleryError maps a gallery error to its response.
// GalleryError returns the *Error the API answers a gallery.Store error with (404 for
// gallery.ErrNotFound, 409 for gallery.ErrExists, ...).
func GalleryError(err error) error { return galleryError(err) }

func galleryError(err error) *Error {
	switch {
	case errors.Is(err, gallery.ErrInvalidName):
		return errorf(http.StatusBadRequest, "invalid_name", "%v", err)
	case errors.Is(err, gallery.ErrNotFound):
		return errorf(http.StatusNotFound, "identity_not_found", "%v", err)
	case errors.Is(err, gallery.ErrPhotoNotFound):
		return errorf(http.StatusNotFound, "photo_not_found", "%v", err)
	case errors.Is(err, gallery.ErrExists):
		return errorf(http.StatusConflict, "identity_exists", "%v", err)
	case errors.Is(err, gallery.ErrDuplicatePhoto):
		return errorf(http.StatusConflict, "duplicate_photo", "%v", err)
	case errors.Is(err, gallery.ErrTooManyPhotos):
		return errorf(http.StatusUnprocessableEntity, "too_many_photos", "%v", err)
	case errors.Is(err, gallery.ErrEmbedding):
		return errorf(http.StatusUnprocessableEntity, "invalid_embedding", "%v", err)
	case errors.Is(err, gallery.ErrConflict):
		return errorf(http.StatusConflict, "conflict", "%v: retry", err)
	case errors.Is(err, gallery.ErrRecord):
		// Skipped as the list and the matchers skip it; DELETE still removes it.
		return errorf(http.StatusNotFound, "identity_corrupt",
			"%v: the stored record is corrupt and skipped (logged on the server); DELETE it and enroll again", err)
	}
	return errorf(http.StatusServiceUnavailable, "gallery_unavailable", "the gallery store (NATS KV) failed: %v", err)
}

// EnrollmentPhotos runs the models on photos to enroll and returns them ready for
// gallery.Store: each must show exactly one face with landmarks, or one dominant face (see
// DominantAreaRatio), else the whole batch is refused with a 422 *Error (no_face, multiple_faces
// or no_landmarks) naming the photo, or the image errors of Faces.
func (a *API) EnrollmentPhotos(ctx context.Context, photos [][]byte) ([]gallery.NewPhoto, error) {
	out, _, err := a.enrollmentPhotos(ctx, photos, make([]*result.Box, len(photos)))
	if err != nil {
		return nil, err
	}
	return out, nil
}

// enrollmentPhotos is EnrollmentPhotos with an optional face box per photo (boxes[i] nil: none),
// also saying which face of each photo was chosen (EnrolledFace without the photo id).
func (a *API) enrollmentPhotos(ctx context.Context, photos [][]byte, boxes []*result.Box) ([]gallery.NewPhoto, []EnrolledFace, *Error) {
	out := make([]gallery.NewPhoto, 0, len(photos))
	chosen := make([]EnrolledFace, 0, len(photos))
	for i := range photos {
		p, c, err := a.enrollmentPhoto(ctx, fmt.Sprintf("photo %d of %d", i+1, len(photos)), photos[i], boxes[i])
		if err != nil {
			return nil, nil, err
		}
		out, chosen = append(out, p), append(chosen, c)
	}
	return out, chosen, nil
}

// EnrollmentPhoto checks one photo as EnrollmentPhotos does; what names it in errors.
func (a *API) EnrollmentPhoto(ctx context.Context, what string, img []byte) (gallery.NewPhoto, error) {
	p, _, err := a.enrollmentPhoto(ctx, what, img, nil)
	if err != nil {
		return gallery.NewPhoto{}, err
	}
	return p, nil
}

func (a *API) enrollmentPhoto(ctx context.Context, what string, img []byte, box *result.Box) (gallery.NewPhoto, EnrolledFace, *Error) {
	res, err := a.analyzeImage(ctx, what, img, Options{Embeddings: true})
	if err != nil {
		return gallery.NewPhoto{}, EnrolledFace{}, err
	}
	i, how, err := chooseFace(what, res.Faces, box)
	if err != nil {
		return gallery.NewPhoto{}, EnrolledFace{}, err
	}
	f := res.Faces[i]
	if f.TooSmall {
		return gallery.NewPhoto{}, EnrolledFace{}, errorf(http.StatusUnprocessableEntity, "face_too_small",
			"%s: the face is %.0f px across, too small to recognise; use a larger or closer photo. Nothing was enrolled.",
			what, min(f.Box.X2-f.Box.X1, f.Box.Y2-f.Box.Y1))
	}
	if i >= len(res.Embeddings) || res.Embeddings[i] == nil {
		return gallery.NewPhoto{}, EnrolledFace{}, errorf(http.StatusUnprocessableEntity, "no_landmarks",
			"%s: the face's landmarks were not found, so it cannot be aligned; use a clearer, frontal photo. Nothing was enrolled.", what)
	}
	return gallery.NewPhoto{Embedding: res.Embeddings[i], SHA256: sha256Hex(img), Box: f.Box},
		EnrolledFace{Box: f.Box, Score: f.Score, FacesFound: len(res.Faces), Chosen: how}, nil
}

// enrolledFaces puts the photo ids of a store answer on the chosen faces (same order).
func enrolledFaces(chosen []EnrolledFace, added []string) []EnrolledFace {
	for i := range chosen {
		if i < len(added) {
			chosen[i].Photo = added[i]
		}
	}
	return chosen
}

func (a *API) createIdentity(w http.ResponseWriter, r *http.Request) *Error {
	f, err := parseForm(r, createSpec())
	if err != nil {
		return err
	}
	name := f.fields["name"]
	if strings.TrimSpace(name) == "" {
		return errorf(http.StatusBadRequest, "invalid_name", "the name field is required")
	}
	if _, err := gallery.IDFor(name); err != nil {
		return galleryError(err)
	}
	boxes, berr := parseBoxes(f.fields["box"], len(f.images["photos"]))
	if berr != nil {
		return berr
	}
	photos, chosen, perr := a.enrollmentPhotos(r.Context(), f.images["photos"], boxes)
	if perr != nil {
		return perr
	}
	ident, gerr := a.cfg.Store.Create(r.Context(), name, photos)
	if gerr != nil {
		return galleryError(gerr)
	}
	a.cfg.Gallery.Apply(ident)
	w.Header().Set("Location", "/v1/identities/"+ident.ID)
	added := photoIDs(ident.Photos)
	httpapi.WriteJSON(w, http.StatusCreated, EnrollResponse{Identity: ident, Added: added, Faces: enrolledFaces(chosen, added)})
	return nil
}

func photoIDs(ps []gallery.Photo) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

func (a *API) listIdentities(w http.ResponseWriter, r *http.Request) *Error {
	list, err := a.cfg.Store.List(r.Context())
	if err != nil && len(list) == 0 && !errors.Is(err, gallery.ErrRecord) {
		return galleryError(err)
	}
	out := IdentityList{Identities: make([]IdentitySummary, len(list)), Skipped: gallery.SkippedRecords(err)}
	for i, id := range list {
		out.Identities[i] = IdentitySummary{ID: id.ID, Name: id.Name, Photos: len(id.Photos), CreatedAt: id.CreatedAt, UpdatedAt: id.UpdatedAt}
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getIdentity(w http.ResponseWriter, r *http.Request) *Error {
	ident, err := a.cfg.Store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return galleryError(err)
	}
	httpapi.WriteJSON(w, http.StatusOK, ident)
	return nil
}

// ErrEraseUnavailable is wrapped by a Config.Erase error when the server keeps nothing to erase
// from (no event store): the request answers 501.
var ErrEraseUnavailable = errors.New("this server keeps no event store")

// EraseResponse is the answer of DELETE /v1/identities/{id}?erase=true.
type EraseResponse struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Erased is what the erasure removed besides the identity (Config.Erase's report).
	Erased any `json:"erased"`
}

func (a *API) deleteIdentity(w http.ResponseWriter, r *http.Request) *Error {
	id := r.PathValue("id")
	erase := false
	for k, vs := range r.URL.Query() {
		b, err := strconv.ParseBool(strings.Join(vs, ","))
		if k != "erase" || len(vs) != 1 || err != nil {
			return errorf(http.StatusBadRequest, "invalid_query", "the only query parameter is erase=true or erase=false (got %.40q)", k+"="+strings.Join(vs, ","))
		}
		erase = b
	}
	if erase && a.cfg.Erase == nil {
		return errorf(http.StatusNotImplemented, "erase_unavailable", "this server keeps no event store: nothing was deleted (run erase on the server with --events-db or --events-dsn)")
	}
	cur, err := a.cfg.Store.Get(r.Context(), id)
	if err != nil && !errors.Is(err, gallery.ErrRecord) { // a corrupt record can be deleted
		return galleryError(err)
	}
	var erased any
	if erase {
		if erased, err = a.cfg.Erase(r.Context(), cur); errors.Is(err, ErrEraseUnavailable) {
			return errorf(http.StatusNotImplemented, "erase_unavailable", "%v: nothing was deleted (erase on the server with --events-db or --events-dsn)", err)
		} else if err != nil {
			a.cfg.Log.Error("erase an identity's traces", "id", id, "err", err)
			return errorf(http.StatusInternalServerError, "erase_failed", "erasing the stored traces failed (the identity was kept: retry): %v", err)
		}
	}
	if err := a.cfg.Store.Delete(r.Context(), id); err != nil {
		return galleryError(err)
	}
	if cur.Revision != 0 {
		a.cfg.Gallery.Forget(id, cur.Revision)
	}
	if erase {
		httpapi.WriteJSON(w, http.StatusOK, EraseResponse{ID: id, Name: cur.Name, Erased: erased})
		return nil
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) addPhotos(w http.ResponseWriter, r *http.Request) *Error {
	id := r.PathValue("id")
	f, err := parseForm(r, photosSpec())
	if err != nil {
		return err
	}
	if len(f.images["photos"]) == 0 {
		return errorf(http.StatusBadRequest, "missing_image", `no photos: send them as multipart file fields "photos", or as the JSON array "photos" of base64 strings`)
	}
	// Fail fast on an unknown id before running the models.
	if _, gerr := a.cfg.Store.Get(r.Context(), id); gerr != nil {
		return galleryError(gerr)
	}
	boxes, berr := parseBoxes(f.fields["box"], len(f.images["photos"]))
	if berr != nil {
		return berr
	}
	photos, chosen, perr := a.enrollmentPhotos(r.Context(), f.images["photos"], boxes)
	if perr != nil {
		return perr
	}
	ident, added, gerr := a.cfg.Store.AddPhotos(r.Context(), id, photos)
	if gerr != nil {
		return galleryError(gerr)
	}
	a.cfg.Gallery.Apply(ident)
	ids := photoIDs(added)
	httpapi.WriteJSON(w, http.StatusCreated, EnrollResponse{Identity: ident, Added: ids, Faces: enrolledFaces(chosen, ids)})
	return nil
}

func (a *API) removePhoto(w http.ResponseWriter, r *http.Request) *Error {
	ident, err := a.cfg.Store.RemovePhoto(r.Context(), r.PathValue("id"), r.PathValue("photo"))
	if err != nil {
		return galleryError(err)
	}
	a.cfg.Gallery.Apply(ident)
	httpapi.WriteJSON(w, http.StatusOK, ident)
	return nil
}
