package web

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/sink/eventstore/snapshot"
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

// errEmptyCrop is returned by cropImage when the box lies outside the frame.
var errEmptyCrop = snapshot.ErrEmptyCrop

// cropImage cuts box (in pixels of a refW x refH image; 0 for the frame's own size) out of the
// frame, with the margin and size of o, and returns it as JPEG. It refuses frames larger than
// maxPixels before decoding them. The cutting is the event store's (snapshot.Crop).
func cropImage(f storedFrame, box result.Box, refW, refH int, o cropOptions, maxPixels int) ([]byte, error) {
	pad := o.pad
	if pad == 0 {
		pad = -1 // snapshot.Options: 0 is its default margin, negative none
	}
	return snapshot.Crop(frame.Frame{Seq: f.seq, Encoding: f.encoding, Data: f.data},
		event.Crop{Box: box, Width: refW, Height: refH},
		snapshot.Options{Pad: pad, Size: o.size, MaxPixels: maxPixels})
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
	sf, err = u.shown(sf) // with privacy on: blurred, and only once analysed
	var img []byte
	if err == nil {
		img, err = cropImage(sf, box, refW, refH, o, u.cfg.MaxFramePixels)
	}
	<-u.cropSlots
	switch {
	case errors.Is(err, errNotAnalysed):
		httpapi.WriteError(w, http.StatusNotFound, "frame_not_analysed", fmt.Sprintf("frame %d of stream %s: %v", seq, stream, err))
		return
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
