package ingest

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSampleBeforeConversion: a file opened with OpenOptions.Sample returns only the frames the
// sampler keeps, already sampled, with the refused ones counted in Skipped; the kept media times
// are those sampling every converted frame keeps (within one frame), and no frame before the
// last kept one goes uncounted.
func TestSampleBeforeConversion(t *testing.T) {
	video := faceVideo(t)
	ctx := context.Background()
	readAll := func(opts OpenOptions) (kept []time.Duration, skipped int) {
		src, err := Open(ctx, video, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
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
	for i := range fastKept {
		if d := fastKept[i] - plainKept[i]; d < -50*time.Millisecond || d > 50*time.Millisecond {
			t.Fatalf("kept frame %d at %s, sampling after conversion keeps %s", i, fastKept[i], plainKept[i])
		}
	}
}
