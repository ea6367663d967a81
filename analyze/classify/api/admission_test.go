package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigil-video/vigil/analyze/classify/api"
	"github.com/vigil-video/vigil/analyze/classify/manifest"
	"github.com/vigil-video/vigil/analyze/classify/project"
	"github.com/vigil-video/vigil/pkg/admit"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// Parallel classifications beyond the gate are 503 busy with Retry-After, never 500, and the
// ones admitted run when there is room (the probe's 12 parallel 8192² JPEGs to /v1/classify
// added 1.6-2.3 GB of RSS, unbounded).
func TestClassifyAdmission(t *testing.T) {
	gate := &admit.Gate{MaxConcurrent: 1, MaxWaiting: 2, MaxWait: time.Minute}
	backend := &fakeBackend{regs: map[string]manifest.Manifest{"hat": {Name: "hat", Labels: []string{"no", "yes"}}}}
	pm, err := project.Open(project.Config{Dir: filepath.Join(t.TempDir(), "projects"), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pm.Close() })
	srv := &httpapi.Server{Log: quiet}
	api.Mount(srv, api.Config{Backend: backend, Projects: pm, Log: quiet, Gate: gate})
	h, err := srv.Handler()
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)

	hold, err := gate.Acquire(context.Background(), 1) // the gate is full
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	statuses := make(chan [2]string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(ts.URL+"/v1/classify?model=hat", "image/jpeg", bytes.NewReader([]byte("img")))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- [2]string{resp.Status, resp.Header.Get("Retry-After")}
		}()
	}
	// MaxConcurrent + MaxWaiting = 3 requests are let in, 2 of them queue at the gate.
	testenv.Eventually(t, 30*time.Second, "2 waiting and 6 refused", func() bool { return gate.Stats().Waiting == 2 && len(statuses) == n-2 })
	hold()
	wg.Wait()
	close(statuses)
	counts := map[string]int{}
	for s := range statuses {
		counts[s[0]]++
		if s[0] == "503 Service Unavailable" && s[1] == "" {
			t.Error("503 without Retry-After")
		}
	}
	if counts["200 OK"] != 2 || counts["503 Service Unavailable"] != n-2 {
		t.Fatalf("answers %v, want 2 x 200 and %d x 503", counts, n-2)
	}
}

// At most two model uploads (up to --max-model-mb each) are held in memory at once; a third is
// 503 busy with Retry-After until one finishes.
func TestModelUploadsBounded(t *testing.T) {
	ts, _, _ := server(t, 1<<20, nil)
	var writers []*io.PipeWriter
	done := make(chan struct{}, 2)
	for range 2 { // two uploads whose bodies are still arriving
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		req, err := http.NewRequest("POST", ts.URL+"/v1/classifiers", pr)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
		go func() {
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
			done <- struct{}{}
		}()
		if _, err := pw.Write([]byte("--x\r\nContent-Disposition: form-data; name=\"model\"; filename=\"m.onnx\"\r\n\r\nonnx")); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 30*time.Second, "a third upload beside two in progress is 503", func() bool {
		resp, err := http.Post(ts.URL+"/v1/classifiers", "multipart/form-data; boundary=x", bytes.NewReader([]byte("--x--\r\n")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	for _, pw := range writers {
		_ = pw.CloseWithError(io.ErrUnexpectedEOF)
	}
	<-done
	<-done
	resp, err := http.Post(ts.URL+"/v1/classifiers", "multipart/form-data; boundary=x", bytes.NewReader([]byte("--x--\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("an upload once the others ended: %d, want 400 (an empty form)", resp.StatusCode)
	}
}
