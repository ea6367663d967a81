package eventstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/admit"
	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/sink/eventstore"
	"github.com/vigil-video/vigil/sink/eventstore/eventstoretest"
)

// postSearch posts body with content type ct and checks the status (and, for errors, the code).
func postSearch(t *testing.T, base, ct string, body []byte, wantStatus int, wantCode string) eventstore.SearchResponse {
	t.Helper()
	resp, err := http.Post(base+eventstore.PathSearchFaces, ct, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("POST %s: %d %s, want %d", body, resp.StatusCode, b, wantStatus)
	}
	var out eventstore.SearchResponse
	if wantStatus == http.StatusOK {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		return out
	}
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	if wantCode != "" && !strings.Contains(string(b), `"`+wantCode+`"`) {
		t.Fatalf("POST %s: %s, want code %s", body, b, wantCode)
	}
	return out
}

func multipartBody(t *testing.T, fields map[string]string) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range fields {
		if k == "image" {
			fw, _ := mw.CreateFormFile("image", "photo.jpg")
			_, _ = fw.Write([]byte(v))
			continue
		}
		_ = mw.WriteField(k, v)
	}
	_ = mw.Close()
	return mw.FormDataContentType(), b.Bytes()
}

// TestSearchAPI: a search by track over HTTP (JSON and multipart) finds the same person's other
// tracks, filters apply, and bad requests get precise 4xx answers. Searches by photo, with the
// real face models, are in cmd/vigil/cli (TestSearchByPhoto).
func TestSearchAPI(t *testing.T) {
	st := openStore(t, nil)
	at := time.Date(2026, 11, 22, 0, 5, 14, 0, time.UTC)
	for _, tr := range []struct {
		stream, id string
		person     int
		at         time.Time
	}{{"lobby", "a", 0, at}, {"door", "b", 0, at.Add(time.Hour)}, {"lobby", "c", 1, at}, {"lobby", "d", 0, at.Add(2 * time.Hour)}} {
		ev := eventstoretest.Event(tr.stream, tr.id, event.KindLeft, tr.at)
		ev.Identity = nil
		ev.Embedding = eventstoretest.Person(tr.person, 0.6, uint64(len(tr.id)+int(tr.id[0])))
		if _, err := st.StoreEvent(context.Background(), ev, nil); err != nil {
			t.Fatal(err)
		}
	}
	srv := &httpapi.Server{Addr: "127.0.0.1:0"}
	(&eventstore.SearchAPI{Store: st, MinSimilarity: 0.45}).Mount(srv)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	base := srv.URL()
	const js = "application/json"

	out := postSearch(t, base, js, []byte(`{"track_id":"a"}`), http.StatusOK, "")
	if len(out.Sightings) != 2 || out.Sightings[0].Similarity < out.Sightings[1].Similarity {
		t.Fatalf("track a: %+v, want tracks b and d, most similar first", out.Sightings)
	}
	for _, sg := range out.Sightings {
		if sg.TrackID != "b" && sg.TrackID != "d" {
			t.Errorf("track a found %s", sg.TrackID)
		}
	}
	if out := postSearch(t, base, js, []byte(`{"track_id":"a","until":"2026-11-22T01:30:00Z","limit":5,"min_similarity":0.5}`), http.StatusOK, ""); len(out.Sightings) != 1 ||
		out.Sightings[0].TrackID != "b" {
		t.Errorf("until: %+v", out.Sightings)
	}
	ct, body := multipartBody(t, map[string]string{"track_id": "a", "since": "2026-11-22T01:30:00Z"})
	if out := postSearch(t, base, ct, body, http.StatusOK, ""); len(out.Sightings) != 1 || out.Sightings[0].TrackID != "d" {
		t.Errorf("multipart since: %+v", out.Sightings)
	}
	if out := postSearch(t, base, js, []byte(`{"track_id":"c"}`), http.StatusOK, ""); len(out.Sightings) != 0 {
		t.Errorf("track c (nobody else): %+v", out.Sightings)
	}

	for _, tc := range []struct {
		ct, body string
		status   int
		code     string
	}{
		{js, `{}`, 400, "empty_search"},
		{js, `{"stream":"lobby"}`, 400, "empty_search"},
		{js, `{"track_id":"a","identity":"Ada"}`, 400, "invalid_query"},
		{js, `{"track_id":"a","limit":5000}`, 400, "invalid_query"},
		{js, `{"track_id":"a","min_similarity":2}`, 400, "invalid_query"},
		{js, `{"track_id":"a","since":"yesterday"}`, 400, "invalid_query"},
		{js, `{"track_id":"a","stream":"../x"}`, 400, "invalid_query"},
		{js, `{"track_id":"a","colour":"red"}`, 400, "invalid_query"},
		{js, `{"track_id":"a"} {}`, 400, "invalid_query"},
		{js, `{"image":"not base64!"}`, 400, "invalid_query"},
		{"text/plain", `track_id=a`, 400, "invalid_query"},
		{js, `{"track_id":"nobody"}`, 404, "not_found"},
		{js, `{"image":"/9j/4AAQ"}`, 501, "no_models"},
		{js, `{"identity":"Ada"}`, 501, "no_gallery"},
	} {
		postSearch(t, base, tc.ct, []byte(tc.body), tc.status, tc.code)
	}
	ct, body = multipartBody(t, map[string]string{"track_id": "a", "colour": "red"})
	postSearch(t, base, ct, body, 400, "invalid_query")
}

