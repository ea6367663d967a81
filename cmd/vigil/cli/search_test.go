package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/pkg/admit"
	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/sink/eventstore"
	"github.com/vigil-video/vigil/sink/eventstore/sqlite"
)

// videoFrameJPEG returns the frame at second sec of the video at path, as a JPEG.
func videoFrameJPEG(t *testing.T, path string, sec float64) []byte {
	t.Helper()
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	vc.Set(gocv.VideoCapturePosMsec, sec*1000)
	m := gocv.NewMat()
	defer m.Close()
	if !vc.Read(&m) || m.Empty() {
		t.Fatalf("no frame at %.1f s of %s", sec, path)
	}
	buf, err := gocv.IMEncode(gocv.JPEGFileExt, m)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...)
}

// representFaces returns the embedding of each image's largest face, computed by vigil represent
// (the real models).
func representFaces(t *testing.T, images ...string) [][]float32 {
	t.Helper()
	code, stdout, stderr := vigil(t, nil, append([]string{"represent"}, images...)...)
	if code != 0 {
		t.Fatalf("vigil represent exited %d: %s", code, stderr)
	}
	var out [][]float32
	dec := json.NewDecoder(bytes.NewReader([]byte(stdout)))
	for dec.More() {
		var doc struct {
			Faces []struct {
				Embedding []float32 `json:"embedding"`
			} `json:"faces"`
		}
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Faces) == 0 || len(doc.Faces[0].Embedding) == 0 {
			t.Fatalf("vigil represent found no face: %s", stdout)
		}
		out = append(out, doc.Faces[0].Embedding)
	}
	return out
}

// searchPhoto posts img to /v1/search/faces as multipart and returns the status and answer.
func searchPhoto(t *testing.T, base string, img []byte) (int, eventstore.SearchResponse, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("image", "photo.jpg")
	_, _ = fw.Write(img)
	_ = mw.Close()
	resp, err := http.Post(base+eventstore.PathSearchFaces, mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out eventstore.SearchResponse
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
	}
	return resp.StatusCode, out, string(b)
}

