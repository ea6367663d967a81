package analyze

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/detect"
)

// TimedModels wraps a Models function so every model run's wall time is added to Inference.
// It is how `vigil bench` tells time inside onnxruntime from the pipeline's own overhead.
type TimedModels struct {
	Models    Models
	Inference atomic.Int64 // nanoseconds inside Run, summed over goroutines
}

// Get is a Models function returning timed wrappers.
func (t *TimedModels) Get(name string) (detect.Model, error) {
	m, err := t.Models(name)
	if err != nil {
		return nil, err
	}
	return timedModel{Model: m, total: &t.Inference}, nil
}

type timedModel struct {
	detect.Model
	total *atomic.Int64
}

func (m timedModel) Run(ctx context.Context, n int, input []float32) ([][]float32, error) {
	start := time.Now()
	out, err := m.Model.Run(ctx, n, input)
	m.total.Add(int64(time.Since(start)))
	return out, err
}

// Throughput is the outcome of MeasureThroughput.
type Throughput struct {
	Frames, Faces int
	Wall          time.Duration
	// Busy is the summed wall time workers spent in Analyze; Inference the part inside model runs.
	Busy, Inference time.Duration
}

// FPS is frames analysed per second of wall time.
func (t Throughput) FPS() float64 { return float64(t.Frames) / t.Wall.Seconds() }

// InferenceShare is the fraction of the workers' busy time spent inside onnxruntime.
func (t Throughput) InferenceShare() float64 {
	if t.Busy <= 0 {
		return 0
	}
	return float64(t.Inference) / float64(t.Busy)
}

// MeasureThroughput analyses frames with workers goroutines, each taking batches of up to batch
// frames from a shared cursor, as the analyze role's workers do. inference must be the counter
// the pipeline's models add to (TimedModels.Inference); it is read before and after.
func MeasureThroughput(ctx context.Context, p *Pipeline, frames []gocv.Mat, workers, batch int, inference *atomic.Int64) (Throughput, error) {
	if workers < 1 || batch < 1 || len(frames) == 0 {
		return Throughput{}, fmt.Errorf("throughput: need workers, batch and frames (got %d, %d, %d)", workers, batch, len(frames))
	}
	var next, faces atomic.Int64
	var busy atomic.Int64
	errs := make(chan error, workers)
	inf0 := inference.Load()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(int64(batch))) - batch
				if i >= len(frames) {
					return
				}
				b := frames[i:min(i+batch, len(frames))]
				t0 := time.Now()
				out, err := p.Analyze(ctx, b)
				busy.Add(int64(time.Since(t0)))
				if err != nil {
					errs <- err
					return
				}
				for _, o := range out {
					faces.Add(int64(len(o.Faces)))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return Throughput{}, err
	}
	return Throughput{Frames: len(frames), Faces: int(faces.Load()), Wall: time.Since(start),
		Busy: time.Duration(busy.Load()), Inference: time.Duration(inference.Load() - inf0)}, nil
}
