// Package gpubench measures the face models' throughput at large batches on
// a GPU (or, for comparison, the CPU) without OpenCV: it feeds recorded,
// pre-processed model inputs taken from real frames, so the benchmark
// binary needs only the NVIDIA driver, the CUDA libraries and onnxruntime.
//
// tensorfile.go holds the recording format, bench.go the runner,
// machine.go what "make setup-gpu" finds on a GPU machine. The recorder
// itself, which needs OpenCV and the analyzer, is analyze/gpubench/record.
package gpubench

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

// magic opens every recording (before gzip).
const magic = "VIGILTNS"

// FormatVersion is the recording format version Decode understands.
const FormatVersion = 1

// Limits Decode enforces, so that a corrupt or hostile file cannot make it
// allocate without bound.
const (
	maxSets        = 64
	maxNameLen     = 64
	maxSourceLen   = 4096
	maxDims        = 4
	maxSampleSize  = 1 << 22 // floats in one sample
	maxTotalFloats = 1 << 28 // floats in one set (1 GiB)
)

// Encodings of a set's data.
const (
	encFloat32 = 0 // raw little-endian float32
	encLUT8    = 1 // per-channel tables of at most 256 values, one byte per value
)

// ErrFormat is wrapped by Decode's errors for data that is not a valid
// recording.
var ErrFormat = errors.New("gpubench: not a valid tensor recording")

// Set is the recorded input of one model: N samples of one shape, one
// after the other, exactly as the analyzer passed them to the model.
type Set struct {
	// Model is the manifest name of the model, e.g. "fr_detect".
	Model string
	// Shape is one sample's shape (the model input without the batch).
	Shape []int64
	// Data holds N()*prod(Shape) floats.
	Data []float32
}

// SampleSize is the number of floats in one sample.
func (s Set) SampleSize() int {
	n := 1
	for _, d := range s.Shape {
		n *= int(d)
	}
	return n
}

// N is the number of samples.
func (s Set) N() int {
	if size := s.SampleSize(); size > 0 {
		return len(s.Data) / size
	}
	return 0
}

// Recording is what the recorder saved: the detector's inputs for some
// frames and every face model's inputs for the faces found in them.
type Recording struct {
	// Source names what was recorded, e.g. the video's path.
	Source string
	// Frames is the number of frames recorded; Faces the faces found in them.
	Frames, Faces int
	// Sets holds one Set per model, each model at most once.
	Sets []Set
}

// Set returns the set of model name, or false.
func (r *Recording) Set(model string) (Set, bool) {
	for _, s := range r.Sets {
		if s.Model == model {
			return s, true
		}
	}
	return Set{}, false
}

