package faceapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/vigil-video/vigil/pkg/httpapi"
)

// Error is an error the API answers with: the HTTP status, a stable machine-readable code (the
// "code" of the JSON error body) and a message saying what is wrong and what to do. The API's
// methods return it (wrapped in error) so the command line reports the same codes.
type Error struct {
	Status        int
	Code, Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// imageField is an image a route takes, under its name or one of its aliases.
type imageField struct {
	name    string
	aliases []string
	// multi: the field may repeat (multipart) or be an array (JSON).
	multi bool
}

// formSpec is what a route accepts besides its images: the names of its scalar fields.
type formSpec struct {
	// images lists the image fields; a raw image body fills the first.
	images []imageField
	fields []string
}

// form is a decoded request.
type form struct {
	images map[string][][]byte // by canonical field name
	fields map[string]string
}

// Bounds on a request's structure (the body size is bounded by the server).
const (
	maxParts      = 64
	maxFieldBytes = 64 << 10
	maxImages     = 32
)

func (s formSpec) imageName(name string) (imageField, bool) {
	for _, f := range s.images {
		if f.name == name {
			return f, true
		}
		for _, a := range f.aliases {
			if a == name {
				return f, true
			}
		}
	}
	return imageField{}, false
}

func (s formSpec) hasField(name string) bool {
	for _, f := range s.fields {
		if f == name {
			return true
		}
	}
	return false
}

func (s formSpec) accepted() string {
	var names []string
	for _, f := range s.images {
		names = append(names, f.name)
	}
	names = append(names, s.fields...)
	return strings.Join(names, ", ")
}

// parseForm decodes a request body in any of the accepted encodings: multipart/form-data (image
// files and text fields), application/json (images as base64 strings, optionally data: URLs),
// or a raw image/jpeg, image/png or application/octet-stream body (the first image field).
// Query parameters are fields too; body fields win. Unknown fields are refused, so a misspelt
// option is not silently ignored.
func parseForm(r *http.Request, spec formSpec) (form, *Error) {
	f := form{images: map[string][][]byte{}, fields: map[string]string{}}
	if err := f.addQuery(r.URL.RawQuery, spec); err != nil {
		return form{}, err
	}
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil {
		return form{}, errorf(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"Content-Type %q: send multipart/form-data, application/json, image/jpeg or image/png", ct)
	}
	var perr *Error
	switch mt {
	case "multipart/form-data":
		perr = f.readMultipart(r, params["boundary"], spec)
	case "application/json":
		perr = f.readJSON(r, spec)
	case "image/jpeg", "image/png", "application/octet-stream":
		var data []byte
		data, err = io.ReadAll(r.Body)
		if err != nil {
			perr = bodyError(r, err)
		} else {
			f.images[spec.images[0].name] = [][]byte{data}
		}
	default:
		perr = errorf(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"Content-Type %s: send multipart/form-data, application/json, image/jpeg or image/png", mt)
	}
	if perr != nil {
		return form{}, perr
	}
	return f, nil
}

func bodyError(r *http.Request, err error) *Error {
	if httpapi.IsBodyTooLarge(err) {
		return errorf(http.StatusRequestEntityTooLarge, "body_too_large",
			"the request body exceeds the upload limit of %s (server setting --max-upload-mb)", mib(httpapi.MaxUpload(r)))
	}
	return errorf(http.StatusBadRequest, "invalid_body", "reading the request body: %v", err)
}

// partError maps an error reading a multipart body: too large, or malformed.
func partError(r *http.Request, err error) *Error {
	if httpapi.IsBodyTooLarge(err) {
		return bodyError(r, err)
	}
	return errorf(http.StatusBadRequest, "invalid_multipart", "multipart body: %v", err)
}

func mib(n int64) string {
	if n > 0 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

func (f *form) addQuery(raw string, spec formSpec) *Error {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid_query", "query string: %v", err)
	}
	for k, vs := range q {
		if !spec.hasField(k) {
			return errorf(http.StatusBadRequest, "unknown_field", "unknown query parameter %q (this route takes: %s)", k, spec.accepted())
		}
		f.fields[k] = strings.Join(vs, ",")
	}
	return nil
}

func (f *form) addImage(field imageField, data []byte) *Error {
	if !field.multi && len(f.images[field.name]) > 0 {
		return errorf(http.StatusBadRequest, "invalid_field", "image field %q given more than once", field.name)
	}
	n := 0
	for _, v := range f.images {
		n += len(v)
	}
	if n >= maxImages {
		return errorf(http.StatusBadRequest, "too_many_images", "more than %d images in one request", maxImages)
	}
	f.images[field.name] = append(f.images[field.name], data)
	return nil
}

func (f *form) readMultipart(r *http.Request, boundary string, spec formSpec) *Error {
	if boundary == "" {
		return errorf(http.StatusBadRequest, "invalid_multipart", "multipart/form-data without a boundary parameter")
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid_multipart", "multipart body: %v", err)
	}
	for parts := 0; ; parts++ {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return partError(r, err)
		}
		if parts >= maxParts {
			p.Close()
			return errorf(http.StatusBadRequest, "invalid_multipart", "more than %d parts", maxParts)
		}
		name := p.FormName()
		if field, ok := spec.imageName(name); ok {
			data, err := io.ReadAll(p)
			p.Close()
			if err != nil {
				return partError(r, err)
			}
			if err := f.addImage(field, data); err != nil {
				return err
			}
			continue
		}
		if !spec.hasField(name) {
			p.Close()
			return errorf(http.StatusBadRequest, "unknown_field", "unknown form field %q (this route takes: %s)", name, spec.accepted())
		}
		data, err := io.ReadAll(io.LimitReader(p, maxFieldBytes+1))
		p.Close()
		if err != nil {
			return partError(r, err)
		}
		if len(data) > maxFieldBytes {
			return errorf(http.StatusBadRequest, "invalid_field", "form field %q is longer than %d bytes", name, maxFieldBytes)
		}
		f.fields[name] = string(data)
	}
}

