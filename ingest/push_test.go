package ingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-video/vigil/ingest/streams"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/pkg/vision"
)

func testImage(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.TestData(t), "detect", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPushFrames: images POSTed to a push stream reach NATS as frames of the stream, scaled
// down, JPEG-encoded, numbered from 1 without gaps and stamped with the capture time given;
// garbage, truncated, oversize and too-many-pixel bodies get 4xx answers and use no sequence
// number; images faster than the stream's fps are sampled out.
func TestPushFrames(t *testing.T) {
	testenv.NeedsTestData(t)
	e := startManager(t, t.TempDir(), func(_ *Manager, r *streams.Registry) { r.PushMaxPixels = 3000 * 3000 })
	frames := e.frames(t, "door")
	if r := httpCall(t, "PUT", e.url+"/door", []byte(`{"source":"push","fps":240,"max_width":320,"max_height":240}`)); r.status != http.StatusCreated {
		t.Fatalf("create: %v", r)
	}
	jpeg, png := testImage(t, "two_people.jpg"), testImage(t, "obama_32bit.png")
	captured := time.Now().Add(-150 * time.Millisecond).Truncate(time.Microsecond)
	push := func(body []byte, headers ...string) apiResponse {
		t.Helper()
		return httpCall(t, "POST", e.url+"/door/frames", body, headers...)
	}
	r := push(jpeg, "Content-Type", "image/jpeg", streams.CapturedHeader, strconv.FormatInt(captured.UnixNano(), 10))
	if r.status != http.StatusAccepted || r.json["seq"] != 1.0 || r.json["width"].(float64) > 320 || r.json["height"].(float64) > 240 {
		t.Fatalf("push JPEG: %v", r)
	}
	f := next(t, frames, 10*time.Second)
	if f.Seq != 1 || f.Width > 320 || f.Height > 240 || !f.Captured.Equal(captured) || f.Encoding != "jpeg" {
		t.Fatalf("frame 1: seq %d %dx%d captured %v (pushed %v) %s", f.Seq, f.Width, f.Height, f.Captured, captured, f.Encoding)
	}
	m, err := vision.Decode(f.Data, 0)
	if err != nil {
		t.Fatalf("the published frame does not decode: %v", err)
	}
	if m.Cols() != f.Width || m.Rows() != f.Height {
		t.Errorf("frame is %dx%d, its headers say %dx%d", m.Cols(), m.Rows(), f.Width, f.Height)
	}
	m.Close()

	// Refused bodies use no sequence number.
	truncated := jpeg[:len(jpeg)/2]
	huge := bytes.Repeat([]byte{0xff, 0xd8, 0xff, 0}, (2<<20)/4)
	for _, c := range []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"garbage", []byte("GET / HTTP/1.0\r\n\r\n"), 400, "invalid_image"},
		{"truncated JPEG", truncated, 400, "invalid_image"},
		{"empty", nil, 400, "invalid_image"},
		{"2 MiB body", huge, 413, "body_too_large"},
		{"50000x50000 PNG header", pngHeader(50000, 50000), 413, "image_too_large"},
	} {
		if r := push(c.body); r.status != c.status || r.code() != c.code {
			t.Errorf("%s: %v, want %d %s", c.name, r, c.status, c.code)
		}
	}
	if r := push(jpeg, "Content-Type", "text/html"); r.status != http.StatusUnsupportedMediaType {
		t.Errorf("text/html: %v", r)
	}
	if r := push(png, "Content-Type", "image/png"); r.status != http.StatusAccepted || r.json["seq"] != 2.0 {
		t.Fatalf("push PNG after the refusals: %v", r)
	}
	if f := next(t, frames, 10*time.Second); f.Seq != 2 {
		t.Fatalf("frame 2: seq %d", f.Seq)
	}
	for i := uint64(3); i <= 5; i++ {
		if r := push(jpeg); r.status != http.StatusAccepted {
			t.Fatalf("push %d: %v", i, r)
		}
		if f := next(t, frames, 10*time.Second); f.Seq != i {
			t.Fatalf("frame %d: seq %d", i, f.Seq)
		}
	}

	// Sampling by capture time: at 1 fps, an image 100 ms after the last is not published.
	if r := httpCall(t, "PATCH", e.url+"/door", []byte(`{"fps":1}`)); r.status != 200 {
		t.Fatalf("patch fps: %v", r)
	}
	t0 := time.Now().Add(-5 * time.Second)
	at := func(d time.Duration) []string {
		return []string{streams.CapturedHeader, strconv.FormatInt(t0.Add(d).UnixNano(), 10)}
	}
	if r := push(jpeg, at(0)...); r.status != http.StatusAccepted || r.json["seq"] != 6.0 {
		t.Fatalf("first at 1 fps: %v", r)
	}
	if r := push(jpeg, at(100*time.Millisecond)...); r.status != http.StatusOK || r.json["published"] != false || r.json["reason"] != DropSampled {
		t.Fatalf("100 ms later: %v", r)
	}
	if r := push(jpeg, at(1100*time.Millisecond)...); r.status != http.StatusAccepted || r.json["seq"] != 7.0 {
		t.Fatalf("1.1 s later: %v", r)
	}
	// Decoded: the 7 published; the truncated JPEG passed the header check but not the decoder.
	if st := e.mgr.Stats()["door"]; st.Published != 7 || st.Skipped != 1 || st.Decoded != 7 {
		t.Fatalf("stats %+v, want 7 decoded and published, 1 sampled out", st)
	}
	if st, _ := e.mgr.Status("door"); st.Dropped != 1 || st.SampledOut != 1 {
		t.Fatalf("dropped %d, sampled out %d: want 1 dropped (invalid) and 1 sampled out, apart", st.Dropped, st.SampledOut)
	}

	// Disabled: refused; the stream's frames stop.
	if r := httpCall(t, "PATCH", e.url+"/door", []byte(`{"enabled":false}`)); r.status != 200 {
		t.Fatalf("disable: %v", r)
	}
	if r := push(jpeg); r.status != http.StatusConflict || r.code() != streams.CodeDisabled {
		t.Fatalf("push to a disabled stream: %v", r)
	}
}

