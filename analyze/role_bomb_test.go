package analyze

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/imageguard/guardtest"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// A PNG bomb on vigil.frames.<stream> (100x100 declared, 2 GiB of image data in 2 MB) is a
// decode drop naming the cause, not seconds of libpng inflating followed by a result.
func TestRoleDropsPNGBomb(t *testing.T) {
	h := startRole(t, func(r *Role) { r.Deadline = time.Minute })
	o := collect(t, h.nc)
	h.publish(t, frame.Frame{Stream: "cam1", Seq: 1, Captured: time.Now(), Width: 100, Height: 100, Encoding: frame.EncodingPNG,
		Data: guardtest.BombPNG(100, 100, 2<<10), Complete: true})
	testenv.Eventually(t, 60*time.Second, "the bomb's outcome", func() bool { return o.count() == 1 })
	o.mu.Lock()
	defer o.mu.Unlock()
	if d, ok := o.drops[1]; !ok || d.Reason != result.ReasonDecode || !strings.Contains(d.Detail, "inflates past") {
		t.Fatalf("outcome of the bomb: drop %+v (present %v), results %v; want a decode drop naming the inflated size", d, ok, o.results)
	}
}
