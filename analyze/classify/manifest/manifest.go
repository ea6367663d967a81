// Package manifest describes a custom image classifier: which labels its scores mean, what it
// looks at (the whole frame, each face, or a fixed region), how an image becomes its input
// tensor (size, layout, colour order, scale, mean/std, resize and crop) and how its output
// becomes a verdict (which output, softmax or not, threshold).
//
// Parse reads a manifest from YAML or JSON, rejecting unknown fields, and Validate says
// precisely what is wrong with one; CheckModel compares a manifest with the inputs and outputs
// an ONNX model declares. The package is pure Go: it never decodes images or runs models.
//
// An ImageNet-style classifier brought as is:
//
//	name: clothes                  # a-z, 0-9, '_', '-'; results say classifications[].model
//	labels: [pants, shoes, shorts, t-shirt]   # one per output value, in output order
//	target: frame                  # frame | face | region
//	input:
//	  width: 224
//	  height: 224
//	  layout: NCHW                 # NCHW | NHWC
//	  color: RGB                   # RGB | BGR | GRAY
//	  scale: 0.00392156862745098   # 1/255 (the default)
//	  mean: [0.485, 0.456, 0.406]
//	  std: [0.229, 0.224, 0.225]
//	  resize: shorter_side         # stretch | shorter_side
//	  resize_size: 256             # shorter side before the centre crop
//	  crop: center
//	output:
//	  name: output                 # which output holds the scores
//	  softmax: true                # the model outputs logits
//	threshold: 0.5                 # lower top scores are not reported
//
// A face classifier adds "target: face" and "face: {crop: align}" (the five-landmark 112x112
// alignment of the face embedding) or "face: {crop: box, margin: 0.2}"; a region classifier
// "target: region" and "region: {x: 0.5, y: 0, w: 0.5, h: 0.5}" (fractions of the frame).
package manifest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// ErrInvalid is wrapped by every error Parse and Validate return for a manifest that is not
// acceptable.
var ErrInvalid = errors.New("invalid classifier manifest")

// ErrModel is wrapped by the errors for a model that cannot serve its manifest: bytes that are
// not an ONNX model, external data, inputs and outputs that do not fit, a model onnxruntime
// refuses or whose test run fails.
var ErrModel = errors.New("unusable classifier model")

// MaxSize bounds the encoded size of a manifest Parse accepts: 1 MiB (enough for 10,000 labels).
const MaxSize = 1 << 20

// MaxLabels bounds the number of labels.
const MaxLabels = 10000

// Targets: what a classifier looks at.
const (
	// TargetFrame classifies the whole frame.
	TargetFrame = "frame"
	// TargetFace classifies each detected face (see Face).
	TargetFace = "face"
	// TargetRegion classifies a fixed rectangle of the frame (see Region).
	TargetRegion = "region"
)

// Input layouts.
const (
	LayoutNCHW = "NCHW"
	LayoutNHWC = "NHWC"
)

// Colour orders of the input channels.
const (
	ColorRGB  = "RGB"
	ColorBGR  = "BGR"
	ColorGray = "GRAY"
)

// Resize modes.
const (
	// ResizeStretch resizes the target to Width x Height, ignoring its aspect ratio.
	ResizeStretch = "stretch"
	// ResizeShorterSide scales the target so its shorter side is ResizeSize, keeping the aspect
	// ratio, then crops the centre Width x Height (Crop must be "center").
	ResizeShorterSide = "shorter_side"
)

// Crop modes.
const (
	CropNone   = "none"
	CropCenter = "center"
)

// Face crops.
const (
	// FaceAlign warps the face onto the 112x112 five-landmark template the face embedding model
	// takes (then resizes to the input size): use it with the face embedding as backbone.
	FaceAlign = "align"
	// FaceBox takes the detector's box enlarged by Margin on each side.
	FaceBox = "box"
)

