package snapshot

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/pkg/testenv"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/bus/bustest"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/result"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var red = color.RGBA{220, 20, 20, 255}

// picture is a w x h grey image with a red square at (x, y, x+side, y+side).
func picture(w, h, x, y, side int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for py := 0; py < h; py++ {
		for px := 0; px < w; px++ {
			c := color.RGBA{90, 90, 90, 255}
			if px >= x && px < x+side && py >= y && py < y+side {
				c = red
			}
			img.SetRGBA(px, py, c)
		}
	}
	return img
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func testFrame(t testing.TB, stream string, seq uint64, captured time.Time) frame.Frame {
	data := encodeJPEG(t, picture(320, 240, 100, 60, 80))
	return frame.Frame{Stream: stream, Seq: seq, Captured: captured, Width: 320, Height: 240,
		Encoding: frame.EncodingJPEG, Data: data}
}

func decode(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("snapshot is not a JPEG: %v", err)
	}
	return img
}

func isRed(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r>>8 > 180 && g>>8 < 70 && b>>8 < 70
}

// TestCrop: the snapshot shows the box (scaled when the box refers to another size), padded,
// bounded by Size.
func TestCrop(t *testing.T) {
	f := testFrame(t, "cam", 1, time.Time{})
	for name, tc := range map[string]struct {
		crop     event.Crop
		opts     Options
		wantW    int
		wantH    int
		allRedAt [2]int
	}{
		"frame pixels": {event.Crop{Box: result.Box{X1: 100, Y1: 60, X2: 180, Y2: 140}, Width: 320, Height: 240},
			Options{Pad: -1, Size: 400}, 80, 80, [2]int{40, 40}},
		"scaled box": {event.Crop{Box: result.Box{X1: 200, Y1: 120, X2: 360, Y2: 280}, Width: 640, Height: 480},
			Options{Pad: -1, Size: 400}, 80, 80, [2]int{40, 40}},
		"padded": {event.Crop{Box: result.Box{X1: 100, Y1: 60, X2: 180, Y2: 140}},
			Options{Pad: 0.25, Size: 400}, 120, 120, [2]int{60, 60}},
		"shrunk": {event.Crop{Box: result.Box{X1: 100, Y1: 60, X2: 180, Y2: 140}},
			Options{Pad: -1, Size: 40}, 40, 40, [2]int{20, 20}},
		"clipped": {event.Crop{Box: result.Box{X1: 300, Y1: 200, X2: 400, Y2: 300}},
			Options{Pad: -1, Size: 400}, 20, 40, [2]int{-1, -1}},
	} {
		b, err := Crop(f, tc.crop, tc.opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		img := decode(t, b)
		if img.Bounds().Dx() != tc.wantW || img.Bounds().Dy() != tc.wantH {
			t.Errorf("%s: %v, want %dx%d", name, img.Bounds(), tc.wantW, tc.wantH)
		}
		if p := tc.allRedAt; p[0] >= 0 && !isRed(img.At(p[0], p[1])) {
			t.Errorf("%s: centre %v is not the red square", name, img.At(p[0], p[1]))
		}
	}
}

func TestCropPNG(t *testing.T) {
	var b bytes.Buffer
	if err := png.Encode(&b, picture(64, 48, 10, 10, 20)); err != nil {
		t.Fatal(err)
	}
	f := frame.Frame{Stream: "cam", Seq: 1, Width: 64, Height: 48, Encoding: frame.EncodingPNG, Data: b.Bytes()}
	out, err := Crop(f, event.Crop{Box: result.Box{X1: 10, Y1: 10, X2: 30, Y2: 30}}, Options{Pad: -1})
	if err != nil {
		t.Fatal(err)
	}
	if img := decode(t, out); !isRed(img.At(10, 10)) {
		t.Fatal("PNG crop lost the square")
	}
}

// TestCropRefuses: empty boxes, non-finite boxes, garbage, and images whose header declares
// more pixels than allowed (refused before decoding).
func TestCropRefuses(t *testing.T) {
	f := testFrame(t, "cam", 1, time.Time{})
	if _, err := Crop(f, event.Crop{Box: result.Box{X1: 400, Y1: 300, X2: 500, Y2: 400}}, Options{Pad: -1}); !errors.Is(err, ErrEmptyCrop) {
		t.Errorf("outside: %v", err)
	}
	if _, err := Crop(f, event.Crop{Box: result.Box{X1: 50, Y1: 50, X2: 10, Y2: 60}}, Options{}); !errors.Is(err, ErrEmptyCrop) {
		t.Errorf("inverted: %v", err)
	}
	nan := float32(0)
	nan /= nan
	if _, err := Crop(f, event.Crop{Box: result.Box{X1: nan, Y1: 0, X2: 10, Y2: 10}}, Options{}); err == nil {
		t.Error("NaN box accepted")
	}
	if _, err := Crop(frame.Frame{Encoding: frame.EncodingJPEG, Data: []byte("not a jpeg")}, event.Crop{Box: result.Box{X2: 1, Y2: 1}}, Options{}); err == nil {
		t.Error("garbage accepted")
	}
	if _, err := Crop(frame.Frame{Encoding: "gif", Data: f.Data}, event.Crop{Box: result.Box{X2: 1, Y2: 1}}, Options{}); err == nil {
		t.Error("unknown encoding accepted")
	}
	big := bigHeader(t, f.Data, 20000, 20000)
	if _, err := Crop(frame.Frame{Encoding: frame.EncodingJPEG, Data: big}, event.Crop{Box: result.Box{X2: 10, Y2: 10}}, Options{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("20000x20000: %v", err)
	}
	if _, err := Crop(f, event.Crop{Box: result.Box{X2: 10, Y2: 10}}, Options{MaxPixels: 320*240 - 1}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxPixels: %v", err)
	}
}

// bigHeader rewrites a baseline JPEG's frame header (SOF0) to declare w x h.
func bigHeader(t *testing.T, data []byte, w, h int) []byte {
	out := append([]byte(nil), data...)
	i := bytes.Index(out, []byte{0xff, 0xc0})
	if i < 0 {
		t.Fatal("no SOF0 marker")
	}
	out[i+5], out[i+6] = byte(h>>8), byte(h)
	out[i+7], out[i+8] = byte(w>>8), byte(w)
	return out
}

// TestRingBounds: frames per stream, bytes per stream and streams are bounded; lookups match seq
// and capture time.
func TestRingBounds(t *testing.T) {
	f := testFrame(t, "a", 1, time.Unix(0, 1000))
	r := &Ring{MaxFrames: 3, MaxBytes: int64(len(f.Data)) * 10, MaxStreams: 2}
	for seq := uint64(1); seq <= 5; seq++ {
		g := f
		g.Seq, g.Captured = seq, time.Unix(0, int64(seq)*1000)
		r.Put(g)
	}
	if _, ok := r.Frame("a", 2, 0); ok {
		t.Error("frame 2 still held with MaxFrames 3")
	}
	if _, ok := r.Frame("a", 5, 5000); !ok {
		t.Error("newest frame not held")
	}
	if _, ok := r.Frame("a", 5, 4000); ok {
		t.Error("capture time not checked")
	}
	// Bytes: a ring with room for two frames' bytes keeps two.
	rb := &Ring{MaxFrames: 10, MaxBytes: int64(2*len(f.Data) + 1)}
	for seq := uint64(1); seq <= 4; seq++ {
		g := f
		g.Seq = seq
		rb.Put(g)
	}
	if s := rb.Stats(); s.Held != 2 {
		t.Errorf("held %d frames, want 2 (byte bound)", s.Held)
	}
	// Streams: a third stream evicts the idlest.
	g := f
	g.Stream = "b"
	r.Put(g)
	g.Stream = "a"
	r.Put(g)
	g.Stream = "c"
	r.Put(g)
	if _, ok := r.Frame("b", 1, 0); ok {
		t.Error("idlest stream b not evicted")
	}
	if s := r.Stats(); s.Streams != 2 {
		t.Errorf("%d streams held, want 2", s.Streams)
	}
}

// TestRingFromNATS: frames published on vigil.frames.<stream> by a real NATS server fill the
// ring; Snapshot resolves an event's crop reference; a missing frame is ErrNoFrame.
func TestRingFromNATS(t *testing.T) {
	srv := bustest.StartServer(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ring := &Ring{Conn: nc, Streams: []string{"lobby"}}
	ctx := context.Background()
	if err := ring.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	captured := time.Date(2026, 11, 22, 0, 5, 14, 123456789, time.UTC)
	for _, stream := range []string{"lobby", "door"} {
		f := testFrame(t, stream, 42, captured)
		subj, _ := bus.Subject(bus.FramesPrefix, stream)
		m, err := f.Msg(subj)
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Publish("vigil.frames.lobby", []byte("no headers")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the ring to hold the frames", func() bool { s := ring.Stats(); return s.Frames == 1 && s.Invalid == 1 })
	c := event.Crop{Stream: "lobby", Seq: 42, CapturedAt: captured, Box: result.Box{X1: 100, Y1: 60, X2: 180, Y2: 140}, Width: 320, Height: 240}
	b, err := ring.Snapshot(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if img := decode(t, b); !isRed(img.At(img.Bounds().Dx()/2, img.Bounds().Dy()/2)) {
		t.Fatal("snapshot does not show the face box")
	}
	c.Seq = 41
	if _, err := ring.Snapshot(ctx, c); !errors.Is(err, ErrNoFrame) {
		t.Fatalf("missing frame: %v", err)
	}
	if _, err := ring.Snapshot(ctx, event.Crop{Stream: "door", Seq: 42, Box: c.Box}); !errors.Is(err, ErrNoFrame) {
		t.Fatalf("stream outside Streams: %v", err)
	}
	if s := ring.Stats(); s.Hits != 1 || s.Misses != 2 {
		t.Fatalf("stats %+v", s)
	}
	if err := ring.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRingCropErrors: the injected crop function's error is returned and counted.
func TestRingCropErrors(t *testing.T) {
	boom := errors.New("boom")
	r := &Ring{Crop: func(frame.Frame, event.Crop) ([]byte, error) { return nil, boom }}
	r.Put(testFrame(t, "a", 1, time.Time{}))
	if _, err := r.Snapshot(context.Background(), event.Crop{Stream: "a", Seq: 1}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if r.Stats().CropErrors != 1 {
		t.Fatal("crop error not counted")
	}
}

func FuzzCrop(f *testing.F) {
	small := encodeJPEG(f, picture(32, 24, 4, 4, 8))
	f.Add(small, float32(4), float32(4), float32(12), float32(12), 32, 24, false)
	f.Add(small, float32(-10), float32(-10), float32(100), float32(100), 0, 0, false)
	var b bytes.Buffer
	_ = png.Encode(&b, picture(8, 8, 1, 1, 3))
	f.Add(b.Bytes(), float32(1), float32(1), float32(4), float32(4), 8, 8, true)
	f.Fuzz(func(t *testing.T, data []byte, x1, y1, x2, y2 float32, w, h int, isPNG bool) {
		enc := frame.EncodingJPEG
		if isPNG {
			enc = frame.EncodingPNG
		}
		out, err := Crop(frame.Frame{Seq: 1, Encoding: enc, Data: data},
			event.Crop{Box: result.Box{X1: x1, Y1: y1, X2: x2, Y2: y2}, Width: w, Height: h},
			Options{Size: 64, MaxPixels: 1 << 20})
		if err != nil {
			return
		}
		img, err := jpeg.Decode(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("Crop returned a JPEG that does not decode: %v", err)
		}
		if b := img.Bounds(); b.Dx() > 64 || b.Dy() > 64 || b.Empty() {
			t.Fatalf("snapshot %v outside 1..64 a side", b)
		}
	})
}

// BenchmarkCrop: one snapshot out of a 1280x720 JPEG frame (decode, crop, scale, encode).
func BenchmarkCrop(b *testing.B) {
	data := encodeJPEG(b, picture(1280, 720, 500, 200, 240))
	f := frame.Frame{Stream: "cam", Seq: 1, Width: 1280, Height: 720, Encoding: frame.EncodingJPEG, Data: data}
	c := event.Crop{Box: result.Box{X1: 500, Y1: 200, X2: 740, Y2: 440}, Width: 1280, Height: 720}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Crop(f, c, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
