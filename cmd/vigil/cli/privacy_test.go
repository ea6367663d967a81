package cli

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"image"
	"image/jpeg"
	"io"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/privacy"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/sink/web"
)

// liveFrame is a "frame" record of the web UI's live stream: its result and image.
type liveFrame struct {
	Seq    uint64        `json:"seq"`
	Result result.Result `json:"result"`
	image  []byte
}

// nextLiveFrame reads records from the live stream r until a "frame" record.
func nextLiveFrame(t *testing.T, r *bufio.Reader) liveFrame {
	t.Helper()
	for {
		var hdr [16]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			t.Fatalf("reading the live stream: %v", err)
		}
		js, img := make([]byte, binary.BigEndian.Uint32(hdr[0:])), make([]byte, binary.BigEndian.Uint32(hdr[4:]))
		if _, err := io.ReadFull(r, js); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, img); err != nil {
			t.Fatal(err)
		}
		var head struct{ Type string }
		if err := json.Unmarshal(js, &head); err != nil {
			t.Fatal(err)
		}
		if head.Type != "frame" {
			continue
		}
		var f liveFrame
		if err := json.Unmarshal(js, &f); err != nil {
			t.Fatal(err)
		}
		f.image = img
		return f
	}
}

// frameTap keeps the frames published on vigil.frames.<stream>, by seq (the originals the
// live view is compared with).
type frameTap struct {
	mu     sync.Mutex
	frames map[uint64][]byte
}

func (ft *frameTap) get(seq uint64) []byte {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return ft.frames[seq]
}

// TestLiveViewPrivacy: vigil run on the shared video (real NATS, OpenCV, models) with the web
// UI: under --privacy blur-all a live-view frame's face region keeps a few percent of the
// detail (Laplacian variance) of the frame ingest published; with --privacy off the frame goes
// out unchanged; under blur-unknown the woman's face is blurred until she is enrolled (through
// /v1/identities, with a frame of the video) and sharp once her track is recognised.
func TestLiveViewPrivacy(t *testing.T) {
	data := testenv.TestData(t)
	video := filepath.Join(data, "video", "fer_test.mp4")
	enrolPhoto := videoFrameJPEG(t, video, 2)
	for _, mode := range []privacy.Mode{privacy.BlurAll, privacy.Off, privacy.BlurUnknown} {
		t.Run(string(mode), func(t *testing.T) {
			run := startCommand(t, map[string]string{"VIGIL_DEPS": testenv.DepsDir(t)}, "run", "--nats-port", "0", "--http-addr", "127.0.0.1:0",
				"--source", video, "--stream", "fer", "--heads", "embedding", "--events-db", "off", "--privacy", string(mode), "--log-json")
			page := run.logValue(t, 2*time.Minute, "Vigil is running: open the web view", "url")
			natsURL := run.logValue(t, time.Minute, "results are on NATS subjects vigil.results.<stream>", "nats")
			nc, err := nats.Connect(natsURL)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			tap := &frameTap{frames: map[uint64][]byte{}}
			if _, err := nc.Subscribe(bus.FramesPrefix+".fer", func(m *nats.Msg) {
				f, err := frame.FromMsg(m)
				if err != nil {
					return
				}
				tap.mu.Lock()
				tap.frames[f.Seq] = f.Data
				delete(tap.frames, f.Seq-200)
				tap.mu.Unlock()
			}); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			resp, err := (&http.Client{Timeout: 3 * time.Minute}).Get(page + "v1/ui/live/fer")
			if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != web.LiveContentType {
				t.Fatalf("live view: %v %v", resp, err)
			}
			defer resp.Body.Close()
			live := bufio.NewReader(resp.Body)

			// check compares the face of a live frame with the published frame: its detail ratio.
			check := func(f liveFrame) (ratio float64, ok bool) {
				orig := tap.get(f.Seq)
				if orig == nil || len(f.Result.Faces) != 1 {
					return 0, false
				}
				if mode == privacy.Off && !bytes.Equal(orig, f.image) {
					t.Errorf("frame %d: with privacy off the live image differs from the published frame", f.Seq)
				}
				a, err := jpeg.Decode(bytes.NewReader(orig))
				if err != nil {
					t.Fatal(err)
				}
				b, err := jpeg.Decode(bytes.NewReader(f.image))
				if err != nil {
					t.Fatal(err)
				}
				bx := f.Result.Faces[0].Box
				r := image.Rect(int(bx.X1), int(bx.Y1), int(bx.X2), int(bx.Y2))
				return privacy.Detail(b, r) / privacy.Detail(a, r), true
			}
			enrolled, deadline := false, time.Now().Add(2*time.Minute)
			blurredUnknown := 0
			for checked := 0; checked < 3; {
				if time.Now().After(deadline) {
					t.Fatalf("no recognised face in the live view within 2 minutes (%d checked)", checked)
				}
				f := nextLiveFrame(t, live)
				ratio, ok := check(f)
				if !ok {
					continue
				}
				face := f.Result.Faces[0]
				t.Logf("%s: frame %d identity %v unknown_id %q: face detail %.1f%% of the published frame's", mode, f.Seq, face.Identity, face.UnknownID, 100*ratio)
				switch {
				case mode == privacy.BlurAll && ratio > 0.1, mode == privacy.BlurUnknown && face.Identity == nil && ratio > 0.1:
					t.Errorf("frame %d: the face keeps %.1f%% of its detail, want it blurred", f.Seq, 100*ratio)
				case mode == privacy.Off && ratio < 0.999, mode == privacy.BlurUnknown && face.Identity != nil && ratio < 0.7:
					t.Errorf("frame %d: the face keeps only %.1f%% of its detail, want it as published", f.Seq, 100*ratio)
				}
				if mode != privacy.BlurUnknown {
					checked++
					continue
				}
				if face.Identity == nil {
					blurredUnknown++
				} else {
					checked++
				}
				if !enrolled && blurredUnknown >= 2 {
					enrolled = true
					enrol(t, page, "Fer Woman", enrolPhoto)
				}
			}
			if mode == privacy.BlurUnknown && blurredUnknown < 2 {
				t.Errorf("%d unknown frames before enrolment", blurredUnknown)
			}
		})
	}
}

// enrol creates identity name from photo through POST /v1/identities.
func enrol(t *testing.T, base, name string, photo []byte) {
	t.Helper()
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	_ = mw.WriteField("name", name)
	fw, _ := mw.CreateFormFile("photos", "photo.jpg")
	_, _ = fw.Write(photo)
	_ = mw.Close()
	resp, err := http.Post(base+"v1/identities", mw.FormDataContentType(), &form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("enrol %s: %d %s", name, resp.StatusCode, b)
	}
}