// Manifest describes one classifier. Field names are the YAML/JSON keys.
type Manifest struct {
	// Name identifies the classifier: 1-64 characters of a-z, 0-9, '_' and '-', starting with a
	// letter or digit. Results carry it as classifications[].model.
	Name string `json:"name" yaml:"name"`
	// Description is free text for people.
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
	// Labels name the scores, in output order: exactly as many as the output has values.
	Labels []string `json:"labels" yaml:"labels"`
	// Target is what the classifier looks at: "frame" (default), "face" or "region".
	Target string `json:"target,omitempty" yaml:"target,omitempty"`
	// Region is the rectangle a "region" classifier looks at, in fractions of the frame.
	Region *Region `json:"region,omitempty" yaml:"region,omitempty"`
	// Face says how a "face" classifier crops each face. Default {crop: box, margin: 0.2}.
	Face *Face `json:"face,omitempty" yaml:"face,omitempty"`
	// Input says how an image becomes the input tensor.
	Input Input `json:"input" yaml:"input"`
	// Output says where the scores are and how to read them.
	Output Output `json:"output,omitempty" yaml:"output,omitempty"`
	// Threshold is the lowest top score reported; below it the classifier reports nothing for
	// that target. Default 0 (always report the top label).
	Threshold float32 `json:"threshold,omitempty" yaml:"threshold,omitempty"`
	// SHA256 is the hex SHA-256 of the model file. Registration fills it in (a manifest that
	// already has one must match the model); every load checks the model against it.
	SHA256 string `json:"sha256,omitempty" yaml:"sha256,omitempty"`
	// Trained describes how Vigil trained the classifier, when it did.
	Trained *Trained `json:"trained,omitempty" yaml:"trained,omitempty"`
}

// Region is a rectangle in fractions of the frame's width and height (0..1).
type Region struct {
	X float64 `json:"x" yaml:"x"`
	Y float64 `json:"y" yaml:"y"`
	W float64 `json:"w" yaml:"w"`
	H float64 `json:"h" yaml:"h"`
}

// Face configures the crop of a face classifier.
type Face struct {
	// Crop is "box" (default: the detector's box plus Margin) or "align" (the five-landmark
	// alignment of the face embedding model; faces without landmarks are skipped).
	Crop string `json:"crop,omitempty" yaml:"crop,omitempty"`
	// Margin enlarges the box on each side by this fraction of its size (box crop only).
	// Default 0.2 when Face is omitted, else 0.
	Margin float64 `json:"margin,omitempty" yaml:"margin,omitempty"`
}

// Input describes the model input and the preprocessing that produces it.
type Input struct {
	// Name is the model input's name; default the model's only input.
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// Width and Height are the input's spatial size in pixels (1..4096). Required.
	Width  int `json:"width" yaml:"width"`
	Height int `json:"height" yaml:"height"`
	// Layout is "NCHW" (default) or "NHWC".
	Layout string `json:"layout,omitempty" yaml:"layout,omitempty"`
	// Color is the channel order: "RGB" (default), "BGR" or "GRAY" (one channel).
	Color string `json:"color,omitempty" yaml:"color,omitempty"`
	// Scale multiplies each 8-bit value first. Default 1/255.
	Scale float32 `json:"scale,omitempty" yaml:"scale,omitempty"`
	// Mean and Std normalise each scaled value: (v*Scale - Mean[c]) / Std[c]. One value for
	// every channel, or one per channel in Color order. Defaults 0 and 1.
	Mean []float32 `json:"mean,omitempty" yaml:"mean,omitempty"`
	Std  []float32 `json:"std,omitempty" yaml:"std,omitempty"`
	// Resize is "stretch" (default) or "shorter_side".
	Resize string `json:"resize,omitempty" yaml:"resize,omitempty"`
	// ResizeSize is the shorter side's length before the centre crop ("shorter_side" only).
	// Default max(Width, Height).
	ResizeSize int `json:"resize_size,omitempty" yaml:"resize_size,omitempty"`
	// Crop is "none" (default for stretch) or "center" (default, and required, for
	// shorter_side).
	Crop string `json:"crop,omitempty" yaml:"crop,omitempty"`
}

