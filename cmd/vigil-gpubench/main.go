// Command vigil-gpubench measures the face models' throughput at large
// batches on a GPU through onnxruntime's CUDA provider, or on the CPU for
// comparison, and sets a GPU machine up for Vigil. It needs no OpenCV: it
// replays model inputs recorded from real frames by vigil-gpurecord, so a
// machine with only the NVIDIA driver, the CUDA libraries and this binary
// (plus the deps directory) can run it.
//
// Usage:
//
//	vigil-gpubench run   [-inputs FILE] [-deps DIR] [-device auto|cpu|cuda:N[,opts]] [-batches 1,8,32,128,256]
//	                     [-models LIST] [-threads N] [-rounds N] [-min-time D]
//	vigil-gpubench setup [-deps DIR] [-cache DIR] [-python python3] [-fetch=true]
//
// "run" prints each model's time per batch, the derived detect, embed and
// all-heads throughput and the memory used (GPU memory through nvidia-smi,
// else this process's peak resident memory). "setup" is what "make
// setup-gpu" runs: it looks at what the machine has (GPUs, Python's
// onnxruntime package, the CUDA 13 and cuDNN 9 libraries of PyTorch's
// NVIDIA wheels or the system), prefers a CUDA-capable onnxruntime it finds
// there, else fetches and verifies the pinned set (models/gpu.json), and
// writes DEPS/gpu/env.sh with the LD_LIBRARY_PATH the CUDA provider needs.
// See docs/gpu.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-video/vigil/analyze/gpubench"
	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/models/fetch"
	"github.com/vigil-video/vigil/pkg/onnx"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, fetch.NPM{})
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintf(os.Stderr, "vigil-gpubench: %s\n", strings.Join(strings.Fields(err.Error()), " "))
		os.Exit(1)
	}
}

// run dispatches the subcommand; packer fetches npm packages for setup.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, packer fetch.Packer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		args = append([]string{"run"}, args...)
	}
	switch args[0] {
	case "run":
		return benchCmd(ctx, args[1:], stdout, stderr)
	case "setup":
		return setupCmd(ctx, args[1:], stdout, stderr, packer)
	case "help":
		fmt.Fprintln(stdout, "usage: vigil-gpubench run|setup [flags] (vigil-gpubench run -h for the flags)")
		return nil
	}
	return fmt.Errorf("unknown command %q: use run or setup", args[0])
}

