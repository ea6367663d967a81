package faceengine

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/vigil-video/vigil/analyze/faceapi"
	"github.com/vigil-video/vigil/pkg/admit"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// Many parallel large images: the gate's room taken, each request is either admitted later
// (200) or refused at once with 503 busy and a Retry-After (the probe's 12 parallel 8192²
// JPEGs added up to 2.3 GB), never 500; and the admitted ones decode within the pixel budget.
func TestAPIAdmissionUnderLoad(t *testing.T) {
	testenv.NeedsTestData(t)
	e := newEngine(t)
	const side = 4096
	gate := &admit.Gate{MaxConcurrent: 2, MaxWaiting: 3, MaxPixels: 2 * side * side, MaxWait: time.Minute}
	srv := &httpapi.Server{Addr: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler)}
	if _, err := faceapi.Mount(srv, faceapi.Config{Engine: e, Gate: gate, MaxConcurrent: 2, MaxWaiting: 3,
		Log: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	var b bytes.Buffer
	if err := jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, side, side)), &jpeg.Options{Quality: 50}); err != nil {
		t.Fatal(err)
	}
	big := b.Bytes()

	// Take all the room, so that every request below finds the gate full.
	hold, err := gate.Acquire(context.Background(), gate.MaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	const n = 12
	type answer struct {
		status     int
		retryAfter string
	}
	answers := make(chan answer, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(srv.URL()+"/v1/detect", "image/jpeg", bytes.NewReader(big))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			answers <- answer{resp.StatusCode, resp.Header.Get("Retry-After")}
		}()
	}
	// 2 + 3 get past the early check (MaxConcurrent + MaxWaiting), 3 of them queue at the gate:
	// the other 9 are refused at once.
	testenv.Eventually(t, 30*time.Second, "3 waiting and 9 refused", func() bool { return gate.Stats().Waiting == 3 && len(answers) == n-3 })
	hold()
	wg.Wait()
	close(answers)
	counts := map[int]int{}
	for a := range answers {
		counts[a.status]++
		if a.status == http.StatusServiceUnavailable && a.retryAfter == "" {
			t.Error("503 without Retry-After")
		}
	}
	if counts[200] != 3 || counts[503] != n-3 {
		t.Fatalf("answers by status %v, want 3 x 200 and %d x 503", counts, n-3)
	}
	if s := gate.Stats(); s.Running != 0 || s.Pixels != 0 || s.Admitted != 4 {
		t.Fatalf("gate after the storm: %+v", s)
	}
}
