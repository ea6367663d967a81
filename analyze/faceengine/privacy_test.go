package faceengine

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/jpeg"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-video/vigil/analyze/faceapi"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/privacy"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestAnnotatePrivacy: with privacy blur-all (or blur-unknown and no gallery) /v1/annotate's
// image keeps under 5% of the face's detail (Laplacian variance inside its box), against the
// same server without privacy.
func TestAnnotatePrivacy(t *testing.T) {
	photo, err := os.ReadFile(filepath.Join(testenv.TestData(t), "faces", "Barack_Obama", "obama.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t)
	serve := func(mode privacy.Mode) string {
		srv := &httpapi.Server{Addr: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler)}
		if _, err := faceapi.Mount(srv, faceapi.Config{Engine: e, Privacy: mode, Log: slog.New(slog.DiscardHandler)}); err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Close() })
		return srv.URL()
	}
	post := func(u, path string) []byte {
		resp, err := http.Post(u+path, "image/jpeg", bytes.NewReader(photo))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		return b
	}
	off, all, unknown := serve(privacy.Off), serve(privacy.BlurAll), serve(privacy.BlurUnknown)
	var det faceapi.FacesResponse
	if err := json.Unmarshal(post(off, "/v1/detect"), &det); err != nil || len(det.Faces) == 0 {
		t.Fatalf("detect: %+v %v", det, err)
	}
	b := det.Faces[0].Box
	w, h := int(b.X2-b.X1), int(b.Y2-b.Y1)
	inner := image.Rect(int(b.X1)+w/6, int(b.Y1)+h/6, int(b.X2)-w/6, int(b.Y2)-h/6) // inside the drawn box and its labels
	detail := func(jpg []byte) float64 {
		img, err := jpeg.Decode(bytes.NewReader(jpg))
		if err != nil {
			t.Fatal(err)
		}
		g := func(x, y int) float64 {
			r, gg, bb, _ := img.At(x, y).RGBA()
			return 0.299*float64(r>>8) + 0.587*float64(gg>>8) + 0.114*float64(bb>>8)
		}
		var s, s2, n float64
		for y := inner.Min.Y + 1; y < inner.Max.Y-1; y++ {
			for x := inner.Min.X + 1; x < inner.Max.X-1; x++ {
				l := g(x-1, y) + g(x+1, y) + g(x, y-1) + g(x, y+1) - 4*g(x, y)
				s, s2, n = s+l, s2+l*l, n+1
			}
		}
		return s2/n - (s/n)*(s/n)
	}
	sharp := detail(post(off, "/v1/annotate"))
	for name, u := range map[string]string{"blur-all": all, "blur-unknown": unknown} {
		if v := detail(post(u, "/v1/annotate")); v > 0.05*sharp {
			t.Errorf("%s: the annotated face keeps %.1f of %.1f detail, want under 5%%", name, v, sharp)
		}
	}
}
