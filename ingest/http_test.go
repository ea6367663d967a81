package ingest

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/testenv"
)

// mjpegFrames encodes n distinct w x h JPEG frames.
func mjpegFrames(t *testing.T, n, w, h int) [][]byte {
	t.Helper()
	var out [][]byte
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < n; i++ {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				img.Set(x, y, color.RGBA{R: uint8(x + 10*i), G: uint8(y), B: uint8(20 * i), A: 255})
			}
		}
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}); err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Bytes())
	}
	return out
}

// cameraServer is an httptest server shaped like an IP camera's web server: a multipart MJPEG
// stream, a video file, its web interface (HTML), a missing page, and a stream that never
// sends a byte of its body.
func cameraServer(t *testing.T) *httptest.Server {
	t.Helper()
	frames := mjpegFrames(t, 10, 320, 240)
	video := faceVideo(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/video.mjpg", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=vigilframe")
		tick := time.NewTicker(40 * time.Millisecond) // a 25 fps camera
		defer tick.Stop()
		for i := 0; ; i++ {
			f := frames[i%len(frames)]
			if _, err := fmt.Fprintf(w, "--vigilframe\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(f)); err != nil {
				return
			}
			if _, err := w.Write(append(f, "\r\n"...)); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	})
	mux.HandleFunc("/clip.mp4", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, video)
	})
	mux.HandleFunc("/index.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><html><body><form>Login</form></body></html>")
	})
	mux.HandleFunc("/silent.mjpg", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=x")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestHTTPMJPEG: a camera's multipart/x-mixed-replace JPEG stream, through Open.
func TestHTTPMJPEG(t *testing.T) {
	cam := cameraServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := Open(ctx, cam.URL+"/video.mjpg", OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	readFrames(ctx, t, src, 10, 320, 240)
	if st := liveStats(t, src); st.State != StateLive || st.FramesRead < 10 {
		t.Fatalf("stats %+v", st)
	}
}

// TestHTTPVideo: a video file served over HTTP is read like a stream; at its end the source
// reconnects (a live source's stream ending is a failure) and reads it again.
func TestHTTPVideo(t *testing.T) {
	cam := cameraServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := OpenLive(ctx, "clip", func(ctx context.Context) (Source, error) {
		return OpenNetwork(ctx, cam.URL+"/clip.mp4", NetworkOptions{KeepBurst: true})
	}, Backoff{Initial: 10 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	readFrames(ctx, t, src, 5, 596, 336)
	testenv.Eventually(t, 20*time.Second, "the clip's end and a reconnection", func() bool { return src.Stats().Reconnects > 0 })
	readFrames(ctx, t, src, 5, 596, 336)
	if st := src.Stats(); !strings.Contains(st.LastError, "stream ended") {
		t.Fatalf("last error %q, want the stream's end", st.LastError)
	}
}

// TestHTTPOpenErrors: a missing page, a web page, a refused port and a silent server fail
// quickly with an error that says which.
func TestHTTPOpenErrors(t *testing.T) {
	cam := cameraServer(t)
	ctx := context.Background()
	cases := []struct {
		url, want string
		opts      NetworkOptions
		within    time.Duration
	}{
		{cam.URL + "/missing.mjpg", "HTTP 404 Not Found", NetworkOptions{}, 3 * time.Second},
		{cam.URL + "/index.html", "web page (text/html)", NetworkOptions{}, 3 * time.Second},
		{"http://" + freePort(t) + "/video.mjpg", "connection refused", NetworkOptions{}, 3 * time.Second},
		{"http://admin:hunter2@" + freePort(t) + "/video.mjpg", "connection refused", NetworkOptions{}, 3 * time.Second},
		{cam.URL + "/silent.mjpg", "open timeout of 1s", NetworkOptions{OpenTimeout: time.Second}, 4 * time.Second},
	}
	for _, c := range cases {
		start := time.Now()
		src, err := OpenNetwork(ctx, c.url, c.opts)
		took := time.Since(start)
		if err == nil {
			src.Close()
			t.Errorf("%s: opened", c.url)
			continue
		}
		t.Logf("%v (%v)", err, took.Round(time.Millisecond))
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.url, err, c.want)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error shows the password: %v", err)
		}
		if took > c.within {
			t.Errorf("%s: failing took %v, want under %v", c.url, took, c.within)
		}
	}
	// Through Open as well: the dispatch reports the same.
	if _, err := Open(ctx, cam.URL+"/index.html", OpenOptions{}); err == nil || !strings.Contains(err.Error(), "web page") {
		t.Errorf("Open of a web page: %v", err)
	}
}

func TestDescribeContentType(t *testing.T) {
	for ct, want := range map[string]string{
		"":                            "no Content-Type",
		"text/html; charset=utf-8":    "web page",
		"application/json":            "sent \"application/json\", not video",
		"video/mp4":                   "could not decode as video",
		"multipart/x-mixed-replace; ": "multipart/x-mixed-replace",
	} {
		if got := describeContentType(ct); !strings.Contains(got, want) {
			t.Errorf("describeContentType(%q) = %q, want %q in it", ct, got, want)
		}
	}
}
