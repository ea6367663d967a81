// Package faceengine implements faceapi.Engine over the analyze pipeline: it decodes uploads with
// OpenCV, runs the face models through onnxruntime and draws annotated images. It is the cgo
// leaf under the pure-Go face API; the CLI's image commands use it directly.
package faceengine

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"strings"
	"sync"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/analyze/faceapi"
	"github.com/vigil-video/vigil/pkg/vision"
)

// Config configures an Engine.
type Config struct {
	// Models gives the pipelines their models, e.g. (*analyze.ModelSet).Get. The sessions are
	// shared by every head set and must allow concurrent runs. Required.
	Models analyze.Models
	// Pipeline is the base pipeline configuration (detector, thresholds, channel orders); its
	// Heads and KeepEmbeddings are set per request.
	Pipeline analyze.PipelineConfig
	// MaxPixels bounds decoded images. Default faceapi.DefaultMaxPixels.
	MaxPixels int
	// JPEGQuality of annotated images, 1..100. Default 90.
	JPEGQuality int
}

// Engine runs the face pipeline on encoded images. It builds one analyze.Pipeline per head set
// on first use (cheap: the model sessions are shared) and is safe for concurrent use.
type Engine struct {
	cfg   Config
	mu    sync.Mutex
	pipes map[string]*analyze.Pipeline
}

// New returns an Engine, loading the detector and landmark models at once so a missing or
// corrupt model is reported at start rather than on the first request; Preload loads more.
func New(cfg Config) (*Engine, error) {
	if cfg.Models == nil {
		return nil, errors.New("faceengine: Config.Models is required")
	}
	if cfg.MaxPixels <= 0 {
		cfg.MaxPixels = faceapi.DefaultMaxPixels
	}
	if cfg.JPEGQuality <= 0 || cfg.JPEGQuality > 100 {
		cfg.JPEGQuality = 90
	}
	cfg.Pipeline = analyze.ForImages(cfg.Pipeline) // tiled detection, more faces per image
	e := &Engine{cfg: cfg, pipes: map[string]*analyze.Pipeline{}}
	if _, err := e.pipeline(nil, false); err != nil {
		return nil, err
	}
	return e, nil
}

// Preload loads the models of the attribute heads and, when embedding, the embedding model now
// (a server calls it at start so that its first requests are not slow and a missing model fails
// the start).
func (e *Engine) Preload(heads []string, embedding bool) error {
	_, err := e.pipeline(heads, embedding)
	return err
}

// pipeline returns the pipeline for heads (attribute heads) plus the embedding when asked.
func (e *Engine) pipeline(heads []string, embedding bool) (*analyze.Pipeline, error) {
	set := map[string]bool{}
	for _, h := range heads {
		known := false
		for _, k := range faceapi.AttributeHeads() {
			known = known || k == h
		}
		if !known {
			return nil, fmt.Errorf("%w %q (choose from %s)", faceapi.ErrUnknownHead, h, strings.Join(faceapi.AttributeHeads(), ", "))
		}
		set[h] = true
	}
	if embedding {
		set[analyze.HeadEmbedding] = true
	}
	var list []string
	for _, h := range analyze.AllHeads { // the pipeline's order
		if set[h] {
			list = append(list, h)
		}
	}
	key := strings.Join(list, ",")
	e.mu.Lock()
	defer e.mu.Unlock()
	if p, ok := e.pipes[key]; ok {
		return p, nil
	}
	cfg := e.cfg.Pipeline
	cfg.Heads, cfg.OnDemand, cfg.KeepEmbeddings = list, nil, false
	p, err := analyze.NewPipeline(cfg, e.cfg.Models)
	if err != nil {
		return nil, fmt.Errorf("faceengine: pipeline %q: %w", key, err)
	}
	e.pipes[key] = p
	return p, nil
}

