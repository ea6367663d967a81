package videoio

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/pkg/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func testVideo(t *testing.T) string {
	return filepath.Join(testenv.TestData(t), "video", "fer_test.mp4")
}

func TestTimeouts(t *testing.T) {
	got := Timeouts(1500*time.Microsecond, 2*time.Second)
	want := []int{PropOpenTimeoutMsec, 2, PropReadTimeoutMsec, 2000}
	if len(got) != len(want) {
		t.Fatalf("Timeouts = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Timeouts = %v, want %v", got, want)
		}
	}
	if p := Timeouts(0, 0); len(p) != 0 {
		t.Fatalf("Timeouts(0, 0) = %v, want none", p)
	}
}

// TestReadFile reads a real H.264 file through the shim into a caller's Mat, with both
// Read and Grab/Retrieve, and checks its properties.
func TestReadFile(t *testing.T) {
	c, err := Open(testVideo(t), gocv.VideoCaptureFFmpeg, Timeouts(time.Second, time.Second)...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if b := c.Backend(); b != "FFMPEG" {
		t.Errorf("backend %q, want FFMPEG", b)
	}
	if fps := c.Get(gocv.VideoCaptureFPS); fps < 20 || fps > 30 {
		t.Errorf("fps %v, want ~25", fps)
	}
	m := gocv.NewMat()
	defer m.Close()
	for i := 0; i < 5; i++ {
		ok, err := c.Read(&m)
		if err != nil || !ok {
			t.Fatalf("frame %d: %v %v", i, ok, err)
		}
		if m.Cols() != 596 || m.Rows() != 336 || m.Type() != gocv.MatTypeCV8UC3 {
			t.Fatalf("frame %d: %dx%d type %v", i, m.Cols(), m.Rows(), m.Type())
		}
	}
	if ok, err := c.Grab(); err != nil || !ok {
		t.Fatalf("grab: %v %v", ok, err)
	}
	if ok, err := c.Retrieve(&m); err != nil || !ok || m.Empty() {
		t.Fatalf("retrieve: %v %v", ok, err)
	}
	if pos := c.Get(gocv.VideoCapturePosFrames); pos != 6 {
		t.Errorf("position %v frames, want 6", pos)
	}
	n := 6
	for {
		ok, err := c.Read(&m)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		n++
	}
	if n < 100 {
		t.Errorf("read %d frames of a 4.6 s clip", n)
	}
	var closed gocv.Mat
	if _, err := c.Read(&closed); err == nil {
		t.Error("Read into a zero Mat succeeded")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Read(&m); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v, want ErrClosed", err)
	}
	if _, err := c.Grab(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Grab after Close: %v, want ErrClosed", err)
	}
	if c.Get(gocv.VideoCaptureFPS) != 0 || c.Backend() != "" {
		t.Fatal("a closed capture reports properties")
	}
}

func TestOpenErrors(t *testing.T) {
	testenv.NeedsTestData(t)
	if _, err := Open(filepath.Join(t.TempDir(), "none.mp4"), gocv.VideoCaptureFFmpeg); err == nil {
		t.Fatal("opened a missing file")
	}
	if _, err := Open(testVideo(t), gocv.VideoCaptureFFmpeg, PropOpenTimeoutMsec); err == nil || !strings.Contains(err.Error(), "pairs") {
		t.Fatalf("odd params: %v", err)
	}
}

// TestOpenTimeout: a server that accepts the connection and never answers fails the open after
// the open timeout, not OpenCV's default 30 s.
func TestOpenTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // accepts and holds connections silently until the listener closes
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	defer func() {
		ln.Close()
		<-done
	}()
	start := time.Now()
	_, err = Open("http://"+ln.Addr().String()+"/stream.mjpg", gocv.VideoCaptureFFmpeg, Timeouts(700*time.Millisecond, 700*time.Millisecond)...)
	took := time.Since(start)
	if err == nil {
		t.Fatal("opened a silent server")
	}
	if took < 600*time.Millisecond || took > 5*time.Second {
		t.Fatalf("open of a silent server failed after %v, want ~0.7 s", took)
	}
}
