package ingest

import (
	"context"
	"errors"
	"fmt"

	"gocv.io/x/gocv"
)

// SampleFile decodes n frames spread evenly over the video file at path (all of them when it has
// fewer), for benchmarks and recordings. It reads the file twice, once to count its frames, so
// only the kept frames are ever held. The caller closes the returned Mats.
func SampleFile(ctx context.Context, path string, n int) ([]gocv.Mat, error) {
	total := 0
	if err := eachFrame(ctx, path, func(m gocv.Mat) bool { m.Close(); total++; return true }); err != nil {
		return nil, err
	}
	if total == 0 {
		return nil, fmt.Errorf("%s: no video frames", path)
	}
	n = min(max(n, 1), total)
	keep := make(map[int]bool, n)
	for i := range n {
		keep[i*total/n] = true
	}
	out := make([]gocv.Mat, 0, n)
	i := 0
	err := eachFrame(ctx, path, func(m gocv.Mat) bool {
		if keep[i] {
			out = append(out, m)
		} else {
			m.Close()
		}
		i++
		return len(out) < n
	})
	if err != nil {
		for _, m := range out {
			m.Close()
		}
		return nil, err
	}
	return out, nil
}

// eachFrame hands each decoded frame of the file to f, which owns it, until f returns false or
// the file ends.
func eachFrame(ctx context.Context, path string, f func(gocv.Mat) bool) error {
	src, err := Open(ctx, path, OpenOptions{})
	if err != nil {
		return err
	}
	defer src.Close()
	for {
		raw, err := src.Read(ctx)
		if errors.Is(err, ErrEndOfStream) {
			return nil
		}
		if err != nil {
			return err
		}
		if !f(raw.Mat) {
			return nil
		}
	}
}
