package avdecode_test

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/pkg/vision/avdecode"
)

// clip encodes a 2 s 30 fps 160x120 H.264 test pattern, I/P frames with three non-reference
// B-frames between them (IBBBP...), and returns its path; ffmpeg is one of `make setup`'s
// packages.
func clip(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not on PATH (make setup installs it)")
	}
	out := filepath.Join(t.TempDir(), "clip.mp4")
	cmd := exec.Command("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=30", "-t", "2",
		"-c:v", "libx264", "-preset", "veryfast", "-x264-params", "bframes=3:b-adapt=0:b-pyramid=none", "-pix_fmt", "yuv420p", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

type decoded struct {
	media []time.Duration
	mats  []gocv.Mat
}

func (d *decoded) close() {
	for _, m := range d.mats {
		m.Close()
	}
}

// decodeAll decodes path, asking want about each packet, and converts the frames keep accepts.
func decodeAll(t *testing.T, path string, want, keep func(time.Duration) bool) (decoded, int) {
	t.Helper()
	return decodeWith(t, path, avdecode.Options{Threads: 1}, want, keep)
}

// decodeWith is decodeAll with the decoder's options.
func decodeWith(t *testing.T, path string, opts avdecode.Options, want, keep func(time.Duration) bool) (decoded, int) {
	t.Helper()
	d, err := avdecode.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var out decoded
	for {
		media, err := d.Next(context.Background(), want)
		if errors.Is(err, avdecode.ErrEnd) {
			return out, d.Discarded
		}
		if err != nil {
			t.Fatal(err)
		}
		out.media = append(out.media, media)
		if keep(media) {
			m, err := d.BGR()
			if err != nil {
				t.Fatal(err)
			}
			out.mats = append(out.mats, m)
		}
	}
}

// TestDiscardsOnlyUnwantedDisposableFrames: with a predicate refusing every packet, only the
// frames later frames depend on are decoded; the frames the predicate wants come out, in
// presentation order, pixel for pixel as a full decode gives them.
func TestDiscardsOnlyUnwantedDisposableFrames(t *testing.T) {
	path := clip(t)
	every := func(time.Duration) bool { return true }
	all, discarded := decodeAll(t, path, nil, every)
	defer all.close()
	if len(all.media) != 60 || discarded != 0 {
		t.Fatalf("full decode: %d frames, %d discarded; want 60 and 0", len(all.media), discarded)
	}
	for i := 1; i < len(all.media); i++ {
		if d := all.media[i] - all.media[i-1]; d < 30*time.Millisecond || d > 37*time.Millisecond {
			t.Fatalf("frame %d at %s after %s: not 30 fps presentation order", i, all.media[i], all.media[i-1])
		}
	}
	// Want one frame in six (5 fps): the frames at whole multiples of 200 ms.
	slot := func(m time.Duration) bool { return m%(200*time.Millisecond) < 33*time.Millisecond }
	some, discarded := decodeAll(t, path, slot, slot)
	defer some.close()
	// 15 I/P frames are always decoded; of the 45 B-frames only the wanted ones are.
	if discarded < 35 || len(some.media)+discarded != 60 {
		t.Fatalf("decoded %d, discarded %d of 60: the disposable B-frames were not left undecoded", len(some.media), discarded)
	}
	var wantIdx []int
	for i, m := range all.media {
		if slot(m) {
			wantIdx = append(wantIdx, i)
		}
	}
	if len(some.mats) != len(wantIdx) {
		t.Fatalf("got %d wanted frames, a full decode has %d", len(some.mats), len(wantIdx))
	}
	for j, i := range wantIdx {
		diff := gocv.NewMat()
		gocv.AbsDiff(all.mats[i], some.mats[j], &diff)
		n := gocv.CountNonZero(diff.Reshape(1, 0))
		diff.Close()
		if n != 0 {
			t.Fatalf("frame at %s differs from the full decode in %d values", all.media[i], n)
		}
	}
}

// TestFastRefusedStaysClose: with FastRefused the refused reference frames skip deblocking, so
// the wanted frames predicted from them differ from the exact decode (the option acts), but
// only slightly: every wanted frame stays within 35 dB PSNR of it.
func TestFastRefusedStaysClose(t *testing.T) {
	path := clip(t)
	slot := func(m time.Duration) bool { return m%(200*time.Millisecond) < 33*time.Millisecond }
	exact, _ := decodeAll(t, path, slot, slot)
	defer exact.close()
	fast, _ := decodeWith(t, path, avdecode.Options{Threads: 1, FastRefused: true}, slot, slot)
	defer fast.close()
	if len(fast.mats) != len(exact.mats) || len(fast.mats) < 8 {
		t.Fatalf("fast decode kept %d frames, the exact one %d (want the same, at least 8)", len(fast.mats), len(exact.mats))
	}
	changed, worst := 0, math.Inf(1)
	for i := range fast.mats {
		a, b := exact.mats[i], fast.mats[i]
		se := gocv.NormWithMats(a, b, gocv.NormL2)
		if se == 0 {
			continue
		}
		changed++
		mse := se * se / float64(a.Total()*a.Channels())
		psnr := 10 * math.Log10(255*255/mse)
		worst = min(worst, psnr)
		if psnr < 35 {
			t.Fatalf("wanted frame %d: %.1f dB from the exact decode, want at least 35", i, psnr)
		}
	}
	if changed == 0 {
		t.Fatal("every wanted frame equals the exact decode: the refused frames were deblocked")
	}
	t.Logf("%d of %d wanted frames differ from the exact decode; the worst is %.1f dB from it", changed, len(fast.mats), worst)
}

// TestRewindAndErrors: Rewind restarts at the first frame; what is not a video is refused with
// FFmpeg's reason, and a closed decoder says so.
func TestRewindAndErrors(t *testing.T) {
	path := clip(t)
	d, err := avdecode.Open(path, avdecode.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 10 {
		if _, err := d.Next(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Rewind(); err != nil {
		t.Fatal(err)
	}
	if m, err := d.Next(ctx, nil); err != nil || m != 0 {
		t.Fatalf("after Rewind: frame at %s, %v; want the first frame at 0", m, err)
	}
	if w, h := d.Size(); w != 160 || h != 120 {
		t.Fatalf("size %dx%d, want 160x120", w, h)
	}
	if p := d.Period(); p < 33*time.Millisecond || p > 34*time.Millisecond {
		t.Fatalf("period %s, want 1/30 s", p)
	}
	d.Close()
	if _, err := d.Next(ctx, nil); !errors.Is(err, avdecode.ErrClosed) {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}
	text := filepath.Join(t.TempDir(), "notes.mp4")
	if err := os.WriteFile(text, []byte("not a video at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := avdecode.Open(text, avdecode.Options{}); err == nil || !strings.Contains(err.Error(), "notes.mp4") {
		t.Fatalf("Open of a text file: %v, want an error naming it", err)
	}
}
