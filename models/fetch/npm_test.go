package fetch

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// mustJSON marshals v or fails the test.
func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeNPM writes a shell script standing in for npm and returns its path.
func fakeNPM(t *testing.T, script string) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("needs /bin/sh")
	}
	p := filepath.Join(t.TempDir(), "npm")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNPMPack(t *testing.T) {
	// The fake records its arguments and writes a tarball into the
	// --pack-destination directory, as npm does.
	npm := fakeNPM(t, `echo "$@" > args.txt
printf 'tgz' > "$4/scope-name-1.0.0.tgz"
echo scope-name-1.0.0.tgz
`)
	dir := t.TempDir()
	got, err := NPM{Command: npm}.Pack(t.Context(), "@scope/name", "1.0.0", dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "scope-name-1.0.0.tgz"); got != want {
		t.Errorf("path = %s, want %s", got, want)
	}
	args, err := os.ReadFile(filepath.Join(dir, "args.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "pack @scope/name@1.0.0 --pack-destination " + dir + " --ignore-scripts --loglevel error\n"; string(args) != want {
		t.Errorf("args = %q, want %q", args, want)
	}
}

// TestNPMPackRelativeDir: npm runs inside the destination, so a relative destination (make
// setup passes build/npm/...) must reach it as an absolute path, not relative to itself.
func TestNPMPackRelativeDir(t *testing.T) {
	npm := fakeNPM(t, `printf 'tgz' > "$4/name-1.0.0.tgz"
`)
	base := t.TempDir()
	t.Chdir(base)
	if err := os.MkdirAll(filepath.Join("cache", "pack"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := NPM{Command: npm}.Pack(t.Context(), "name", "1.0.0", filepath.Join("cache", "pack"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(base, "cache", "pack", "name-1.0.0.tgz"); got != want {
		t.Fatalf("path = %s, want %s", got, want)
	}
}

func TestNPMPackFailure(t *testing.T) {
	npm := fakeNPM(t, `echo "npm error code E404" >&2
echo "npm error 404 Not Found - GET https://registry.example/p" >&2
exit 1
`)
	_, err := NPM{Command: npm}.Pack(t.Context(), "p", "1.0.0", t.TempDir())
	want := "npm pack p@1.0.0: exit status 1: npm error code E404 | npm error 404 Not Found - GET https://registry.example/p: check the network and the npm registry"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

func TestNPMPackNoTarball(t *testing.T) {
	npm := fakeNPM(t, "exit 0\n")
	_, err := NPM{Command: npm}.Pack(t.Context(), "p", "1.0.0", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "want one .tgz") {
		t.Errorf("err = %v", err)
	}
}

func TestNPMPackNotInstalled(t *testing.T) {
	_, err := NPM{Command: "vigil-no-such-npm"}.Pack(t.Context(), "p", "1.0.0", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "install Node.js and npm") {
		t.Errorf("err = %v", err)
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("\n a \n\n b\n", 100); got != "a | b" {
		t.Errorf("got %q", got)
	}
	if got := oneLine("", 100); got != "no message" {
		t.Errorf("got %q", got)
	}
	if got := oneLine(strings.Repeat("x", 50), 10); got != "…"+strings.Repeat("x", 10) {
		t.Errorf("got %q", got)
	}
}

// TestRunRelativeCache runs the whole fetch with a relative cache directory, as `make setup`
// does (-cache build/npm), and an npm that writes where it is told.
func TestRunRelativeCache(t *testing.T) {
	fx := newFixture(t)
	src := filepath.Join(t.TempDir(), "vigil-deps-1.0.0.tgz")
	if err := os.WriteFile(src, fx.tgz, 0o644); err != nil {
		t.Fatal(err)
	}
	npm := fakeNPM(t, `cp "`+src+`" "$4/"
`)
	t.Chdir(t.TempDir())
	if _, err := Run(t.Context(), fx.manifest, Options{DepsDir: "deps", CacheDir: filepath.Join("build", "npm"), Packer: NPM{Command: npm}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("deps", "models", "m.onnx")); err != nil {
		t.Fatal(err)
	}
}
