package streams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // header parsing in CheckImage (pure Go)
	_ "image/png"  // header parsing in CheckImage (pure Go)
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-video/vigil/pkg/frame"
)

// MaxBodyBytes bounds a JSON request body (HTTP) or request message (NATS).
const MaxBodyBytes = 64 << 10

// specDoc is Spec as decoded from JSON or YAML: Enabled is a pointer so that a missing key means
// enabled.
type specDoc struct {
	Name        string  `json:"name" yaml:"name"`
	Source      string  `json:"source" yaml:"source"`
	Node        string  `json:"node" yaml:"node"`
	Enabled     *bool   `json:"enabled" yaml:"enabled"`
	FPS         float64 `json:"fps" yaml:"fps"`
	MaxWidth    int     `json:"max_width" yaml:"max_width"`
	MaxHeight   int     `json:"max_height" yaml:"max_height"`
	JPEGQuality int     `json:"jpeg_quality" yaml:"jpeg_quality"`
	Loop        bool    `json:"loop" yaml:"loop"`
	Realtime    bool    `json:"realtime" yaml:"realtime"`
}

// specKeys are specDoc's keys, for the YAML parser's unknown-key check.
var specKeys = map[string]bool{"name": true, "source": true, "node": true, "enabled": true, "fps": true,
	"max_width": true, "max_height": true, "jpeg_quality": true, "loop": true, "realtime": true}

func (d specDoc) spec() Spec {
	s := Spec{Name: d.Name, Source: d.Source, Node: d.Node, Enabled: d.Enabled == nil || *d.Enabled, FPS: d.FPS,
		MaxWidth: d.MaxWidth, MaxHeight: d.MaxHeight, JPEGQuality: d.JPEGQuality, Loop: d.Loop, Realtime: d.Realtime}
	return s
}

// decodeStrict decodes one JSON object from data into v: unknown fields, trailing data and
// bodies over MaxBodyBytes are errors wrapping ErrInvalid.
func decodeStrict(data []byte, v any) error {
	if len(data) > MaxBodyBytes {
		return fmt.Errorf("%w: body of %d bytes exceeds %d", ErrInvalid, len(data), MaxBodyBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("%w: empty body: send a JSON object", ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: JSON: %s", ErrInvalid, jsonError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: JSON: data after the object", ErrInvalid)
	}
	return nil
}

// jsonError shortens encoding/json's messages and keeps them one line and bounded.
func jsonError(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d: %s", se.Offset, se.Error())
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := "a value of another type"
		if te.Type != nil {
			switch te.Type.Kind() {
			case reflect.Float32, reflect.Float64:
				want = "a number"
			case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint64, reflect.Uint32, reflect.Uint:
				want = "an integer"
			case reflect.Bool:
				want = "true or false"
			case reflect.String:
				want = "a string"
			case reflect.Struct, reflect.Map:
				want = "an object"
			}
		}
		if te.Field == "" {
			return fmt.Sprintf("the body must be a JSON object, not %s", te.Value)
		}
		return fmt.Sprintf("field %q: %s given, want %s", te.Field, te.Value, want)
	}
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return strings.ReplaceAll(msg, "\n", " ")
}

// DecodeSpec decodes a stream configuration from a JSON object (an HTTP body, a NATS request's
// "stream", a bucket entry). A missing "enabled" means true; unknown fields are refused. It does
// not set defaults nor validate.
func DecodeSpec(data []byte) (Spec, error) {
	var d specDoc
	if err := decodeStrict(data, &d); err != nil {
		return Spec{}, err
	}
	return d.spec(), nil
}

// DecodePatch decodes a Patch from a JSON object; unknown fields are refused.
func DecodePatch(data []byte) (Patch, error) {
	var p Patch
	if err := decodeStrict(data, &p); err != nil {
		return Patch{}, err
	}
	return p, nil
}

// ControlSubject is the NATS subject of stream-management requests (Request in, Reply out).
// Ingest processes answer it in the queue group ControlQueue, so one of them answers each
// request; they share the list through the bucket.
const ControlSubject = "vigil.control.streams"

// ControlQueue is the queue group ingest processes join on ControlSubject.
const ControlQueue = "vigil-ingest"

// Operations of a Request.
const (
	OpList   = "list"
	OpGet    = "get"
	OpCreate = "create"
	OpPut    = "put"
	OpPatch  = "patch"
	OpDelete = "delete"
)

// Request is a stream-management request on ControlSubject, as JSON:
//
//	{"op":"list"}
//	{"op":"get","name":"lobby"}
//	{"op":"create","stream":{"name":"lobby","source":"rtsp://cam/1"}}   (fails if it exists)
//	{"op":"put","stream":{"name":"lobby","source":"rtsp://cam/1","fps":2}}   (create or replace)
//	{"op":"patch","name":"lobby","stream":{"enabled":false}}
//	{"op":"delete","name":"lobby"}
//
// "revision" (optional, put/patch/delete) applies the change only if the stream's revision is
// still that one.
type Request struct {
	Op       string          `json:"op"`
	Name     string          `json:"name,omitempty"`
	Stream   json.RawMessage `json:"stream,omitempty"`
	Revision uint64          `json:"revision,omitempty"`

	spec  Spec
	patch Patch
}

