package web

import (
	"image"
	"testing"

	"github.com/vigil-video/vigil/pkg/privacy"
)

// BenchmarkShownBlur measures what privacy costs per live frame: decoding a real photo, blurring
// one face region and encoding it again (UI.shown).
func BenchmarkShownBlur(b *testing.B) {
	jpg, w, h := photo(b, "detect/group_suits.jpg")
	u := &UI{cfg: Config{Privacy: privacy.BlurAll, MaxFramePixels: 4096 * 4096}}
	f := storedFrame{seq: 1, width: w, height: h, encoding: "jpeg", data: jpg, analysed: true,
		blur: []image.Rectangle{image.Rect(w/3, h/4, w/3+w/8, h/4+w/8)}}
	b.Logf("frame %dx%d, %d bytes", w, h, len(jpg))
	for b.Loop() {
		if _, err := u.shown(f); err != nil {
			b.Fatal(err)
		}
	}
}
