package ingest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDeviceErrorPath: no V4L2 device can exist on the machines these tests run on (their
// kernel has no media support), so a camera cannot be read here. This runs the real code path,
// gocv's V4L2 open through Open, and checks that a missing camera fails at once with an error
// that says what to check, leaking nothing (TestMain checks goroutines and Mats). Frames from a
// real camera are not covered by any test.
func TestDeviceErrorPath(t *testing.T) {
	ctx := context.Background()
	for _, spec := range []string{"/dev/video0", "device:0", "device:7", "/dev/video63"} {
		dev := "/dev/video" + strings.TrimPrefix(strings.TrimPrefix(spec, "device:"), "/dev/video")
		if _, err := os.Stat(dev); err == nil {
			t.Logf("%s exists on this machine; not testing it", dev)
			continue
		}
		start := time.Now()
		src, err := Open(ctx, spec, OpenOptions{})
		if err == nil {
			src.Close()
			t.Fatalf("Open(%q) opened a camera that does not exist", spec)
		}
		t.Logf("%s: %v", spec, err)
		if !strings.Contains(err.Error(), dev) || !strings.Contains(err.Error(), "no such device") {
			t.Errorf("Open(%q): %v, want the device and the reasons to check", spec, err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("Open(%q) took %v to fail", spec, took)
		}
	}
}

// TestDeviceSpecs: malformed camera specs are refused by Classify, before any open.
func TestDeviceSpecs(t *testing.T) {
	for spec, want := range map[string]string{"device:0": "0", "/dev/video12": "12"} {
		kind, target, err := Classify(spec)
		if err != nil || kind != KindDevice || target != want {
			t.Errorf("Classify(%q) = %v %q %v, want a device %q", spec, kind, target, err, want)
		}
	}
	for _, spec := range []string{"device:", "device:x", "device:-1", "/dev/videoX", "/dev/video-2", "/dev/video"} {
		if kind, _, err := Classify(spec); err == nil {
			t.Errorf("Classify(%q) accepted it as %v", spec, kind)
		}
	}
}
