package dataset

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// jpegBytes encodes a w x h JPEG whose content depends on seed.
func jpegBytes(t testing.TB, w, h int, seed uint8) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x) + seed, uint8(y), seed, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func pngBytes(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 3, 2))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// entry is one file of a test archive.
type entry struct {
	name string
	data []byte
	mode fs.FileMode // 0: regular file
	raw  bool        // store data as given with a lying header (see zipOf)
}

// zipOf builds a ZIP archive in memory.
func zipOf(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range entries {
		fh := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.mode != 0 {
			fh.SetMode(e.mode)
		}
		if e.raw {
			// A deflate stream of e.data whose header claims 100 bytes.
			var c bytes.Buffer
			fw, _ := flate.NewWriter(&c, flate.BestCompression)
			_, _ = fw.Write(e.data)
			_ = fw.Close()
			fh.CompressedSize64, fh.UncompressedSize64 = uint64(c.Len()), 100
			w, err := zw.CreateRaw(fh)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = w.Write(c.Bytes())
			continue
		}
		w, err := zw.CreateHeader(fh)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// classes returns n images for each class, under prefix.
func classes(t testing.TB, prefix string, n int, names ...string) []entry {
	var out []entry
	for ci, c := range names {
		for i := 0; i < n; i++ {
			out = append(out, entry{name: fmt.Sprintf("%s%s/img%02d.jpg", prefix, c, i), data: jpegBytes(t, 8+i, 6, uint8(ci*40+i))})
		}
	}
	return out
}

// extract runs ExtractZIP into a fresh directory and, on failure, checks that nothing was left
// behind: the parent holds nothing at all afterwards.
func extract(t *testing.T, archive []byte, lim Limits) (Dataset, error) {
	t.Helper()
	parent := t.TempDir()
	dest := filepath.Join(parent, "data")
	ds, err := ExtractZIP(bytes.NewReader(archive), int64(len(archive)), dest, lim)
	if err != nil {
		left, _ := os.ReadDir(parent)
		if len(left) != 0 {
			t.Errorf("failed extraction left %v behind", left)
		}
		return ds, err
	}
	// Every file lies below dest, and is a regular file.
	err2 := filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !strings.HasPrefix(p, dest) && p != parent {
			t.Errorf("%s written outside %s", p, dest)
		}
		if d.Type()&fs.ModeSymlink != 0 {
			t.Errorf("%s is a link", p)
		}
		return nil
	})
	if err2 != nil {
		t.Fatal(err2)
	}
	return ds, nil
}

func TestExtractZIP(t *testing.T) {
	files := classes(t, "", 5, "cats", "dogs")
	files = append(files, entry{name: "dogs/extra.png", data: pngBytes(t)}, entry{name: "cats/"}, entry{name: ".DS_Store", data: []byte("junk")})
	ds, err := extract(t, zipOf(t, files...), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ds.Classes, ",") != "cats,dogs" || len(ds.Images) != 11 {
		t.Fatalf("classes %v, %d images", ds.Classes, len(ds.Images))
	}
	if c := ds.Counts(); c[0] != 5 || c[1] != 6 {
		t.Errorf("counts %v", c)
	}
	for i, im := range ds.Images {
		b, err := ds.ReadImage(i)
		if err != nil || int64(len(b)) != im.Size {
			t.Errorf("ReadImage(%d) = %d bytes, %v", i, len(b), err)
		}
	}
	if im := ds.Images[5]; im.Path != "dogs/extra.png" || im.Format != "png" || im.Width != 3 || im.Height != 2 {
		t.Errorf("first dog %+v, want dogs/extra.png, a 3x2 PNG", im)
	}

	// A zipped dataset folder (one top folder) with macOS junk is the same dataset.
	wrapped := classes(t, "shop/", 5, "cats", "dogs")
	wrapped = append(wrapped, entry{name: "__MACOSX/shop/cats/._img00.jpg", data: []byte("resource fork")}, entry{name: "shop/"})
	ds, err = extract(t, zipOf(t, wrapped...), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ds.Classes, ",") != "cats,dogs" || len(ds.Images) != 10 || ds.Images[0].Path != "cats/img00.jpg" {
		t.Errorf("wrapped: classes %v, %d images, first %s", ds.Classes, len(ds.Images), ds.Images[0].Path)
	}
}

