package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"image/png"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/result"
)

// cropOptions shape a crop: pad is the margin added on each side as a share of the box's longer
// side (0..1); size the longest side of the output in pixels (the crop is scaled down to it,
// never up).
type cropOptions struct {
	pad  float64
	size int
}

// Bounds of the crop endpoint's options.
const (
	maxCropSize = 512
	minCropSize = 16
)

var errEmptyCrop = errors.New("the box does not overlap the frame")

// cropImage cuts box (in pixels of a refW x refH image; 0 for the frame's own size) out of the
// frame, with the margin and size of o, and returns it as JPEG. It refuses frames larger than
// maxPixels before decoding them.
func cropImage(f storedFrame, box result.Box, refW, refH int, o cropOptions, maxPixels int) ([]byte, error) {
	rd := bytes.NewReader(f.data)
	var cfg image.Config
	var err error
	decode := jpeg.Decode
	if f.encoding == frame.EncodingPNG {
		cfg, err = png.DecodeConfig(rd)
		decode = png.Decode
	} else {
		cfg, err = jpeg.DecodeConfig(rd)
	}
	if err != nil {
		return nil, fmt.Errorf("frame %d: %w", f.seq, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxPixels {
		return nil, fmt.Errorf("frame %d: %dx%d is larger than the UI decodes (%d pixels)", f.seq, cfg.Width, cfg.Height, maxPixels)
	}
	if refW <= 0 || refH <= 0 {
		refW, refH = cfg.Width, cfg.Height
	}
	sx, sy := float64(cfg.Width)/float64(refW), float64(cfg.Height)/float64(refH)
	x1, y1, x2, y2 := float64(box.X1)*sx, float64(box.Y1)*sy, float64(box.X2)*sx, float64(box.Y2)*sy
	m := o.pad * math.Max(x2-x1, y2-y1)
	r := image.Rect(int(math.Floor(x1-m)), int(math.Floor(y1-m)), int(math.Ceil(x2+m)), int(math.Ceil(y2+m))).
		Intersect(image.Rect(0, 0, cfg.Width, cfg.Height))
	if r.Empty() {
		return nil, errEmptyCrop
	}
	rd.Reset(f.data)
	img, err := decode(rd)
	if err != nil {
		return nil, fmt.Errorf("frame %d: %w", f.seq, err)
	}
	src := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	draw.Draw(src, src.Bounds(), img, img.Bounds().Min.Add(r.Min), draw.Src)
	out := src
	if long := max(r.Dx(), r.Dy()); long > o.size {
		w := max(1, int(math.Round(float64(r.Dx())*float64(o.size)/float64(long))))
		h := max(1, int(math.Round(float64(r.Dy())*float64(o.size)/float64(long))))
		out = shrink(src, w, h)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, out, &jpeg.Options{Quality: 85}); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// shrink scales src down to w x h by averaging the source pixels under each output pixel (an
// area filter: no aliasing, good for faces).
func shrink(src *image.RGBA, w, h int) *image.RGBA {
	sw, sh := src.Rect.Dx(), src.Rect.Dy()
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		y0, y1 := y*sh/h, max((y+1)*sh/h, y*sh/h+1)
		for x := 0; x < w; x++ {
			x0, x1 := x*sw/w, max((x+1)*sw/w, x*sw/w+1)
			var r, g, b, a, n uint32
			for yy := y0; yy < y1; yy++ {
				row := src.Pix[yy*src.Stride:]
				for xx := x0; xx < x1; xx++ {
					p := row[xx*4 : xx*4+4]
					r, g, b, a = r+uint32(p[0]), g+uint32(p[1]), b+uint32(p[2]), a+uint32(p[3])
					n++
				}
			}
			o := dst.Pix[y*dst.Stride+x*4:]
			o[0], o[1], o[2], o[3] = uint8(r/n), uint8(g/n), uint8(b/n), uint8(a/n)
		}
	}
	return dst
}

// parseBox parses "x1,y1,x2,y2" (finite numbers, x1 < x2, y1 < y2).
func parseBox(s string) (result.Box, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return result.Box{}, fmt.Errorf("box %q: want x1,y1,x2,y2", s)
	}
	var v [4]float32
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > frame.MaxDimension*4 {
			return result.Box{}, fmt.Errorf("box %q: %q is not a coordinate", s, p)
		}
		v[i] = float32(f)
	}
	if v[2] <= v[0] || v[3] <= v[1] {
		return result.Box{}, fmt.Errorf("box %q: want x1 < x2 and y1 < y2", s)
	}
	return result.Box{X1: v[0], Y1: v[1], X2: v[2], Y2: v[3]}, nil
}

// serveCrop answers GET /v1/ui/crops/{stream}/{seq}?box=x1,y1,x2,y2[&w=W&h=H][&pad=P][&size=S].
func (u *UI) serveCrop(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if err := frame.ValidateStream(stream); err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_stream", err.Error())
		return
	}
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_field", "seq must be a frame sequence number (1 or more)")
		return
	}
	q := r.URL.Query()
	box, err := parseBox(q.Get("box"))
	if err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_box", err.Error())
		return
	}
	o := cropOptions{pad: 0.2, size: 160}
	var refW, refH int
	for _, p := range []struct {
		name   string
		lo, hi float64
		set    func(float64)
	}{
		{"pad", 0, 1, func(v float64) { o.pad = v }},
		{"size", minCropSize, maxCropSize, func(v float64) { o.size = int(v) }},
		{"w", 1, frame.MaxDimension, func(v float64) { refW = int(v) }},
		{"h", 1, frame.MaxDimension, func(v float64) { refH = int(v) }},
	} {
		s := q.Get(p.name)
		if s == "" {
			continue
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || !(v >= p.lo && v <= p.hi) {
			httpapi.WriteError(w, http.StatusBadRequest, "invalid_field", fmt.Sprintf("%s %q: want a number from %g to %g", p.name, s, p.lo, p.hi))
			return
		}
		p.set(v)
	}
	if (refW == 0) != (refH == 0) {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_field", "give w and h together (the size the box refers to)")
		return
	}
	u.mu.Lock()
	var sf storedFrame
	var ok bool
	held := 0
	if st, exists := u.streams[stream]; exists {
		sf, ok = st.ring.get(seq)
		held = st.ring.len()
	}
	u.mu.Unlock()
	if !ok {
		httpapi.WriteError(w, http.StatusNotFound, "frame_gone",
			fmt.Sprintf("frame %d of stream %s is not held: the UI keeps the latest %d frames of each stream (%d now)", seq, stream, u.cfg.RingFrames, held))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	select {
	case u.cropSlots <- struct{}{}:
	case <-ctx.Done():
		w.Header().Set("Retry-After", "1")
		httpapi.WriteError(w, http.StatusServiceUnavailable, "busy", "too many crops are being cut; retry shortly")
		return
	}
	img, err := cropImage(sf, box, refW, refH, o, u.cfg.MaxFramePixels)
	<-u.cropSlots
	switch {
	case errors.Is(err, errEmptyCrop):
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_box", err.Error())
		return
	case err != nil:
		httpapi.WriteError(w, http.StatusUnprocessableEntity, "undecodable_frame", err.Error())
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "private, max-age=60")
	_, _ = w.Write(img)
}