func FuzzParseSearchRequest(f *testing.F) {
	for _, s := range []string{`{"track_id":"a","since":"2026-11-22T01:30:00Z","limit":5,"min_similarity":0.5}`,
		`{"image":"/9j/4AAQ","stream":"lobby"}`, `{"identity":"Ada","until":"1795306514"}`, `{}`, `{"track_id":"a"} {}`, `[1]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, eventstore.PathSearchFaces, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		req, err := eventstore.ParseSearchRequest(r)
		if err != nil {
			if !errors.Is(err, eventstore.ErrQuery) {
				t.Fatalf("error %v does not wrap ErrQuery", err)
			}
			return
		}
		n := 0
		for _, set := range []bool{len(req.Image) > 0, req.Identity != "", req.TrackID != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("accepted %+v: want exactly one of image, identity and track_id", req)
		}
	})
}

// countingEmbedder is a FaceEmbedder that counts its calls and finds one face.
type countingEmbedder struct{ calls atomic.Int64 }

func (c *countingEmbedder) EmbedFace(context.Context, []byte) ([]float32, error) {
	c.calls.Add(1)
	return eventstoretest.Person(0, 0.6, 1), nil
}

// TestSearchAdmission: searches go through the admission gate the face API uses. With the gate
// running as many jobs as it may, a search by photo waits at most MaxWait and then gets 503
// busy with Retry-After without running the models; with every request slot taken (and no job
// running), a search gets 503 busy before its body is read; once the gate has room, the same search is answered.
func TestSearchAdmission(t *testing.T) {
	st := openStore(t, nil)
	gate := &admit.Gate{MaxConcurrent: 1, MaxWaiting: 1, MaxWait: 50 * time.Millisecond}
	faces := &countingEmbedder{}
	srv := &httpapi.Server{Addr: "127.0.0.1:0"}
	(&eventstore.SearchAPI{Store: st, Faces: faces, MinSimilarity: 0.45, Gate: gate}).Mount(srv)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ct, body := multipartBody(t, map[string]string{"image": "\xff\xd8 a photo"})
	busy := func(what string) {
		t.Helper()
		resp, err := http.Post(srv.URL()+eventstore.PathSearchFaces, ct, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), `"busy"`) {
			t.Fatalf("search with %s: %d (Retry-After %q) %s, want 503 busy with Retry-After", what, resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
	}

	release, err := gate.Acquire(context.Background(), 1) // the one job the gate runs
	if err != nil {
		t.Fatal(err)
	}
	busy("the gate running its one job")
	release()
	leave1, _ := gate.Enter()
	leave2, ok := gate.Enter() // MaxConcurrent + MaxWaiting requests in
	if !ok {
		t.Fatal("the gate refused its second request")
	}
	busy("every request slot taken")
	if n := faces.calls.Load(); n != 0 {
		t.Fatalf("the models ran %d times while the gate was full", n)
	}
	if s := gate.Stats(); s.Refused != 2 {
		t.Errorf("gate refused %d, want the 2 searches", s.Refused)
	}
	leave1()
	leave2()
	postSearch(t, srv.URL(), ct, body, http.StatusOK, "")
	if n := faces.calls.Load(); n != 1 {
		t.Fatalf("the models ran %d times for the admitted search, want 1", n)
	}
	if s := gate.Stats(); s.Admitted != 2 || s.Running != 0 {
		t.Errorf("gate stats %+v, want 2 admitted (the test's job and the search), none running", s)
	}
}
