package analyze

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/pkg/vision"
)

// TestAnalyzeScaledMatchesFullDecode: a frame decoded at half size (what the Role does for
// frames that request no heads) gives the same faces as the full decode, reported in
// full-size pixels: same count, boxes within a few pixels, TooSmall decided on the full size.
func TestAnalyzeScaledMatchesFullDecode(t *testing.T) {
	data := jpegOf(t, filepath.Join(testenv.TestData(t), "detect", "obama_and_biden.jpg")) // 2000x1428
	p := newPipeline(t, newModelSet(t), nil)
	full, err := vision.Decode(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	half, err := vision.DecodeReduced(data, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	if half.Cols() != (full.Cols()+1)/2 {
		t.Fatalf("reduced decode is %d wide, want half of %d", half.Cols(), full.Cols())
	}
	want, err := p.AnalyzeWith(context.Background(), []gocv.Mat{full}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.AnalyzeScaled(context.Background(), []gocv.Mat{half}, nil, []float32{2})
	if err != nil {
		t.Fatal(err)
	}
	if len(got[0].Faces) != len(want[0].Faces) || len(want[0].Faces) < 2 {
		t.Fatalf("%d faces at half size, %d at full size; want the same, Obama's and Biden's among them", len(got[0].Faces), len(want[0].Faces))
	}
	for i, w := range want[0].Faces {
		g := got[0].Faces[i]
		side := float64(w.Box.X2 - w.Box.X1)
		for _, d := range []float32{g.Box.X1 - w.Box.X1, g.Box.Y1 - w.Box.Y1, g.Box.X2 - w.Box.X2, g.Box.Y2 - w.Box.Y2} {
			if math.Abs(float64(d)) > 0.05*side {
				t.Fatalf("face %d: box %+v at half size, %+v at full size", i, g.Box, w.Box)
			}
		}
		if len(g.Landmarks) != 5 || math.Abs(float64(g.Landmarks[2].X-w.Landmarks[2].X)) > 0.05*side {
			t.Fatalf("face %d: landmarks %+v, want about %+v", i, g.Landmarks, w.Landmarks)
		}
		if g.TooSmall != w.TooSmall {
			t.Fatalf("face %d: too_small %v at half size, %v at full size", i, g.TooSmall, w.TooSmall)
		}
	}
}

// TestRoleScaledFrame: a frame ingest published at half size (Scale 2) is analysed in the
// frame's own coordinates: its result has the frame's size and the faces the full frame has,
// where the full frame has them.
func TestRoleScaledFrame(t *testing.T) {
	data := jpegOf(t, filepath.Join(testenv.TestData(t), "detect", "obama_and_biden.jpg")) // 2000x1428
	full, err := vision.Decode(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	w, h := full.Cols(), full.Rows()
	hw, hh := frame.ScaledSize(w, h, 2)
	half, err := vision.EncodeSized(full, hw, hh, 90)
	if err != nil {
		t.Fatal(err)
	}
	hr := startRole(t, nil)
	out := collect(t, hr.nc)
	hr.publish(t, frame.Frame{Stream: "full", Seq: 1, Captured: time.Now(), Width: w, Height: h, Encoding: frame.EncodingJPEG, Data: data})
	hr.publish(t, frame.Frame{Stream: "half", Seq: 2, Captured: time.Now(), Width: w, Height: h, Scale: 2, Encoding: frame.EncodingJPEG, Data: half})
	testenv.Eventually(t, 60*time.Second, "both results", func() bool { return out.count() == 2 })
	out.mu.Lock()
	defer out.mu.Unlock()
	want, got := out.results[1], out.results[2]
	if got.Width != w || got.Height != h {
		t.Fatalf("half-size frame's result is %dx%d, want the frame's %dx%d", got.Width, got.Height, w, h)
	}
	if len(got.Faces) != len(want.Faces) || len(want.Faces) < 2 {
		t.Fatalf("%d faces on the half-size frame, %d on the full one", len(got.Faces), len(want.Faces))
	}
	for i, wf := range want.Faces {
		side := float64(wf.Box.X2 - wf.Box.X1)
		g := got.Faces[i].Box
		for _, d := range []float32{g.X1 - wf.Box.X1, g.Y1 - wf.Box.Y1, g.X2 - wf.Box.X2, g.Y2 - wf.Box.Y2} {
			if math.Abs(float64(d)) > 0.05*side {
				t.Fatalf("face %d: box %+v on the half-size frame, %+v on the full one", i, g, wf.Box)
			}
		}
	}
}

// TestMergeHeadsKeepsTheFullFrame: a newer frame replaces the waiting one and inherits its heads
// request, unless the newer one is reduced and the waiting one full: then the full frame stays,
// with both requests, and the reduced one goes.
func TestMergeHeadsKeepsTheFullFrame(t *testing.T) {
	j := func(seq uint64, scale int, heads ...string) job {
		return job{f: frame.Frame{Stream: "s", Seq: seq, Scale: scale, Heads: heads}}
	}
	for _, c := range []struct {
		name             string
		older, newer     job
		keepSeq, dropSeq uint64
		heads            string
	}{
		{"no request", j(1, 1), j(2, 2), 2, 1, ""},
		{"full to full", j(1, 1, "age"), j(2, 1, "pose"), 2, 1, "pose,age"},
		{"full to reduced", j(1, 1, "age"), j(2, 2), 1, 2, "age"},
		{"reduced to reduced", j(1, 2, "age"), j(2, 2), 2, 1, "age"},
	} {
		keep, drop := mergeHeads(c.older, c.newer)
		if keep.f.Seq != c.keepSeq || drop.f.Seq != c.dropSeq || strings.Join(keep.f.Heads, ",") != c.heads {
			t.Errorf("%s: kept %d with heads %v, dropped %d; want %d with %q, %d dropped", c.name, keep.f.Seq, keep.f.Heads, drop.f.Seq, c.keepSeq, c.heads, c.dropSeq)
		}
	}
}
