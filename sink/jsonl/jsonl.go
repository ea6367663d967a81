// Package jsonl is a sink.Sink that writes results (and, through WriteEvent, track events) as
// JSON lines to a file that it rotates by size and/or age, keeping a bounded number of rotated
// files.
//
// Rotation is crash-safe: the active file is fsynced, renamed in one atomic step to
// <name>-<UTC time><ext> beside it (results.jsonl becomes
// results-20261122T000514.543868149Z.jsonl), the directory is fsynced, and a new active file is
// created under the original name. A reader that opened the old file keeps reading it to its
// end; `tail -F results.jsonl` follows the rotation. Each line is written with one write(2)
// call, and a failed write is cut back, so no file ever holds a partial line followed by another.
//
// The package is pure Go.
package jsonl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/vigil-video/vigil/pkg/result"
)

// DefaultMaxBytes is Writer.MaxBytes's default: 64 MiB.
const DefaultMaxBytes = 64 << 20

// DefaultKeep is Writer.Keep's default.
const DefaultKeep = 10

// stampLayout names rotated files. It is fixed width (nanoseconds are zero-padded), so rotated
// files sort by name in the order they were rotated.
const stampLayout = "20060102T150405.000000000Z"

// ErrClosed is returned by Write, WriteEvent and Rotate after Close.
var ErrClosed = errors.New("jsonl: writer closed")

// Writer writes one JSON document per line to Path and rotates it. Fill the exported fields,
// call Initialize, then Write from any goroutine (writes are serialised); Close when done. Fields
// must not change after Initialize.
type Writer struct {
	// Path is the active file. Its directory must exist. Required.
	Path string
	// MaxBytes rotates the file before a line would make it longer than this many bytes (a
	// single longer line is written alone into a fresh file). Default DefaultMaxBytes (64 MiB);
	// negative: no size limit.
	MaxBytes int64
	// MaxAge rotates the file at the first write after it has been active this long (an idle
	// file is not rotated until something is written). The age counts from Initialize or the
	// last rotation. Default 0: no age limit.
	MaxAge time.Duration
	// Keep is how many rotated files are kept; older ones are removed after each rotation and at
	// Initialize. Default DefaultKeep (10); negative: keep every file.
	Keep int
	// Sync fsyncs the file after every write, so a result Write accepted (and the sink role then
	// acknowledged) survives a power loss, at the cost of one disk flush per result. Default
	// false: lines reach the operating system at once and the disk at rotation and Close.
	Sync bool
	// Truncate empties an existing Path at Initialize. Default false: append to it (a restarted
	// sink continues its predecessor's file; its size counts towards MaxBytes).
	Truncate bool
	// Perm is the permission of created files. Default 0o644.
	Perm os.FileMode
	// Log receives what goes wrong outside a write (removing old files). Default slog.Default().
	Log *slog.Logger

	now func() time.Time // the clock; tests replace it

	mu     sync.Mutex
	f      *os.File
	size   int64
	opened time.Time
	closed bool
	stats  Stats
}

// Stats counts what a Writer did.
type Stats struct {
	// Lines and Bytes count what was written.
	Lines, Bytes uint64
	// Rotations counts rotations; Removed the rotated files removed because of Keep.
	Rotations, Removed uint64
	// Errors counts writes and rotations that failed.
	Errors uint64
}

