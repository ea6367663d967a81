// Package datasettest builds training datasets for tests: small JPEG images and ZIP archives of
// them, including deliberately hostile archives. Only tests import it.
package datasettest

import (
	"archive/zip"
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// JPEG encodes a w x h JPEG whose content depends on seed.
func JPEG(t testing.TB, w, h int, seed uint8) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x) + seed, uint8(y) * seed, seed, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// File is one entry of an archive: a name and its content, or a mode for special entries.
type File struct {
	// Name is the entry's path in the archive.
	Name string
	// Data is the entry's content.
	Data []byte
	// Mode sets the entry's file mode (fs.ModeSymlink for a link whose target is Data).
	Mode fs.FileMode
}

// ZIP returns an archive of files.
func ZIP(t testing.TB, files ...File) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, f := range files {
		fh := &zip.FileHeader{Name: f.Name, Method: zip.Deflate}
		if f.Mode != 0 {
			fh.SetMode(f.Mode)
		}
		w, err := zw.CreateHeader(fh)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(f.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Classes returns n generated images for each class, named CLASS/imgNN.jpg.
func Classes(t testing.TB, n int, classes ...string) []File {
	t.Helper()
	var out []File
	for ci, c := range classes {
		for i := 0; i < n; i++ {
			out = append(out, File{Name: fmt.Sprintf("%s/img%02d.jpg", c, i), Data: JPEG(t, 16+i, 12, uint8(40*ci+i))})
		}
	}
	return out
}

// DirZIP returns a ZIP of the dataset folder dir (one folder per class), its files under
// prefix.
func DirZIP(t testing.TB, dir, prefix string) []byte {
	t.Helper()
	var files []File
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		files = append(files, File{Name: prefix + filepath.ToSlash(rel), Data: data})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ZIP(t, files...)
}