// benchCmd is "vigil-gpubench run".
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil-gpubench run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	inputs := fs.String("inputs", "build/gpubench/megamind.tensors.gz", "recorded model inputs (vigil-gpurecord)")
	deps := fs.String("deps", models.DefaultDepsDir(), "deps directory: models/, and lib/ (CPU) or gpu/lib (make setup-gpu)")
	device := fs.String("device", "auto", "cpu, cuda[:N] (fail without CUDA) or auto[:N] (CUDA, else CPU), with optional CUDA options as for vigil --device")
	batchList := fs.String("batches", "1,8,32,128,256", "batch sizes, comma-separated")
	modelList := fs.String("models", "all", "models to measure, comma-separated manifest names, or all (detector and every per-face model)")
	threads := fs.Int("threads", 1, "onnxruntime intra-op threads per session (CPU work)")
	rounds := fs.Int("rounds", 3, "fewest timed runs per model and batch")
	minTime := fs.Duration("min-time", time.Second, "keep timing a model and batch this long once -rounds ran")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: flags only", fs.Args())
	}
	dev, err := onnx.ParseDevice(*device)
	if err != nil {
		return err
	}
	batches, err := parseInts(*batchList)
	if err != nil {
		return fmt.Errorf("-batches: %w", err)
	}
	names := append([]string{gpubench.Detector}, gpubench.FaceModels...)
	if *modelList != "all" {
		names = strings.Split(*modelList, ",")
	}
	rec, err := readRecording(*inputs)
	if err != nil {
		return err
	}
	man, err := models.Load()
	if err != nil {
		return err
	}
	lib, source, err := library(man, *deps, dev)
	if err != nil {
		return err
	}
	rt, err := onnx.NewRuntime(lib)
	if err != nil {
		return err
	}
	defer rt.Close()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := onnx.SessionOptions{IntraOpThreads: *threads, MaxBatch: slices.Max(batches), Device: dev, Log: log}
	for _, name := range names {
		if _, err := man.File(name); err != nil {
			return err
		}
	}
	openSession := func(name string) (*onnx.Session, error) {
		data, err := man.ReadVerified(*deps, name)
		if err != nil {
			return nil, err
		}
		return rt.NewSession(name, data, opts)
	}
	// The detector's placement decides the memory reader.
	probe, err := openSession(gpubench.Detector)
	if err != nil {
		return err
	}
	onGPU := probe.Placement().OnCUDA()
	if err := probe.Close(); err != nil {
		return err
	}
	// Each model opens when the benchmark comes to it and closes after;
	// its placement is printed as it opens.
	open := func(name string) (gpubench.Model, error) {
		s, err := openSession(name)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(stdout, "%-14s runs on %s\n", name, s.Placement())
		return s, nil
	}

	cfg := gpubench.Config{Batches: batches, MinRounds: *rounds, MinTime: *minTime, Progress: stderr, Memory: gpubench.ProcessMemory}
	if onGPU && gpubench.HaveNvidiaSMI(ctx) {
		cfg.Memory = gpubench.GPUMemory(dev.ID)
	}
	fmt.Fprintf(stdout, "vigil-gpubench: onnxruntime %s (%s, %s), device %s, %d intra-op thread(s), Go %s, %d CPUs\n",
		rt.Version(), lib, source, *device, *threads, runtime.Version(), runtime.NumCPU())
	fmt.Fprintf(stdout, "machine: %s\n", machineName(ctx, onGPU))
	fmt.Fprintf(stdout, "inputs: %s: %d frames, %d faces (%.2f faces/frame) of %s\n", *inputs, rec.Frames, rec.Faces,
		float64(rec.Faces)/float64(max(rec.Frames, 1)), rec.Source)
	fmt.Fprintf(stdout, "batches %v, at least %d timed runs and %v per model and batch\n", batches, *rounds, *minTime)
	rep, err := gpubench.Run(ctx, rec, names, open, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	return rep.Write(stdout)
}

// library picks the onnxruntime library for dev: the CUDA build (make
// setup-gpu) for cuda and auto, the CPU one otherwise or, for auto, when
// no CUDA build is installed. The CUDA build also runs on the CPU, so a
// machine that carries only it can measure "cpu" too.
func library(man models.Manifest, deps string, dev onnx.Device) (lib, source string, err error) {
	gr, gpuErr := models.FindGPURuntime(deps)
	if dev.WantsCUDA() {
		if gpuErr == nil {
			return gr.Library, gr.Source + " CUDA build", nil
		}
		if dev.Kind == onnx.DeviceCUDA {
			return "", "", fmt.Errorf("device %s: %w: %w", dev, onnx.ErrCUDAUnavailable, gpuErr)
		}
	}
	lib, err = man.VerifyPath(deps, "onnxruntime")
	if err != nil && gpuErr == nil {
		return gr.Library, gr.Source + " CUDA build", nil
	}
	return lib, "CPU build", err
}

// readRecording opens and decodes the recording at path.
func readRecording(path string) (*gpubench.Recording, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w (record it with: go run ./cmd/vigil-gpurecord)", err)
	}
	defer f.Close()
	rec, err := gpubench.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rec, nil
}

// parseInts parses a comma-separated list of positive integers.
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1<<16 {
			return nil, fmt.Errorf("%q is not a batch size from 1 to 65536", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// machineName names the GPU (nvidia-smi) or the CPU (/proc/cpuinfo).
func machineName(ctx context.Context, gpu bool) string {
	if gpu {
		if out, err := exec.CommandContext(ctx, "nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader").Output(); err == nil {
			return "GPU " + strings.TrimSpace(strings.Split(string(out), "\n")[0])
		}
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				return "CPU " + strings.TrimSpace(v)
			}
		}
	}
	return runtime.GOARCH
}

