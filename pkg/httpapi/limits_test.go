package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Each route's 413 names its own limit and the setting that changes it; Limits overrides a
// HandleUpload route's default (issue 12: the 64 KiB JSON limit blamed --max-upload-mb).
func TestRouteLimitsNameTheirSetting(t *testing.T) {
	s := &Server{Log: slog.New(slog.DiscardHandler), MaxUploadBytes: 4000, Limits: map[string]int64{"--max-push-mb": 2000}}
	read := func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			if IsBodyTooLarge(err) {
				WriteTooLarge(w, r)
				return
			}
			WriteError(w, 400, "bad", err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
	s.HandleUpload("POST /push", "--max-push-mb", 1000, http.HandlerFunc(read))
	s.HandleUpload("POST /dataset", "--max-dataset-mb", 3000, http.HandlerFunc(read))
	s.HandleLimit("POST /json", 1<<10, http.HandlerFunc(read))
	s.HandleFunc("POST /image", read)
	body := func() map[string]any {
		return map[string]any{"requestBody": map[string]any{}, "responses": map[string]any{}}
	}
	s.Describe(Doc{Paths: map[string]map[string]any{"/push": {"post": body()}, "/json": {"post": body()}, "/image": {"post": body()}}})
	if got := s.UploadLimit("--max-push-mb", 1000); got != 2000 {
		t.Fatalf("UploadLimit(--max-push-mb) = %d, want the override 2000", got)
	}
	h, err := s.Handler()
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	defer ts.Close()
	// The OpenAPI document gives each route's own 413.
	doc, _ := json.Marshal(s.OpenAPI()["paths"])
	for _, want := range []string{"exceeds 2000 bytes (server setting --max-push-mb)", "exceeds 1 KiB (fixed)", "exceeds 4000 bytes (server setting --max-upload-mb)"} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("OpenAPI paths do not say %q: %s", want, doc)
		}
	}
	for _, tc := range []struct {
		path    string
		n       int
		status  int
		message []string
	}{
		{"/push", 1500, 204, nil}, // over the route's default, within the override
		{"/push", 2001, 413, []string{"2000 bytes", "--max-push-mb"}},
		{"/dataset", 3001, 413, []string{"3000 bytes", "--max-dataset-mb"}},
		{"/json", 1025, 413, []string{"1 KiB", "fixed"}},
		{"/image", 3500, 204, nil},
		{"/image", 4001, 413, []string{"4000 bytes", "--max-upload-mb"}},
	} {
		for _, chunked := range []bool{false, true} {
			var body io.Reader = strings.NewReader(strings.Repeat("x", tc.n))
			if chunked {
				body = io.MultiReader(body) // no Content-Length: the handler meets the limit
			}
			resp, err := http.Post(ts.URL+tc.path, "application/octet-stream", body)
			if err != nil {
				t.Fatal(err)
			}
			var e struct{ Error Error }
			_ = json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("%s %d bytes (chunked %v): %d, want %d", tc.path, tc.n, chunked, resp.StatusCode, tc.status)
			}
			for _, m := range tc.message {
				if !strings.Contains(e.Error.Message, m) {
					t.Errorf("%s %d bytes (chunked %v): message %q does not say %q", tc.path, tc.n, chunked, e.Error.Message, m)
				}
			}
			if tc.path != "/image" && strings.Contains(e.Error.Message, "--max-upload-mb") {
				t.Errorf("%s: message %q blames --max-upload-mb", tc.path, e.Error.Message)
			}
		}
	}
}