// Initialize validates the configuration, opens (creating or appending to) Path and removes
// rotated files beyond Keep.
func (w *Writer) Initialize() error {
	if w.Path == "" {
		return errors.New("jsonl: no Path")
	}
	if w.MaxBytes == 0 {
		w.MaxBytes = DefaultMaxBytes
	}
	if w.MaxAge < 0 {
		return fmt.Errorf("jsonl: negative MaxAge %s", w.MaxAge)
	}
	if w.Keep == 0 {
		w.Keep = DefaultKeep
	}
	if w.Perm == 0 {
		w.Perm = 0o644
	}
	if w.Log == nil {
		w.Log = slog.Default()
	}
	if w.now == nil {
		w.now = time.Now
	}
	w.Path = filepath.Clean(w.Path)
	if st, err := os.Stat(filepath.Dir(w.Path)); err != nil {
		return fmt.Errorf("jsonl: directory of %s: %w", w.Path, err)
	} else if !st.IsDir() {
		return fmt.Errorf("jsonl: %s is not a directory", filepath.Dir(w.Path))
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if w.Truncate {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(w.Path, flags, w.Perm)
	if err != nil {
		return fmt.Errorf("jsonl: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("jsonl: %w", err)
	}
	if !st.Mode().IsRegular() {
		_ = f.Close()
		return fmt.Errorf("jsonl: %s is not a regular file", w.Path)
	}
	w.mu.Lock()
	w.f, w.size, w.opened = f, st.Size(), w.now()
	w.mu.Unlock()
	w.prune()
	return nil
}

// Write appends r as one line, rotating first when the line would pass MaxBytes or the file is
// older than MaxAge. It returns once the line is written to the file (and with Sync, on disk).
func (w *Writer) Write(ctx context.Context, r result.Result) error {
	return w.writeDoc(ctx, r)
}

// WriteEvent appends a track event as one line, like Write. snapshot is ignored: a JSON-lines
// file holds no pictures.
func (w *Writer) WriteEvent(ctx context.Context, ev event.Event, _ []byte) error {
	return w.writeDoc(ctx, ev)
}

func (w *Writer) writeDoc(ctx context.Context, doc any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("jsonl: %w", err)
	}
	line, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("jsonl: %w", err)
	}
	line = append(line, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.f == nil {
		return ErrClosed
	}
	if w.needRotate(int64(len(line))) {
		if err := w.rotate(); err != nil {
			w.stats.Errors++
			return err
		}
	}
	n, err := w.f.Write(line)
	if err != nil {
		w.stats.Errors++
		if n > 0 {
			// Cut the partial line so the next one starts on a line of its own.
			if terr := w.f.Truncate(w.size); terr != nil {
				err = errors.Join(err, fmt.Errorf("cut partial line: %w", terr))
				w.size += int64(n)
			}
		}
		return fmt.Errorf("jsonl: write %s: %w", w.Path, err)
	}
	w.size += int64(n)
	w.stats.Lines++
	w.stats.Bytes += uint64(n)
	if w.Sync {
		if err := w.f.Sync(); err != nil {
			w.stats.Errors++
			return fmt.Errorf("jsonl: fsync %s: %w", w.Path, err)
		}
	}
	return nil
}

// needRotate reports whether the active file must be rotated before a line of n bytes.
func (w *Writer) needRotate(n int64) bool {
	if w.size == 0 {
		return false // never rotate an empty file
	}
	if w.MaxBytes > 0 && w.size+n > w.MaxBytes {
		return true
	}
	return w.MaxAge > 0 && w.now().Sub(w.opened) >= w.MaxAge
}

// Rotate rotates the active file now, unless it is empty (for example on SIGHUP, or from an
// external schedule).
func (w *Writer) Rotate() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.f == nil {
		return ErrClosed
	}
	if w.size == 0 {
		return nil
	}
	if err := w.rotate(); err != nil {
		w.stats.Errors++
		return err
	}
	return nil
}

// rotate fsyncs and renames the active file, creates a fresh one and prunes. Called with mu held.
// On failure the active file is unchanged (still open, still named Path).
func (w *Writer) rotate() error {
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("jsonl: fsync %s before rotating: %w", w.Path, err)
	}
	now := w.now()
	target, err := w.backupName(now)
	if err != nil {
		return err
	}
	if err := os.Rename(w.Path, target); err != nil {
		return fmt.Errorf("jsonl: rotate: %w", err)
	}
	nf, err := os.OpenFile(w.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, w.Perm)
	if err != nil {
		if rerr := os.Rename(target, w.Path); rerr != nil {
			err = errors.Join(err, fmt.Errorf("undo rename: %w", rerr))
		}
		return fmt.Errorf("jsonl: rotate: create %s: %w", w.Path, err)
	}
	// The rename and the new file's entry are durable once the directory is.
	if err := syncDir(filepath.Dir(w.Path)); err != nil {
		w.Log.Warn("jsonl: fsync directory after rotation", "dir", filepath.Dir(w.Path), "err", err)
	}
	if err := w.f.Close(); err != nil {
		w.Log.Warn("jsonl: close rotated file", "file", target, "err", err)
	}
	w.f, w.size, w.opened = nf, 0, now
	w.stats.Rotations++
	w.pruneLocked()
	return nil
}