// TestSearchByPhoto is search by photo end to end on real parts: vigil run tracks the face in
// the shared video (embedded NATS, OpenCV, the real models) and its event store keeps the
// track's embedding from face.left; beside it are tracks of four other people (embeddings of
// their photos by the real models). vigil serve answers POST /v1/search/faces with a frame of
// the video: the video's track comes first; a photo of Obama finds Obama's track first, one
// without a face gets 422; vigil search prints the same answer. Then Obama is enrolled, found by
// identity, and erased (DELETE /v1/identities/{id}?erase=true): a search finds nothing of him.
func TestSearchByPhoto(t *testing.T) {
	data := testenv.TestData(t)
	video := filepath.Join(data, "video", "fer_test.mp4")
	db := filepath.Join(t.TempDir(), "events.db")
	code, _, stderr := vigil(t, nil, "run", "--once", "--nats-port", "0", "--source", video, "--stream", "fer", "--events-db", db, "--quiet",
		"--heads", "embedding") // every frame: the test is about storing and searching, not the heads schedule
	if code != 0 {
		t.Fatalf("vigil run exited %d:\n%s", code, stderr)
	}
	st := openHistory(t, db)
	ctx := context.Background()
	left, err := st.Events(ctx, eventstore.EventFilter{Stream: "fer", Kind: event.KindLeft})
	if err != nil || len(left) == 0 {
		t.Fatalf("no face.left stored for the video: %v\n%s", err, stderr)
	}
	// The tracks that got an embedding.
	var videoTracks []string
	for _, ev := range left {
		if _, _, err := st.TrackEmbedding(ctx, "fer", ev.TrackID); err == nil {
			videoTracks = append(videoTracks, ev.TrackID)
		}
	}
	if len(videoTracks) == 0 {
		t.Fatalf("none of the video's %d tracks kept an embedding", len(left))
	}
	t.Logf("video tracks %d, with an embedding %d", len(left), len(videoTracks))

	faces := filepath.Join(data, "faces")
	others := []string{"Barack_Obama/obama.jpg", "Joe_Biden/biden.jpg", "John_Salley/000179_02159509.jpg", "John_Savage/000264_01099001.jpg"}
	paths := make([]string, len(others))
	for i, p := range others {
		paths[i] = filepath.Join(faces, p)
	}
	at := time.Date(2026, 11, 22, 0, 5, 14, 0, time.UTC)
	for i, emb := range representFaces(t, paths...) {
		ev := event.Event{Schema: event.EventSchema, Kind: event.KindLeft, Stream: "lobby", TrackID: filepath.Dir(others[i]), Seq: 1,
			CapturedAt: at, At: at, FirstSeen: at, LastSeen: at, Frames: 5, Reason: event.ReasonLost, Embedding: emb}
		if _, err := st.StoreEvent(ctx, ev, nil); err != nil {
			t.Fatal(err)
		}
	}

	// A track recognised as "Barack Obama" (the gallery name) without an embedding: erasure finds it by name.
	named := event.Event{Schema: event.EventSchema, Kind: event.KindRecognized, Stream: "door", TrackID: "obama-named", Seq: 1,
		CapturedAt: at, At: at, FirstSeen: at, LastSeen: at, Frames: 5, Identity: &result.Identity{Name: "Barack Obama", Similarity: 0.8}}
	if _, err := st.StoreEvent(ctx, named, testJPEG(t, 32, 32)); err != nil {
		t.Fatal(err)
	}

	b := startSinkBus(t)
	run := startCommand(t, map[string]string{"VIGIL_DEPS": testenv.DepsDir(t), "VIGIL_EVENTS_DB": db}, "serve",
		"--nats-url", b.url, "--http-addr", "127.0.0.1:0", "--log-json")
	base := run.logValue(t, time.Minute, "face API listening", "url")

	if resp, err := http.Get(base + "/v1/unknowns"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("vigil serve does not list the unknown people: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	status, out, body := searchPhoto(t, base, videoFrameJPEG(t, video, 2))
	if status != http.StatusOK || len(out.Sightings) == 0 || out.Sightings[0].Stream != "fer" {
		t.Fatalf("search with a frame of the video: %d %s, want the video's track first", status, body)
	}
	for _, sg := range out.Sightings {
		if sg.Stream != "fer" {
			t.Errorf("a frame of the video matched %s/%s (%.2f)", sg.Stream, sg.TrackID, sg.Similarity)
		}
	}
	obama, err := os.ReadFile(filepath.Join(faces, "Barack_Obama", "obama2.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	status, out, body = searchPhoto(t, base, obama)
	if status != http.StatusOK || len(out.Sightings) == 0 || out.Sightings[0].TrackID != "Barack_Obama" {
		t.Fatalf("search with another photo of Obama: %d %s, want his track first", status, body)
	}
	if status, _, body := searchPhoto(t, base, testJPEG(t, 160, 120)); status != http.StatusUnprocessableEntity {
		t.Errorf("a photo without a face: %d %s, want 422", status, body)
	}
	if status, _, body := searchPhoto(t, base, []byte("not an image")); status != http.StatusBadRequest {
		t.Errorf("bytes that are no image: %d %s, want 400", status, body)
	}

	photo := filepath.Join(t.TempDir(), "obama.jpg")
	if err := os.WriteFile(photo, obama, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := vigil(t, nil, "search", "--server", base, "--stream", "lobby", photo)
	var cli eventstore.SearchResponse
	if code != 0 || json.Unmarshal([]byte(stdout), &cli) != nil || len(cli.Sightings) == 0 || cli.Sightings[0].TrackID != "Barack_Obama" {
		t.Fatalf("vigil search: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr := vigil(t, nil, "search", "--server", base, filepath.Join(t.TempDir(), "missing.jpg")); code == 0 || stderr == "" {
		t.Errorf("vigil search of a missing file: exit %d, %q", code, stderr)
	}

	// Erasure: enrol Obama from the photo his stored track came from, search by identity, then
	// DELETE the identity with erase=true: his tracks (by embedding and by name) go, and a
	// search finds nothing of him.
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	_ = mw.WriteField("name", "Barack Obama")
	fw, _ := mw.CreateFormFile("photos", "obama.jpg")
	enrolPhoto, err := os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(enrolPhoto)
	_ = mw.Close()
	resp, err := http.Post(base+"/v1/identities", mw.FormDataContentType(), &form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("enrol: %d", resp.StatusCode)
	}
	byName := postJSON(t, base+eventstore.PathSearchFaces, `{"identity":"Barack Obama"}`, http.StatusOK)
	var found eventstore.SearchResponse
	if err := json.Unmarshal(byName, &found); err != nil || len(found.Sightings) == 0 || found.Sightings[0].TrackID != "Barack_Obama" {
		t.Fatalf("search by identity: %s", byName)
	}
	postJSON(t, base+eventstore.PathSearchFaces, `{"identity":"Nobody Known"}`, http.StatusNotFound)
	del := func(query string, want int) []byte {
		t.Helper()
		req, _ := http.NewRequest(http.MethodDelete, base+"/v1/identities/barack-obama"+query, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("DELETE %s: %d %s, want %d", query, resp.StatusCode, body, want)
		}
		return body
	}
	del("?erase=maybe", http.StatusBadRequest)
	var erased struct {
		ID, Name string
		Erased   eventstore.Erased
	}
	if body := del("?erase=true", http.StatusOK); json.Unmarshal(body, &erased) != nil || erased.Name != "Barack Obama" ||
		erased.Erased.Tracks != 2 || erased.Erased.Embeddings != 1 || erased.Erased.Snapshots != 1 || erased.Erased.Events != 2 {
		t.Fatalf("erase: %s", body)
	}
	del("?erase=true", http.StatusNotFound)
	status, out, body = searchPhoto(t, base, obama)
	for _, sg := range out.Sightings {
		if sg.TrackID == "Barack_Obama" || sg.TrackID == "obama-named" {
			t.Errorf("after erasure a search finds %s: %s", sg.TrackID, body)
		}
	}
	if status != http.StatusOK {
		t.Errorf("search after erasure: %d %s", status, body)
	}
	if evs, _ := st.Events(ctx, eventstore.EventFilter{Identity: "Barack Obama"}); len(evs) != 0 {
		t.Errorf("events of Barack_Obama kept: %+v", evs)
	}
	if code := run.stop(t); code != 0 {
		t.Fatalf("vigil serve exited %d:\n%s", code, run.stderr.String())
	}
}

// postJSON posts body to u and checks the status.
func postJSON(t *testing.T, u, body string, want int) []byte {
	t.Helper()
	resp, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("POST %s %s: %d %s, want %d", u, body, resp.StatusCode, b, want)
	}
	return b
}

// TestSearchSharesFaceAPIGate: POST /v1/search/faces is admitted by the face service's gate, the
// one vigil run and vigil serve give every model-running API: with that gate's request slots
// taken (by other APIs' requests), a search gets 503 busy with Retry-After.
func TestSearchSharesFaceAPIGate(t *testing.T) {
	store := &eventstore.Store{PruneInterval: -1}
	if err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "events.db"), store); err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	gate := &admit.Gate{MaxConcurrent: 1, MaxWaiting: 1}
	srv := &httpapi.Server{Addr: "127.0.0.1:0"}
	mountSearch(srv, store, &faceService{Gate: gate})
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	search := func() (int, string) {
		resp, err := http.Post(srv.URL()+eventstore.PathSearchFaces, "application/json", strings.NewReader(`{"track_id":"a"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	for range 2 { // MaxConcurrent + MaxWaiting requests of the face or classify API
		if _, ok := gate.Enter(); !ok {
			t.Fatal("the gate refused a request")
		}
	}
	if code, retry := search(); code != http.StatusServiceUnavailable || retry == "" {
		t.Fatalf("search with the face API's gate full: %d (Retry-After %q), want 503 with Retry-After", code, retry)
	}
	if s := gate.Stats(); s.Refused != 1 {
		t.Fatalf("the face API's gate refused %d requests, want the search", s.Refused)
	}
}
