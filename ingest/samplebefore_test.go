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
