// Package dataset reads labelled training images laid out as one folder per class, from a
// directory (Scan) or from a ZIP archive it unpacks into a directory (ExtractZIP), treating
// both as hostile: paths that would leave the directory, absolute paths, symbolic links and
// other special files, ZIP bombs (by compression ratio, per-file and total size), too many
// entries, files that are not JPEG or PNG images whatever their names say, and classes with
// too few images are refused with an error naming the entry and the limit. Nothing is ever
// written outside the destination directory, and a failed extraction leaves nothing behind.
//
// The package is pure Go: images are checked with the standard library's JPEG and PNG header
// decoders, never fully decoded.
package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // JPEG headers for DecodeConfig
	_ "image/png"  // PNG headers for DecodeConfig
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/vigil-video/vigil/pkg/imageguard"
)

// Errors, wrapped by every refusal so that callers (the HTTP API) can map them to statuses.
var (
	// ErrUnsafe: an entry would escape the destination (.., absolute path) or is a symbolic
	// link, device or other special file.
	ErrUnsafe = errors.New("unsafe dataset entry")
	// ErrTooLarge: a size, ratio or count limit was exceeded.
	ErrTooLarge = errors.New("dataset too large")
	// ErrNotImage: a file is not a complete JPEG or PNG image within the pixel limit.
	ErrNotImage = errors.New("not a JPEG or PNG image")
	// ErrLayout: the files are not laid out as one folder of images per class, or a class has
	// too few images, or there are too few classes.
	ErrLayout = errors.New("bad dataset layout")
	// ErrArchive: the upload is not a readable ZIP archive (empty, truncated, corrupt entries or
	// checksums): the client's fault, unlike a failure to write the extracted files.
	ErrArchive = errors.New("unreadable archive")
)

// Limits bound what Scan and ExtractZIP accept. Zero fields take the defaults.
type Limits struct {
	// MaxEntries bounds the files and folders of a dataset (ZIP entries, directory entries).
	// Default 5000.
	MaxEntries int
	// MaxFileBytes bounds one image. Default 20 MiB.
	MaxFileBytes int64
	// MaxTotalBytes bounds all images together (uncompressed). Default 512 MiB.
	MaxTotalBytes int64
	// MaxRatio bounds a ZIP entry's uncompressed/compressed size ratio. Photos barely compress;
	// bombs compress a thousand-fold. Default 50.
	MaxRatio int64
	// MaxPixels bounds one image's width*height. Default 8192*8192.
	MaxPixels int64
	// MaxClasses bounds the number of classes. Default 1000.
	MaxClasses int
	// MinClasses is the fewest classes a dataset may have. Default 2.
	MinClasses int
	// MinPerClass is the fewest images a class may have (a share of each class is held out for
	// validation). Default 5.
	MinPerClass int
}

// DefaultLimits returns the defaults.
func DefaultLimits() Limits {
	var l Limits
	l.setDefaults()
	return l
}

func (l *Limits) setDefaults() {
	if l.MaxEntries <= 0 {
		l.MaxEntries = 5000
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = 20 << 20
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = 512 << 20
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = 50
	}
	if l.MaxPixels <= 0 {
		l.MaxPixels = 8192 * 8192
	}
	if l.MaxClasses <= 0 {
		l.MaxClasses = 1000
	}
	if l.MinClasses <= 0 {
		l.MinClasses = 2
	}
	if l.MinPerClass <= 0 {
		l.MinPerClass = 5
	}
}

// Dataset is a checked set of labelled images under Dir.
type Dataset struct {
	// Dir is the directory holding the class folders.
	Dir string
	// Classes are the class names (folder names), sorted.
	Classes []string
	// Images are sorted by class, then path.
	Images []Image
}

// Image is one checked training image.
type Image struct {
	// Class indexes Dataset.Classes.
	Class int
	// Path is the image's slash-separated path below Dataset.Dir: "class/file".
	Path string
	// Format is "jpeg" or "png"; Width and Height are from its header.
	Format        string
	Width, Height int
	// Size is the file's length in bytes.
	Size int64
}

// Counts returns the number of images of each class, indexed like Classes.
func (d Dataset) Counts() []int {
	c := make([]int, len(d.Classes))
	for _, im := range d.Images {
		c[im.Class]++
	}
	return c
}

// ReadImage returns the bytes of image i, opened through an os.Root on Dir so that a path
// replaced by a symbolic link after the check cannot lead outside Dir.
func (d Dataset) ReadImage(i int) ([]byte, error) {
	if i < 0 || i >= len(d.Images) {
		return nil, fmt.Errorf("dataset: image %d of %d", i, len(d.Images))
	}
	root, err := os.OpenRoot(d.Dir)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer root.Close()
	im := d.Images[i]
	f, err := root.Open(im.Path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, im.Size+1))
	if err != nil {
		return nil, fmt.Errorf("dataset: read %s: %w", im.Path, err)
	}
	if int64(len(b)) != im.Size {
		return nil, fmt.Errorf("dataset: %s changed size since it was checked", im.Path)
	}
	return b, nil
}

