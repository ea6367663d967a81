package rtsptest

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"

	"github.com/vigil-video/vigil/pkg/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func testVideo(t *testing.T) string {
	return filepath.Join(testenv.TestData(t), "video", "fer_test.mp4")
}

// describe asks the server for the stream's description with a real RTSP client, returning
// the status code (200 when the stream is published).
func describe(t *testing.T, rawURL string, tlsConfig ...*tls.Config) (int, error) {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c := gortsplib.Client{ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second}
	if len(tlsConfig) > 0 {
		c.TLSConfig = tlsConfig[0]
	}
	if err := c.Start(u.Scheme, u.Host); err != nil {
		return 0, err
	}
	defer c.Close()
	desc, res, err := c.Describe(u)
	var bad liberrors.ErrClientBadStatusCode
	if errors.As(err, &bad) {
		return int(bad.Code), nil
	}
	if err != nil {
		return 0, err
	}
	if len(desc.Medias) != 1 || desc.Medias[0].Formats[0].Codec() != "H264" {
		t.Fatalf("described %d medias, want one H264", len(desc.Medias))
	}
	return int(res.StatusCode), nil
}

// TestServerLifecycle: the publisher's stream is served; killing the publisher ends it (404);
// a new publisher brings it back; Stop frees the port and Start reuses it.
func TestServerLifecycle(t *testing.T) {
	s := New(t, Options{Video: testVideo(t)})
	if code, err := describe(t, s.URL); err != nil || code != 200 {
		t.Fatalf("DESCRIBE %s: %d %v", s.URL, code, err)
	}
	if code, err := describe(t, s.URL+"x"); err != nil || code != 404 {
		t.Fatalf("DESCRIBE of another path: %d %v, want 404", code, err)
	}
	s.KillPublisher()
	if code, err := describe(t, s.URL); err != nil || code != 404 {
		t.Fatalf("DESCRIBE without publisher: %d %v, want 404", code, err)
	}
	if err := s.StartPublisher(); err != nil {
		t.Fatal(err)
	}
	if code, err := describe(t, s.URL); err != nil || code != 200 {
		t.Fatalf("DESCRIBE after republishing: %d %v", code, err)
	}
	addr := s.Addr
	s.Stop()
	if _, err := describe(t, s.URL); err == nil {
		t.Fatal("DESCRIBE succeeded on a stopped server")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if s.Addr != addr {
		t.Fatalf("restarted on %s, want %s", s.Addr, addr)
	}
	if code, err := describe(t, s.URL); err != nil || code != 200 {
		t.Fatalf("DESCRIBE after restart: %d %v", code, err)
	}
	if err := s.Start(); err == nil {
		t.Fatal("Start of a running server succeeded")
	}
	if err := s.Freeze(); err != nil {
		t.Fatal(err)
	}
	if err := s.Thaw(); err != nil {
		t.Fatal(err)
	}
}

// TestTLS: rtsps:// with the self-signed certificate.
func TestTLS(t *testing.T) {
	s := New(t, Options{Video: testVideo(t), TLS: true})
	if s.URL[:8] != "rtsps://" {
		t.Fatalf("URL %s", s.URL)
	}
	if code, err := describe(t, s.URL, s.ClientTLS()); err != nil || code != 200 {
		t.Fatalf("DESCRIBE %s: %d %v", s.URL, code, err)
	}
}

func TestClockRoundTrip(t *testing.T) {
	const w, h = 640, 360
	stride := w*3 + 12
	img := make([]byte, stride*h)
	now := time.UnixMilli(time.Now().UnixMilli())
	StampClock(img, w, h, stride, now)
	got, ok := ReadClock(img, w, h, stride)
	if !ok || !got.Equal(now) {
		t.Fatalf("ReadClock = %v %v, want %v", got, ok, now)
	}
	img[(w/clockCols/2)*stride+3*(w/clockCols/2)] ^= 0xff // flip bit 0
	img[(w/clockCols/2)*stride+3*(w/clockCols/2)+1] ^= 0xff
	img[(w/clockCols/2)*stride+3*(w/clockCols/2)+2] ^= 0xff
	if _, ok := ReadClock(img, w, h, stride); ok {
		t.Fatal("a damaged stamp was accepted")
	}
	if _, ok := ReadClock(make([]byte, 10), w, h, stride); ok {
		t.Fatal("a short buffer was accepted")
	}
}

// FuzzReadClock: any bytes and geometry either decode or are refused, without panicking.
func FuzzReadClock(f *testing.F) {
	img := make([]byte, 256*3*16)
	StampClock(img, 256, 16, 256*3, time.UnixMilli(1700000000000))
	f.Add(img, 256, 16, 256*3)
	f.Add([]byte{}, 0, 0, 0)
	f.Add(make([]byte, 100), 320, 10, 960)
	f.Fuzz(func(t *testing.T, b []byte, w, h, stride int) {
		if w < 0 || h < 0 || stride < 0 || w > 1<<16 || h > 1<<16 || stride > 1<<20 {
			return
		}
		ReadClock(b, w, h, stride)
	})
}
