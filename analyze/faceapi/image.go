package faceapi

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig: JPEG headers
	_ "image/png"  // DecodeConfig: PNG headers
	"io"

	"github.com/vigil-video/vigil/pkg/imageguard"
)

// Errors about uploaded images; the handlers answer ErrInvalidImage with 400 invalid_image and
// ErrImageTooLarge with 422 image_too_large. An Engine wraps ErrInvalidImage when bytes that
// passed CheckImage still do not decode.
var (
	ErrInvalidImage  = errors.New("invalid image")
	ErrImageTooLarge = errors.New("image too large")
)

// DefaultMaxPixels bounds the images the API accepts: 8192x8192, as the analyzers' decoder.
const DefaultMaxPixels = 8192 * 8192

// ImageInfo is what CheckImage learnt from an image's header.
type ImageInfo struct {
	// Format is "jpeg" or "png".
	Format        string
	Width, Height int
}

// CheckImage vets an upload before anything decodes it, in pure Go and without allocating the
// pixels: it must be a JPEG or PNG (ErrInvalidImage otherwise), of at most maxPixels pixels
// (ErrImageTooLarge; 0 means DefaultMaxPixels), and complete: a JPEG's segments and scans must
// run to its end-of-image marker and a PNG's chunks to IEND (ErrInvalidImage "truncated").
// OpenCV would otherwise decode a truncated JPEG into a partly grey picture without complaint.
func CheckImage(data []byte, maxPixels int) (ImageInfo, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	if len(data) == 0 {
		return ImageInfo{}, fmt.Errorf("%w: empty", ErrInvalidImage)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return ImageInfo{}, fmt.Errorf("%w: not a JPEG or PNG image (starts with % x)", ErrInvalidImage, data[:min(len(data), 8)])
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return ImageInfo{}, fmt.Errorf("%w: %s data ends inside its header (truncated upload?)", ErrInvalidImage, format)
		}
		return ImageInfo{}, fmt.Errorf("%w: %s header: %w", ErrInvalidImage, format, err)
	}
	info := ImageInfo{Format: format, Width: cfg.Width, Height: cfg.Height}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return info, fmt.Errorf("%w: %s of %dx%d pixels", ErrInvalidImage, format, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > int64(maxPixels) {
		return info, fmt.Errorf("%w: %s of %dx%d pixels exceeds the limit of %d pixels", ErrImageTooLarge, format, cfg.Width, cfg.Height, maxPixels)
	}
	switch format {
	case "jpeg":
		err = imageguard.CheckJPEG(data) // walks to EOI; bytes after it (phone trailers) are allowed
	case "png":
		err = imageguard.CheckPNG(data) // walks to IEND; refuses decompression bombs
	default:
		err = fmt.Errorf("%w: %s images are not supported (send JPEG or PNG)", ErrInvalidImage, format)
	}
	if err != nil && !errors.Is(err, ErrInvalidImage) {
		err = fmt.Errorf("%w: %w", ErrInvalidImage, err)
	}
	return info, err
}