// CheckImage reports whether data is a complete JPEG or PNG of at most maxPixels pixels, by its
// content: the header must decode and the end marker (JPEG EOI, PNG IEND) must be present.
// Errors wrap ErrNotImage.
func CheckImage(data []byte, maxPixels int64) (format string, width, height int, err error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return "", 0, 0, fmt.Errorf("%w: %w", ErrNotImage, err)
	}
	if format != "jpeg" && format != "png" {
		return "", 0, 0, fmt.Errorf("%w: %s images are not supported", ErrNotImage, format)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return "", 0, 0, fmt.Errorf("%w: %dx%d pixels exceeds the limit of %d", ErrNotImage, cfg.Width, cfg.Height, maxPixels)
	}
	// Walked to the end marker, not looked for near the end: bytes after a JPEG's EOI (phone
	// trailers, motion photos) are allowed, and a PNG's data may not inflate beyond its size.
	check := imageguard.CheckJPEG
	if format == "png" {
		check = imageguard.CheckPNG
	}
	if err := check(data); err != nil {
		return "", 0, 0, fmt.Errorf("%w: %w", ErrNotImage, err)
	}
	return format, cfg.Width, cfg.Height, nil
}

// CheckClassName returns an error wrapping ErrLayout unless name is an acceptable class (and
// label) name: 1-64 bytes of printable UTF-8, no slash or backslash, not starting with '.', no
// leading or trailing space.
func CheckClassName(name string) error {
	if name == "" || len(name) > 64 || !utf8.ValidString(name) || strings.ContainsAny(name, `/\`) ||
		strings.HasPrefix(name, ".") || strings.TrimSpace(name) != name {
		return fmt.Errorf("%w: class folder %q: want 1-64 bytes, no slashes, not starting with '.' or space", ErrLayout, name)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: class folder %q contains a control character", ErrLayout, name)
		}
	}
	return nil
}

// ignored reports whether a path element is junk that archivers and desktops add (hidden files,
// macOS resource forks): such entries are skipped, not refused.
func ignored(elem string) bool {
	return strings.HasPrefix(elem, ".") || elem == "__MACOSX" || elem == "Thumbs.db" || elem == "desktop.ini"
}

// builder accumulates checked images and applies the layout rules.
type builder struct {
	lim     Limits
	total   int64
	classes map[string]bool
	images  []Image
	names   []string // class per image, parallel to images
}

func newBuilder(lim Limits) *builder {
	lim.setDefaults()
	return &builder{lim: lim, classes: map[string]bool{}}
}

// addClass records a class folder.
func (b *builder) addClass(name string) error {
	if err := CheckClassName(name); err != nil {
		return err
	}
	if !b.classes[name] {
		if len(b.classes) >= b.lim.MaxClasses {
			return fmt.Errorf("%w: more than %d classes", ErrTooLarge, b.lim.MaxClasses)
		}
		b.classes[name] = true
	}
	return nil
}

// add checks one image's content and records it under class.
func (b *builder) add(class, rel string, data []byte) error {
	if err := b.addClass(class); err != nil {
		return err
	}
	b.total += int64(len(data))
	if b.total > b.lim.MaxTotalBytes {
		return fmt.Errorf("%w: the images exceed %d bytes in total", ErrTooLarge, b.lim.MaxTotalBytes)
	}
	format, w, h, err := CheckImage(data, b.lim.MaxPixels)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	b.images = append(b.images, Image{Path: rel, Format: format, Width: w, Height: h, Size: int64(len(data))})
	b.names = append(b.names, class)
	return nil
}

// finish applies the class rules and returns the dataset.
func (b *builder) finish(dir string) (Dataset, error) {
	d := Dataset{Dir: dir}
	for c := range b.classes {
		d.Classes = append(d.Classes, c)
	}
	sort.Strings(d.Classes)
	idx := map[string]int{}
	for i, c := range d.Classes {
		idx[c] = i
	}
	for i := range b.images {
		im := b.images[i]
		im.Class = idx[b.names[i]]
		d.Images = append(d.Images, im)
	}
	sort.Slice(d.Images, func(i, j int) bool {
		if d.Images[i].Class != d.Images[j].Class {
			return d.Images[i].Class < d.Images[j].Class
		}
		return d.Images[i].Path < d.Images[j].Path
	})
	if len(d.Classes) < b.lim.MinClasses {
		return Dataset{}, fmt.Errorf("%w: %d class folders (%s); a classifier needs at least %d, one folder of images per class",
			ErrLayout, len(d.Classes), strings.Join(d.Classes, ", "), b.lim.MinClasses)
	}
	for i, n := range d.Counts() {
		if n < b.lim.MinPerClass {
			return Dataset{}, fmt.Errorf("%w: class %q has %d image(s); each class needs at least %d (a share is held out for validation)",
				ErrLayout, d.Classes[i], n, b.lim.MinPerClass)
		}
	}
	return d, nil
}

// Scan checks the dataset in dir: one sub-folder per class holding its images. A dir holding
// exactly one folder that itself holds the class folders is descended into (a dataset folder
// inside a folder). Hidden files and folders (".DS_Store", ".git"), __MACOSX, Thumbs.db and
// desktop.ini are skipped. Symbolic links and special files are refused (ErrUnsafe), as are
// files outside a class folder and folders inside one (ErrLayout), files that are not JPEG or
// PNG by content (ErrNotImage) and datasets over the limits (ErrTooLarge).
func Scan(dir string, lim Limits) (Dataset, error) {
	b := newBuilder(lim)
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Dataset{}, fmt.Errorf("dataset: %w", err)
	}
	defer root.Close()
	fsys := root.FS()
	base, err := datasetBase(fsys)
	if err != nil {
		return Dataset{}, err
	}
	entries := 0
	top, err := fs.ReadDir(fsys, base)
	if err != nil {
		return Dataset{}, fmt.Errorf("dataset: %w", err)
	}
	for _, ce := range top {
		entries++
		name := ce.Name()
		rel := path.Join(base, name)
		if ignored(name) {
			continue
		}
		if err := checkType(rel, ce.Type()); err != nil {
			return Dataset{}, err
		}
		if !ce.IsDir() {
			return Dataset{}, fmt.Errorf("%w: %s is not inside a class folder; put each image in the folder named after its class", ErrLayout, rel)
		}
		if err := b.addClass(name); err != nil {
			return Dataset{}, err
		}
		files, err := fs.ReadDir(fsys, rel)
		if err != nil {
			return Dataset{}, fmt.Errorf("dataset: %w", err)
		}
		for _, fe := range files {
			entries++
			if entries > b.lim.MaxEntries {
				return Dataset{}, fmt.Errorf("%w: more than %d files and folders", ErrTooLarge, b.lim.MaxEntries)
			}
			frel := path.Join(rel, fe.Name())
			if ignored(fe.Name()) {
				continue
			}
			if err := checkType(frel, fe.Type()); err != nil {
				return Dataset{}, err
			}
			if fe.IsDir() {
				return Dataset{}, fmt.Errorf("%w: %s is a folder inside class folder %q; images must be directly inside their class folder", ErrLayout, frel, name)
			}
			data, err := readLimited(fsys, frel, b.lim.MaxFileBytes)
			if err != nil {
				return Dataset{}, err
			}
			if err := b.add(name, frel, data); err != nil {
				return Dataset{}, err
			}
		}
	}
	d, err := b.finish(dir)
	return d, err
}

// datasetBase returns "." or, for a folder holding exactly one (non-ignored) folder and nothing
// else, that folder's name when it holds only folders itself.
func datasetBase(fsys fs.FS) (string, error) {
	top, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return "", fmt.Errorf("dataset: %w", err)
	}
	var kept []fs.DirEntry
	for _, e := range top {
		if !ignored(e.Name()) {
			kept = append(kept, e)
		}
	}
	if len(kept) != 1 || !kept[0].IsDir() || kept[0].Type()&fs.ModeSymlink != 0 {
		return ".", nil
	}
	inner, err := fs.ReadDir(fsys, kept[0].Name())
	if err != nil {
		return "", fmt.Errorf("dataset: %w", err)
	}
	for _, e := range inner {
		if !ignored(e.Name()) && !e.IsDir() && e.Type()&fs.ModeSymlink == 0 {
			return ".", nil // a single class folder: keep the layout error precise
		}
	}
	return kept[0].Name(), nil
}

// checkType refuses anything but regular files and directories.
func checkType(rel string, t fs.FileMode) error {
	switch {
	case t&fs.ModeSymlink != 0:
		return fmt.Errorf("%w: %s is a symbolic link; copy the file instead", ErrUnsafe, rel)
	case t&(fs.ModeType&^fs.ModeDir) != 0:
		return fmt.Errorf("%w: %s is not a regular file or folder (%v)", ErrUnsafe, rel, t)
	}
	return nil
}

// readLimited reads a file of at most limit bytes.
func readLimited(fsys fs.FS, rel string, limit int64) ([]byte, error) {
	f, err := fsys.Open(rel)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("dataset: read %s: %w", rel, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrTooLarge, rel, limit)
	}
	return data, nil
}
