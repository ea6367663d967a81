package vision

import (
	"errors"
	"strings"
	"testing"

	"github.com/vigil-video/vigil/pkg/imageguard/guardtest"
)

// The hostile-input probe's PNG bomb: 100x100 pixels declared, image data inflating to 9 GiB.
// libpng inflated all of it (26 s of CPU) and returned the image; Decode refuses it after
// inflating what 100x100 pixels need.
func TestDecodeRefusesPNGBomb(t *testing.T) {
	for name, data := range map[string][]byte{
		"9 GiB bomb":        guardtest.BombPNG(100, 100, 9<<10),
		"one byte too many": guardtest.PNG(guardtest.IHDR(4, 4, 8, 2, 0), guardtest.Zlib(make([]byte, 4*13+1))),
	} {
		m, err := Decode(data, 0)
		if err == nil {
			m.Close()
		}
		if !errors.Is(err, ErrImage) || !strings.Contains(err.Error(), "inflates past") {
			t.Errorf("%s: Decode error = %v, want ErrImage naming the inflated size", name, err)
		}
	}
	m, err := Decode(guardtest.PNG(guardtest.IHDR(4, 4, 8, 2, 0), guardtest.Zlib(make([]byte, 4*13))), 0)
	if err != nil {
		t.Fatalf("the exact-size control: %v", err)
	}
	defer m.Close()
	if m.Cols() != 4 || m.Rows() != 4 {
		t.Fatalf("control decoded to %dx%d", m.Cols(), m.Rows())
	}
}
