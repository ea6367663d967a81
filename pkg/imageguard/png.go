// Package imageguard checks untrusted image bytes for decompression bombs before a decoder sees
// them, in pure Go. A PNG's header declares its size, but its compressed image data (IDAT) may
// inflate to far more than that size needs: libpng, under OpenCV, inflates it all (a 9.4 MB PNG
// declaring 100x100 pixels that inflates to 9 GiB cost 26 s of CPU). CheckPNG inflates the data
// itself, stopping as soon as it exceeds what the declared size needs.
package imageguard

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrPNG is wrapped by every CheckPNG error.
var ErrPNG = errors.New("refused PNG")

// MaxMetadataBytes bounds what a PNG's compressed metadata chunks (zTXt, iTXt, iCCP) may
// inflate to, all of them together: 4 MiB. libpng inflates these too.
const MaxMetadataBytes = 4 << 20

const pngSignature = "\x89PNG\r\n\x1a\n"

// IsPNG reports whether data starts with the PNG signature.
func IsPNG(data []byte) bool { return bytes.HasPrefix(data, []byte(pngSignature)) }

// CheckPNG walks a PNG's chunks from IHDR to IEND and inflates its image data, failing as soon
// as the data exceeds what the size, bit depth, colour type and interlacing declared in IHDR
// need (a decompression bomb), or when it holds less (truncated or corrupt). Compressed
// metadata chunks may inflate to MaxMetadataBytes in all. The work is bounded by the declared
// size (what decoding needs anyway) plus MaxMetadataBytes, whatever the input. Errors wrap ErrPNG.
func CheckPNG(data []byte) error {
	if !IsPNG(data) {
		return fmt.Errorf("%w: no PNG signature", ErrPNG)
	}
	var (
		need      int64 = -1
		idat      []io.Reader
		metaLeft  int64 = MaxMetadataBytes
		sawIEND   bool
		afterIDAT bool
	)
	for i := len(pngSignature); !sawIEND; {
		if i+8 > len(data) {
			return fmt.Errorf("%w: data ends before the IEND chunk (truncated)", ErrPNG)
		}
		n := int64(binary.BigEndian.Uint32(data[i:]))
		typ := string(data[i+4 : i+8])
		end := int64(i) + 8 + n + 4
		if n > 1<<31-1 || end > int64(len(data)) {
			return fmt.Errorf("%w: data ends inside its %q chunk (truncated)", ErrPNG, printable(typ))
		}
		body := data[i+8 : i+8+int(n)]
		switch {
		case need < 0 && typ != "IHDR":
			return fmt.Errorf("%w: starts with chunk %q, not IHDR", ErrPNG, printable(typ))
		case typ == "IHDR":
			if need >= 0 {
				return fmt.Errorf("%w: a second IHDR chunk", ErrPNG)
			}
			var err error
			if need, err = imageBytes(body); err != nil {
				return err
			}
		case typ == "IDAT":
			if afterIDAT {
				return fmt.Errorf("%w: IDAT chunks are not consecutive", ErrPNG)
			}
			idat = append(idat, bytes.NewReader(body))
		case typ == "IEND":
			sawIEND = true
		case typ == "zTXt" || typ == "iCCP" || typ == "iTXt":
			used, err := metadataBytes(typ, body, metaLeft)
			if err != nil {
				return err
			}
			metaLeft -= used
		}
		if typ != "IDAT" && len(idat) > 0 {
			afterIDAT = true
		}
		i = int(end)
	}
	if len(idat) == 0 {
		return fmt.Errorf("%w: no IDAT chunk (no image data)", ErrPNG)
	}
	return inflateExactly(io.MultiReader(idat...), need)
}

