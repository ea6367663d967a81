package record

import (
	"bytes"
	"context"
	"math"
	"os"
	"testing"

	"github.com/vigil-video/vigil/analyze/gpubench"
	"github.com/vigil-video/vigil/pkg/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const demoVideo = "/usr/share/doc/opencv-doc/examples/data/Megamind.avi"

// TestRecordDemoVideo records 6 frames of the demo video through the real
// pipeline and checks what was kept and that the file format keeps it
// exactly, one byte per value.
func TestRecordDemoVideo(t *testing.T) {
	if _, err := os.Stat(demoVideo); err != nil {
		t.Skipf("demo video missing (make setup installs opencv-doc): %v", err)
	}
	rec, err := Record(context.Background(), Options{Video: demoVideo, Frames: 6, Deps: testenv.DepsDir(t), Batch: 4})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Frames != 6 || rec.Faces < 6 || rec.Source != demoVideo {
		t.Fatalf("recorded %d frames, %d faces of %s", rec.Frames, rec.Faces, rec.Source)
	}
	want := append([]string{gpubench.Detector}, gpubench.FaceModels...)
	if len(rec.Sets) != len(want) {
		t.Fatalf("%d sets, want %v", len(rec.Sets), want)
	}
	floats := 0
	for _, name := range want {
		s, ok := rec.Set(name)
		if !ok {
			t.Fatalf("no set for %s", name)
		}
		n := s.N()
		switch {
		case name == gpubench.Detector && n != rec.Frames:
			t.Errorf("%s: %d samples, want one per frame (%d)", name, n, rec.Frames)
		case name != gpubench.Detector && (n == 0 || n > 3*rec.Faces):
			// Up to three per face: the false-face gate runs the landmarks on the mirrored face
			// too, and age and gender average the mirrored crop.
			t.Errorf("%s: %d samples for %d faces", name, n, rec.Faces)
		}
		floats += len(s.Data)
	}
	var buf bytes.Buffer
	if err := rec.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.Len() > floats {
		t.Errorf("encoded %d floats in %d bytes: more than one byte per value", floats, buf.Len())
	}
	back, err := gpubench.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range rec.Sets {
		got := back.Sets[i].Data
		if len(got) != len(s.Data) {
			t.Fatalf("%s: %d floats back, want %d", s.Model, len(got), len(s.Data))
		}
		for j := range got {
			if math.Float32bits(got[j]) != math.Float32bits(s.Data[j]) {
				t.Fatalf("%s: value %d is %v after the round trip, want %v", s.Model, j, got[j], s.Data[j])
			}
		}
	}
	t.Logf("%d frames, %d faces: %d floats in %d bytes", rec.Frames, rec.Faces, floats, buf.Len())
}

func TestRecordErrors(t *testing.T) {
	if _, err := Record(context.Background(), Options{}); err == nil {
		t.Error("Record without a video succeeded")
	}
	if _, err := Record(context.Background(), Options{Video: t.TempDir() + "/none.avi", Deps: testenv.DepsDir(t)}); err == nil {
		t.Error("Record of a missing video succeeded")
	}
}
