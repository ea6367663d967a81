package cli

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/onnx"
)

// Batching defaults on a GPU: a batch big enough to keep the GPU busy, and a
// short wait so a lone stream's latency stays low. On the CPU the flags'
// own defaults (--max-batch 4, --max-wait 10ms) stay: there batching gains
// nothing and parallel workers win (README, "Performance").
const (
	gpuMaxBatch = 64
	gpuMaxWait  = 5 * time.Millisecond
)

// deviceFlag is the analyzer's --device flag. It remembers its FlagSet so
// that GPU batching defaults apply only where --max-batch and --max-wait
// were not given (on the command line or as VIGIL_* variables).
type deviceFlag struct {
	spec string
	fs   *flag.FlagSet
	// gpuBatching records that the GPU batching defaults were applied.
	gpuBatching bool
}

// register adds --device to fs.
func (d *deviceFlag) register(fs *flag.FlagSet) {
	d.fs = fs
	fs.StringVar(&d.spec, "device", "cpu", "where the face models run: cpu; cuda[:N] (CUDA device N, fail if CUDA cannot be used); "+
		"auto[:N] (CUDA device N if it can be used, else the CPU with a warning); CUDA options may follow after commas: "+
		"mem-limit=SIZE (arena cap per model, e.g. 4GiB), conv-search=exhaustive|heuristic|default. cuda and auto load the "+
		"CUDA build of onnxruntime from DEPS/gpu (\"make setup-gpu\"; see docs/gpu.md) and, unless given, use --max-batch "+
		fmt.Sprint(gpuMaxBatch)+" --max-wait "+gpuMaxWait.String())
}

// explicit reports whether the flag called name was set.
func (d *deviceFlag) explicit(name string) bool {
	set := false
	if d.fs != nil {
		d.fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	}
	return set
}

// runtime parses --device and returns the onnxruntime library to load and
// the device sessions should ask for. cpu takes the manifest's CPU
// library; cuda and auto take the CUDA build "make setup-gpu" installed
// (models.FindGPURuntime) and switch to the GPU batching defaults. Without
// that build, cuda fails with an error wrapping onnx.ErrCUDAUnavailable and
// auto warns and runs on the CPU library.
func (f *analyzeFlags) runtime(man models.Manifest, log *slog.Logger) (string, onnx.Device, error) {
	dev, err := onnx.ParseDevice(f.device.spec)
	if err != nil {
		return "", onnx.Device{}, fmt.Errorf("--device: %w", err)
	}
	if dev.WantsCUDA() {
		gr, err := models.FindGPURuntime(f.deps)
		switch {
		case err == nil:
			log.Info("CUDA onnxruntime", "device", dev.String(), "library", gr.Library, "source", gr.Source,
				"cuda-libraries", "source "+filepath.Join(f.deps, filepath.FromSlash(models.GPUEnvFile))+" first (see docs/gpu.md)")
			f.applyGPUBatching(log)
			return gr.Library, dev, nil
		case dev.Kind == onnx.DeviceCUDA:
			return "", onnx.Device{}, fmt.Errorf("--device %s: %w: %w", dev, onnx.ErrCUDAUnavailable, err)
		default:
			log.Warn("no CUDA onnxruntime installed: the models run on the CPU", "device", dev.String(), "reason", oneLine(err))
			dev = onnx.Device{}
		}
	}
	lib, err := man.VerifyPath(f.deps, "onnxruntime")
	return lib, dev, err
}

// applyGPUBatching switches --max-batch and --max-wait to the GPU defaults
// where they were not given.
func (f *analyzeFlags) applyGPUBatching(log *slog.Logger) {
	changed := false
	if !f.device.explicit("max-batch") {
		f.maxBatch, changed = gpuMaxBatch, true
	}
	if !f.device.explicit("max-wait") {
		f.maxWait, changed = gpuMaxWait, true
	}
	f.device.gpuBatching = changed
	if changed {
		log.Info("GPU batching", "max-batch", f.maxBatch, "max-wait", f.maxWait.String())
	}
}

// settleDevice logs where the detector runs and, when CUDA was asked for
// but the detector runs on the CPU (auto falling back), restores the CPU
// batching defaults that applyGPUBatching replaced.
func (f *analyzeFlags) settleDevice(ms *analyze.ModelSet, log *slog.Logger) error {
	m, err := ms.Get("fr_detect")
	if err != nil {
		return err
	}
	s, ok := m.(*onnx.Session)
	if !ok {
		return errors.New("fr_detect is not an onnxruntime session")
	}
	p := s.Placement()
	if !p.OnCUDA() && f.device.gpuBatching {
		for _, name := range []string{"max-batch", "max-wait"} {
			if f.device.explicit(name) {
				continue
			}
			def := f.device.fs.Lookup(name).DefValue
			switch name {
			case "max-batch":
				fmt.Sscan(def, &f.maxBatch)
			case "max-wait":
				f.maxWait, _ = time.ParseDuration(def)
			}
		}
		f.device.gpuBatching = false
	}
	log.Info("analyzer device", "requested", p.Requested.String(), "detector", p.String(),
		"max-batch", f.maxBatch, "max-wait", f.maxWait.String())
	return nil
}
