package rtsptest

import (
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/pkg/vision/videoio"
)

func TestScratch(t *testing.T) {
	s := New(t, Options{Video: "/usr/share/doc/opencv-doc/examples/data/Megamind.avi"})
	t.Logf("url %s", s.URL)
	t0 := time.Now()
	c, err := videoio.Open(s.URL, gocv.VideoCaptureFFmpeg, videoio.Timeouts(5*time.Second, 2*time.Second)...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Logf("open %v backend %s fps %v", time.Since(t0), c.Backend(), c.Get(gocv.VideoCaptureFPS))
	m := gocv.NewMat()
	defer m.Close()
	last := time.Now()
	for i := 0; i < 80; i++ {
		ok, err := c.Read(&m)
		now := time.Now()
		t.Logf("%d ok=%v err=%v dt=%v pos=%v %dx%d", i, ok, err, now.Sub(last), c.Get(gocv.VideoCapturePosMsec), m.Cols(), m.Rows())
		last = now
		if i == 40 {
			s.Freeze()
		}
		if !ok {
			break
		}
	}
	s.Thaw()
}
