package cli

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"testing"

	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/sink/eventstore/snapshot"
)

// TestSnapshotCropMatchesTheStoreDefault: the libjpeg-turbo cut vigil's event stores use gives
// the snapshot the pure-Go default gives (same size, same pixels within JPEG noise), for a small
// face, a large one (decoded at reduced scale) and a box scaled from the analysed frame's size.
func TestSnapshotCropMatchesTheStoreDefault(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 1280, 720))
	for y := range 720 {
		for x := range 1280 {
			img.Set(x, y, color.RGBA{R: uint8(x / 5), G: uint8(y / 3), B: uint8((x * y) >> 12), A: 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	f := frame.Frame{Seq: 7, Encoding: frame.EncodingJPEG, Data: b.Bytes()}
	for _, c := range []event.Crop{
		{Box: result.Box{X1: 600, Y1: 300, X2: 680, Y2: 390}},
		{Box: result.Box{X1: 300, Y1: 100, X2: 800, Y2: 650}},
		{Box: result.Box{X1: 100, Y1: 50, X2: 200, Y2: 170}, Width: 640, Height: 360},
	} {
		want, err := snapshot.Crop(f, c, snapshot.Options{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := snapshotCrop(f, c)
		if err != nil {
			t.Fatal(err)
		}
		wi, err := jpeg.Decode(bytes.NewReader(want))
		if err != nil {
			t.Fatal(err)
		}
		gi, err := jpeg.Decode(bytes.NewReader(got))
		if err != nil {
			t.Fatal(err)
		}
		if wi.Bounds() != gi.Bounds() {
			t.Fatalf("box %+v: snapshot %v, the default gives %v", c.Box, gi.Bounds(), wi.Bounds())
		}
		var sum, n float64
		for y := wi.Bounds().Min.Y; y < wi.Bounds().Max.Y; y++ {
			for x := wi.Bounds().Min.X; x < wi.Bounds().Max.X; x++ {
				r1, g1, b1, _ := wi.At(x, y).RGBA()
				r2, g2, b2, _ := gi.At(x, y).RGBA()
				for _, d := range []int{int(r1>>8) - int(r2>>8), int(g1>>8) - int(g2>>8), int(b1>>8) - int(b2>>8)} {
					sum += float64(max(d, -d))
					n++
				}
			}
		}
		if sum/n > 4 {
			t.Fatalf("box %+v: mean difference %.2f from the default snapshot", c.Box, sum/n)
		}
	}
	if _, err := snapshotCrop(f, event.Crop{Box: result.Box{X1: 2000, Y1: 2000, X2: 2100, Y2: 2100}}); err == nil {
		t.Fatal("a box outside the frame cropped without error")
	}
}
