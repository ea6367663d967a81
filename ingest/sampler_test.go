package ingest

import (
	"testing"
	"time"
)

func TestSamplerRate(t *testing.T) {
	cases := []struct {
		srcFPS, fps float64
		want        int
	}{
		{25, 5, 50},   // 10 s at 25 fps sampled to 5 fps
		{30, 5, 50},   // 30 fps
		{24, 10, 100}, // not a divisor
		{5, 10, 50},   // slower source: every frame
		{25, 0, 250},  // no target: every frame
	}
	for _, c := range cases {
		s := NewSampler(c.fps)
		kept := 0
		n := int(10 * c.srcFPS)
		for i := 0; i < n; i++ {
			if s.Keep(time.Duration(float64(i) / c.srcFPS * float64(time.Second))) {
				kept++
			}
		}
		if kept < c.want-1 || kept > c.want+1 {
			t.Errorf("%v fps -> %v fps over 10 s kept %d, want %d", c.srcFPS, c.fps, kept, c.want)
		}
	}
}

// TestSamplerRoundedTimestamps: timestamps rounded to a container's time base (milliseconds,
// microseconds) keep every frame of a 30 fps file sampled at 30 fps, and one in six at 5 fps.
func TestSamplerRoundedTimestamps(t *testing.T) {
	for _, unit := range []time.Duration{time.Millisecond, time.Microsecond, time.Nanosecond} {
		for _, c := range []struct {
			fps  float64
			want int
		}{{30, 300}, {5, 50}} {
			s := NewSampler(c.fps)
			kept := 0
			for i := range 300 {
				exact := time.Duration(i) * time.Second / 30
				if s.Keep(exact.Round(unit)) {
					kept++
				}
			}
			if kept != c.want {
				t.Errorf("30 fps in %s steps sampled at %v fps: kept %d of 300, want %d", unit, c.fps, kept, c.want)
			}
		}
	}
}

func TestSamplerRestartsWhenTimeGoesBack(t *testing.T) {
	s := NewSampler(5)
	if !s.Keep(10 * time.Second) {
		t.Fatal("first frame not kept")
	}
	if s.Keep(10*time.Second + 100*time.Millisecond) {
		t.Fatal("frame 100 ms later kept at 5 fps")
	}
	if !s.Keep(0) {
		t.Fatal("frame after a rewind not kept")
	}
}

func TestClassify(t *testing.T) {
	good := map[string]Kind{
		"/tmp/x.mp4": KindFile, "x.avi": KindFile, "file:///tmp/x.mp4": KindFile,
		"rtsp://cam/stream": KindNetwork, "rtsps://cam:322/s": KindNetwork, "http://h/x.mjpg": KindNetwork, "https://h/v.mp4": KindNetwork,
		"device:0": KindDevice, "/dev/video2": KindDevice,
	}
	for spec, want := range good {
		k, _, err := Classify(spec)
		if err != nil || k != want {
			t.Errorf("Classify(%q) = %v, %v; want %v", spec, k, err, want)
		}
	}
	for _, spec := range []string{"", "ftp://h/x", "gopher://x", "device:abc", "/dev/videoX", "rtsp://", "file://", "http://[::1"} {
		if _, _, err := Classify(spec); err == nil {
			t.Errorf("Classify(%q) accepted", spec)
		}
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"/tmp/x.mp4", "rtsp://cam/s", "device:0", "ftp://x", "file://"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		k, target, err := Classify(spec)
		if err == nil && (k < KindFile || k > KindDevice || target == "") {
			t.Fatalf("Classify(%q) = %v %q without error", spec, k, target)
		}
	})
}

// TestWantsAgreesWithKeep: asked in decode order, several frames ahead of Keep (as a decoder
// asks before the frames come out), Wants is true for every frame Keep then keeps and false for
// all but one in ten it refuses, for regular 30 fps timelines, exact or rounded to the
// millisecond, also across a restart.
func TestWantsAgreesWithKeep(t *testing.T) {
	const span = time.Second / 30
	for _, jitter := range []time.Duration{0, 400 * time.Microsecond} {
		var media []time.Duration
		for i := range 300 {
			j := time.Duration(0)
			if i%2 == 1 {
				j = jitter
			}
			media = append(media, time.Duration(i)*span+j)
		}
		media = append(media, media[:60]...) // a rewound file starts the timeline again
		s := NewSampler(5)
		const ahead = 4
		wanted := map[int]bool{}
		kept, wantedRefused, refused := 0, 0, 0
		for i := range media {
			// The decoder reads packets up to ahead frames before Keep sees their frames
			// (a P-frame before the B-frames it follows).
			for j := i; j <= i+ahead && j < len(media); j++ {
				if _, asked := wanted[j]; !asked && (j < 300) == (i < 300) {
					wanted[j] = s.Wants(media[j], span)
				}
			}
			if _, asked := wanted[i]; !asked {
				wanted[i] = s.Wants(media[i], span)
			}
			if s.Keep(media[i]) {
				kept++
				if !wanted[i] {
					t.Fatalf("jitter %s: Keep kept frame %d at %s that Wants refused", jitter, i, media[i])
				}
			} else {
				refused++
				if wanted[i] {
					wantedRefused++
				}
			}
		}
		if kept != 60 || wantedRefused > refused/10 { // 5 per second of 10 s, then of 2 s
			t.Fatalf("jitter %s: kept %d; Wants accepted %d of the %d frames Keep refused", jitter, kept, wantedRefused, refused)
		}
	}
	if !NewSampler(0).Wants(time.Second, span) {
		t.Fatal("a sampler keeping every frame must want every frame")
	}
}