// Output says which model output holds the scores and how to read them.
type Output struct {
	// Name is the model output holding one score per label; default the model's only output.
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// Softmax applies a softmax to the output (for models that output logits). Default false.
	Softmax bool `json:"softmax,omitempty" yaml:"softmax,omitempty"`
}

// Trained records how Vigil trained a classifier.
type Trained struct {
	// Backbone names the backbone model the head was trained on.
	Backbone string `json:"backbone" yaml:"backbone"`
	// Features names the backbone tensor the head reads.
	Features string `json:"features" yaml:"features"`
	// Images is the number of training images, ValAccuracy the held-out accuracy.
	Images      int     `json:"images" yaml:"images"`
	ValAccuracy float64 `json:"val_accuracy" yaml:"val_accuracy"`
}

// Channels returns the number of input channels: 1 for GRAY, else 3.
func (in Input) Channels() int {
	if in.Color == ColorGray {
		return 1
	}
	return 3
}

// Norm returns the per-channel (mean, std) after defaults, in Color order.
func (in Input) Norm() (mean, std []float32) {
	c := in.Channels()
	mean, std = make([]float32, c), make([]float32, c)
	for i := 0; i < c; i++ {
		mean[i], std[i] = 0, 1
		switch len(in.Mean) {
		case 1:
			mean[i] = in.Mean[0]
		case c:
			mean[i] = in.Mean[i]
		}
		switch len(in.Std) {
		case 1:
			std[i] = in.Std[0]
		case c:
			std[i] = in.Std[i]
		}
	}
	return mean, std
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ValidName reports whether name is an acceptable classifier name.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// CheckName returns an error wrapping ErrInvalid unless name is an acceptable classifier name.
func CheckName(name string) error {
	if !ValidName(name) {
		return fmt.Errorf("%w: name %q: use 1-64 characters a-z, 0-9, '_' or '-', starting with a letter or digit", ErrInvalid, name)
	}
	return nil
}

// Parse decodes a manifest from JSON (when the first non-blank character is '{') or YAML,
// applies the defaults and validates it. Unknown fields, duplicate keys, several documents and
// input over MaxSize are errors wrapping ErrInvalid, each naming what is wrong.
func Parse(data []byte) (Manifest, error) {
	if len(data) > MaxSize {
		return Manifest{}, fmt.Errorf("%w: %d bytes; a manifest may have at most %d", ErrInvalid, len(data), MaxSize)
	}
	var m Manifest
	trimmed := bytes.TrimLeft(data, " \t\r\n\ufeff")
	if len(trimmed) > 0 && trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			return Manifest{}, fmt.Errorf("%w: JSON: %w", ErrInvalid, err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return Manifest{}, fmt.Errorf("%w: JSON: data after the manifest object", ErrInvalid)
		}
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return Manifest{}, fmt.Errorf("%w: empty manifest", ErrInvalid)
			}
			return Manifest{}, fmt.Errorf("%w: YAML: %s", ErrInvalid, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		var extra any
		if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
			return Manifest{}, fmt.Errorf("%w: YAML: more than one document", ErrInvalid)
		}
	}
	m.SetDefaults()
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// SetDefaults writes the enumerated fields (target, face.crop, input.layout, input.color,
// input.resize, input.crop) in their canonical case, so that any case is accepted ("nchw",
// "Frame"), and fills in the documented defaults of unset fields.
func (m *Manifest) SetDefaults() {
	m.Target = strings.ToLower(m.Target)
	if m.Face != nil {
		m.Face.Crop = strings.ToLower(m.Face.Crop)
	}
	m.Input.Layout = strings.ToUpper(m.Input.Layout)
	m.Input.Color = strings.ToUpper(m.Input.Color)
	m.Input.Resize = strings.ToLower(m.Input.Resize)
	m.Input.Crop = strings.ToLower(m.Input.Crop)
	if m.Target == "" {
		m.Target = TargetFrame
	}
	if m.Target == TargetFace && m.Face == nil {
		m.Face = &Face{Crop: FaceBox, Margin: 0.2}
	}
	if m.Face != nil && m.Face.Crop == "" {
		m.Face.Crop = FaceBox
	}
	in := &m.Input
	if in.Layout == "" {
		in.Layout = LayoutNCHW
	}
	if in.Color == "" {
		in.Color = ColorRGB
	}
	if in.Scale == 0 {
		in.Scale = 1.0 / 255
	}
	if in.Resize == "" {
		in.Resize = ResizeStretch
	}
	if in.Resize == ResizeShorterSide && in.ResizeSize == 0 {
		in.ResizeSize = max(in.Width, in.Height)
	}
	if in.Crop == "" {
		in.Crop = CropNone
		if in.Resize == ResizeShorterSide {
			in.Crop = CropCenter
		}
	}
}

