package cli

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/cputime"
	vframe "github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/vision"
)

// stageCosts are the single-thread costs, in ms, of each stage a live frame goes through, measured
// on the bench clip: reading one kept frame the way ingest does (decoding what the sampler needs,
// skipping the rest, converting the kept frame to BGR; thread CPU time), JPEG-encoding a kept
// frame at ingest's default quality, publishing and delivering it over NATS, JPEG-decoding it in
// the analyzer, detection with landmarks, and the heads for one face. encodeReduced and
// decodeReduced are the JPEG costs of a frame published at reduced size (frame.Frame.Scale;
// the full costs when the clip is narrower than frame.ReduceFromWidth).
type stageCosts struct {
	// framesPerKept is how many source frames pass for each kept frame.
	framesPerKept                                   float64
	decode, encode, nats, jpegDecode, detect, heads float64
	encodeReduced, decodeReduced                    float64
	// reducible is set when the clip's frames are wide enough to be published reduced.
	reducible bool
}

// measureStageCosts measures stageCosts on n frames of video kept at fps (medians; the decode
// stage is the mean thread CPU per kept frame).
func measureStageCosts(ctx context.Context, video, deps string, fps float64, n int) (stageCosts, error) {
	var c stageCosts
	frame, err := measureDecode(ctx, video, fps, n, &c)
	if err != nil {
		return c, err
	}
	defer frame.Close()
	d := config.Default().Ingest
	w, h := vision.FittedSize(frame, d.MaxWidth, d.MaxHeight)
	jpegCosts := func(w, h int) (data []byte, encode, decode float64, err error) {
		encode = timeMS(n, func() error { data, err = vision.EncodeSized(frame, w, h, d.JPEGQuality); return err })
		if err != nil {
			return nil, 0, 0, err
		}
		decode = timeMS(n, func() error {
			m, err := vision.Decode(data, 0)
			m.Close()
			return err
		})
		return data, encode, decode, nil
	}
	data, enc, dec, err := jpegCosts(w, h)
	if err != nil {
		return c, err
	}
	c.encode, c.jpegDecode, c.encodeReduced, c.decodeReduced = enc, dec, enc, dec
	if c.reducible = w >= vframe.ReduceFromWidth; c.reducible {
		if _, c.encodeReduced, c.decodeReduced, err = jpegCosts(vframe.ScaledSize(w, h, vframe.ReducedScale)); err != nil {
			return c, err
		}
	}
	if c.nats, err = natsCost(ctx, data, 4*n); err != nil {
		return c, err
	}
	man, err := models.Load()
	if err != nil {
		return c, err
	}
	lib, err := man.VerifyPath(deps, "onnxruntime")
	if err != nil {
		return c, err
	}
	rt, err := onnx.NewRuntime(lib)
	if err != nil {
		return c, err
	}
	defer rt.Close()
	ms := analyze.NewModelSet(rt, man, deps, onnx.SessionOptions{IntraOpThreads: 1, MaxBatch: 8})
	defer ms.Close()
	p, err := analyze.NewPipeline(analyze.PipelineConfig{OnDemand: analyze.AllHeads}, ms.Get)
	if err != nil {
		return c, err
	}
	img, err := vision.Decode(data, 0)
	if err != nil {
		return c, err
	}
	defer img.Close()
	frames := []gocv.Mat{img}
	faces := 0
	c.detect = timeMS(n, func() error {
		out, err := p.AnalyzeWith(ctx, frames, nil)
		if err == nil {
			faces = len(out[0].Faces)
		}
		return err
	})
	all := timeMS(max(3, n/5), func() error { _, err := p.AnalyzeWith(ctx, frames, [][]string{analyze.AllHeads}); return err })
	if faces > 0 {
		c.heads = max(0, all-c.detect) / float64(faces)
	}
	return c, nil
}

// measureDecode reads n kept frames of video through ingest.Open, sampled at fps before decoding
// (OpenOptions.Sample and Wants, one decoder thread, as a paced stream reads them), and records
// the thread CPU per kept frame and the source frames per kept frame. It returns the last kept
// frame, which the caller closes.
func measureDecode(ctx context.Context, video string, fps float64, n int, c *stageCosts) (gocv.Mat, error) {
	runtime.LockOSThread() // FFmpeg decodes on the calling thread with one decoder thread
	defer runtime.UnlockOSThread()
	s := ingest.NewSampler(fps)
	src, err := ingest.Open(ctx, video, ingest.OpenOptions{Loop: true, Sample: s.Keep, Wants: s.Wants, DecodeThreads: 1})
	if err != nil {
		return gocv.NewMat(), err
	}
	defer src.Close()
	last := gocv.NewMat()
	frames := 0
	start, err := cputime.Thread()
	if err != nil {
		return last, err
	}
	for range n {
		raw, err := src.Read(ctx)
		if err != nil {
			return last, fmt.Errorf("%s: %w", video, err)
		}
		last.Close()
		last = raw.Mat
		frames += 1 + raw.Skipped
	}
	end, err := cputime.Thread()
	if err != nil {
		return last, err
	}
	c.decode = float64(end-start) / float64(time.Millisecond) / float64(n)
	c.framesPerKept = float64(frames) / float64(n)
	return last, nil
}

// natsCost is the wall time per message of publishing data to an embedded server and receiving
// it on a subscriber, both in this process.
func natsCost(ctx context.Context, data []byte, n int) (float64, error) {
	srv := &bus.EmbeddedServer{}
	if err := srv.Start(ctx); err != nil {
		return 0, err
	}
	defer srv.Close()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	got := make(chan struct{}, n)
	sub, err := nc.Subscribe("bench.frames", func(*nats.Msg) { got <- struct{}{} })
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		return 0, err
	}
	start := time.Now()
	for range n {
		if err := nc.Publish("bench.frames", data); err != nil {
			return 0, err
		}
	}
	timeout := time.After(30 * time.Second)
	for range n {
		select {
		case <-got:
		case <-timeout:
			return 0, errors.New("nats cost: messages not delivered within 30 s")
		}
	}
	return float64(time.Since(start).Microseconds()) / 1000 / float64(n), nil
}

// timeMS runs fn n times and returns the median duration in ms (the first error stops it).
func timeMS(n int, fn func() error) float64 {
	var ds []time.Duration
	for range n {
		t := time.Now()
		if fn() != nil {
			break
		}
		ds = append(ds, time.Since(t))
	}
	return medianMS(ds)
}

func medianMS(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[len(s)/2].Microseconds()) / 1000
}
