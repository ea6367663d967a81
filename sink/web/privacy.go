package web

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	_ "image/png" // frames may be published as PNG

	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/privacy"
	"github.com/vigil-video/vigil/pkg/result"
)

// Privacy in the UI (Config.Privacy other than privacy.Off): no frame leaves the server before
// its result is known, and then only with the faces the mode covers blurred (pkg/privacy's
// irreversible pixelation): the live view's frames, the face crops and the events' snapshots.
// The faces to blur come from the frame's result (the track role's, with identities): every
// face under blur-all, every face without identity under blur-unknown.

// errNotAnalysed: privacy is on and the frame's result has not come yet, so which of its
// faces to blur is not known.
var errNotAnalysed = errors.New("the frame has no result yet: with privacy on, only analysed frames are shown")

// blurPad is the margin added around a face box before blurring, as a share of the box's longer
// side on each side: the detector's box is tight (forehead to chin), hair and ears are not in it.
const blurPad = 0.2

// blurJPEGQuality is the quality blurred frames are encoded at.
const blurJPEGQuality = 85

// blurRegions returns the regions of a w x h frame to blur under mode for r's faces (boxes in
// pixels of r.Width x r.Height, scaled to the frame when its size differs).
func blurRegions(mode privacy.Mode, r *result.Result, w, h int) []image.Rectangle {
	sx, sy := float32(1), float32(1)
	if r.Width > 0 && r.Height > 0 && w > 0 && h > 0 {
		sx, sy = float32(w)/float32(r.Width), float32(h)/float32(r.Height)
	}
	var out []image.Rectangle
	for _, f := range r.Faces {
		if !mode.Blurs(f.Identity != nil) {
			continue
		}
		b := f.Box
		pad := blurPad * max(b.X2-b.X1, b.Y2-b.Y1)
		rect := image.Rect(int((b.X1-pad)*sx), int((b.Y1-pad)*sy), int((b.X2+pad)*sx+0.5), int((b.Y2+pad)*sy+0.5))
		if !rect.Empty() {
			out = append(out, rect)
		}
	}
	return out
}

// shown returns the frame as it may leave the server: as is when privacy is off or the frame
// has no face to blur, else a JPEG with its blur regions blurred (encoding "jpeg"). With privacy
// on, a frame without its result is errNotAnalysed.
func (u *UI) shown(f storedFrame) (storedFrame, error) {
	if u.cfg.Privacy == "" || u.cfg.Privacy == privacy.Off {
		return f, nil
	}
	if !f.analysed {
		return storedFrame{}, errNotAnalysed
	}
	if len(f.blur) == 0 {
		return f, nil
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(f.data))
	if err != nil {
		return storedFrame{}, fmt.Errorf("privacy: %w", err)
	}
	if cfg.Width*cfg.Height > u.cfg.MaxFramePixels {
		return storedFrame{}, fmt.Errorf("privacy: frame of %dx%d beyond the %d pixels the UI decodes", cfg.Width, cfg.Height, u.cfg.MaxFramePixels)
	}
	data, err := u.cfg.BlurFrame(f.data, f.blur, blurJPEGQuality)
	if err != nil {
		return storedFrame{}, fmt.Errorf("privacy: %w", err)
	}
	f.data, f.encoding, f.blur = data, frame.EncodingJPEG, nil
	return f, nil
}

// blurFrameGo is Config.BlurFrame's default: the frame decoded, blurred and encoded with Go's
// image packages.
func blurFrameGo(data []byte, regions []image.Rectangle, quality int) ([]byte, error) {
	src, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	img := image.NewRGBA(src.Bounds())
	draw.Draw(img, img.Bounds(), src, src.Bounds().Min, draw.Src)
	for _, r := range regions {
		privacy.Blur(img, r.Add(img.Bounds().Min))
	}
	var out bytes.Buffer
	if err := jpeg.Encode(&out, img, &jpeg.Options{Quality: quality}); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
