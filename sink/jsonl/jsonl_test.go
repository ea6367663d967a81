package jsonl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/sink"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var _ sink.Sink = (*Writer)(nil)

// clock is a manual clock for rotation by age.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 11, 22, 0, 5, 14, 543868149, time.UTC)}
}

func res(seq uint64) result.Result {
	return result.Result{Schema: 1, Stream: "cam", Seq: seq, Faces: []result.Face{{Score: 0.9}},
		CapturedAt: time.Unix(0, int64(seq)*1e6+1).UTC()}
}

func open(t *testing.T, w *Writer) *Writer {
	t.Helper()
	if err := w.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// readLines returns every result in path, in order, failing on a line that does not parse.
func readLines(t *testing.T, path string) []result.Result {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []result.Result
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		r, err := result.ParseResult(sc.Bytes())
		if err != nil {
			t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// allSeqs reads the rotated files oldest first, then the active file.
func allSeqs(t *testing.T, w *Writer) []uint64 {
	t.Helper()
	files, err := w.Rotated()
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, f := range append(files, w.Path) {
		for _, r := range readLines(t, f) {
			seqs = append(seqs, r.Seq)
		}
	}
	return seqs
}

func TestWriteAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.jsonl")
	w := open(t, &Writer{Path: path})
	ctx := context.Background()
	for i := uint64(1); i <= 3; i++ {
		if err := w.Write(ctx, res(i)); err != nil {
			t.Fatal(err)
		}
	}
	ev := event.Event{Schema: 1, Kind: event.KindAppeared, Stream: "cam", TrackID: "t-1"}
	if err := w.WriteEvent(ctx, ev, []byte{0xff, 0xd8}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := w.Write(ctx, res(9)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v, want ErrClosed", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines: %q", len(lines), data)
	}
	if _, err := event.ParseEvent([]byte(lines[3])); err != nil {
		t.Fatalf("event line: %v", err)
	}
	// A restarted writer appends; Truncate starts over.
	w2 := open(t, &Writer{Path: path})
	if err := w2.Write(ctx, res(4)); err != nil {
		t.Fatal(err)
	}
	_ = w2.Close()
	if got := len(strings.Split(strings.TrimSpace(mustRead(t, path)), "\n")); got != 5 {
		t.Fatalf("after reopen: %d lines, want 5", got)
	}
	w3 := open(t, &Writer{Path: path, Truncate: true})
	if err := w3.Write(ctx, res(5)); err != nil {
		t.Fatal(err)
	}
	_ = w3.Close()
	if got := readLines(t, path); len(got) != 1 || got[0].Seq != 5 {
		t.Fatalf("after truncate: %+v", got)
	}
	if s := w3.Stats(); s.Lines != 1 || s.Bytes == 0 {
		t.Fatalf("stats %+v", s)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRotateBySize: no file passes MaxBytes, every line survives in order across the files, and
// only Keep rotated files remain.
func TestRotateBySize(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	line := len(mustMarshalLine(t, res(100)))
	w := &Writer{Path: filepath.Join(dir, "r.jsonl"), MaxBytes: int64(3 * line), Keep: -1, now: c.now}
	open(t, w)
	const n = 20
	for i := uint64(100); i < 100+n; i++ {
		if err := w.Write(context.Background(), res(i)); err != nil {
			t.Fatal(err)
		}
		c.advance(time.Millisecond)
	}
	seqs := allSeqs(t, w)
	if len(seqs) != n {
		t.Fatalf("%d lines, want %d", len(seqs), n)
	}
	for i, s := range seqs {
		if s != uint64(100+i) {
			t.Fatalf("line %d has seq %d: order lost across rotations (%v)", i, s, seqs)
		}
	}
	files, _ := w.Rotated()
	if len(files) != n/3 {
		t.Fatalf("%d rotated files, want %d", len(files), n/3)
	}
	for _, f := range append(files, w.Path) {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > w.MaxBytes {
			t.Fatalf("%s has %d bytes, more than MaxBytes %d", f, st.Size(), w.MaxBytes)
		}
	}
	if s := w.Stats(); s.Rotations != uint64(n/3) || s.Lines != n {
		t.Fatalf("stats %+v", s)
	}

	// Keep bounds the rotated files; the newest are kept.
	w.Keep = 2
	if err := w.Rotate(); err != nil {
		t.Fatal(err)
	}
	kept, _ := w.Rotated()
	if len(kept) != 2 {
		t.Fatalf("kept %d files, want 2: %v", len(kept), kept)
	}
	last := readLines(t, kept[1])
	if last[len(last)-1].Seq != 100+n-1 {
		t.Fatalf("newest rotated file ends with seq %d", last[len(last)-1].Seq)
	}
}

func mustMarshalLine(t *testing.T, r result.Result) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "probe.jsonl")
	w := open(t, &Writer{Path: path})
	if err := w.Write(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	return []byte(mustRead(t, path))
}

// TestLongLine: a line longer than MaxBytes is written alone into a fresh file, not refused.
func TestLongLine(t *testing.T) {
	c := newClock()
	w := open(t, &Writer{Path: filepath.Join(t.TempDir(), "r.jsonl"), MaxBytes: 64, now: c.now})
	for i := uint64(1); i <= 3; i++ {
		if err := w.Write(context.Background(), res(i)); err != nil {
			t.Fatal(err)
		}
		c.advance(time.Second)
	}
	files, _ := w.Rotated()
	if len(files) != 2 {
		t.Fatalf("%d rotated files, want 2 (one line each)", len(files))
	}
	for _, f := range append(files, w.Path) {
		if got := readLines(t, f); len(got) != 1 {
			t.Fatalf("%s holds %d lines", f, len(got))
		}
	}
}

// TestRotateByAge: the first write after MaxAge rotates; the rotated name carries the time.
func TestRotateByAge(t *testing.T) {
	c := newClock()
	w := open(t, &Writer{Path: filepath.Join(t.TempDir(), "r.jsonl"), MaxAge: time.Hour, now: c.now})
	ctx := context.Background()
	_ = w.Write(ctx, res(1))
	c.advance(59 * time.Minute)
	_ = w.Write(ctx, res(2))
	if files, _ := w.Rotated(); len(files) != 0 {
		t.Fatalf("rotated before MaxAge: %v", files)
	}
	c.advance(time.Minute)
	_ = w.Write(ctx, res(3))
	files, _ := w.Rotated()
	if len(files) != 1 {
		t.Fatalf("%d rotated files after MaxAge, want 1", len(files))
	}
	want := "r-20261122T010514.543868149Z.jsonl"
	if filepath.Base(files[0]) != want {
		t.Fatalf("rotated as %s, want %s", filepath.Base(files[0]), want)
	}
	if got := readLines(t, files[0]); len(got) != 2 {
		t.Fatalf("rotated file has %d lines", len(got))
	}
	// The age restarts at the rotation.
	c.advance(30 * time.Minute)
	_ = w.Write(ctx, res(4))
	if files, _ := w.Rotated(); len(files) != 1 {
		t.Fatalf("rotated again too early: %v", files)
	}
}

// TestSameInstant: rotations at the same clock reading get distinct names that sort in order.
func TestSameInstant(t *testing.T) {
	c := newClock()
	w := open(t, &Writer{Path: filepath.Join(t.TempDir(), "r.jsonl"), Keep: -1, now: c.now})
	for i := uint64(1); i <= 12; i++ {
		if err := w.Write(context.Background(), res(i)); err != nil {
			t.Fatal(err)
		}
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Rotate(); err != nil { // empty: nothing to rotate
		t.Fatal(err)
	}
	seqs := allSeqs(t, w)
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("order %v", seqs)
		}
	}
	if len(seqs) != 12 {
		t.Fatalf("%d lines", len(seqs))
	}
}

// TestPruneAtStart: Initialize removes rotated files beyond Keep and leaves other files alone.
func TestPruneAtStart(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("r-%s.jsonl", c.now().Format(stampLayout))
		if err := os.WriteFile(filepath.Join(dir, name), []byte("{}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		c.advance(time.Hour)
	}
	other := filepath.Join(dir, "r-notes.jsonl")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w := open(t, &Writer{Path: filepath.Join(dir, "r.jsonl"), Keep: 3})
	files, _ := w.Rotated()
	if len(files) != 3 || !strings.Contains(files[0], "T020514") {
		t.Fatalf("kept %v", files)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("a file that is not a rotated file was removed: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for name, w := range map[string]*Writer{
		"no path":     {},
		"no dir":      {Path: filepath.Join(dir, "missing", "r.jsonl")},
		"a directory": {Path: dir},
		"negative":    {Path: filepath.Join(dir, "r.jsonl"), MaxAge: -time.Second},
	} {
		if err := w.Initialize(); err == nil {
			_ = w.Close()
			t.Errorf("%s: Initialize accepted %+v", name, w)
		}
	}
}

// TestConcurrentWriters: writes from many goroutines interleave as whole lines.
func TestConcurrentWriters(t *testing.T) {
	w := open(t, &Writer{Path: filepath.Join(t.TempDir(), "r.jsonl"), MaxBytes: 4096, Keep: -1})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				if err := w.Write(context.Background(), res(uint64(g*1000+i+1))); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	if got := len(allSeqs(t, w)); got != 400 {
		t.Fatalf("%d lines, want 400", got)
	}
}

func TestParseRotatedName(t *testing.T) {
	for _, tc := range []struct {
		active, name string
		ok           bool
	}{
		{"r.jsonl", "r-20261122T000514.543868149Z.jsonl", true},
		{"r.jsonl", "r-20261122T000514.543868149Z-3.jsonl", true},
		{"r.jsonl", "r-20261122T000514.543868149Z-.jsonl", false},
		{"r.jsonl", "r-20261122T000514.543868149Z-x.jsonl", false},
		{"r.jsonl", "r-20261122T000514.5438681Z.jsonl", false},
		{"r.jsonl", "r-20261322T000514.543868149Z.jsonl", false},
		{"r.jsonl", "r.jsonl", false},
		{"r.jsonl", "q-20261122T000514.543868149Z.jsonl", false},
		{"results", "results-20261122T000514.543868149Z", true},
		{"a.b.jsonl", "a.b-20261122T000514.543868149Z.jsonl", true},
	} {
		if _, ok := ParseRotatedName(tc.active, tc.name); ok != tc.ok {
			t.Errorf("ParseRotatedName(%q, %q) = %v, want %v", tc.active, tc.name, ok, tc.ok)
		}
	}
}

func FuzzParseRotatedName(f *testing.F) {
	f.Add("r.jsonl", "r-20261122T000514.543868149Z.jsonl")
	f.Add("r.jsonl", "r-20261122T000514.543868149Z-12.jsonl")
	f.Add("results", "results-20261122T000514.543868149Z")
	f.Add(".jsonl", ".jsonl-20261122T000514.543868149Z")
	f.Fuzz(func(t *testing.T, active, name string) {
		at, ok := ParseRotatedName(active, name)
		if !ok {
			return
		}
		// What parses names a file this package could have written.
		base, ext := splitExt(active)
		stamp := at.UTC().Format(stampLayout)
		if !strings.HasPrefix(name, base+"-"+stamp) || !strings.HasSuffix(name, ext) {
			t.Fatalf("%q parsed from %q as %s", name, active, stamp)
		}
	})
}
