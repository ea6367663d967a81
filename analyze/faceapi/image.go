package faceapi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig: JPEG headers
	_ "image/png"  // DecodeConfig: PNG headers
	"io"
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
		err = checkJPEG(data)
	case "png":
		err = checkPNG(data)
	default:
		err = fmt.Errorf("%w: %s images are not supported (send JPEG or PNG)", ErrInvalidImage, format)
	}
	return info, err
}

// checkJPEG walks a JPEG's marker segments and entropy-coded scans to its EOI marker.
func checkJPEG(d []byte) error {
	truncated := fmt.Errorf("%w: JPEG data ends before its end-of-image marker (truncated upload?)", ErrInvalidImage)
	if len(d) < 2 || d[0] != 0xFF || d[1] != 0xD8 {
		return fmt.Errorf("%w: JPEG without a start-of-image marker", ErrInvalidImage)
	}
	i := 2
	for {
		if i >= len(d) {
			return truncated
		}
		if d[i] != 0xFF {
			return fmt.Errorf("%w: JPEG marker expected at byte %d", ErrInvalidImage, i)
		}
		for i < len(d) && d[i] == 0xFF { // fill bytes
			i++
		}
		if i >= len(d) {
			return truncated
		}
		m := d[i]
		i++
		switch {
		case m == 0xD9: // EOI
			return nil
		case m >= 0xD0 && m <= 0xD7 || m == 0x01: // RSTn, TEM: no payload
			continue
		case m == 0x00 || m == 0xD8:
			return fmt.Errorf("%w: unexpected JPEG marker 0x%02X at byte %d", ErrInvalidImage, m, i-1)
		}
		if i+2 > len(d) {
			return truncated
		}
		n := int(binary.BigEndian.Uint16(d[i:]))
		if n < 2 {
			return fmt.Errorf("%w: JPEG segment 0x%02X with length %d", ErrInvalidImage, m, n)
		}
		if i+n > len(d) {
			return truncated
		}
		i += n
		if m != 0xDA { // not a scan
			continue
		}
		// Entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or a restart.
		for {
			k := bytes.IndexByte(d[i:], 0xFF)
			if k < 0 || i+k+1 >= len(d) {
				return truncated
			}
			i += k
			next := d[i+1]
			if next == 0x00 || next >= 0xD0 && next <= 0xD7 {
				i += 2
				continue
			}
			break
		}
	}
}

// checkPNG walks a PNG's chunks from IHDR to IEND.
func checkPNG(d []byte) error {
	const sig = "\x89PNG\r\n\x1a\n"
	if len(d) < len(sig) || string(d[:len(sig)]) != sig {
		return fmt.Errorf("%w: PNG without its signature", ErrInvalidImage)
	}
	i, first := len(sig), true
	for {
		if i+8 > len(d) {
			return fmt.Errorf("%w: PNG data ends before its IEND chunk (truncated upload?)", ErrInvalidImage)
		}
		n := binary.BigEndian.Uint32(d[i:])
		typ := string(d[i+4 : i+8])
		if n > 1<<31-1 {
			return fmt.Errorf("%w: PNG chunk %q of length %d", ErrInvalidImage, typ, n)
		}
		if first && typ != "IHDR" {
			return fmt.Errorf("%w: PNG starts with chunk %q, not IHDR", ErrInvalidImage, typ)
		}
		first = false
		end := int64(i) + 8 + int64(n) + 4
		if end > int64(len(d)) {
			return fmt.Errorf("%w: PNG data ends inside its %q chunk (truncated upload?)", ErrInvalidImage, typ)
		}
		if typ == "IEND" {
			return nil
		}
		i = int(end)
	}
}
