// Package guardtest builds hostile images for tests of the decoders' defences: PNG
// decompression bombs shaped like the ones a hostile-input probe sent.
package guardtest

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
)

// Chunk encodes one PNG chunk with its CRC.
func Chunk(typ string, body []byte) []byte {
	var b bytes.Buffer
	_ = binary.Write(&b, binary.BigEndian, uint32(len(body)))
	b.WriteString(typ)
	b.Write(body)
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(body)
	_ = binary.Write(&b, binary.BigEndian, crc.Sum32())
	return b.Bytes()
}

// IHDR is the body of an IHDR chunk.
func IHDR(w, h uint32, depth, colorType, interlace byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, w)
	b = binary.BigEndian.AppendUint32(b, h)
	return append(b, depth, colorType, 0, 0, interlace)
}

// PNG assembles a PNG from an IHDR body, the zlib stream of its image data (one IDAT chunk)
// and extra chunks placed before IDAT.
func PNG(ihdr, zdata []byte, extra ...[]byte) []byte {
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, Chunk("IHDR", ihdr)...)
	for _, e := range extra {
		out = append(out, e...)
	}
	out = append(out, Chunk("IDAT", zdata)...)
	return append(out, Chunk("IEND", nil)...)
}

// Zlib compresses raw into a zlib stream.
func Zlib(raw []byte) []byte {
	var b bytes.Buffer
	zw := zlib.NewWriter(&b)
	_, _ = zw.Write(raw)
	_ = zw.Close()
	return b.Bytes()
}

// Bomb returns a zlib stream that inflates to mib MiB of zeros from about mib KiB, built in
// milliseconds without compressing it all: a sync-flushed deflate block of 1 MiB of zeros
// repeats, each copy referring back to the zeros before it. The stream never ends (no final
// block, no checksum): a reader that stops early never notices.
func Bomb(mib int) []byte {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	zeros := make([]byte, 1<<20)
	_, _ = fw.Write(zeros)
	_ = fw.Flush()
	head := bytes.Clone(buf.Bytes())
	buf.Reset()
	_, _ = fw.Write(zeros)
	_ = fw.Flush()
	block := bytes.Clone(buf.Bytes())
	out := bytes.NewBuffer([]byte{0x78, 0xda}) // zlib header, best compression
	out.Write(head)
	for range mib - 1 {
		out.Write(block)
	}
	return out.Bytes()
}

// BombPNG is an 8-bit RGB PNG declaring w x h pixels whose image data inflates to mib MiB:
// BombPNG(100, 100, 9<<10) is the probe's 9.4 MB file that cost libpng 26 s of CPU.
func BombPNG(w, h uint32, mib int) []byte {
	return PNG(IHDR(w, h, 8, 2, 0), Bomb(mib))
}
