package imageguard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrJPEG is wrapped by every CheckJPEG error.
var ErrJPEG = errors.New("refused JPEG")

// CheckJPEG walks a JPEG's marker segments and entropy-coded scans from its start-of-image to
// its end-of-image marker, so a truncated file (which decoders return partly grey without
// complaint) is refused. Bytes after the end-of-image marker are allowed whatever their amount:
// phone cameras append trailers, and motion photos append a whole video. Errors wrap ErrJPEG; a
// file that ends early says "truncated".
func CheckJPEG(d []byte) error {
	truncated := fmt.Errorf("%w: data ends before the end-of-image marker (truncated)", ErrJPEG)
	if len(d) < 2 || d[0] != 0xFF || d[1] != 0xD8 {
		return fmt.Errorf("%w: no start-of-image marker", ErrJPEG)
	}
	i := 2
	for {
		if i >= len(d) {
			return truncated
		}
		if d[i] != 0xFF {
			return fmt.Errorf("%w: marker expected at byte %d", ErrJPEG, i)
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
		case m == 0xD9: // EOI: whatever follows is not the image's
			return nil
		case m >= 0xD0 && m <= 0xD7 || m == 0x01: // RSTn, TEM: no payload
			continue
		case m == 0x00 || m == 0xD8:
			return fmt.Errorf("%w: unexpected marker 0x%02X at byte %d", ErrJPEG, m, i-1)
		}
		if i+2 > len(d) {
			return truncated
		}
		n := int(binary.BigEndian.Uint16(d[i:]))
		if n < 2 {
			return fmt.Errorf("%w: segment 0x%02X with length %d", ErrJPEG, m, n)
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
