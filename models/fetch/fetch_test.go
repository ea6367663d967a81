package fetch

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-video/vigil/models"
)

// entry is one member of a test tarball.
type entry struct {
	name     string
	typeflag byte
	body     string
	linkname string
}

// makeTarball returns a gzip'd tar holding entries, as npm pack writes one.
func makeTarball(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		typ := e.typeflag
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Linkname: e.linkname, ModTime: time.Unix(0, 0)}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// hexSum returns the sha256 of s in the manifest's form.
func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fakePacker "downloads" a fixed tarball and counts its calls.
type fakePacker struct {
	tgz   []byte
	calls int
	err   error
}

// Pack writes f.tgz into dir under npm's file name.
func (f *fakePacker) Pack(ctx context.Context, name, version, dir string) (string, error) {
	f.calls++
	if f.err != nil {
		return "", f.err
	}
	p := filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(name, "@"), "/", "-")+"-"+version+".tgz")
	return p, os.WriteFile(p, f.tgz, 0o644)
}

// fixture is a package tarball, a manifest describing it and the dirs Run
// works in.
type fixture struct {
	tgz      []byte
	manifest models.Manifest
	opt      Options
	packer   *fakePacker
}

const (
	libBody   = "\x7fELF pretend shared library"
	modelBody = "pretend onnx model"
)

// newFixture builds a package "@vigil/deps@1.0.0" holding a library and a
// model plus unrelated and hostile entries that must be ignored.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	tgz := makeTarball(t,
		entry{name: "package/package.json", body: `{"name":"@vigil/deps"}`},
		entry{name: "../../escape.txt", body: "must not be written"},
		entry{name: "/abs.txt", body: "must not be written"},
		entry{name: "package/evil-link", typeflag: tar.TypeSymlink, linkname: "/etc/passwd"},
		entry{name: "package/lib/", typeflag: tar.TypeDir},
		entry{name: "package/lib/libx.so.1", body: libBody},
		entry{name: "./package/model/m.onnx", body: modelBody},
		entry{name: "package/model/unused.onnx", body: "not in the manifest"},
	)
	pkg := models.Package{Name: "@vigil/deps", Version: "1.0.0", SHA256: hexSum(tgz), License: "MIT"}
	m := models.Manifest{
		Schema:   models.Schema,
		Packages: []models.Package{pkg},
		Files: []models.File{
			{Name: "lib", Kind: models.KindLibrary, Package: pkg.Ref(), Path: "package/lib/libx.so.1", Dest: "lib/libx.so.1", SHA256: hexSum([]byte(libBody))},
			{Name: "m", Kind: models.KindModel, Package: pkg.Ref(), Path: "package/model/m.onnx", Dest: "models/m.onnx", SHA256: hexSum([]byte(modelBody)), Input: []int64{1, 3, 8, 8}},
		},
	}
	return newFixtureFrom(t, tgz, m)
}

// newFixtureFrom wraps tgz and m with fresh dirs and a packer serving tgz.
func newFixtureFrom(t *testing.T, tgz []byte, m models.Manifest) *fixture {
	t.Helper()
	// Round-trip through Parse so every fixture is a valid manifest.
	if _, err := models.Parse(mustJSON(t, m)); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	p := &fakePacker{tgz: tgz}
	return &fixture{tgz: tgz, manifest: m, packer: p, opt: Options{
		DepsDir:  filepath.Join(root, "deps"),
		CacheDir: filepath.Join(root, "npm"),
		Packer:   p,
	}}
}

// run runs Run on the fixture.
func (f *fixture) run(t *testing.T) ([]Result, error) {
	t.Helper()
	return Run(t.Context(), f.manifest, f.opt)
}

// statuses maps file names to statuses.
func statuses(rs []Result) map[string]Status {
	out := map[string]Status{}
	for _, r := range rs {
		out[r.File.Name] = r.Status
	}
	return out
}

// readDest returns the content of dest under the deps dir, or "" if absent.
func (f *fixture) readDest(t *testing.T, dest string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.opt.DepsDir, filepath.FromSlash(dest)))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// listTree returns every path under root, relative to it.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