func (f *form) readJSON(r *http.Request, spec formSpec) *Error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return bodyError(r, err)
	}
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return errorf(http.StatusBadRequest, "invalid_json", "request body is not a JSON object: %v", err)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "invalid_json", "data after the JSON object")
	}
	if obj == nil {
		return errorf(http.StatusBadRequest, "invalid_json", "request body is not a JSON object")
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic error messages
	for _, k := range keys {
		raw := obj[k]
		if field, ok := spec.imageName(k); ok {
			var list []string
			var one string
			switch {
			case json.Unmarshal(raw, &one) == nil:
				list = []string{one}
			case field.multi && json.Unmarshal(raw, &list) == nil:
			default:
				want := "a base64 string"
				if field.multi {
					want += " or an array of them"
				}
				return errorf(http.StatusBadRequest, "invalid_field", "JSON field %q: want %s", k, want)
			}
			for i, s := range list {
				img, err := decodeBase64(s)
				if err != nil {
					return errorf(http.StatusBadRequest, "invalid_base64", "JSON field %q (image %d): %v", k, i+1, err)
				}
				if err := f.addImage(field, img); err != nil {
					return err
				}
			}
			continue
		}
		if !spec.hasField(k) {
			return errorf(http.StatusBadRequest, "unknown_field", "unknown JSON field %q (this route takes: %s)", k, spec.accepted())
		}
		v, err := jsonScalar(raw)
		if err != nil {
			return errorf(http.StatusBadRequest, "invalid_field", "JSON field %q: %v", k, err)
		}
		if v != "" || f.fields[k] == "" {
			f.fields[k] = v
		}
	}
	return nil
}

// jsonScalar renders a JSON string, number, bool or array of strings as a field value (arrays
// comma-joined); null is "".
func jsonScalar(raw json.RawMessage) (string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		if x {
			return "true", nil
		}
		return "false", nil
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return "", errors.New("want an array of strings")
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	}
	return "", errors.New("want a string, number, boolean or array of strings")
}

// decodeBase64 decodes standard or URL-safe base64, padded or not, with line breaks allowed, and
// an optional "data:<type>;base64," prefix.
func decodeBase64(s string) ([]byte, error) {
	if strings.HasPrefix(s, "data:") {
		meta, payload, ok := strings.Cut(s, ",")
		if !ok || !strings.HasSuffix(meta, ";base64") {
			return nil, errors.New(`a data: URL must be "data:<type>;base64,<data>"`)
		}
		s = payload
	}
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	s = strings.TrimRight(s, "=")
	if s == "" {
		return nil, errors.New("empty image")
	}
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	out, err := enc.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not valid base64: %w", err)
	}
	return out, nil
}
