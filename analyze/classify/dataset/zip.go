package dataset

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// ExtractZIP unpacks the ZIP archive in r (size bytes) into dest, which must not exist yet (its
// parent must), and returns the checked dataset there. The archive holds one folder per class,
// optionally inside one top folder (a zipped dataset folder); hidden entries and __MACOSX are
// skipped.
//
// The whole central directory is checked before anything is written: at most MaxEntries
// entries; no absolute, drive-letter, backslash or ".." paths (ErrUnsafe); no symbolic links or
// other special files (ErrUnsafe); declared sizes within MaxFileBytes and MaxTotalBytes and
// ratios within MaxRatio (ErrTooLarge). While extracting, the bytes actually inflated are
// counted against the same limits (a lying header gains nothing), each file's content must be
// a JPEG or PNG image (ErrNotImage) and files are created through an os.Root on dest, never
// replacing anything. On any error dest is removed again.
func ExtractZIP(r io.ReaderAt, size int64, dest string, lim Limits) (Dataset, error) {
	d, err := extractZIP(r, size, dest, lim)
	if err != nil {
		return Dataset{}, fmt.Errorf("dataset: ZIP: %w", err)
	}
	return d, nil
}

// zipEntry is a checked central-directory entry.
type zipEntry struct {
	f     *zip.File
	class string
	rel   string // class/file, relative to dest
}

func extractZIP(r io.ReaderAt, size int64, dest string, lim Limits) (_ Dataset, err error) {
	b := newBuilder(lim)
	lim = b.lim
	zr, err := zip.NewReader(r, size)
	if err != nil {
		if errors.Is(err, zip.ErrInsecurePath) {
			return Dataset{}, fmt.Errorf("%w: %w", ErrUnsafe, err)
		}
		return Dataset{}, fmt.Errorf("%w: not a readable ZIP archive (%d bytes): %w", ErrArchive, size, err)
	}
	if len(zr.File) > lim.MaxEntries {
		return Dataset{}, fmt.Errorf("%w: %d entries; at most %d files and folders are accepted", ErrTooLarge, len(zr.File), lim.MaxEntries)
	}
	entries, classDirs, err := planZIP(zr.File, lim)
	if err != nil {
		return Dataset{}, err
	}
	for _, c := range classDirs {
		if err := b.addClass(c); err != nil {
			return Dataset{}, err
		}
	}

	if err := os.Mkdir(dest, 0o750); err != nil {
		return Dataset{}, fmt.Errorf("create %s: %w", dest, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dest)
		}
	}()
	root, err := os.OpenRoot(dest)
	if err != nil {
		return Dataset{}, err
	}
	defer root.Close()
	made := map[string]bool{}
	for _, e := range entries {
		data, err := inflate(e, lim)
		if err != nil {
			return Dataset{}, err
		}
		if err := b.add(e.class, e.rel, data); err != nil {
			return Dataset{}, err
		}
		if !made[e.class] {
			if err := root.Mkdir(e.class, 0o750); err != nil {
				return Dataset{}, fmt.Errorf("create class folder %q: %w", e.class, err)
			}
			made[e.class] = true
		}
		if err := writeNew(root, e.rel, data); err != nil {
			return Dataset{}, err
		}
	}
	return b.finish(dest)
}