// Encode writes r gzip-compressed to w. Each channel (first sample
// dimension) of a set whose values take at most 256 distinct values (8-bit
// pixels after a per-channel normalisation, as every face model's input)
// is stored as one byte per value and a table, which Decode turns back
// into exactly the same floats; other sets are stored as raw float32.
func (r *Recording) Encode(w io.Writer) error {
	if err := r.validate(); err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(zw)
	put := func(v any) {
		if err == nil {
			err = binary.Write(bw, binary.LittleEndian, v)
		}
	}
	putString := func(s string) {
		put(uint16(len(s)))
		if err == nil {
			_, err = bw.WriteString(s)
		}
	}
	if _, err = bw.WriteString(magic); err != nil {
		return err
	}
	put(uint32(FormatVersion))
	putString(r.Source)
	put(uint32(r.Frames))
	put(uint32(r.Faces))
	put(uint32(len(r.Sets)))
	for _, s := range r.Sets {
		putString(s.Model)
		put(uint8(len(s.Shape)))
		for _, d := range s.Shape {
			put(uint32(d))
		}
		put(uint32(s.N()))
		var luts [][]float32
		var codes []byte
		if len(s.Data) > 0 {
			luts, codes = quantize(s)
		}
		if luts == nil {
			put(uint8(encFloat32))
			put(s.Data)
			continue
		}
		put(uint8(encLUT8))
		for _, lut := range luts {
			put(uint16(len(lut)))
			put(lut)
		}
		if err == nil {
			_, err = bw.Write(codes)
		}
	}
	if err != nil {
		return fmt.Errorf("gpubench: encode: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("gpubench: encode: %w", err)
	}
	return zw.Close()
}

// validate checks what Decode would refuse.
func (r *Recording) validate() error {
	if len(r.Sets) > maxSets || len(r.Source) > maxSourceLen || r.Frames < 0 || r.Faces < 0 || r.Frames > math.MaxUint32 || r.Faces > math.MaxUint32 {
		return fmt.Errorf("gpubench: recording out of bounds (%d sets, source of %d bytes, %d frames, %d faces)", len(r.Sets), len(r.Source), r.Frames, r.Faces)
	}
	seen := map[string]bool{}
	for _, s := range r.Sets {
		if s.Model == "" || len(s.Model) > maxNameLen || seen[s.Model] {
			return fmt.Errorf("gpubench: set name %q is empty, too long or repeated", s.Model)
		}
		seen[s.Model] = true
		if len(s.Shape) == 0 || len(s.Shape) > maxDims {
			return fmt.Errorf("gpubench: set %s: shape %v must have 1 to %d dimensions", s.Model, s.Shape, maxDims)
		}
		for _, d := range s.Shape {
			if d < 1 || d > maxSampleSize {
				return fmt.Errorf("gpubench: set %s: shape %v has a dimension out of range", s.Model, s.Shape)
			}
		}
		size := s.SampleSize()
		if size > maxSampleSize || len(s.Data)%size != 0 || len(s.Data) > maxTotalFloats {
			return fmt.Errorf("gpubench: set %s: %d floats are not whole samples of %v within the limits", s.Model, len(s.Data), s.Shape)
		}
	}
	return nil
}

// quantize returns, per channel, the sorted distinct values and the data
// as indexes into them; nil luts when some channel has more than 256
// distinct values.
func quantize(s Set) ([][]float32, []byte) {
	channels := int(s.Shape[0])
	plane := s.SampleSize() / channels
	index := make([]map[uint32]int, channels)
	for c := range index {
		index[c] = map[uint32]int{}
	}
	for i, v := range s.Data {
		c := (i / plane) % channels
		b := math.Float32bits(v)
		if _, ok := index[c][b]; !ok {
			if len(index[c]) == 256 {
				return nil, nil
			}
			index[c][b] = 0
		}
	}
	luts := make([][]float32, channels)
	for c, m := range index {
		for b := range m {
			luts[c] = append(luts[c], math.Float32frombits(b))
		}
		lut := luts[c]
		slices.SortFunc(lut, func(a, b float32) int {
			switch {
			case less(a, b):
				return -1
			case less(b, a):
				return 1
			}
			return 0
		})
		for k, v := range lut {
			m[math.Float32bits(v)] = k
		}
	}
	codes := make([]byte, len(s.Data))
	for i, v := range s.Data {
		codes[i] = byte(index[(i/plane)%channels][math.Float32bits(v)])
	}
	return luts, codes
}

// less orders floats, NaNs last, -0 before +0.
func less(a, b float32) bool {
	switch {
	case a != a:
		return false
	case b != b:
		return true
	case a == b:
		return math.Signbit(float64(a)) && !math.Signbit(float64(b))
	}
	return a < b
}

// Decode reads a recording written by Encode. Errors wrap ErrFormat for
// data that is not a recording or breaks the format's limits.
func Decode(rd io.Reader) (*Recording, error) {
	zr, err := gzip.NewReader(rd)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	defer zr.Close()
	br := bufio.NewReader(zr)
	r, err := decode(br)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: truncated", ErrFormat)
		} else if !errors.Is(err, ErrFormat) {
			err = fmt.Errorf("%w: %w", ErrFormat, err)
		}
		return nil, err
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: trailing data", ErrFormat)
	}
	return r, nil
}