// setupCmd is "vigil-gpubench setup", which "make setup-gpu" runs.
func setupCmd(ctx context.Context, args []string, stdout, stderr io.Writer, packer fetch.Packer) error {
	fs := flag.NewFlagSet("vigil-gpubench setup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	deps := fs.String("deps", models.DefaultDepsDir(), "deps directory to fill (DEPS/gpu)")
	cache := fs.String("cache", "build/npm", "directory that keeps the npm package tarballs")
	python := fs.String("python", "python3", "Python interpreter asked for its onnxruntime package and NVIDIA wheels (\"\" to skip)")
	doFetch := fs.Bool("fetch", true, "fetch the pinned set when the machine has no CUDA-capable onnxruntime (false: only verify)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: flags only", fs.Args())
	}
	m := gpubench.DetectMachine(ctx, *python)
	if len(m.GPUs) == 0 {
		fmt.Fprintln(stdout, "setup-gpu: no GPU listed by nvidia-smi on this machine (preparing the files anyway)")
	}
	for _, g := range m.GPUs {
		fmt.Fprintf(stdout, "setup-gpu: %s\n", g)
	}

	recorded := filepath.Join(*deps, filepath.FromSlash(models.GPUMachineFile))
	useMachine := ""
	if m.Python != nil {
		lib, err := m.Python.Library()
		if err == nil {
			useMachine = lib
			fmt.Fprintf(stdout, "setup-gpu: using Python's onnxruntime %s with the CUDA provider: %s (nothing to fetch)\n", m.Python.Version, lib)
		} else {
			fmt.Fprintf(stdout, "setup-gpu: %v: using the pinned set (models/gpu.json)\n", err)
		}
	} else {
		fmt.Fprintf(stdout, "setup-gpu: no Python onnxruntime (%v): using the pinned set (models/gpu.json)\n", m.PythonErr)
	}
	if err := os.MkdirAll(filepath.Dir(recorded), 0o755); err != nil {
		return err
	}
	if useMachine != "" {
		if err := os.WriteFile(recorded, []byte(useMachine+"\n"), 0o644); err != nil {
			return err
		}
	} else {
		if err := os.Remove(recorded); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		gm, err := models.LoadGPU()
		if err != nil {
			return err
		}
		log := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
		opt := fetch.Options{DepsDir: *deps, CacheDir: *cache, Log: log}
		if *doFetch {
			opt.Packer = packer
		}
		if _, err := fetch.Run(ctx, gm, opt); err != nil {
			if !*doFetch {
				return fmt.Errorf("%w (-fetch=false: fetch it where npm and the registry are, e.g. \"make setup-gpu\", and copy %s here)", err, filepath.Join(*deps, "gpu"))
			}
			return err
		}
	}
	gr, err := models.FindGPURuntime(*deps)
	if err != nil {
		return err
	}

	for _, lib := range append(slices.Clone(gpubench.CUDALibraries), "libcuda.so.1") {
		if d, ok := m.Libraries[lib]; ok {
			fmt.Fprintf(stdout, "setup-gpu: %-18s %s\n", lib, d)
		} else {
			fmt.Fprintf(stdout, "setup-gpu: %-18s not found\n", lib)
		}
	}
	envFile := filepath.Join(*deps, filepath.FromSlash(models.GPUEnvFile))
	if err := os.WriteFile(envFile, []byte(m.EnvScript()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "setup-gpu: onnxruntime for CUDA: %s (%s)\n", gr.Library, gr.Source)
	fmt.Fprintf(stdout, "setup-gpu: wrote %s: run \". %s\" before starting vigil with --device cuda or auto\n", envFile, envFile)
	if len(m.Missing) > 0 {
		fmt.Fprintf(stdout, "setup-gpu: missing here: %s (on a GPU machine install PyTorch's CUDA 13 wheels or the CUDA 13 toolkit and cuDNN 9, then run this again; without them --device auto runs on the CPU)\n",
			strings.Join(m.Missing, " "))
	}
	return nil
}
