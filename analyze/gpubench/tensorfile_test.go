package gpubench

import (
	"bytes"
	"compress/gzip"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// pixelSet returns n samples of shape whose channels hold normalised 8-bit
// values, as the analyzer's inputs do.
func pixelSet(name string, n int, shape ...int64) Set {
	s := Set{Model: name, Shape: shape}
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	size := s.SampleSize()
	plane := size / int(shape[0])
	s.Data = make([]float32, n*size)
	for i := range s.Data {
		c := (i / plane) % int(shape[0])
		s.Data[i] = (float32(rng.IntN(256)) - 127 + float32(c)) / 128
	}
	return s
}

// randomSet returns n samples of arbitrary floats (more than 256 values
// per channel), including the special values.
func randomSet(name string, n int, shape ...int64) Set {
	s := Set{Model: name, Shape: shape}
	rng := rand.New(rand.NewPCG(3, uint64(n)))
	s.Data = make([]float32, n*s.SampleSize())
	for i := range s.Data {
		s.Data[i] = rng.Float32()*2 - 1
	}
	s.Data[0], s.Data[1], s.Data[2], s.Data[3] = float32(math.NaN()), float32(math.Inf(-1)), float32(math.Copysign(0, -1)), 0
	return s
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func encode(t testing.TB, r *Recording) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := r.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRecordingRoundTrip(t *testing.T) {
	lutOnly := &Recording{Source: "lut", Frames: 3, Faces: 5, Sets: []Set{pixelSet("fr_detect", 3, 3, 24, 32)}}
	rawOnly := &Recording{Source: "raw", Frames: 3, Faces: 5, Sets: []Set{randomSet("fr_detect", 3, 3, 24, 32)}}
	rec := &Recording{Source: "/videos/a.avi", Frames: 3, Faces: 5, Sets: []Set{
		pixelSet("fr_detect", 3, 3, 24, 32),
		pixelSet("fr_landmark", 5, 1, 8, 8),
		randomSet("fr_feature", 5, 3, 4, 4),
		{Model: "empty", Shape: []int64{2}},
	}}
	for _, r := range []*Recording{lutOnly, rawOnly, rec, {}} {
		data := encode(t, r)
		got, err := Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", r.Source, err)
		}
		if got.Source != r.Source || got.Frames != r.Frames || got.Faces != r.Faces || len(got.Sets) != len(r.Sets) {
			t.Fatalf("%s: decoded %+v", r.Source, got)
		}
		for i, s := range r.Sets {
			g := got.Sets[i]
			if g.Model != s.Model || len(g.Shape) != len(s.Shape) || !sameBits(g.Data, s.Data) || g.N() != s.N() {
				t.Errorf("%s: set %s differs after the round trip", r.Source, s.Model)
			}
		}
		t.Logf("%s: %d bytes", r.Source, len(data))
	}
	if l, r := len(encode(t, lutOnly)), len(encode(t, rawOnly)); l*3 > r {
		t.Errorf("8-bit data took %d bytes, random floats %d: the tables are not used", l, r)
	}
	if s, ok := rec.Set("fr_landmark"); !ok || s.N() != 5 {
		t.Errorf("Set(fr_landmark) = %v, %v", s.N(), ok)
	}
}

func TestEncodeRefuses(t *testing.T) {
	for _, r := range []*Recording{
		{Sets: []Set{{Model: "a", Shape: []int64{2}, Data: make([]float32, 3)}}},
		{Sets: []Set{{Model: "", Shape: []int64{1}}}},
		{Sets: []Set{{Model: "a", Shape: []int64{1}}, {Model: "a", Shape: []int64{1}}}},
		{Sets: []Set{{Model: "a", Shape: nil}}},
		{Sets: []Set{{Model: "a", Shape: []int64{1, 1, 1, 1, 1}}}},
		{Sets: []Set{{Model: "a", Shape: []int64{0}}}},
		{Frames: -1},
	} {
		if err := r.Encode(&bytes.Buffer{}); err == nil {
			t.Errorf("Encode(%+v) succeeded", r)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	good := encode(t, &Recording{Source: "s", Frames: 1, Faces: 1, Sets: []Set{pixelSet("m", 1, 3, 4, 4)}})
	raw := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	plain, err := gzip.NewReader(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(plain)
	b := body.Bytes()
	badVersion := append([]byte(magic), 9, 0, 0, 0)
	for name, data := range map[string][]byte{
		"not gzip":    []byte("hello"),
		"bad magic":   raw([]byte("NOTVIGIL")),
		"version":     raw(badVersion),
		"truncated":   raw(b[:len(b)-10]),
		"trailing":    raw(append(append([]byte{}, b...), 1)),
		"empty":       raw(nil),
		"bad code":    raw(append(append([]byte{}, b[:len(b)-1]...), 255)),
		"too many":    raw(append([]byte(magic), 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 0, 0)),
		"cut in gzip": good[:len(good)/2],
	} {
		if _, err := Decode(bytes.NewReader(data)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: error %v, want ErrFormat", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(f, &Recording{Source: "s", Frames: 2, Faces: 1, Sets: []Set{pixelSet("m", 2, 3, 4, 4), randomSet("r", 1, 1, 2, 2)}}))
	f.Add(encode(f, &Recording{}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		again, err := Decode(bytes.NewReader(encode(t, r)))
		if err != nil {
			t.Fatalf("re-encoded recording does not decode: %v", err)
		}
		for i, s := range r.Sets {
			if !sameBits(again.Sets[i].Data, s.Data) {
				t.Fatalf("set %s changes when re-encoded", s.Model)
			}
		}
	})
}