func decode(br *bufio.Reader) (*Recording, error) {
	var err error
	get := func(v any) {
		if err == nil {
			err = binary.Read(br, binary.LittleEndian, v)
		}
	}
	getString := func(limit int) string {
		var n uint16
		get(&n)
		if err != nil {
			return ""
		}
		if int(n) > limit {
			err = fmt.Errorf("%w: string of %d bytes", ErrFormat, n)
			return ""
		}
		b := make([]byte, n)
		_, err = io.ReadFull(br, b)
		return string(b)
	}
	head := make([]byte, len(magic))
	if _, err := io.ReadFull(br, head); err != nil {
		return nil, err
	}
	if string(head) != magic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrFormat, head)
	}
	var version, frames, faces, nsets uint32
	get(&version)
	if err == nil && version != FormatVersion {
		return nil, fmt.Errorf("%w: version %d (want %d)", ErrFormat, version, FormatVersion)
	}
	r := &Recording{}
	r.Source = getString(maxSourceLen)
	get(&frames)
	get(&faces)
	get(&nsets)
	if err != nil {
		return nil, err
	}
	if nsets > maxSets {
		return nil, fmt.Errorf("%w: %d sets", ErrFormat, nsets)
	}
	r.Frames, r.Faces = int(frames), int(faces)
	seen := map[string]bool{}
	for range nsets {
		var s Set
		s.Model = getString(maxNameLen)
		var ndim uint8
		get(&ndim)
		if err != nil {
			return nil, err
		}
		if s.Model == "" || seen[s.Model] || ndim == 0 || ndim > maxDims {
			return nil, fmt.Errorf("%w: set %q with %d dimensions", ErrFormat, s.Model, ndim)
		}
		seen[s.Model] = true
		size := int64(1)
		for range ndim {
			var d uint32
			get(&d)
			if err != nil {
				return nil, err
			}
			if d == 0 || int64(d) > maxSampleSize || size*int64(d) > maxSampleSize {
				return nil, fmt.Errorf("%w: set %s: dimension %d", ErrFormat, s.Model, d)
			}
			size *= int64(d)
			s.Shape = append(s.Shape, int64(d))
		}
		var n uint32
		var enc uint8
		get(&n)
		get(&enc)
		if err != nil {
			return nil, err
		}
		total := int64(n) * size
		if total > maxTotalFloats {
			return nil, fmt.Errorf("%w: set %s: %d samples of %d floats", ErrFormat, s.Model, n, size)
		}
		switch enc {
		case encFloat32:
			s.Data = make([]float32, 0, min(total, 1<<20))
			buf := make([]float32, 1<<16)
			for left := total; left > 0 && err == nil; {
				chunk := buf[:min(left, int64(len(buf)))]
				get(chunk)
				s.Data = append(s.Data, chunk...)
				left -= int64(len(chunk))
			}
		case encLUT8:
			channels := int(s.Shape[0])
			luts := make([][]float32, channels)
			for c := range luts {
				var k uint16
				get(&k)
				if err != nil {
					return nil, err
				}
				if k == 0 || k > 256 {
					return nil, fmt.Errorf("%w: set %s: table of %d values", ErrFormat, s.Model, k)
				}
				luts[c] = make([]float32, k)
				get(luts[c])
			}
			plane := int(size) / channels
			s.Data = make([]float32, 0, min(total, 1<<20))
			buf := make([]byte, 1<<16)
			for left := total; left > 0 && err == nil; {
				chunk := buf[:min(left, int64(len(buf)))]
				if _, err = io.ReadFull(br, chunk); err != nil {
					break
				}
				for _, code := range chunk {
					lut := luts[(len(s.Data)/plane)%channels]
					if int(code) >= len(lut) {
						return nil, fmt.Errorf("%w: set %s: code %d beyond its table of %d", ErrFormat, s.Model, code, len(lut))
					}
					s.Data = append(s.Data, lut[code])
				}
				left -= int64(len(chunk))
			}
		default:
			return nil, fmt.Errorf("%w: set %s: encoding %d", ErrFormat, s.Model, enc)
		}
		if err != nil {
			return nil, err
		}
		r.Sets = append(r.Sets, s)
	}
	return r, nil
}
