package analyze

import (
	"context"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/detect"
)

// found is a detection and, when the face-quality gate computed them, its 68 landmarks (the
// landmark model's output: the pipeline's landmarks need not run again).
type found struct {
	det detect.Detection
	lms []float32
}

// findFaces runs the detector on frames (and on their tiles when PipelineConfig.Tiles is set),
// then the face-quality gate: a detection whose landmarks do not survive mirroring (see
// detect.Landmarker.MirrorError) by more than MirrorTolerance plus one pixel of the face's side
// is not a face and is dropped. A kept face carries the landmarks the gate computed.
func (p *Pipeline) findFaces(ctx context.Context, frames []gocv.Mat) ([][]found, error) {
	var dets [][]detect.Detection
	var err error
	if p.cfg.Tiles != nil {
		dets, err = p.detector.DetectTiled(ctx, frames, *p.cfg.Tiles)
	} else {
		dets, err = p.detector.Detect(ctx, frames)
	}
	if err != nil {
		return nil, err
	}
	out := make([][]found, len(dets))
	if p.cfg.MirrorTolerance < 0 {
		for i, ds := range dets {
			for _, d := range ds {
				out[i] = append(out[i], found{det: d})
			}
		}
		return out, nil
	}
	var refs []detect.FaceRef
	for i, ds := range dets {
		for _, d := range ds {
			refs = append(refs, detect.FaceRef{Frame: frames[i], Box: d.Box})
		}
	}
	if len(refs) == 0 {
		return out, nil
	}
	lms, err := p.marks.Landmarks(ctx, refs)
	if err != nil {
		return nil, err
	}
	k := 0
	for i, ds := range dets {
		for _, d := range ds {
			lm := lms[k]
			k++
			pts, ok := detect.Landmarks5(lm)
			if !ok {
				continue
			}
			e, err := p.marks.MirrorError(ctx, frames[i], d.Box, pts)
			if err != nil {
				return nil, err
			}
			if side := d.Box.H(); side > 0 && e <= p.cfg.MirrorTolerance+1/side {
				out[i] = append(out[i], found{det: d, lms: lm})
			}
		}
	}
	return out, nil
}

// ImageMaxFaces is the face cap ForImages sets: a group photo holds far more faces than a
// stream's frame is allowed to cost (the shared test data has photos of 52 and 77 people).
const ImageMaxFaces = 256

// ForImages returns cfg with the settings for single images (the face API and the image
// commands) where cfg leaves them unset: tiled detection (Tiles, default tiles), so that small
// faces in large photos are found, and MaxFaces ImageMaxFaces. Streams keep whole-frame
// detection unless configured, for its cost per frame.
func ForImages(cfg PipelineConfig) PipelineConfig {
	if cfg.Tiles == nil {
		cfg.Tiles = &detect.TileConfig{}
	}
	if cfg.MaxFaces == 0 {
		cfg.MaxFaces = ImageMaxFaces
	}
	return cfg
}