// planZIP checks every central-directory entry and returns the image entries to extract and
// the class folders the archive lists (so that an empty class folder counts as a class).
func planZIP(files []*zip.File, lim Limits) (_ []zipEntry, classDirs []string, _ error) {
	var declared uint64
	names := make([][]string, 0, len(files))
	var dirs [][]string
	for _, f := range files {
		elems, err := checkZIPName(f.Name)
		if err != nil {
			return nil, nil, err
		}
		mode := f.Mode()
		if mode&fs.ModeSymlink != 0 {
			return nil, nil, fmt.Errorf("%w: %s is a symbolic link", ErrUnsafe, f.Name)
		}
		if mode&(fs.ModeType&^fs.ModeDir) != 0 {
			return nil, nil, fmt.Errorf("%w: %s is not a regular file or folder (%v)", ErrUnsafe, f.Name, mode.Type())
		}
		dir := mode.IsDir() || strings.HasSuffix(f.Name, "/")
		if dir {
			names = append(names, nil)
			dirs = append(dirs, elems)
			continue
		}
		if f.UncompressedSize64 > uint64(lim.MaxFileBytes) {
			return nil, nil, fmt.Errorf("%w: %s would inflate to %d bytes; at most %d per image", ErrTooLarge, f.Name, f.UncompressedSize64, lim.MaxFileBytes)
		}
		declared += f.UncompressedSize64
		if declared > uint64(lim.MaxTotalBytes) {
			return nil, nil, fmt.Errorf("%w: the entries would inflate to more than %d bytes in total", ErrTooLarge, lim.MaxTotalBytes)
		}
		if f.UncompressedSize64 > 1024 && f.UncompressedSize64 > uint64(lim.MaxRatio)*f.CompressedSize64 {
			return nil, nil, fmt.Errorf("%w: %s compresses %d bytes to %d (more than %d:1): refused as a ZIP bomb", ErrTooLarge, f.Name,
				f.UncompressedSize64, f.CompressedSize64, lim.MaxRatio)
		}
		names = append(names, elems)
	}
	// A single top folder holding the class folders is stripped.
	strip := commonTop(names)
	var out []zipEntry
	seen := map[string]bool{}
	for i, elems := range names {
		if elems == nil {
			continue
		}
		if strip {
			elems = elems[1:]
		}
		skip := false
		for _, e := range elems {
			skip = skip || ignored(e)
		}
		if skip {
			continue
		}
		switch {
		case len(elems) == 1:
			return nil, nil, fmt.Errorf("%w: %s is not inside a class folder; put each image in the folder named after its class", ErrLayout, files[i].Name)
		case len(elems) > 2:
			return nil, nil, fmt.Errorf("%w: %s is in a folder inside class folder %q; images must be directly inside their class folder", ErrLayout, files[i].Name, elems[0])
		}
		if err := CheckClassName(elems[0]); err != nil {
			return nil, nil, err
		}
		rel := elems[0] + "/" + elems[1]
		if seen[rel] {
			return nil, nil, fmt.Errorf("%w: %s appears twice in the archive", ErrUnsafe, files[i].Name)
		}
		seen[rel] = true
		out = append(out, zipEntry{f: files[i], class: elems[0], rel: rel})
	}
	for _, elems := range dirs {
		if strip {
			elems = elems[1:]
		}
		if len(elems) == 1 && !ignored(elems[0]) {
			classDirs = append(classDirs, elems[0])
		}
	}
	return out, classDirs, nil
}

// checkZIPName splits an entry name into path elements, refusing names that could resolve
// outside the destination or differently on another system.
func checkZIPName(name string) ([]string, error) {
	switch {
	case name == "":
		return nil, fmt.Errorf("%w: an entry has an empty name", ErrUnsafe)
	case strings.HasPrefix(name, "/"):
		return nil, fmt.Errorf("%w: %q is an absolute path", ErrUnsafe, name)
	case strings.Contains(name, `\`):
		return nil, fmt.Errorf("%w: %q contains a backslash", ErrUnsafe, name)
	case len(name) >= 2 && name[1] == ':':
		return nil, fmt.Errorf("%w: %q starts with a drive letter", ErrUnsafe, name)
	case strings.ContainsRune(name, 0):
		return nil, fmt.Errorf("%w: %q contains a NUL byte", ErrUnsafe, name)
	case len(name) > 1024:
		return nil, fmt.Errorf("%w: an entry name is longer than 1024 bytes", ErrUnsafe)
	}
	var elems []string
	for _, e := range strings.Split(strings.TrimSuffix(name, "/"), "/") {
		switch e {
		case "..":
			return nil, fmt.Errorf("%w: %q leaves the archive's folder (..)", ErrUnsafe, name)
		case ".", "":
			return nil, fmt.Errorf("%w: %q has an empty or '.' path element", ErrUnsafe, name)
		}
		if len(e) > 255 {
			return nil, fmt.Errorf("%w: %q has a path element longer than 255 bytes", ErrUnsafe, name)
		}
		elems = append(elems, e)
	}
	if !fs.ValidPath(path.Join(elems...)) {
		return nil, fmt.Errorf("%w: %q is not a valid relative path", ErrUnsafe, name)
	}
	return elems, nil
}

// commonTop reports whether every kept file entry lies in the same (non-ignored) top folder at
// depth 3 (top/class/file), so that the top folder is a wrapper to strip.
func commonTop(names [][]string) bool {
	top := ""
	found := false
	for _, elems := range names {
		if elems == nil || ignored(elems[0]) {
			continue
		}
		hidden := false
		for _, e := range elems {
			hidden = hidden || ignored(e)
		}
		if hidden {
			continue
		}
		if len(elems) != 3 || (top != "" && elems[0] != top) {
			return false
		}
		top, found = elems[0], true
	}
	return found
}

// inflate reads an entry, counting what it actually inflates to.
func inflate(e zipEntry, lim Limits) ([]byte, error) {
	rc, err := e.f.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrArchive, e.f.Name, err)
	}
	defer rc.Close()
	limit := min(lim.MaxFileBytes, max(1024, int64(e.f.CompressedSize64)*lim.MaxRatio))
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrArchive, e.f.Name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s inflates beyond %d bytes (declared %d): refused as a ZIP bomb", ErrTooLarge, e.f.Name, limit, e.f.UncompressedSize64)
	}
	return data, nil
}

// writeNew creates rel under root with data, failing if it exists.
func writeNew(root *os.Root, rel string, data []byte) error {
	f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	return nil
}
