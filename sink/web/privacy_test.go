package web

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"net/http"
	"testing"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/privacy"
	"github.com/vigil-video/vigil/pkg/result"
)

func decodeJPEG(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func boxRect(b result.Box) image.Rectangle {
	return image.Rect(int(b.X1), int(b.Y1), int(b.X2), int(b.Y2))
}

// TestLivePrivacy: on real NATS with a real photo, the live view sends each frame with the
// faces its result covers blurred: under blur-all both faces lose over 90% of their detail
// (Laplacian variance), under blur-unknown only the face without identity does while the
// identified one keeps it, and with privacy off the frame goes out byte for byte. With privacy
// on, a frame without its result is never served (a crop of it is 404 frame_not_analysed), a
// crop of an analysed frame is blurred too, and /v1/ui/config reports the mode.
func TestLivePrivacy(t *testing.T) {
	jpg, w, h := photo(t, "detect/two_people.jpg")
	orig := decodeJPEG(t, jpg)
	stranger := result.Box{X1: float32(w) * 0.1, Y1: float32(h) * 0.15, X2: float32(w) * 0.35, Y2: float32(h) * 0.55}
	known := result.Box{X1: float32(w) * 0.6, Y1: float32(h) * 0.15, X2: float32(w) * 0.85, Y2: float32(h) * 0.55}
	res := resultFor("cam", 1, w, h, "")
	res.Faces = []result.Face{{Box: stranger, Score: 0.99, TrackID: "t-1", UnknownID: "u-00000000000000aa"},
		{Box: known, Score: 0.99, TrackID: "t-2", Identity: &result.Identity{Name: "Ada", Similarity: 0.8}}}
	before := [2]float64{privacy.Detail(orig, boxRect(stranger)), privacy.Detail(orig, boxRect(known))}
	for _, tc := range []struct {
		mode privacy.Mode
		blur [2]bool // stranger, known
	}{{privacy.Off, [2]bool{}}, {privacy.BlurAll, [2]bool{true, true}}, {privacy.BlurUnknown, [2]bool{true, false}}} {
		t.Run(string(tc.mode), func(t *testing.T) {
			f := newFixture(t, Config{Privacy: tc.mode})
			var cfg UIConfig
			if getJSON(t, f.url+"/v1/ui/config", &cfg); cfg.Privacy != string(tc.mode) {
				t.Errorf("/v1/ui/config privacy %q, want %q", cfg.Privacy, tc.mode)
			}
			live := openLive(t, f.url+"/v1/ui/live/cam")
			live.next(t, "hello")
			f.publishFrame(t, "cam", 1, jpg, w, h)
			f.publishFrame(t, "cam", 2, jpg, w, h) // never gets a result
			f.publishJSON(t, bus.ResultsPrefix, "cam", res)
			f.flush(t)
			rec := live.next(t, "frame")
			if rec.meta["seq"] != float64(1) {
				t.Fatalf("frame record %s, want seq 1", rec.raw)
			}
			if tc.mode == privacy.Off {
				if !bytes.Equal(rec.image, jpg) {
					t.Error("with privacy off the live frame is not the published one")
				}
			}
			img := decodeJPEG(t, rec.image)
			for i, b := range []result.Box{stranger, known} {
				after := privacy.Detail(img, boxRect(b))
				t.Logf("%s: face %d detail %.1f -> %.1f (%.1f%%)", tc.mode, i, before[i], after, 100*after/before[i])
				if tc.blur[i] && after > 0.1*before[i] {
					t.Errorf("face %d keeps %.1f%% of its detail, want it blurred (under 10%%)", i, 100*after/before[i])
				}
				if !tc.blur[i] && after < 0.7*before[i] {
					t.Errorf("face %d keeps only %.1f%% of its detail, want it sharp", i, 100*after/before[i])
				}
			}
			crop := func(seq int) (int, []byte) {
				resp, err := http.Get(fmt.Sprintf("%s/v1/ui/crops/cam/%d?box=%g,%g,%g,%g&pad=0&size=512", f.url, seq, stranger.X1, stranger.Y1, stranger.X2, stranger.Y2))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, b
			}
			code, body := crop(2)
			switch {
			case tc.mode == privacy.Off && code != http.StatusOK:
				t.Errorf("crop of a frame without result, privacy off: %d %s", code, body)
			case tc.mode != privacy.Off && (code != http.StatusNotFound || !bytes.Contains(body, []byte("frame_not_analysed"))):
				t.Errorf("crop of a frame without result, privacy on: %d %s, want 404 frame_not_analysed", code, body)
			}
			code, body = crop(1)
			if code != http.StatusOK {
				t.Fatalf("crop of frame 1: %d %s", code, body)
			}
			c := decodeJPEG(t, body)
			cropBefore := privacy.Detail(orig, boxRect(stranger))
			cropAfter := privacy.Detail(c, c.Bounds())
			if tc.blur[0] != (cropAfter < 0.15*cropBefore) {
				t.Errorf("the stranger's crop keeps detail %.1f of %.1f: blurred %v, want %v", cropAfter, cropBefore, cropAfter < 0.15*cropBefore, tc.blur[0])
			}
		})
	}
}
