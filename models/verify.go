package models

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// DepsEnv is the environment variable that names the deps directory.
const DepsEnv = "VIGIL_DEPS"

// DefaultDepsPath is the deps directory "make setup" fills, relative to the
// repository root.
const DefaultDepsPath = "build/deps"

// fixHint is the remedy every FileError for a missing or wrong file ends with.
const fixHint = `run "make setup"`

// DefaultDepsDir returns $VIGIL_DEPS when it is set and not empty, else
// DefaultDepsPath ("build/deps", which is relative to the working
// directory). It only reads the environment; callers that take a deps
// directory flag should use this as the flag's default.
func DefaultDepsDir() string {
	if d := os.Getenv(DepsEnv); d != "" {
		return d
	}
	return DefaultDepsPath
}

// FileError reports a manifest file that is missing from the deps
// directory, is not a regular file, cannot be read, or has the wrong sha256.
// Its message is one line that names the file and the path and, where
// fetching again fixes it, says to run "make setup". errors.Is(err,
// fs.ErrNotExist) holds for a missing file.
type FileError struct {
	// File is the manifest entry.
	File File
	// Path is the path that was checked: the deps directory joined with
	// File.Dest.
	Path string
	// Got is the sha256 found; set only when the content is wrong.
	Got string
	// Err is the underlying error; nil when the content is wrong.
	Err error
}

// Error returns e.g.
//
//	model fr_detect: build/deps/models/fr_detect.onnx: no such file: run "make setup"
//	model fr_detect: build/deps/models/fr_detect.onnx: sha256 mismatch (got ab12…, want 6c02…): run "make setup"
func (e *FileError) Error() string {
	prefix := fmt.Sprintf("%s %s: %s", e.File.Kind, e.File.Name, e.Path)
	switch {
	case e.Mismatch():
		return fmt.Sprintf("%s: sha256 mismatch (got %s, want %s): %s", prefix, short(e.Got), short(e.File.SHA256), fixHint)
	case e.Missing():
		return fmt.Sprintf("%s: no such file: %s", prefix, fixHint)
	}
	var pe *fs.PathError
	if errors.As(e.Err, &pe) { // the path is in prefix already
		return fmt.Sprintf("%s: %s: %v", prefix, pe.Op, pe.Err)
	}
	return fmt.Sprintf("%s: %v", prefix, e.Err)
}

// Unwrap returns the underlying error, nil for a content mismatch.
func (e *FileError) Unwrap() error { return e.Err }

// Missing reports whether the file does not exist.
func (e *FileError) Missing() bool { return errors.Is(e.Err, fs.ErrNotExist) }

// Mismatch reports whether the file exists but its sha256 is wrong.
func (e *FileError) Mismatch() bool { return e.Err == nil && e.Got != "" }

// short abbreviates a hex digest for messages.
func short(sum string) string {
	if len(sum) <= 12 {
		return sum
	}
	return sum[:12] + "…"
}

// ReadVerified reads the file called name from depsDir (depsDir joined with
// its Dest), checks its sha256 against the manifest and returns its content.
// Errors are one line: an unknown name, or a *FileError.
func (m Manifest) ReadVerified(depsDir, name string) ([]byte, error) {
	f, fh, p, err := m.open(depsDir, name)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(fh)
	if err != nil {
		return nil, &FileError{File: f, Path: p, Err: err}
	}
	if got := sum(data); got != f.SHA256 {
		return nil, &FileError{File: f, Path: p, Got: got}
	}
	return data, nil
}

// VerifyPath checks the sha256 of the file called name in depsDir by
// streaming it, without holding it in memory, and returns its absolute path
// (for files, such as the onnxruntime shared library, that are loaded by
// path). Errors are one line: an unknown name, or a *FileError.
func (m Manifest) VerifyPath(depsDir, name string) (string, error) {
	f, fh, p, err := m.open(depsDir, name)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", &FileError{File: f, Path: p, Err: err}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return "", &FileError{File: f, Path: p, Got: got}
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", &FileError{File: f, Path: p, Err: err}
	}
	return abs, nil
}

// open looks name up and opens its file in depsDir, which must be a
// regular file. It returns the entry, the open file and the path.
func (m Manifest) open(depsDir, name string) (File, *os.File, string, error) {
	f, err := m.File(name)
	if err != nil {
		return File{}, nil, "", err
	}
	p := f.Location(depsDir)
	fh, err := os.Open(p)
	if err != nil {
		return File{}, nil, "", &FileError{File: f, Path: p, Err: err}
	}
	st, err := fh.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("is not a regular file: remove it and %s", fixHint)
	}
	if err != nil {
		fh.Close()
		return File{}, nil, "", &FileError{File: f, Path: p, Err: err}
	}
	return f, fh, p, nil
}

// Location returns where f lives under depsDir: depsDir joined with Dest in
// the OS's path syntax. It does not touch the file system.
func (f File) Location(depsDir string) string {
	return filepath.Join(depsDir, filepath.FromSlash(f.Dest))
}

// sum returns the lowercase hex sha256 of data, the form the manifest uses.
func sum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}