func TestExtractZIPRejects(t *testing.T) {
	good := classes(t, "", 5, "a", "b")
	with := func(extra ...entry) []byte { return zipOf(t, append(append([]entry(nil), good...), extra...)...) }
	zeros := make([]byte, 8<<20)
	noise := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	var many []entry
	for i := 0; i < 10000; i++ {
		many = append(many, entry{name: fmt.Sprintf("a/%05d.jpg", i), data: []byte{0xff}})
	}
	truncated := jpegBytes(t, 64, 64, 1)
	truncated = truncated[:len(truncated)-40]
	tests := []struct {
		name    string
		archive []byte
		lim     Limits
		want    error
		mention string
	}{
		{"zip slip", with(entry{name: "../evil.jpg", data: good[0].data}), Limits{}, ErrUnsafe, "../evil.jpg"},
		{"zip slip inside a class", with(entry{name: "a/../../evil.jpg", data: good[0].data}), Limits{}, ErrUnsafe, ".."},
		{"absolute path", with(entry{name: "/tmp/evil.jpg", data: good[0].data}), Limits{}, ErrUnsafe, "absolute"},
		{"backslashes", with(entry{name: `a\..\..\evil.jpg`, data: good[0].data}), Limits{}, ErrUnsafe, "backslash"},
		{"drive letter", with(entry{name: "C:/evil.jpg", data: good[0].data}), Limits{}, ErrUnsafe, "drive"},
		{"symlink", with(entry{name: "a/link.jpg", data: []byte("../../../etc/passwd"), mode: fs.ModeSymlink | 0o777}), Limits{}, ErrUnsafe, "symbolic link"},
		{"device", with(entry{name: "a/dev.jpg", data: nil, mode: fs.ModeDevice | 0o600}), Limits{}, ErrUnsafe, "not a regular file"},
		{"bomb by ratio", with(entry{name: "a/bomb.jpg", data: zeros}), Limits{}, ErrTooLarge, "ZIP bomb"},
		{"lying header", with(entry{name: "a/liar.jpg", data: zeros, raw: true}), Limits{}, nil, "liar.jpg"},
		{"file too large", with(entry{name: "a/big.jpg", data: noise}), Limits{MaxFileBytes: 512 << 10}, ErrTooLarge, "big.jpg"},
		{"total too large", with(entry{name: "a/n1.jpg", data: noise}, entry{name: "a/n2.jpg", data: noise}, entry{name: "a/n3.jpg", data: noise}),
			Limits{MaxTotalBytes: 2 << 20}, ErrTooLarge, "in total"},
		{"10,000 tiny files", zipOf(t, many...), Limits{}, ErrTooLarge, "10000 entries"},
		{"text with an image name", with(entry{name: "a/notes.jpg", data: []byte("just some text, not a JPEG")}), Limits{}, ErrNotImage, "a/notes.jpg"},
		{"truncated JPEG", with(entry{name: "a/cut.jpg", data: truncated}), Limits{}, ErrNotImage, "truncated"},
		{"huge pixel count", with(entry{name: "a/wide.png", data: pngHeader(100000, 100000)}), Limits{}, ErrNotImage, "exceeds"},
		{"class with one image", with(entry{name: "c/only.jpg", data: good[0].data}), Limits{}, ErrLayout, `class "c" has 1 image`},
		{"empty class folder", with(entry{name: "c/"}), Limits{}, ErrLayout, `class "c" has 0 image`},
		{"one class", zipOf(t, good[:5]...), Limits{}, ErrLayout, "at least 2"},
		{"nested folder", with(entry{name: "a/sub/x.jpg", data: good[0].data}), Limits{}, ErrLayout, "inside class folder"},
		{"file outside a class", with(entry{name: "x.jpg", data: good[0].data}), Limits{}, ErrLayout, "not inside a class folder"},
		{"duplicate entry", with(entry{name: "a/img00.jpg", data: good[1].data}), Limits{}, ErrUnsafe, "twice"},
		{"bad class name", with(entry{name: " spaced/x.jpg", data: good[0].data}), Limits{}, ErrLayout, "class folder"},
		{"not a ZIP", []byte("PK\x03\x04 definitely not a zip"), Limits{}, nil, "not a readable ZIP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := extract(t, tc.archive, tc.lim)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}

	// The destination must not exist yet: nothing is ever written into an existing folder.
	dest := t.TempDir()
	a := zipOf(t, good...)
	if _, err := ExtractZIP(bytes.NewReader(a), int64(len(a)), dest, Limits{}); err == nil {
		t.Error("extraction into an existing folder succeeded")
	}
}

// pngHeader returns the start of a PNG declaring w x h pixels (no image data).
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := []byte{'I', 'H', 'D', 'R', byte(w >> 24), byte(w >> 16), byte(w >> 8), byte(w), byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h), 8, 2, 0, 0, 0}
	b.Write([]byte{0, 0, 0, 13})
	b.Write(chunk)
	sum := crc32.ChecksumIEEE(chunk)
	b.Write([]byte{byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)})
	b.WriteString("IEND")
	return b.Bytes()
}

