package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/vision"
)

// stageCosts are the single-thread costs, in ms, of each stage a live frame goes through, measured
// on the bench clip: decoding one video frame (to BGR), JPEG-encoding a kept frame at ingest's
// default quality, publishing and delivering it over NATS, JPEG-decoding it in the analyzer,
// detection with landmarks, and the heads for one face.
type stageCosts struct {
	sourceFPS                                       float64
	decode, encode, nats, jpegDecode, detect, heads float64
}

// measureStageCosts measures stageCosts on n frames of video (medians).
func measureStageCosts(ctx context.Context, video, deps string, n int) (stageCosts, error) {
	var c stageCosts
	capture, err := gocv.OpenVideoCapture(video)
	if err != nil {
		return c, err
	}
	defer capture.Close()
	c.sourceFPS = capture.Get(gocv.VideoCaptureFPS)
	if c.sourceFPS <= 0 || c.sourceFPS > 240 {
		c.sourceFPS = 25
	}
	frame := gocv.NewMat()
	defer frame.Close()
	var decodes []time.Duration
	for range n {
		t := time.Now()
		if !capture.Read(&frame) || frame.Empty() {
			break
		}
		decodes = append(decodes, time.Since(t))
	}
	if len(decodes) == 0 {
		return c, fmt.Errorf("%s: no frame decoded", video)
	}
	c.decode = medianMS(decodes)
	small := vision.FitWithin(frame, 1280, 720)
	defer small.Close()
	var data []byte
	c.encode = timeMS(n, func() error { data, err = vision.EncodeJPEG(small, 80); return err })
	if err != nil {
		return c, err
	}
	c.jpegDecode = timeMS(n, func() error {
		m, err := vision.Decode(data, 0)
		m.Close()
		return err
	})
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