// pngHeader is a PNG signature and IHDR chunk declaring w x h pixels.
func pngHeader(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
	b = append(b, byte(w>>24), byte(w>>16), byte(w>>8), byte(w), byte(h>>24), byte(h>>16), byte(h>>8), byte(h), 8, 2, 0, 0, 0)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[12:]))
}

// TestPushBusy: a push stream takes one image at a time with a bounded queue; beyond it, pushes
// are refused with ErrBusy (429) instead of waiting without bound.
func TestPushBusy(t *testing.T) {
	testenv.NeedsTestData(t)
	nc, _ := startNATS(t)
	obs := &streamObs{}
	p, err := newPushRunner(nc, "busy", tuning{FPS: 240, MaxWidth: 64, MaxHeight: 64, JPEGQuality: 80}, obs, 0, 1, testLog())
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	for i := 0; i < cap(p.slots); i++ {
		p.slots <- struct{}{} // images in progress
	}
	_, err = p.push(context.Background(), testImage(t, "no-faces.jpg"), time.Now())
	if !errors.Is(err, streams.ErrBusy) || streams.AsError(err).Status != http.StatusTooManyRequests {
		t.Fatalf("push to a full stream: %v", err)
	}
	if obs.drops[dropBusy].Load() != 1 {
		t.Fatal("the refusal was not counted")
	}
	for i := 0; i < cap(p.slots); i++ {
		<-p.slots
	}
	res, err := p.push(context.Background(), testImage(t, "no-faces.jpg"), time.Now())
	if err != nil || !res.Published || res.Seq != 1 || res.Width > 64 {
		t.Fatalf("push once there is room: %+v %v", res, err)
	}
	p.close()
	if _, err := p.push(context.Background(), testImage(t, "no-faces.jpg"), time.Now()); !errors.Is(err, streams.ErrNotFound) {
		t.Fatalf("push after close: %v", err)
	}
}