func TestScan(t *testing.T) {
	dir := t.TempDir()
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range classes(t, "set/", 5, "a", "b") {
		write(e.name, e.data)
	}
	write("set/a/.hidden.jpg", []byte("not an image, but hidden"))
	write(".DS_Store", []byte("junk"))
	ds, err := Scan(dir, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ds.Classes, ",") != "a,b" || len(ds.Images) != 10 || ds.Images[0].Path != "set/a/img00.jpg" {
		t.Fatalf("classes %v, %d images, first %+v", ds.Classes, len(ds.Images), ds.Images[0])
	}
	if _, err := ds.ReadImage(3); err != nil {
		t.Error(err)
	}

	outside := filepath.Join(t.TempDir(), "secret.jpg")
	if err := os.WriteFile(outside, jpegBytes(t, 8, 8, 9), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		setup func(t *testing.T, root string)
		want  error
	}{
		{"symlink to a file outside", func(t *testing.T, root string) {
			if err := os.Symlink(outside, filepath.Join(root, "set/a/link.jpg")); err != nil {
				t.Fatal(err)
			}
		}, ErrUnsafe},
		{"symlinked class folder", func(t *testing.T, root string) {
			if err := os.Symlink(filepath.Dir(outside), filepath.Join(root, "set/c")); err != nil {
				t.Fatal(err)
			}
		}, ErrUnsafe},
		{"fifo", func(t *testing.T, root string) {
			if err := syscall.Mkfifo(filepath.Join(root, "set/a/pipe.jpg"), 0o644); err != nil {
				t.Skip("no fifo here:", err)
			}
		}, ErrUnsafe},
		{"non-image", func(t *testing.T, root string) {
			if err := os.WriteFile(filepath.Join(root, "set/a/x.png"), []byte("%PDF-1.4"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, ErrNotImage},
		{"one image class", func(t *testing.T, root string) {
			if err := os.MkdirAll(filepath.Join(root, "set/c"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "set/c/x.jpg"), jpegBytes(t, 8, 8, 3), 0o644); err != nil {
				t.Fatal(err)
			}
		}, ErrLayout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, e := range classes(t, "set/", 5, "a", "b") {
				p := filepath.Join(root, e.name)
				_ = os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, e.data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			tc.setup(t, root)
			if _, err := Scan(root, Limits{}); !errors.Is(err, tc.want) {
				t.Errorf("error = %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzExtractZIP feeds the importer arbitrary archives: it must never panic, never write
// outside the destination, leave nothing behind on failure, and return only checked images.
func FuzzExtractZIP(f *testing.F) {
	img := jpegBytes(f, 8, 8, 1)
	f.Add(zipOf(f, entry{name: "a/1.jpg", data: img}, entry{name: "b/1.jpg", data: img}))
	f.Add(zipOf(f, entry{name: "top/a/1.jpg", data: img}, entry{name: "top/b/1.png", data: pngBytes(f)}, entry{name: "__MACOSX/x", data: img}))
	f.Add(zipOf(f, entry{name: "../a/1.jpg", data: img}, entry{name: "b/1.jpg", data: img}))
	f.Add(zipOf(f, entry{name: "a/l.jpg", data: []byte("/etc/passwd"), mode: fs.ModeSymlink | 0o777}))
	f.Add(zipOf(f, entry{name: "a/z.jpg", data: make([]byte, 100000)}))
	f.Add([]byte("PK\x05\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, archive []byte) {
		parent := t.TempDir()
		dest := filepath.Join(parent, "data")
		lim := Limits{MinPerClass: 1, MaxEntries: 200, MaxTotalBytes: 4 << 20}
		ds, err := ExtractZIP(bytes.NewReader(archive), int64(len(archive)), dest, lim)
		left, _ := os.ReadDir(parent)
		if err != nil {
			if len(left) != 0 {
				t.Fatalf("failed extraction left %v", left)
			}
			return
		}
		if len(left) != 1 || left[0].Name() != "data" {
			t.Fatalf("parent holds %v", left)
		}
		for i, im := range ds.Images {
			b, err := ds.ReadImage(i)
			if err != nil {
				t.Fatalf("ReadImage(%s): %v", im.Path, err)
			}
			if _, _, _, err := CheckImage(b, lim.MaxPixels+1<<40); err != nil {
				t.Fatalf("%s was accepted but is not an image: %v", im.Path, err)
			}
		}
		_ = filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type()&fs.ModeSymlink != 0 {
				t.Fatalf("link %s written", p)
			}
			return nil
		})
	})
}
