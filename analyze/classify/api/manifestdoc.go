package api

import "github.com/vigil-video/vigil/analyze/classify/manifest"

// manifestSchemas documents the classifier manifest (manifest.Manifest) for OpenAPI:
// ClassifierManifest and the schemas of its parts. TestManifestSchema keeps them in step with
// the Go structs' JSON fields.
func manifestSchemas() map[string]any {
	str := func(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
	num := func(desc string) map[string]any { return map[string]any{"type": "number", "description": desc} }
	integer := func(desc string) map[string]any { return map[string]any{"type": "integer", "description": desc} }
	enum := func(desc string, vals ...string) map[string]any {
		e := make([]any, len(vals))
		for i, v := range vals {
			e[i] = v
		}
		return map[string]any{"type": "string", "enum": e, "description": desc + " Any case is accepted."}
	}
	nums := func(desc string) map[string]any {
		return map[string]any{"type": "array", "items": map[string]any{"type": "number"}, "description": desc}
	}
	ref := func(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }
	obj := func(desc string, required []any, props map[string]any) map[string]any {
		m := map[string]any{"type": "object", "description": desc, "properties": props}
		if required != nil {
			m["required"] = required
		}
		return m
	}
	return map[string]any{
		"ClassifierManifest": obj("Describes a custom classifier: what it looks at, how an image becomes its input, how its output "+
			"becomes labels. YAML or JSON; unknown keys are refused. See the README, \"Classifier manifest\".",
			[]any{"name", "labels", "input"}, map[string]any{
				"name":        str("1-64 characters a-z, 0-9, '_' or '-', starting with a letter or digit; results carry it as classifications[].model"),
				"description": str("free text, at most 4096 bytes"),
				"labels":      map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "description": "one label per output value, in output order (at most 10000)"},
				"target": enum("What the classifier looks at: the whole frame (default), each detected face, or a fixed region.",
					manifest.TargetFrame, manifest.TargetFace, manifest.TargetRegion),
				"region":    ref("ClassifierRegion"),
				"face":      ref("ClassifierFace"),
				"input":     ref("ClassifierInput"),
				"output":    ref("ClassifierOutput"),
				"threshold": num("lowest top score reported (0..1 with softmax); below it nothing is reported for the target. Default 0"),
				"sha256":    str("hex SHA-256 of the model; registration fills it in, and a given one must match"),
				"trained":   ref("ClassifierTrained"),
			}),
		"ClassifierRegion": obj("The rectangle a region classifier looks at, in fractions of the frame (x, y >= 0; x+w, y+h <= 1).",
			[]any{"x", "y", "w", "h"}, map[string]any{"x": num("left"), "y": num("top"), "w": num("width"), "h": num("height")}),
		"ClassifierFace": obj("How a face classifier crops each face. Default {crop: box, margin: 0.2}.", nil, map[string]any{
			"crop": enum("box: the detector's box plus margin; align: the face embedding model's five-landmark alignment.",
				manifest.FaceBox, manifest.FaceAlign),
			"margin": num("enlarges the box on each side by this fraction of its size, 0..2 (box crop only)"),
		}),
		"ClassifierInput": obj("The model input and the preprocessing that produces it: resize (and crop), channel order, then "+
			"(v*scale - mean[c]) / std[c].", []any{"width", "height"}, map[string]any{
			"name":        str("the model input's name; default its only input"),
			"width":       integer("input width in pixels, 1..4096"),
			"height":      integer("input height in pixels, 1..4096"),
			"layout":      enum("Tensor layout (default NCHW).", manifest.LayoutNCHW, manifest.LayoutNHWC),
			"color":       enum("Channel order (default RGB; GRAY is one channel).", manifest.ColorRGB, manifest.ColorBGR, manifest.ColorGray),
			"scale":       num("multiplies each 8-bit value first; default 1/255"),
			"mean":        nums("subtracted after scaling: one value, or one per channel in color order; default 0"),
			"std":         nums("divides after the mean: one value, or one per channel; default 1"),
			"resize":      enum("stretch (default): to width x height; shorter_side: shorter side to resize_size, then the centre crop.", manifest.ResizeStretch, manifest.ResizeShorterSide),
			"resize_size": integer("shorter side before the centre crop (shorter_side only); default max(width, height)"),
			"crop":        enum("none (default for stretch) or center (default, and required, for shorter_side).", manifest.CropNone, manifest.CropCenter),
		}),
		"ClassifierOutput": obj("Which output holds the scores.", nil, map[string]any{
			"name":    str("the model output with one score per label; default its only output"),
			"softmax": map[string]any{"type": "boolean", "description": "apply a softmax (for models that output logits); default false"},
		}),
		"ClassifierTrained": obj("How Vigil trained the classifier (set by training).", nil, map[string]any{
			"backbone": str("the backbone the head was trained on"), "features": str("the backbone tensor the head reads"),
			"images": integer("training images"), "val_accuracy": num("held-out accuracy"),
		}),
	}
}
