package api

import (
	"bytes"
	"context"
	"image"
	_ "image/jpeg" // DecodeConfig: the pixels a JPEG declares
	_ "image/png"  // DecodeConfig: the pixels a PNG declares
	"net/http"

	"github.com/vigil-video/vigil/pkg/admit"
	"github.com/vigil-video/vigil/pkg/httpapi"
)

// enter counts a classification request in before its body is read; when the Gate holds as
// many as it may, it answers 503 busy with Retry-After and returns false.
func (h *handlers) enter(w http.ResponseWriter) (leave func(), ok bool) {
	leave, ok = h.cfg.Gate.Enter()
	if !ok {
		httpapi.WriteBusy(w, admit.RetryAfter, "too many classification requests are being read or run; retry shortly")
	}
	return leave, ok
}

// classifyAdmitted runs the Backend on img once the Gate has room for the pixels its header
// declares (an image whose header does not parse counts as one pixel: the Backend refuses it
// before decoding). Errors wrap admit.ErrBusy when there is no room.
func (h *handlers) classifyAdmitted(ctx context.Context, img []byte, models []string) (ClassifyResult, error) {
	pixels := int64(1)
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(img)); err == nil {
		pixels = int64(cfg.Width) * int64(cfg.Height)
	}
	release, err := h.cfg.Gate.Acquire(ctx, pixels)
	if err != nil {
		return ClassifyResult{}, err
	}
	defer release()
	return h.cfg.Backend.Classify(ctx, img, models)
}