// Analyze implements faceapi.Engine.
func (e *Engine) Analyze(ctx context.Context, img []byte, opts faceapi.Options) (faceapi.Analysis, error) {
	p, err := e.pipeline(opts.Heads, opts.Embeddings)
	if err != nil {
		return faceapi.Analysis{}, err
	}
	m, err := vision.Decode(img, e.cfg.MaxPixels)
	if err != nil {
		return faceapi.Analysis{}, fmt.Errorf("%w: %w", faceapi.ErrInvalidImage, err)
	}
	defer m.Close()
	ffs, err := p.Analyze(ctx, []gocv.Mat{m})
	if err != nil {
		return faceapi.Analysis{}, err
	}
	out := faceapi.Analysis{Width: m.Cols(), Height: m.Rows(), Faces: ffs[0].Faces}
	if opts.Embeddings {
		out.Embeddings = ffs[0].Embeddings
	}
	if opts.Annotate != nil {
		Draw(&m, opts.Annotate(out.Faces, out.Embeddings))
		if out.JPEG, err = vision.EncodeJPEG(m, e.cfg.JPEGQuality); err != nil {
			return faceapi.Analysis{}, err
		}
	}
	return out, nil
}

// Draw draws the marks on the 8-bit BGR image m: each box, and beside it a label block with its
// title on a filled band and its lines below, blocks laid out so that the labels of adjacent faces
// do not overlap (layoutLabels). Text is drawn in OpenCV's Hershey font, which has ASCII only:
// other characters show as '?'. Sizes scale with the image.
func Draw(m *gocv.Mat, marks []faceapi.Mark) {
	w, h := m.Cols(), m.Rows()
	short := min(w, h)
	thick := max(1, short/300)
	scale := max(0.4, float64(short)/1000)
	font := gocv.FontHersheySimplex
	var (
		known   = color.RGBA{R: 60, G: 200, B: 60, A: 255}  // green: a gallery match
		unknown = color.RGBA{R: 255, G: 140, B: 0, A: 255}  // orange: not in the gallery
		plain   = color.RGBA{R: 40, G: 160, B: 255, A: 255} // blue: no gallery asked
		white   = color.RGBA{R: 255, G: 255, B: 255, A: 255}
		black   = color.RGBA{A: 255}
	)
	type row struct {
		text  string
		scale float64
		h     int // band height
	}
	boxes := make([]image.Rectangle, len(marks))
	rows := make([][]row, len(marks))
	sizes := make([]image.Point, len(marks))
	colors := make([]color.RGBA, len(marks))
	for i, mk := range marks {
		colors[i] = plain
		if mk.Title != "" {
			colors[i] = unknown
			if mk.Known {
				colors[i] = known
			}
		}
		boxes[i] = image.Rect(int(mk.Box.X1), int(mk.Box.Y1), int(mk.Box.X2), int(mk.Box.Y2))
		gocv.Rectangle(m, boxes[i], colors[i], thick)
		if mk.Title != "" {
			rows[i] = append(rows[i], row{text: ascii(mk.Title), scale: scale})
		}
		for _, line := range mk.Lines {
			rows[i] = append(rows[i], row{text: ascii(line), scale: scale * 0.8})
		}
		for k, r := range rows[i] {
			sz := gocv.GetTextSize(r.text, font, r.scale, thick)
			rows[i][k].h = sz.Y + 2*thick + 6
			sizes[i].X = max(sizes[i].X, sz.X+6)
			sizes[i].Y += rows[i][k].h
		}
	}
	blocks := layoutLabels(boxes, sizes, w, h)
	for i, b := range blocks {
		y := b.Min.Y
		for k, r := range rows[i] {
			band := image.Rect(b.Min.X, y, b.Max.X, y+r.h)
			bg := black
			if k == 0 && marks[i].Title != "" {
				bg = colors[i]
			}
			gocv.Rectangle(m, band, bg, -1)
			gocv.PutText(m, r.text, image.Pt(b.Min.X+3, y+r.h-thick-3), font, r.scale, white, thick)
			y += r.h
		}
	}
}

func ascii(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