// backupName returns a free name for a file rotated at t.
func (w *Writer) backupName(t time.Time) (string, error) {
	base, ext := splitExt(filepath.Base(w.Path))
	dir := filepath.Dir(w.Path)
	name := filepath.Join(dir, base+"-"+t.UTC().Format(stampLayout)+ext)
	for i := 1; ; i++ {
		_, err := os.Lstat(name)
		if errors.Is(err, os.ErrNotExist) {
			return name, nil
		}
		if err != nil {
			return "", fmt.Errorf("jsonl: rotate: %w", err)
		}
		if i > 1000 {
			return "", fmt.Errorf("jsonl: rotate: no free name for %s", name)
		}
		name = filepath.Join(dir, base+"-"+t.UTC().Format(stampLayout)+"-"+strconv.Itoa(i)+ext)
	}
}

// splitExt splits "results.jsonl" into "results" and ".jsonl"; a name without a dot (or only a
// leading one) has no extension.
func splitExt(name string) (base, ext string) {
	ext = filepath.Ext(name)
	if ext == name {
		return name, ""
	}
	return strings.TrimSuffix(name, ext), ext
}

// ParseRotatedName reports whether name (a file name without directory) is a file rotated from
// the active file named active, and when it was rotated. Rotated names are
// <base>-<UTC time in stampLayout>[-N]<ext>, where active is <base><ext>.
func ParseRotatedName(active, name string) (time.Time, bool) {
	base, ext := splitExt(active)
	if !strings.HasPrefix(name, base+"-") || !strings.HasSuffix(name, ext) || len(name) < len(base)+1+len(ext) {
		return time.Time{}, false
	}
	mid := name[len(base)+1 : len(name)-len(ext)]
	if len(mid) < len(stampLayout) {
		return time.Time{}, false
	}
	stamp, rest := mid[:len(stampLayout)], mid[len(stampLayout):]
	if rest != "" {
		n, ok := strings.CutPrefix(rest, "-")
		if !ok || n == "" || len(n) > 4 || strings.TrimLeft(n, "0123456789") != "" {
			return time.Time{}, false
		}
	}
	t, err := time.Parse(stampLayout, stamp)
	if err != nil || t.UTC().Format(stampLayout) != stamp {
		return time.Time{}, false
	}
	return t, true
}

// Rotated lists the rotated files beside Path, oldest first.
func (w *Writer) Rotated() ([]string, error) {
	return rotatedFiles(w.Path)
}

func rotatedFiles(path string) ([]string, error) {
	dir, active := filepath.Dir(path), filepath.Base(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("jsonl: %w", err)
	}
	type rotated struct {
		name string
		at   time.Time
	}
	var files []rotated
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if t, ok := ParseRotatedName(active, e.Name()); ok {
			files = append(files, rotated{e.Name(), t})
		}
	}
	slices.SortFunc(files, func(a, b rotated) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		// Same instant: "x-T.jsonl" before "x-T-1.jsonl" before "x-T-2.jsonl".
		if c := len(a.name) - len(b.name); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = filepath.Join(dir, f.name)
	}
	return out, nil
}

func (w *Writer) prune() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pruneLocked()
}

// pruneLocked removes the oldest rotated files beyond Keep; errors are logged.
func (w *Writer) pruneLocked() {
	if w.Keep < 0 {
		return
	}
	files, err := rotatedFiles(w.Path)
	if err != nil {
		w.Log.Warn("jsonl: list rotated files", "err", err)
		return
	}
	for len(files) > w.Keep {
		if err := os.Remove(files[0]); err != nil && !errors.Is(err, os.ErrNotExist) {
			w.Log.Warn("jsonl: remove old file", "file", files[0], "err", err)
		} else {
			w.stats.Removed++
		}
		files = files[1:]
	}
}

// Stats returns the counters.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Close fsyncs and closes the active file. Later writes return ErrClosed. Safe to call more than
// once.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.f == nil {
		w.closed = true
		return nil
	}
	w.closed = true
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err != nil {
		return fmt.Errorf("jsonl: close %s: %w", w.Path, err)
	}
	return nil
}

// syncDir fsyncs a directory, making renames and creations in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