func TestRunFetchesOnceThenIsIdempotent(t *testing.T) {
	f := newFixture(t)
	rs, err := f.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(rs); got["lib"] != StatusFetched || got["m"] != StatusFetched || len(got) != 2 {
		t.Errorf("first run: %v", got)
	}
	if rs[0].Path != filepath.Join(f.opt.DepsDir, "lib", "libx.so.1") {
		t.Errorf("path = %s", rs[0].Path)
	}
	if f.readDest(t, "lib/libx.so.1") != libBody || f.readDest(t, "models/m.onnx") != modelBody {
		t.Error("extracted content is wrong")
	}
	// Only the manifest's files, at the manifest's dests: nothing derived
	// from other archive names, no temp files.
	if got, want := strings.Join(listTree(t, f.opt.DepsDir), " "), ". lib lib/libx.so.1 models models/m.onnx"; got != want {
		t.Errorf("deps tree = %s, want %s", got, want)
	}
	if _, err := os.Stat(filepath.Join(f.opt.DepsDir, "..", "..", "escape.txt")); err == nil {
		t.Error("an archive name escaped the deps dir")
	}
	if got, want := strings.Join(listTree(t, f.opt.CacheDir), " "), ". vigil-deps-1.0.0.tgz"; got != want {
		t.Errorf("cache tree = %s, want %s", got, want)
	}
	st1, err := os.Stat(filepath.Join(f.opt.DepsDir, "models", "m.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if st1.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v", st1.Mode())
	}

	// Second run: everything ok, nothing packed or rewritten.
	rs, err = f.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(rs); got["lib"] != StatusOK || got["m"] != StatusOK {
		t.Errorf("second run: %v", got)
	}
	st2, err := os.Stat(filepath.Join(f.opt.DepsDir, "models", "m.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(st1, st2) || !st1.ModTime().Equal(st2.ModTime()) {
		t.Error("second run rewrote a correct file")
	}

	// With the files right, the tarball is not needed at all.
	if err := os.RemoveAll(f.opt.CacheDir); err != nil {
		t.Fatal(err)
	}
	f.opt.Packer = nil
	if _, err := f.run(t); err != nil {
		t.Fatalf("run without cache or packer: %v", err)
	}
	if f.packer.calls != 1 {
		t.Errorf("packer called %d times, want 1", f.packer.calls)
	}
}

func TestRunReplacesWrongFileFromCache(t *testing.T) {
	f := newFixture(t)
	if _, err := f.run(t); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(f.opt.DepsDir, "models", "m.onnx")
	if err := os.WriteFile(bad, []byte("truncated"), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := f.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(rs); got["lib"] != StatusOK || got["m"] != StatusReplaced {
		t.Errorf("statuses = %v", got)
	}
	if f.readDest(t, "models/m.onnx") != modelBody {
		t.Error("not replaced")
	}
	if f.packer.calls != 1 {
		t.Errorf("packer called %d times, want 1 (the cached tarball serves the second run)", f.packer.calls)
	}
}

func TestRunRegistryTarballMismatch(t *testing.T) {
	f := newFixture(t)
	f.packer.tgz = makeTarball(t, entry{name: "package/lib/libx.so.1", body: libBody})
	rs, err := f.run(t)
	if err == nil || !strings.Contains(err.Error(), "the registry's tarball has sha256 "+hexSum(f.packer.tgz)+", but models/manifest.json pins "+hexSum(f.tgz)) {
		t.Fatalf("err = %v", err)
	}
	checkOneLine(t, err)
	if len(rs) != 0 {
		t.Errorf("results = %v", rs)
	}
	if got := listTree(t, f.opt.CacheDir); len(got) != 1 {
		t.Errorf("cache not clean after mismatch: %v", got)
	}
	if got := listTree(t, f.opt.DepsDir); len(got) != 0 {
		t.Errorf("deps written despite mismatch: %v", got)
	}
}

func TestRunCachedTarballMismatch(t *testing.T) {
	f := newFixture(t)
	cached := filepath.Join(f.opt.CacheDir, "vigil-deps-1.0.0.tgz")
	if err := os.MkdirAll(f.opt.CacheDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cached, f.tgz[:len(f.tgz)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := f.run(t)
	if err == nil || !strings.Contains(err.Error(), "cached tarball "+cached+": sha256 mismatch") ||
		!strings.Contains(err.Error(), `deleted it: run "make setup" again`) {
		t.Fatalf("err = %v", err)
	}
	checkOneLine(t, err)
	if _, err := os.Stat(cached); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bad cached tarball kept: %v", err)
	}
	// The next run downloads afresh and succeeds.
	if _, err := f.run(t); err != nil {
		t.Fatal(err)
	}
	if f.packer.calls != 1 {
		t.Errorf("packer calls = %d", f.packer.calls)
	}
}

func TestRunFileSHAMismatch(t *testing.T) {
	f := newFixture(t)
	f.manifest.Files[1].SHA256 = hexSum([]byte("something else"))
	rs, err := f.run(t)
	if err == nil || !strings.Contains(err.Error(), "file m: package/model/m.onnx in @vigil/deps@1.0.0: sha256 mismatch (got "+hexSum([]byte(modelBody))) {
		t.Fatalf("err = %v", err)
	}
	checkOneLine(t, err)
	// lib was placed before m failed; m left no file or temp file behind.
	if got := statuses(rs); got["lib"] != StatusFetched || len(got) != 1 {
		t.Errorf("results = %v", got)
	}
	if got := listTree(t, filepath.Join(f.opt.DepsDir, "models")); len(got) != 1 {
		t.Errorf("models dir holds %v", got)
	}
}

func TestRunMissingPath(t *testing.T) {
	f := newFixture(t)
	f.manifest.Files[1].Path = "package/model/absent.onnx"
	_, err := f.run(t)
	if err == nil || !strings.Contains(err.Error(), `tarball has no "package/model/absent.onnx" (file m): check the paths in models/manifest.json`) {
		t.Fatalf("err = %v", err)
	}
	checkOneLine(t, err)
}

func TestRunRejectsNonRegularEntry(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    entry
	}{
		{"symlink", entry{name: "package/x.onnx", typeflag: tar.TypeSymlink, linkname: "/etc/passwd"}},
		{"hardlink", entry{name: "package/x.onnx", typeflag: tar.TypeLink, linkname: "package/package.json"}},
		{"dir", entry{name: "package/x.onnx", typeflag: tar.TypeDir}},
		{"fifo", entry{name: "package/x.onnx", typeflag: tar.TypeFifo}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tgz := makeTarball(t, entry{name: "package/package.json", body: "{}"}, tc.e)
			f := newFixtureFrom(t, tgz, oneFileManifest(tgz, "package/x.onnx", "x"))
			_, err := f.run(t)
			if err == nil || !strings.Contains(err.Error(), `"package/x.onnx" in p@1.0.0 is not a regular file`) {
				t.Fatalf("err = %v", err)
			}
			if got := listTree(t, f.opt.DepsDir); len(got) > 1 {
				t.Errorf("deps holds %v", got)
			}
		})
	}
}

// oneFileManifest describes package p@1.0.0 (tarball tgz) with one model
// at path whose content is body.
func oneFileManifest(tgz []byte, path, body string) models.Manifest {
	pkg := models.Package{Name: "p", Version: "1.0.0", SHA256: hexSum(tgz)}
	return models.Manifest{Schema: models.Schema, Packages: []models.Package{pkg}, Files: []models.File{
		{Name: "x", Kind: models.KindModel, Package: pkg.Ref(), Path: path, Dest: "models/x.onnx", SHA256: hexSum([]byte(body))},
	}}
}

func TestRunDuplicateEntry(t *testing.T) {
	tgz := makeTarball(t, entry{name: "package/x.onnx", body: "x"}, entry{name: "./package/x.onnx", body: "y"})
	m := oneFileManifest(tgz, "package/x.onnx", "x")
	m.Files = append(m.Files, models.File{Name: "y", Kind: models.KindModel, Package: "p@1.0.0", Path: "package/y.onnx", Dest: "models/y.onnx", SHA256: hexSum([]byte("y"))})
	f := newFixtureFrom(t, tgz, m)
	_, err := f.run(t)
	if err == nil || !strings.Contains(err.Error(), `tarball holds "package/x.onnx" twice`) {
		t.Fatalf("err = %v", err)
	}
}

func TestRunSizeLimits(t *testing.T) {
	body := strings.Repeat("v", 4096)
	tgz := makeTarball(t, entry{name: "package/pad.bin", body: strings.Repeat("p", 64<<10)}, entry{name: "package/x.onnx", body: body})

	f := newFixtureFrom(t, tgz, oneFileManifest(tgz, "package/x.onnx", body))
	f.opt.MaxFileBytes = 4095
	if _, err := f.run(t); err == nil || !strings.Contains(err.Error(), "is 4096 bytes, over the 4095-byte limit") {
		t.Errorf("file limit: %v", err)
	}

	f = newFixtureFrom(t, tgz, oneFileManifest(tgz, "package/x.onnx", body))
	f.opt.MaxArchiveBytes = 32 << 10
	if _, err := f.run(t); err == nil || !strings.Contains(err.Error(), "expands beyond 32768 bytes") {
		t.Errorf("archive limit: %v", err)
	}
	if got := listTree(t, f.opt.DepsDir); len(got) > 0 {
		t.Errorf("deps holds %v", got)
	}

	f = newFixtureFrom(t, tgz, oneFileManifest(tgz, "package/x.onnx", body))
	if _, err := f.run(t); err != nil {
		t.Errorf("default limits: %v", err)
	}
}

func TestRunCorruptGzip(t *testing.T) {
	tgz := []byte("not gzip at all")
	f := newFixtureFrom(t, tgz, oneFileManifest(tgz, "package/x.onnx", "x"))
	_, err := f.run(t)
	if err == nil || !strings.Contains(err.Error(), "gzip: invalid header") {
		t.Fatalf("err = %v", err)
	}
}

func TestRunPackerError(t *testing.T) {
	f := newFixture(t)
	f.packer.err = errors.New("npm pack @vigil/deps@1.0.0: exit status 1: npm error 404")
	_, err := f.run(t)
	if err == nil || !strings.Contains(err.Error(), "package @vigil/deps@1.0.0: npm pack") {
		t.Fatalf("err = %v", err)
	}
	if got := listTree(t, f.opt.CacheDir); len(got) != 1 {
		t.Errorf("cache holds %v", got)
	}
}

func TestRunDestIsDirectory(t *testing.T) {
	f := newFixture(t)
	if err := os.MkdirAll(filepath.Join(f.opt.DepsDir, "models", "m.onnx"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := f.run(t)
	if err == nil || !strings.Contains(err.Error(), "is not a regular file: remove it") {
		t.Fatalf("err = %v", err)
	}
	if f.packer.calls != 0 {
		t.Error("packed despite an unfixable dest")
	}
}

func TestRunCancelled(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Run(ctx, f.manifest, f.opt); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestRunRequiresDirs(t *testing.T) {
	if _, err := Run(t.Context(), models.Manifest{}, Options{}); err == nil {
		t.Fatal("Run accepted empty dirs")
	}
}

func TestRunEmbeddedManifestCacheNames(t *testing.T) {
	m, err := models.Load()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range m.Packages {
		names = append(names, cacheName(p))
	}
	if got, want := strings.Join(names, " "), "onnxruntime-node-1.24.3.tgz faceplugin-face-recognition-js-0.0.1.tgz"; got != want {
		t.Errorf("cache names = %s, want %s", got, want)
	}
}

// checkOneLine fails if err's message spans lines.
func checkOneLine(t *testing.T, err error) {
	t.Helper()
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("error is not one line: %q", err)
	}
}
