package models

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// depsFixture writes a deps dir holding good (right content), bad (wrong
// content) and a directory where dirfile's file should be, and returns the
// dir and a manifest describing good, bad, absent, dirfile and lib.
func depsFixture(t *testing.T) (string, Manifest) {
	t.Helper()
	dir := t.TempDir()
	content := []byte("model bytes")
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("models/good.onnx", content)
	write("models/bad.onnx", []byte("tampered"))
	write("lib/libx.so.1", content)
	if err := os.MkdirAll(filepath.Join(dir, "models", "dir.onnx"), 0o755); err != nil {
		t.Fatal(err)
	}
	pkg := Package{Name: "p", Version: "1.0.0", SHA256: strings.Repeat("0", 64)}
	file := func(name, kind, dest string) File {
		return File{Name: name, Kind: kind, Package: pkg.Ref(), Path: "package/" + dest, Dest: dest, SHA256: sum(content)}
	}
	m := Manifest{Schema: Schema, Packages: []Package{pkg}, Files: []File{
		file("good", KindModel, "models/good.onnx"),
		file("bad", KindModel, "models/bad.onnx"),
		file("absent", KindModel, "models/absent.onnx"),
		file("dirfile", KindModel, "models/dir.onnx"),
		file("lib", KindLibrary, "lib/libx.so.1"),
	}}
	if _, err := Parse(mustJSON(t, m)); err != nil {
		t.Fatal(err)
	}
	return dir, m
}

func TestReadVerified(t *testing.T) {
	dir, m := depsFixture(t)
	data, err := m.ReadVerified(dir, "good")
	if err != nil || string(data) != "model bytes" {
		t.Fatalf("good: %q, %v", data, err)
	}
	checkFileErrors(t, dir, m, func(name string) error { _, err := m.ReadVerified(dir, name); return err })
}

func TestVerifyPath(t *testing.T) {
	dir, m := depsFixture(t)
	p, err := m.VerifyPath(dir, "lib")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "lib", "libx.so.1"); p != want || !filepath.IsAbs(p) {
		t.Errorf("path = %q, want %q", p, want)
	}
	// A relative deps dir still yields an absolute path.
	t.Chdir(dir)
	p, err = m.VerifyPath(".", "good")
	if err != nil || p != filepath.Join(dir, "models", "good.onnx") {
		t.Errorf("relative: %q, %v", p, err)
	}
	checkFileErrors(t, ".", m, func(name string) error { _, err := m.VerifyPath(".", name); return err })
}

// checkFileErrors asserts the errors check returns for the fixture's bad
// entries.
func checkFileErrors(t *testing.T, dir string, m Manifest, check func(name string) error) {
	t.Helper()
	loc := func(dest string) string { return filepath.Join(dir, filepath.FromSlash(dest)) }

	err := check("absent")
	want := "model absent: " + loc("models/absent.onnx") + `: no such file: run "make setup"`
	if err == nil || err.Error() != want {
		t.Errorf("absent: %v\nwant %s", err, want)
	}
	var fe *FileError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &fe) || !fe.Missing() || fe.Mismatch() {
		t.Errorf("absent: %#v is not a missing-file FileError", err)
	}

	err = check("bad")
	want = "model bad: " + loc("models/bad.onnx") + ": sha256 mismatch (got " + sum([]byte("tampered"))[:12] +
		"…, want " + sum([]byte("model bytes"))[:12] + `…): run "make setup"`
	if err == nil || err.Error() != want {
		t.Errorf("bad: %v\nwant %s", err, want)
	}
	if !errors.As(err, &fe) || !fe.Mismatch() || fe.Missing() || fe.Got != sum([]byte("tampered")) || errors.Unwrap(err) != nil {
		t.Errorf("bad: %#v is not a mismatch FileError", err)
	}

	err = check("dirfile")
	want = "model dirfile: " + loc("models/dir.onnx") + `: is not a regular file: remove it and run "make setup"`
	if err == nil || err.Error() != want {
		t.Errorf("dirfile: %v\nwant %s", err, want)
	}

	err = check("unknown")
	if err == nil || !strings.Contains(err.Error(), `"unknown" is not in models/manifest.json`) {
		t.Errorf("unknown: %v", err)
	}
}

func TestFileErrorOtherCause(t *testing.T) {
	err := &FileError{
		File: File{Kind: KindLibrary, Name: "onnxruntime"},
		Path: "d/lib/x.so",
		Err:  &fs.PathError{Op: "open", Path: "d/lib/x.so", Err: fs.ErrPermission},
	}
	if got, want := err.Error(), "library onnxruntime: d/lib/x.so: open: permission denied"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Error("does not wrap the cause")
	}
}

// TestDepsDirVerified checks every file of the real manifest in the deps
// dir "make setup" filled. "make test" sets VIGIL_DEPS; a plain "go test"
// skips this.
func TestDepsDirVerified(t *testing.T) {
	dir := os.Getenv(DepsEnv)
	if dir == "" {
		t.Skipf("%s is not set (make test sets it after make setup)", DepsEnv)
	}
	m, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		if _, err := m.VerifyPath(dir, f.Name); err != nil {
			t.Error(err)
		}
	}
}
