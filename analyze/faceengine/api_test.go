package faceengine

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/draw"
	"image/jpeg"
	"io"
	"log/slog"
	"math"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/analyze/faceapi"
	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/pkg/vision"
)

// apiFixture is the face API on real parts: the real models, an embedded NATS server with
// JetStream, the gallery's KV store and watcher, and an HTTP server on loopback.
type apiFixture struct {
	url   string
	store *gallery.Store
	gal   *gallery.Gallery
	js    jetstream.JetStream
	api   *faceapi.API
	td    string
}

func newAPIFixture(t *testing.T, e *Engine) *apiFixture {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	ns := &bus.EmbeddedServer{StoreDir: t.TempDir(), Logger: quiet}
	if err := ns.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	nc, err := bus.Connect(ctx, ns.ClientURL(), "faceapi-test", quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := gallery.OpenStore(ctx, js, gallery.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	gal := gallery.Watch(store, gallery.WatchConfig{Log: quiet})
	t.Cleanup(gal.Close)
	srv := &httpapi.Server{Addr: "127.0.0.1:0", Log: quiet}
	api, err := faceapi.Mount(srv, faceapi.Config{Engine: e, Store: store, Gallery: gal, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return &apiFixture{url: srv.URL(), store: store, gal: gal, js: js, api: api, td: testenv.TestData(t)}
}

func (f *apiFixture) file(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.td, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type part struct {
	name string
	data []byte
	file bool
}

func filePart(name string, data []byte) part { return part{name: name, data: data, file: true} }
func field(name, value string) part          { return part{name: name, data: []byte(value)} }

// form builds a multipart/form-data body.
func form(t *testing.T, parts ...part) (io.Reader, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for i, p := range parts {
		var err error
		var pw io.Writer
		if p.file {
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename="f%d.jpg"`, p.name, i))
			h.Set("Content-Type", "image/jpeg")
			pw, err = w.CreatePart(h)
		} else {
			pw, err = w.CreateFormField(p.name)
		}
		if err != nil {
			t.Fatal(err)
		}
		_, _ = pw.Write(p.data)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return &b, w.FormDataContentType()
}

func jsonBody(t *testing.T, v any) (io.Reader, string) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b), "application/json"
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

type response struct {
	status int
	header http.Header
	body   []byte
	err    httpapi.Error
}

func call(t *testing.T, method, url string, body io.Reader, contentType string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	r := response{status: resp.StatusCode, header: resp.Header}
	r.body, _ = io.ReadAll(resp.Body)
	var e struct {
		Error httpapi.Error `json:"error"`
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && json.Unmarshal(r.body, &e) == nil {
		r.err = e.Error
	}
	return r
}

// ok checks a 2xx status and decodes the body into v.
func (r response) ok(t *testing.T, what string, status int, v any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: %d %s, want %d", what, r.status, r.body, status)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			t.Fatalf("%s: %v in %s", what, err, r.body)
		}
	}
}

// fails checks an error response: status, code, and a message containing each of msg.
func (r response) fails(t *testing.T, what string, status int, code string, msg ...string) {
	t.Helper()
	if r.status != status || r.err.Code != code || r.err.Message == "" {
		t.Fatalf("%s: %d %s, want %d %q", what, r.status, r.body, status, code)
	}
	for _, m := range msg {
		if !strings.Contains(r.err.Message, m) {
			t.Fatalf("%s: message %q does not say %q", what, r.err.Message, m)
		}
	}
}

// composite tiles the given face photos into one JPEG, three to a row on a white page.
func composite(t *testing.T, photos ...[]byte) []byte {
	t.Helper()
	const cell, margin, cols = 150, 60, 3
	rows := (len(photos) + cols - 1) / cols
	out := image.NewRGBA(image.Rect(0, 0, cols*(cell+margin)+margin, rows*(cell+margin)+margin))
	draw.Draw(out, out.Bounds(), image.White, image.Point{}, draw.Src)
	for i, p := range photos {
		im, err := jpeg.Decode(bytes.NewReader(p))
		if err != nil {
			t.Fatal(err)
		}
		at := image.Pt(margin+(i%cols)*(cell+margin), margin+(i/cols)*(cell+margin))
		draw.Draw(out, image.Rectangle{Min: at, Max: at.Add(im.Bounds().Size())}, im, im.Bounds().Min, draw.Src)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, out, &jpeg.Options{Quality: 92}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// hugePNG is a valid PNG header declaring w x h pixels, with no pixel data.
func hugePNG(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk("IHDR", ihdr)
	chunk("IEND", nil)
	return b.Bytes()
}

func unitLength(e []float32) float64 {
	var s float64
	for _, v := range e {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s)
}

func TestAPI(t *testing.T) {
	testenv.NeedsTestData(t)
	e := newEngine(t)
	f := newAPIFixture(t, e)
	obama := f.file(t, "faces/Barack_Obama/obama.jpg")
	obama2 := f.file(t, "faces/Barack_Obama/obama2.jpg")
	obama3 := f.file(t, "faces/Barack_Obama/obama3.jpg")
	obamaTest := f.file(t, "faces/Barack_Obama/knn_test_obama1.jpg")
	biden := f.file(t, "faces/Joe_Biden/biden.jpg")
	twoPeople := f.file(t, "detect/two_people.jpg")
	noFaces := f.file(t, "detect/no-faces.jpg")

	t.Run("detect", func(t *testing.T) {
		want := map[string][2]int{"two_people.jpg": {2, 2}, "obama_and_biden.jpg": {2, 4}, "no-faces.jpg": {0, 0},
			"dogs.jpg": {0, 0}, "obama_partial_face.jpg": {1, 1}, "obama_32bit.png": {1, 1}}
		for name, w := range want {
			body, ct := form(t, filePart("image", f.file(t, "detect/"+name)))
			var out faceapi.FacesResponse
			call(t, "POST", f.url+"/v1/detect", body, ct).ok(t, name, 200, &out)
			if n := len(out.Faces); n < w[0] || n > w[1] || out.Faces == nil {
				t.Errorf("%s: %d faces, want %d..%d", name, n, w[0], w[1])
			}
			for _, face := range out.Faces {
				if len(face.Landmarks) != 5 || face.Score < 0.5 || face.Box.X2 <= face.Box.X1 || face.Age != nil || face.Embedding != nil {
					t.Errorf("%s: face %+v: want a box, score and 5 landmarks only", name, face)
				}
			}
		}
		// The same image as JSON base64, as a data: URL, and as a raw body.
		for what, req := range map[string]func() (io.Reader, string){
			"json": func() (io.Reader, string) { return jsonBody(t, map[string]any{"image": b64(twoPeople)}) },
			"data URL": func() (io.Reader, string) {
				return jsonBody(t, map[string]any{"image": "data:image/jpeg;base64," + b64(twoPeople)})
			},
			"raw": func() (io.Reader, string) { return bytes.NewReader(twoPeople), "image/jpeg" },
		} {
			body, ct := req()
			var out faceapi.FacesResponse
			call(t, "POST", f.url+"/v1/detect", body, ct).ok(t, what, 200, &out)
			if len(out.Faces) != 2 || out.Width == 0 || out.Schema != 1 {
				t.Errorf("%s: %d faces in a %dx%d image", what, len(out.Faces), out.Width, out.Height)
			}
		}
	})

	t.Run("analyze", func(t *testing.T) {
		body, ct := form(t, filePart("image", obama), field("heads", "age,gender"))
		var out faceapi.FacesResponse
		call(t, "POST", f.url+"/v1/analyze", body, ct).ok(t, "age,gender", 200, &out)
		if len(out.Faces) != 1 || strings.Join(out.Heads, ",") != "age,gender" {
			t.Fatalf("faces %d, heads %v", len(out.Faces), out.Heads)
		}
		face := out.Faces[0]
		if face.Age == nil || *face.Age < 15 || *face.Age > 90 || face.Gender == nil || face.Gender.Label != "male" {
			t.Fatalf("Obama's age/gender: %+v", face)
		}
		if face.Emotion != nil || face.Liveness != nil || face.Pose != nil || face.Embedding != nil {
			t.Fatalf("heads that were not asked for ran: %+v", face)
		}
		body, ct = jsonBody(t, map[string]any{"image": b64(obama), "heads": []string{"emotion", "liveness", "pose"}})
		call(t, "POST", f.url+"/v1/analyze", body, ct).ok(t, "emotion,liveness,pose", 200, ptrZero(&out))
		face = out.Faces[0]
		if face.Emotion == nil || len(face.Emotion.Scores) != 7 || face.Liveness == nil || face.Liveness.Score < 0 || face.Liveness.Score > 1 || face.Pose == nil || face.Age != nil {
			t.Fatalf("emotion/liveness/pose: %+v", face)
		}
		// Default heads: all but emotion; raw body with the heads in the query.
		call(t, "POST", f.url+"/v1/analyze", bytes.NewReader(obama), "image/jpeg").ok(t, "default heads", 200, ptrZero(&out))
		if face := out.Faces[0]; face.Age == nil || face.Gender == nil || face.Liveness == nil || face.Pose == nil || face.Emotion != nil {
			t.Fatalf("default heads: %+v", face)
		}
		call(t, "POST", f.url+"/v1/analyze?heads=pose", bytes.NewReader(obama), "image/jpeg").ok(t, "heads in the query", 200, ptrZero(&out))
		if face := out.Faces[0]; face.Pose == nil || face.Age != nil {
			t.Fatalf("heads=pose: %+v", face)
		}
		body, ct = form(t, filePart("image", obama), field("heads", "age,telepathy"))
		call(t, "POST", f.url+"/v1/analyze", body, ct).fails(t, "unknown head", 400, "unknown_head", "telepathy")
		body, ct = form(t, filePart("image", obama), field("hedas", "age"))
		call(t, "POST", f.url+"/v1/analyze", body, ct).fails(t, "misspelt field", 400, "unknown_field", "hedas")
	})

	t.Run("represent", func(t *testing.T) {
		body, ct := form(t, filePart("image", twoPeople))
		var out faceapi.FacesResponse
		call(t, "POST", f.url+"/v1/represent", body, ct).ok(t, "represent", 200, &out)
		if len(out.Faces) != 2 || out.Model != "fr_feature" {
			t.Fatalf("%d faces, model %q", len(out.Faces), out.Model)
		}
		for i, face := range out.Faces {
			if len(face.Embedding) != 512 || math.Abs(unitLength(face.Embedding)-1) > 1e-3 {
				t.Fatalf("face %d: embedding of %d values, length %.4f", i, len(face.Embedding), unitLength(face.Embedding))
			}
		}
		if s := gallery.Cosine(out.Faces[0].Embedding, out.Faces[1].Embedding); s >= gallery.DefaultThreshold {
			t.Fatalf("two different people have similarity %.3f", s)
		}
	})

	t.Run("verify", func(t *testing.T) {
		var out faceapi.VerifyResponse
		body, ct := form(t, filePart("image1", obama), filePart("image2", obama2))
		call(t, "POST", f.url+"/v1/verify", body, ct).ok(t, "Obama/Obama", 200, &out)
		if !out.Verified || out.Similarity < gallery.DefaultThreshold || out.Threshold != gallery.DefaultThreshold || out.Model != "fr_feature" ||
			out.FaceCounts != [2]int{1, 1} {
			t.Fatalf("Obama vs Obama: %+v", out)
		}
		body, ct = jsonBody(t, map[string]any{"img1": b64(obama), "img2": b64(biden)})
		call(t, "POST", f.url+"/v1/verify", body, ct).ok(t, "Obama/Biden", 200, ptrZero(&out))
		if out.Verified || out.Similarity >= gallery.DefaultThreshold {
			t.Fatalf("Obama vs Biden: %+v", out)
		}
		body, ct = jsonBody(t, map[string]any{"image1": b64(obama), "image2": b64(biden), "threshold": -1})
		call(t, "POST", f.url+"/v1/verify", body, ct).ok(t, "threshold -1", 200, ptrZero(&out))
		if !out.Verified || out.Threshold != -1 {
			t.Fatalf("a request threshold of -1 verifies anything: %+v", out)
		}
		body, ct = form(t, filePart("image1", obama), filePart("image2", noFaces))
		call(t, "POST", f.url+"/v1/verify", body, ct).fails(t, "no face in image2", 422, "no_face", "image2")
		body, ct = form(t, filePart("image1", obama))
		call(t, "POST", f.url+"/v1/verify", body, ct).fails(t, "one image", 400, "missing_image", "image2")
		body, ct = jsonBody(t, map[string]any{"image1": b64(obama), "image2": b64(obama2), "threshold": 2})
		call(t, "POST", f.url+"/v1/verify", body, ct).fails(t, "threshold 2", 400, "invalid_field", "threshold")
	})

	t.Run("gallery", func(t *testing.T) {
		ctx := context.Background()
		// A second watcher stands for another analyzer process.
		other := gallery.Watch(f.store, gallery.WatchConfig{Log: slog.New(slog.DiscardHandler)})
		defer other.Close()
		if err := other.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		embed := func(img []byte) []float32 {
			res, err := e.Analyze(ctx, img, faceapi.Options{Embeddings: true})
			if err != nil || len(res.Embeddings) == 0 {
				t.Fatalf("embed: %v", err)
			}
			return res.Embeddings[0]
		}

		start := time.Now()
		body, ct := form(t, field("name", "Barack Obama"), filePart("photos", obama), filePart("photo", obama2))
		var enrolled faceapi.EnrollResponse
		r := call(t, "POST", f.url+"/v1/identities", body, ct)
		r.ok(t, "enroll Obama", 201, &enrolled)
		if enrolled.Identity.ID != "barack-obama" || len(enrolled.Identity.Photos) != 2 || len(enrolled.Added) != 2 ||
			r.header.Get("Location") != "/v1/identities/barack-obama" {
			t.Fatalf("enrolled %+v (Location %q)", enrolled, r.header.Get("Location"))
		}
		testenv.Eventually(t, time.Second, "another analyzer matches the enrollment", func() bool {
			name, _, ok := other.Match(embed(obamaTest))
			return ok && name == "Barack Obama"
		})
		t.Logf("enrollment matched by another watcher %v after the request started", time.Since(start).Round(time.Millisecond))

		var idf faceapi.IdentifyResponse
		body, ct = form(t, filePart("image", obamaTest))
		call(t, "POST", f.url+"/v1/identify", body, ct).ok(t, "identify Obama", 200, &idf)
		if len(idf.Faces) != 1 || idf.Faces[0].Identity == nil || idf.Faces[0].Identity.Name != "Barack Obama" ||
			len(idf.Faces[0].Matches) != 1 || idf.Faces[0].Matches[0].ID != "barack-obama" {
			t.Fatalf("identify another Obama photo: %s", mustJSON(idf))
		}
		t.Logf("Obama identified at similarity %.3f", idf.Faces[0].Identity.Similarity)
		body, ct = jsonBody(t, map[string]any{"image": b64(biden)})
		call(t, "POST", f.url+"/v1/identify", body, ct).ok(t, "identify Biden", 200, ptrZero(&idf))
		if len(idf.Faces) != 1 || idf.Faces[0].Identity != nil || len(idf.Faces[0].Matches) != 0 {
			t.Fatalf("Biden identified as someone: %s", mustJSON(idf))
		}

		// Duplicates, bad photos and bad names: precise errors, nothing written.
		before := bucketState(t, f.js)
		body, ct = jsonBody(t, map[string]any{"name": "barack  OBAMA", "photos": []string{b64(obama3)}})
		call(t, "POST", f.url+"/v1/identities", body, ct).fails(t, "duplicate name", 409, "identity_exists", `"Barack Obama"`)
		body, ct = form(t, field("name", "Two People"), filePart("photos", twoPeople))
		call(t, "POST", f.url+"/v1/identities", body, ct).fails(t, "two faces", 422, "multiple_faces", "2 faces", "exactly one face")
		five := composite(t, f.file(t, "faces/John_Salley/000179_02159509.jpg"), f.file(t, "faces/John_Savage/000264_01099001.jpg"),
			f.file(t, "faces/John_Schneider/000288_00925786.jpg"), f.file(t, "faces/John_Salley/000183_02159543.jpg"),
			f.file(t, "faces/John_Savage/000274_01099061.jpg"))
		var det faceapi.FacesResponse
		call(t, "POST", f.url+"/v1/detect", bytes.NewReader(five), "image/jpeg").ok(t, "five faces", 200, &det)
		if len(det.Faces) != 5 {
			t.Fatalf("the composite shows %d faces to the detector, want 5", len(det.Faces))
		}
		body, ct = form(t, field("name", "Crowd"), filePart("photos", five))
		call(t, "POST", f.url+"/v1/identities", body, ct).fails(t, "five faces", 422, "multiple_faces", "5 faces")
		body, ct = form(t, field("name", "Nobody"), filePart("photos", noFaces))
		call(t, "POST", f.url+"/v1/identities", body, ct).fails(t, "no face", 422, "no_face", "no face found")
		// One bad photo among good ones: the whole request is refused.
		body, ct = form(t, field("name", "Joe Biden"), filePart("photos", biden), filePart("photos", twoPeople))
		call(t, "POST", f.url+"/v1/identities", body, ct).fails(t, "good and bad photos", 422, "multiple_faces", "photo 2 of 2")
		body, ct = form(t, field("name", "a/b"), filePart("photos", biden))
		call(t, "POST", f.url+"/v1/identities", body, ct).fails(t, "bad name", 400, "invalid_name", "'/'")
		body, ct = form(t, filePart("photos", biden))
		call(t, "POST", f.url+"/v1/identities", body, ct).fails(t, "no name", 400, "invalid_name")
		body, ct = form(t, filePart("photos", obama))
		call(t, "POST", f.url+"/v1/identities/barack-obama/photos", body, ct).fails(t, "same photo again", 409, "duplicate_photo")
		if after := bucketState(t, f.js); after != before {
			t.Fatalf("refused requests changed the bucket: %s -> %s", before, after)
		}
		call(t, "GET", f.url+"/v1/identities/joe-biden", nil, "").fails(t, "half-written Biden", 404, "identity_not_found")

		// Unknown ids.
		body, ct = form(t, filePart("photos", biden))
		call(t, "POST", f.url+"/v1/identities/nobody/photos", body, ct).fails(t, "add to unknown id", 404, "identity_not_found")
		call(t, "GET", f.url+"/v1/identities/nobody", nil, "").fails(t, "get unknown id", 404, "identity_not_found")
		call(t, "GET", f.url+"/v1/identities/Not%20An%20Id", nil, "").fails(t, "malformed id", 404, "identity_not_found")
		call(t, "DELETE", f.url+"/v1/identities/nobody", nil, "").fails(t, "delete unknown id", 404, "identity_not_found")
		call(t, "DELETE", f.url+"/v1/identities/barack-obama/photos/0000000000000000", nil, "").fails(t, "unknown photo", 404, "photo_not_found")

		// Add a photo, list, get, remove a photo, delete.
		body, ct = form(t, filePart("photos", obama3))
		call(t, "POST", f.url+"/v1/identities/barack-obama/photos", body, ct).ok(t, "add a photo", 201, ptrZero(&enrolled))
		if len(enrolled.Identity.Photos) != 3 || len(enrolled.Added) != 1 {
			t.Fatalf("after adding: %+v", enrolled)
		}
		body, ct = form(t, field("name", "Joe Biden"), filePart("photos", biden))
		call(t, "POST", f.url+"/v1/identities", body, ct).ok(t, "enroll Biden", 201, nil)
		var list faceapi.IdentityList
		call(t, "GET", f.url+"/v1/identities", nil, "").ok(t, "list", 200, &list)
		if len(list.Identities) != 2 || list.Identities[0].Name != "Barack Obama" || list.Identities[0].Photos != 3 || list.Identities[1].ID != "joe-biden" {
			t.Fatalf("list: %+v", list)
		}
		var got gallery.Identity
		call(t, "GET", f.url+"/v1/identities/barack-obama", nil, "").ok(t, "get", 200, &got)
		if len(got.Photos) != 3 || got.Photos[0].SHA256 == "" || strings.Contains(mustJSON(got), "embedding") {
			t.Fatalf("get: %s", mustJSON(got))
		}
		call(t, "DELETE", f.url+"/v1/identities/barack-obama/photos/"+enrolled.Added[0], nil, "").ok(t, "remove a photo", 200, ptrZero(&got))
		if len(got.Photos) != 2 {
			t.Fatalf("after removing a photo: %d photos", len(got.Photos))
		}
		body, ct = jsonBody(t, map[string]any{"image": b64(biden)})
		call(t, "POST", f.url+"/v1/identify", body, ct).ok(t, "identify Biden, enrolled", 200, ptrZero(&idf))
		if idf.Faces[0].Identity == nil || idf.Faces[0].Identity.Name != "Joe Biden" {
			t.Fatalf("Biden after enrolling him: %s", mustJSON(idf))
		}
		call(t, "DELETE", f.url+"/v1/identities/barack-obama", nil, "").ok(t, "delete", 204, nil)
		body, ct = form(t, filePart("image", obamaTest))
		call(t, "POST", f.url+"/v1/identify", body, ct).ok(t, "identify after delete", 200, ptrZero(&idf))
		if idf.Faces[0].Identity != nil {
			t.Fatalf("a deleted identity still matches: %s", mustJSON(idf))
		}
		testenv.Eventually(t, time.Second, "another analyzer forgets the deleted identity", func() bool {
			_, _, ok := other.Match(embed(obamaTest))
			return !ok
		})
	})

	t.Run("annotate", func(t *testing.T) {
		ctx := context.Background()
		both := f.file(t, "detect/obama_and_biden.jpg")
		if _, err := f.store.Get(ctx, "joe-biden"); err != nil {
			t.Fatalf("the gallery subtest enrolls Biden: %v", err)
		}
		body, ct := form(t, filePart("image", both), field("heads", "age,gender"))
		r := call(t, "POST", f.url+"/v1/annotate", body, ct)
		if r.status != 200 || r.header.Get("Content-Type") != "image/jpeg" || r.header.Get("X-Faces") < "2" {
			t.Fatalf("annotate: %d %s X-Faces=%s", r.status, r.header.Get("Content-Type"), r.header.Get("X-Faces"))
		}
		m, err := vision.Decode(r.body, 0)
		if err != nil {
			t.Fatalf("the annotated image does not decode: %v", err)
		}
		defer m.Close()
		var idf faceapi.IdentifyResponse
		body, ct = form(t, filePart("image", both))
		call(t, "POST", f.url+"/v1/identify", body, ct).ok(t, "identify both", 200, &idf)
		if m.Cols() != idf.Width || m.Rows() != idf.Height {
			t.Fatalf("annotated image is %dx%d, the upload %dx%d", m.Cols(), m.Rows(), idf.Width, idf.Height)
		}
		// Biden's box is drawn green (a gallery match), the others orange (unknown).
		var known, unknown int
		for _, face := range idf.Faces {
			b := face.Box
			y := int((b.Y1 + b.Y2) / 2)
			x := int(b.X1) + max(1, min(m.Cols(), m.Rows())/300)/2
			if x < 0 || x >= m.Cols() || y < 0 || y >= m.Rows() {
				continue
			}
			v := m.GetVecbAt(y, x) // B, G, R
			switch {
			case v[1] > 150 && v[0] < 130 && v[2] < 130:
				known++
				if face.Identity == nil || face.Identity.Name != "Joe Biden" {
					t.Errorf("a green box on a face identified as %+v", face.Identity)
				}
			case v[2] > 180 && v[1] > 90 && v[0] < 90:
				unknown++
			}
		}
		if known != 1 || unknown < 1 {
			t.Fatalf("drawn boxes: %d green (want 1: Biden), %d orange (want >= 1)", known, unknown)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		jpegBytes := obama
		cases := []struct {
			name   string
			body   func() (io.Reader, string)
			status int
			code   string
			msg    string
		}{
			{"non-image bytes", func() (io.Reader, string) { return form(t, filePart("image", []byte("this is not an image at all"))) }, 400, "invalid_image", "not a JPEG or PNG"},
			{"truncated JPEG", func() (io.Reader, string) { return form(t, filePart("image", jpegBytes[:len(jpegBytes)/2])) }, 400, "invalid_image", "truncated"},
			{"truncated JPEG, raw", func() (io.Reader, string) { return bytes.NewReader(jpegBytes[:len(jpegBytes)-100]), "image/jpeg" }, 400, "invalid_image", "truncated"},
			{"50000x50000 PNG", func() (io.Reader, string) { return form(t, filePart("image", hugePNG(50000, 50000))) }, 422, "image_too_large", "50000x50000"},
			{"empty image", func() (io.Reader, string) { return form(t, filePart("image", nil)) }, 400, "invalid_image", "empty"},
			{"no image", func() (io.Reader, string) { return form(t, field("heads", "age")) }, 400, "unknown_field", "heads"},
			{"no image, JSON", func() (io.Reader, string) { return jsonBody(t, map[string]any{}) }, 400, "missing_image", `"image"`},
			{"bad base64", func() (io.Reader, string) { return jsonBody(t, map[string]any{"image": "%%%not base64"}) }, 400, "invalid_base64", "base64"},
			{"not JSON", func() (io.Reader, string) { return strings.NewReader(`{"image": `), "application/json" }, 400, "invalid_json", "JSON"},
			{"JSON array", func() (io.Reader, string) { return strings.NewReader(`[1,2]`), "application/json" }, 400, "invalid_json", "JSON object"},
			{"unknown JSON field", func() (io.Reader, string) { return jsonBody(t, map[string]any{"image": b64(obama), "x": 1}) }, 400, "unknown_field", `"x"`},
			{"wrong content type", func() (io.Reader, string) { return strings.NewReader("x"), "text/plain" }, 415, "unsupported_media_type", "text/plain"},
			{"no content type", func() (io.Reader, string) { return strings.NewReader("x"), "" }, 415, "unsupported_media_type", "multipart"},
			{"multipart without boundary", func() (io.Reader, string) { return strings.NewReader("x"), "multipart/form-data" }, 400, "invalid_multipart", "boundary"},
			{"broken multipart", func() (io.Reader, string) {
				return strings.NewReader("--xyz\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc"), "multipart/form-data; boundary=xyz"
			}, 400, "invalid_multipart", "multipart"},
			{"oversize body", func() (io.Reader, string) { return bytes.NewReader(make([]byte, 10<<20+1)), "image/jpeg" }, 413, "body_too_large", "10 MiB"},
			{"oversize multipart, chunked", func() (io.Reader, string) {
				body, ct := form(t, filePart("image", make([]byte, 11<<20)))
				return io.MultiReader(body), ct // no Content-Length: the limit trips while reading
			}, 413, "body_too_large", "10 MiB"},
		}
		for _, c := range cases {
			body, ct := c.body()
			call(t, "POST", f.url+"/v1/detect", body, ct).fails(t, c.name, c.status, c.code, c.msg)
		}
		// The same checks guard enrollment, naming the photo.
		body, ct := form(t, field("name", "Broken"), filePart("photos", jpegBytes[:len(jpegBytes)/3]))
		call(t, "POST", f.url+"/v1/identities", body, ct).fails(t, "truncated enrollment photo", 400, "invalid_image", "photo 1 of 1")
		call(t, "GET", f.url+"/v1/identities/broken", nil, "").fails(t, "after a refused enrollment", 404, "identity_not_found")
		call(t, "GET", f.url+"/v1/detect", nil, "").fails(t, "GET on a POST route", 405, "method_not_allowed")
		// The server is still up and answers good requests.
		call(t, "GET", f.url+"/healthz", nil, "").ok(t, "healthz", 200, nil)
		var out faceapi.FacesResponse
		call(t, "POST", f.url+"/v1/detect", bytes.NewReader(twoPeople), "image/jpeg").ok(t, "after bad input", 200, &out)
		if len(out.Faces) != 2 {
			t.Fatalf("%d faces after the bad input", len(out.Faces))
		}
	})

	t.Run("policy", func(t *testing.T) {
		// A second server with API keys and a rate limit, mounting the same engine and gallery.
		srv := &httpapi.Server{Addr: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler), APIKeys: []string{"k-one"}, RatePerMinute: 2,
			MaxUploadBytes: 1 << 20, CORSOrigins: []string{"https://ui.example"}}
		if _, err := faceapi.Mount(srv, faceapi.Config{Engine: e, Store: f.store, Gallery: f.gal}); err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		u := srv.URL()
		call(t, "POST", u+"/v1/detect", bytes.NewReader(twoPeople), "image/jpeg").fails(t, "missing API key", 401, "missing_api_key", "Bearer")
		call(t, "POST", u+"/v1/detect", bytes.NewReader(twoPeople), "image/jpeg", "Authorization", "Bearer nope").fails(t, "wrong API key", 401, "invalid_api_key")
		auth := []string{"Authorization", "Bearer k-one"}
		call(t, "POST", u+"/v1/detect", bytes.NewReader(obama), "image/jpeg", auth...).ok(t, "with the key", 200, nil)
		call(t, "POST", u+"/v1/detect", bytes.NewReader(make([]byte, 1<<20+1)), "image/jpeg", auth...).fails(t, "1 MiB limit", 413, "body_too_large", "1 MiB")
		r := call(t, "POST", u+"/v1/detect", bytes.NewReader(obama), "image/jpeg", auth...)
		r.fails(t, "third request in a minute", 429, "rate_limited", "retry in")
		if r.header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
		call(t, "GET", u+"/readyz", nil, "").ok(t, "readyz needs no key", 200, nil)
		call(t, "OPTIONS", u+"/v1/detect", nil, "", "Origin", "https://ui.example", "Access-Control-Request-Method", "POST").ok(t, "preflight", 204, nil)
	})

	t.Run("openapi", func(t *testing.T) {
		var doc struct {
			Paths map[string]map[string]any `json:"paths"`
		}
		call(t, "GET", f.url+"/openapi.json", nil, "").ok(t, "openapi.json", 200, &doc)
		var routes []string
		for _, rt := range f.api.Routes() {
			method, path, _ := strings.Cut(rt, " ")
			if doc.Paths[path][strings.ToLower(method)] == nil {
				t.Errorf("route %s is not in the OpenAPI document", rt)
			}
			routes = append(routes, rt)
		}
		sort.Strings(routes)
		if len(routes) != 12 {
			t.Errorf("%d routes: %v", len(routes), routes)
		}
		r := call(t, "GET", f.url+"/docs", nil, "")
		if r.status != 200 || !strings.Contains(string(r.body), "/v1/identities/{id}/photos") {
			t.Fatalf("docs page: %d", r.status)
		}
	})
}

// bucketState summarises the gallery bucket: every key with its revision.
func bucketState(t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, gallery.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := kv.Keys(ctx)
	sort.Strings(keys)
	return fmt.Sprintf("%d values, keys %v, last seq %d", st.Values(), keys, st.(*jetstream.KeyValueBucketStatus).StreamInfo().State.LastSeq)
}

// ptrZero zeroes *p and returns p: a fresh decode target (json.Unmarshal keeps fields the new
// document omits).
func ptrZero[T any](p *T) *T {
	var zero T
	*p = zero
	return p
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