// ParseRequest decodes and checks a Request: a known op, a valid name where one is needed, a
// stream configuration (create, put) or patch (patch) that decodes. Configurations are not
// validated here (the Registry sets defaults, then validates). Errors wrap ErrInvalid or
// frame.ErrInvalidStream.
func ParseRequest(data []byte) (Request, error) {
	var r Request
	if err := decodeStrict(data, &r); err != nil {
		return Request{}, err
	}
	hasStream := len(r.Stream) > 0 && string(r.Stream) != "null"
	switch r.Op {
	case OpList:
		if r.Name != "" || hasStream || r.Revision != 0 {
			return Request{}, fmt.Errorf("%w: list takes no name, stream or revision", ErrInvalid)
		}
		return r, nil
	case OpGet, OpDelete:
		if hasStream {
			return Request{}, fmt.Errorf("%w: %s takes a name, not a stream", ErrInvalid, r.Op)
		}
		if r.Op == OpGet && r.Revision != 0 {
			return Request{}, fmt.Errorf("%w: get takes no revision", ErrInvalid)
		}
		if err := frame.ValidateStream(r.Name); err != nil {
			return Request{}, fmt.Errorf("name: %w", err)
		}
		return r, nil
	case OpCreate, OpPut:
		if !hasStream {
			return Request{}, fmt.Errorf("%w: %s needs \"stream\": the stream's configuration", ErrInvalid, r.Op)
		}
		s, err := DecodeSpec(r.Stream)
		if err != nil {
			return Request{}, fmt.Errorf("stream: %w", err)
		}
		if r.Name != "" && r.Name != s.Name {
			return Request{}, fmt.Errorf("%w: name %q differs from stream.name %q", ErrInvalid, truncate(r.Name, 64), truncate(s.Name, 64))
		}
		if r.Op == OpCreate && r.Revision != 0 {
			return Request{}, fmt.Errorf("%w: create takes no revision", ErrInvalid)
		}
		r.Name, r.spec = s.Name, s
		if err := frame.ValidateStream(r.Name); err != nil {
			return Request{}, fmt.Errorf("stream.name: %w", err)
		}
		return r, nil
	case OpPatch:
		if err := frame.ValidateStream(r.Name); err != nil {
			return Request{}, fmt.Errorf("name: %w", err)
		}
		if !hasStream {
			return Request{}, fmt.Errorf("%w: patch needs \"stream\": the fields to change", ErrInvalid)
		}
		p, err := DecodePatch(r.Stream)
		if err != nil {
			return Request{}, fmt.Errorf("stream: %w", err)
		}
		r.patch = p
		return r, nil
	case "":
		return Request{}, fmt.Errorf("%w: no \"op\" (list, get, create, put, patch, delete)", ErrInvalid)
	}
	return Request{}, fmt.Errorf("%w: unknown op %q (list, get, create, put, patch, delete)", ErrInvalid, truncate(r.Op, 32))
}

// Reply answers a Request: ok with the stream (get, create, put, patch) or the streams (list),
// or an error with a stable code (the HTTP API's codes) and a message.
type Reply struct {
	OK      bool        `json:"ok"`
	Stream  *Status     `json:"stream,omitempty"`
	Streams []Status    `json:"streams,omitzero"`
	Error   *ReplyError `json:"error,omitempty"`
}

// ReplyError is a Reply's error: the code and message the HTTP API would give.
type ReplyError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// DefaultMaxPixels bounds a pushed image's width x height: 4096x4096.
const DefaultMaxPixels = 4096 * 4096

// CheckImage checks a pushed body from its header alone, in pure Go and without decoding the
// pixels: it must be a JPEG or PNG of positive size with at most maxPixels pixels (0:
// DefaultMaxPixels). It returns the format ("jpeg" or "png") and size. Errors wrap ErrImage, or
// ErrTooLarge for too many pixels.
func CheckImage(data []byte, maxPixels int) (string, int, int, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	if len(data) == 0 {
		return "", 0, 0, fmt.Errorf("%w: empty body: send a JPEG or PNG image", ErrImage)
	}
	switch {
	case bytes.HasPrefix(data, []byte{0xff, 0xd8, 0xff}):
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
	default:
		return "", 0, 0, fmt.Errorf("%w: not a JPEG or PNG (unknown signature)", ErrImage)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return "", 0, 0, fmt.Errorf("%w: %s", ErrImage, truncate(err.Error(), 200))
	}
	if format != "jpeg" && format != "png" {
		return "", 0, 0, fmt.Errorf("%w: %s images are not accepted (JPEG or PNG)", ErrImage, format)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return "", 0, 0, fmt.Errorf("%w: %s of %dx%d pixels", ErrImage, format, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > int64(maxPixels) {
		return "", 0, 0, fmt.Errorf("%w: %s of %dx%d pixels exceeds the limit of %d pixels", ErrTooLarge, format, cfg.Width, cfg.Height, maxPixels)
	}
	return format, cfg.Width, cfg.Height, nil
}

// CapturedHeader is the HTTP header a push may carry its capture time in: Unix nanoseconds,
// decimal (the frame header's format).
const CapturedHeader = frame.HeaderCaptured

// ParseCaptured parses a capture time in Unix nanoseconds. "" means now. Times more than a
// minute ahead of now or more than a day behind are refused (a clock or unit mistake), with an
// error wrapping ErrInvalid.
func ParseCaptured(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return now, nil
	}
	ns, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s %q is not Unix nanoseconds", ErrInvalid, CapturedHeader, truncate(v, 32))
	}
	t := time.Unix(0, ns)
	if t.After(now.Add(time.Minute)) || t.Before(now.Add(-24*time.Hour)) {
		return time.Time{}, fmt.Errorf("%w: %s %s is more than a minute ahead of or a day behind this server's clock (%s)",
			ErrInvalid, CapturedHeader, t.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339))
	}
	return t, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
