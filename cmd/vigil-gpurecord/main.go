// Command vigil-gpurecord records the analyzer's pre-processed model
// inputs from real video frames into a compact file for vigil-gpubench,
// which replays them on a GPU machine that has no OpenCV: the detector's
// input for each recorded frame and every per-face model's input for each
// face found. It runs the real pipeline (OpenCV, onnxruntime on the CPU),
// so it needs "make setup".
//
// Usage:
//
//	vigil-gpurecord [-video FILE] [-frames 32] [-deps build/deps] [-out build/gpubench/megamind.tensors.gz]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/vigil-video/vigil/analyze/gpubench/record"
	"github.com/vigil-video/vigil/models"
)

// demoVideo is Debian's opencv-doc demo video, which "make setup" installs.
const demoVideo = "/usr/share/doc/opencv-doc/examples/data/Megamind.avi"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintf(os.Stderr, "vigil-gpurecord: %v\n", err)
		os.Exit(1)
	}
}

// run parses args, records and writes the file, reporting on stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil-gpurecord", flag.ContinueOnError)
	fs.SetOutput(stderr)
	video := fs.String("video", demoVideo, "video whose frames are recorded")
	frames := fs.Int("frames", 32, "frames recorded, spread evenly over the video")
	deps := fs.String("deps", models.DefaultDepsDir(), "deps directory \"make setup\" filled (CPU onnxruntime and the models)")
	out := fs.String("out", "build/gpubench/megamind.tensors.gz", "file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: flags only", fs.Args())
	}
	rec, err := record.Record(ctx, record.Options{Video: *video, Frames: *frames, Deps: *deps})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".tensors-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := rec.Encode(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return err
	}
	st, err := os.Stat(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d frames, %d faces of %s, %.1f MiB\n", *out, rec.Frames, rec.Faces, rec.Source, float64(st.Size())/(1<<20))
	for _, s := range rec.Sets {
		fmt.Fprintf(stdout, "  %-14s %4d samples of %v\n", s.Model, s.N(), s.Shape)
	}
	return nil
}
