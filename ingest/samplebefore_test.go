package ingest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// TestSampleBeforeConversion: a file opened with OpenOptions.Sample returns only the frames the
// sampler keeps, already sampled, with the refused ones counted in Skipped; the kept media times
// are those sampling every converted frame keeps (within one frame), and no frame before the
// last kept one goes uncounted.
func TestSampleBeforeConversion(t *testing.T) {
	video := faceVideo(t)
	ctx := context.Background()
	discarded := 0
	readAll := func(opts OpenOptions) (kept []time.Duration, skipped int) {
		src, err := Open(ctx, video, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if av, ok := src.(*avSource); ok {
				discarded = av.dec.Discarded
			}
			src.Close()
		}()
		s := NewSampler(5)
		for {
			f, err := src.Read(ctx)
			if errors.Is(err, ErrEndOfStream) {
				return kept, skipped
			}
			if err != nil {
				t.Fatal(err)
			}
			f.Mat.Close()
			skipped += f.Skipped
			if opts.Sample != nil && !f.Sampled {
				t.Fatalf("frame at %s returned without Sampled", f.Media)
			}
			if f.Sampled || s.Keep(f.Media) {
				kept = append(kept, f.Media)
			} else {
				skipped++
			}
		}
	}
	plainKept, plainSkipped := readAll(OpenOptions{})
	s := NewSampler(5)
	fastKept, fastSkipped := readAll(OpenOptions{Sample: s.Keep})
	t.Logf("converting every frame: %d kept, %d skipped; sampling first: %d kept, %d skipped", len(plainKept), plainSkipped, len(fastKept), fastSkipped)
	// Frames skipped after the last kept one are not reported (no frame carries them), and the
	// last frames of a file may lack timestamps: compare all but the end.
	if seenPlain, seenFast := len(plainKept)+plainSkipped, len(fastKept)+fastSkipped; seenFast < seenPlain-6 || seenFast > seenPlain {
		t.Fatalf("frames seen %d, converting every frame %d: sampling before conversion lost frames", seenFast, seenPlain)
	}
	if fastSkipped == 0 || len(fastKept) < len(plainKept)-1 || len(fastKept) > len(plainKept) {
		t.Fatalf("kept %d (skipped %d), want the %d frames sampling after conversion keeps", len(fastKept), fastSkipped, len(plainKept))
	}
	sameFrames := func(how string, kept []time.Duration) {
		t.Helper()
		for i := range kept {
			if d := kept[i] - plainKept[i]; d < -50*time.Millisecond || d > 50*time.Millisecond {
				t.Fatalf("%s: kept frame %d at %s, sampling after conversion keeps %s", how, i, kept[i], plainKept[i])
			}
		}
	}
	sameFrames("sampling first", fastKept)
	// Asked before decoding too (Wants), the source leaves the file's disposable B-frames it
	// refuses undecoded, and keeps the same frames.
	s = NewSampler(5)
	wantKept, wantSkipped := readAll(OpenOptions{Sample: s.Keep, Wants: s.Wants})
	t.Logf("sampling before decoding: %d kept, %d skipped, %d of them never decoded", len(wantKept), wantSkipped, discarded)
	if discarded < 15 || wantSkipped != fastSkipped || len(wantKept) != len(fastKept) {
		t.Fatalf("with Wants: kept %d, skipped %d (%d undecoded); want %d kept, %d skipped with 15+ undecoded",
			len(wantKept), wantSkipped, discarded, len(fastKept), fastSkipped)
	}
	sameFrames("sampling before decoding", wantKept)
}

// x264Clip writes a seconds-long H.264 test pattern of size at fps with ffmpeg; it skips the
// test when ffmpeg is missing.
func x264Clip(t *testing.T, size string, fps, seconds int) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not on PATH (make setup installs it)")
	}
	path := filepath.Join(t.TempDir(), "clip.mp4")
	cmd := exec.Command("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", fmt.Sprintf("testsrc=size=%s:rate=%d", size, fps),
		"-t", strconv.Itoa(seconds), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", path)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return path
}

// TestSampledAtTheFileRate: a 30 fps file sampled at 30 fps keeps every frame (its timestamps,
// in the file's time base, do not fall short of the sampler's slots), and at 10 fps one in three.
func TestSampledAtTheFileRate(t *testing.T) {
	path := x264Clip(t, "160x120", 30, 2)
	ctx := context.Background()
	for _, c := range []struct {
		fps  float64
		want int
	}{{30, 60}, {10, 20}} {
		s := NewSampler(c.fps)
		src, err := Open(ctx, path, OpenOptions{Sample: s.Keep, Wants: s.Wants})
		if err != nil {
			t.Fatal(err)
		}
		kept := 0
		for {
			f, err := src.Read(ctx)
			if errors.Is(err, ErrEndOfStream) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			f.Mat.Close()
			kept++
		}
		src.Close()
		if kept != c.want {
			t.Errorf("30 fps file sampled at %v fps: kept %d frames, want %d", c.fps, kept, c.want)
		}
	}
}

// TestLoopedStillImage: a still JPEG or PNG given as a looped source repeats as a 25 fps video
// would (FFmpeg cannot seek back in a JPEG read as an image pipe: the source reopens it), and
// unlooped it is one frame.
func TestLoopedStillImage(t *testing.T) {
	ctx := context.Background()
	m := gocv.NewMatWithSize(48, 64, gocv.MatTypeCV8UC3)
	defer m.Close()
	for _, ext := range []string{".jpg", ".png"} {
		path := filepath.Join(t.TempDir(), "still"+ext)
		if !gocv.IMWrite(path, m) {
			t.Fatalf("write %s", path)
		}
		src, err := Open(ctx, path, OpenOptions{Loop: true})
		if err != nil {
			t.Fatal(err)
		}
		var last time.Duration = -1
		for i := range 5 {
			f, err := src.Read(ctx)
			if err != nil {
				t.Fatalf("%s: frame %d: %v", ext, i, err)
			}
			if f.Mat.Cols() != 64 || f.Mat.Rows() != 48 || f.Media <= last {
				t.Fatalf("%s: frame %d is %dx%d at %s after %s", ext, i, f.Mat.Cols(), f.Mat.Rows(), f.Media, last)
			}
			last = f.Media
			f.Mat.Close()
		}
		src.Close()
		once, err := Open(ctx, path, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		f, err := once.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f.Mat.Close()
		if _, err := once.Read(ctx); !errors.Is(err, ErrEndOfStream) {
			t.Fatalf("%s: second read of an unlooped image: %v, want ErrEndOfStream", ext, err)
		}
		once.Close()
	}
}