// inflateExactly inflates the zlib stream in r and fails unless it holds exactly need bytes. It
// reads at most need+1 bytes, so a bomb costs no more than an honest image of its declared size.
func inflateExactly(r io.Reader, need int64) error {
	zr, err := zlib.NewReader(r)
	if err != nil {
		return fmt.Errorf("%w: image data is not a zlib stream: %w", ErrPNG, err)
	}
	defer zr.Close()
	got, err := io.Copy(io.Discard, io.LimitReader(zr, need+1))
	switch {
	case got > need:
		return fmt.Errorf("%w: image data inflates past the %d bytes its declared size needs (decompression bomb?)", ErrPNG, need)
	case err != nil && got < need:
		return fmt.Errorf("%w: image data is corrupt after %d of %d bytes: %w", ErrPNG, got, need, err)
	case got < need:
		return fmt.Errorf("%w: image data holds %d of the %d bytes its declared size needs (truncated)", ErrPNG, got, need)
	}
	return nil
}

// imageBytes returns the inflated size of the image data IHDR declares: one filter byte and the
// packed pixels of each row, of each Adam7 pass when interlaced.
func imageBytes(ihdr []byte) (int64, error) {
	if len(ihdr) != 13 {
		return 0, fmt.Errorf("%w: IHDR of %d bytes", ErrPNG, len(ihdr))
	}
	w, h := int64(binary.BigEndian.Uint32(ihdr)), int64(binary.BigEndian.Uint32(ihdr[4:]))
	depth, ctype, interlace := int64(ihdr[8]), ihdr[9], ihdr[12]
	if w <= 0 || h <= 0 || w > 1<<31-1 || h > 1<<31-1 {
		return 0, fmt.Errorf("%w: size %dx%d", ErrPNG, w, h)
	}
	channels := map[byte]int64{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
	okDepth := map[byte]string{0: "\x01\x02\x04\x08\x10", 2: "\x08\x10", 3: "\x01\x02\x04\x08", 4: "\x08\x10", 6: "\x08\x10"}[ctype]
	if channels == 0 || !bytes.ContainsRune([]byte(okDepth), rune(depth)) {
		return 0, fmt.Errorf("%w: colour type %d with bit depth %d", ErrPNG, ctype, depth)
	}
	bits := channels * depth
	rows := func(w, h int64) int64 { return h * (1 + (w*bits+7)/8) }
	switch interlace {
	case 0:
		return rows(w, h), nil
	case 1:
		var total int64
		for _, p := range [7][4]int64{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}} {
			pw, ph := (w-p[0]+p[2]-1)/p[2], (h-p[1]+p[3]-1)/p[3]
			if pw > 0 && ph > 0 {
				total += rows(pw, ph)
			}
		}
		return total, nil
	}
	return 0, fmt.Errorf("%w: interlace method %d", ErrPNG, interlace)
}

// metadataBytes inflates a compressed metadata chunk's text or profile, at most left bytes, and
// returns how many it held.
func metadataBytes(typ string, body []byte, left int64) (int64, error) {
	k := bytes.IndexByte(body, 0)
	if k < 0 {
		return 0, nil // malformed: libpng skips it with a warning, inflating nothing
	}
	rest := body[k+1:]
	switch typ {
	case "zTXt", "iCCP": // method byte, then the zlib stream
		if len(rest) < 1 {
			return 0, nil
		}
		rest = rest[1:]
	case "iTXt": // compression flag, method, language\0, translated keyword\0, text
		if len(rest) < 2 || rest[0] == 0 {
			return 0, nil // uncompressed
		}
		rest = rest[2:]
		for range 2 {
			j := bytes.IndexByte(rest, 0)
			if j < 0 {
				return 0, nil
			}
			rest = rest[j+1:]
		}
	}
	zr, err := zlib.NewReader(bytes.NewReader(rest))
	if err != nil {
		return 0, nil // not inflatable: libpng gives up on it at once
	}
	defer zr.Close()
	got, _ := io.Copy(io.Discard, io.LimitReader(zr, left+1))
	if got > left {
		return 0, fmt.Errorf("%w: compressed %s metadata inflates past %d bytes in all (decompression bomb?)", ErrPNG, typ, int64(MaxMetadataBytes))
	}
	return got, nil
}

func printable(s string) string {
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("% x", s)
		}
	}
	return s
}