// Validate checks a manifest whose defaults are set. Every error wraps ErrInvalid and names the
// field and the accepted values.
func (m *Manifest) Validate() error {
	err := m.validate()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

func (m *Manifest) validate() error {
	if !ValidName(m.Name) {
		return fmt.Errorf("name %q: use 1-64 characters a-z, 0-9, '_' or '-', starting with a letter or digit", m.Name)
	}
	if len(m.Labels) == 0 {
		return errors.New("labels: none given; list one label per model output value")
	}
	if len(m.Labels) > MaxLabels {
		return fmt.Errorf("labels: %d given, at most %d", len(m.Labels), MaxLabels)
	}
	seen := make(map[string]int, len(m.Labels))
	for i, l := range m.Labels {
		if err := checkLabel(l); err != nil {
			return fmt.Errorf("labels[%d]: %w", i, err)
		}
		if j, dup := seen[l]; dup {
			return fmt.Errorf("labels[%d]: %q repeats labels[%d]", i, l, j)
		}
		seen[l] = i
	}
	if len(m.Description) > 4096 || !utf8.ValidString(m.Description) {
		return errors.New("description: at most 4096 bytes of UTF-8")
	}
	switch m.Target {
	case TargetFrame, TargetFace, TargetRegion:
	default:
		return fmt.Errorf("target %q: use frame, face or region", m.Target)
	}
	if (m.Target == TargetRegion) != (m.Region != nil) {
		return fmt.Errorf("region: given with target %q; a region is required with target region and allowed only there", m.Target)
	}
	if r := m.Region; r != nil {
		if !finite64(r.X, r.Y, r.W, r.H) || r.X < 0 || r.Y < 0 || r.W <= 0 || r.H <= 0 || r.X+r.W > 1+1e-9 || r.Y+r.H > 1+1e-9 {
			return fmt.Errorf("region {x: %v, y: %v, w: %v, h: %v}: want fractions of the frame with x, y >= 0, w, h > 0, x+w <= 1 and y+h <= 1", r.X, r.Y, r.W, r.H)
		}
	}
	if m.Face != nil {
		if m.Target != TargetFace {
			return fmt.Errorf("face: given with target %q; allowed only with target face", m.Target)
		}
		switch m.Face.Crop {
		case FaceBox:
		case FaceAlign:
			if m.Face.Margin != 0 {
				return errors.New("face.margin: applies to the box crop only")
			}
		default:
			return fmt.Errorf("face.crop %q: use box or align", m.Face.Crop)
		}
		if !finite64(m.Face.Margin) || m.Face.Margin < 0 || m.Face.Margin > 2 {
			return fmt.Errorf("face.margin %v: want 0..2", m.Face.Margin)
		}
	}
	if err := m.Input.validate(); err != nil {
		return err
	}
	if len(m.Output.Name) > 256 {
		return errors.New("output.name: longer than 256 bytes")
	}
	if m.Output.Softmax && len(m.Labels) < 2 {
		return errors.New("output.softmax: a softmax over a single score is always 1; use it with two or more labels")
	}
	if !finite32(m.Threshold) || (m.Output.Softmax && (m.Threshold < 0 || m.Threshold > 1)) {
		return fmt.Errorf("threshold %v: want a finite number (0..1 with softmax)", m.Threshold)
	}
	if m.SHA256 != "" {
		if b, err := hex.DecodeString(m.SHA256); err != nil || len(b) != 32 || strings.ToLower(m.SHA256) != m.SHA256 {
			return fmt.Errorf("sha256 %q: want 64 lower-case hex digits", m.SHA256)
		}
	}
	if t := m.Trained; t != nil && (len(t.Backbone) > 256 || len(t.Features) > 256) {
		return errors.New("trained: backbone and features names must be at most 256 bytes")
	}
	return nil
}

func (in *Input) validate() error {
	if in.Width < 1 || in.Width > 4096 || in.Height < 1 || in.Height > 4096 {
		return fmt.Errorf("input.width %d, input.height %d: both are required, 1..4096", in.Width, in.Height)
	}
	if len(in.Name) > 256 {
		return errors.New("input.name: longer than 256 bytes")
	}
	switch in.Layout {
	case LayoutNCHW, LayoutNHWC:
	default:
		return fmt.Errorf("input.layout %q: use NCHW or NHWC", in.Layout)
	}
	switch in.Color {
	case ColorRGB, ColorBGR, ColorGray:
	default:
		return fmt.Errorf("input.color %q: use RGB, BGR or GRAY", in.Color)
	}
	if !finite32(in.Scale) || in.Scale <= 0 {
		return fmt.Errorf("input.scale %v: want a positive number", in.Scale)
	}
	c := in.Channels()
	for _, p := range []struct {
		name string
		v    []float32
	}{{"mean", in.Mean}, {"std", in.Std}} {
		if len(p.v) != 0 && len(p.v) != 1 && len(p.v) != c {
			return fmt.Errorf("input.%s: %d values for %d channels; give 1 or %d", p.name, len(p.v), c, c)
		}
		if !finite32(p.v...) {
			return fmt.Errorf("input.%s: values must be finite", p.name)
		}
	}
	for _, s := range in.Std {
		if s == 0 {
			return errors.New("input.std: values must not be 0")
		}
	}
	switch in.Resize {
	case ResizeStretch:
		if in.Crop != CropNone {
			return fmt.Errorf("input.crop %q: with resize stretch the whole target is used; use crop none or resize shorter_side", in.Crop)
		}
		if in.ResizeSize != 0 {
			return errors.New("input.resize_size: applies to resize shorter_side only")
		}
	case ResizeShorterSide:
		if in.Crop != CropCenter {
			return fmt.Errorf("input.crop %q: resize shorter_side needs crop center", in.Crop)
		}
		if in.ResizeSize < max(in.Width, in.Height) || in.ResizeSize > 8192 {
			return fmt.Errorf("input.resize_size %d: want at least the larger of width and height (%d), at most 8192",
				in.ResizeSize, max(in.Width, in.Height))
		}
	default:
		return fmt.Errorf("input.resize %q: use stretch or shorter_side", in.Resize)
	}
	return nil
}

// checkLabel accepts 1-128 bytes of printable UTF-8.
func checkLabel(l string) error {
	if l == "" || len(l) > 128 || !utf8.ValidString(l) {
		return fmt.Errorf("%q: want 1-128 bytes of UTF-8", l)
	}
	for _, r := range l {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%q: contains a control or non-printing character", l)
		}
	}
	if strings.TrimSpace(l) != l {
		return fmt.Errorf("%q: leading or trailing space", l)
	}
	return nil
}

func finite32(vs ...float32) bool {
	for _, v := range vs {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}

func finite64(vs ...float64) bool {
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// Encode returns m as indented JSON, the form registries store.
func (m Manifest) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest %s: %w", m.Name, err)
	}
	return b, nil
}

// Clone returns a deep copy of m.
func (m Manifest) Clone() Manifest {
	c := m
	c.Labels = append([]string(nil), m.Labels...)
	c.Input.Mean = append([]float32(nil), m.Input.Mean...)
	c.Input.Std = append([]float32(nil), m.Input.Std...)
	if m.Region != nil {
		r := *m.Region
		c.Region = &r
	}
	if m.Face != nil {
		f := *m.Face
		c.Face = &f
	}
	if m.Trained != nil {
		t := *m.Trained
		c.Trained = &t
	}
	return c
}
