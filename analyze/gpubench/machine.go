package gpubench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// GPUMemory returns a Config.Memory function reading GPU device's memory
// use with nvidia-smi (memory.used and memory.total, MiB). It fails when
// nvidia-smi is missing or lists no such GPU.
func GPUMemory(device int) func(context.Context) (Memory, error) {
	return func(ctx context.Context) (Memory, error) {
		out, err := exec.CommandContext(ctx, "nvidia-smi", "--query-gpu=memory.used,memory.total",
			"--format=csv,noheader,nounits", "-i", strconv.Itoa(device)).Output()
		if err != nil {
			return Memory{}, fmt.Errorf("nvidia-smi: %w", err)
		}
		fields := strings.Split(strings.TrimSpace(string(out)), ",")
		if len(fields) != 2 {
			return Memory{}, fmt.Errorf("nvidia-smi printed %q, want used, total", out)
		}
		used, err1 := strconv.ParseFloat(strings.TrimSpace(fields[0]), 64)
		total, err2 := strconv.ParseFloat(strings.TrimSpace(fields[1]), 64)
		if err := errors.Join(err1, err2); err != nil {
			return Memory{}, fmt.Errorf("nvidia-smi printed %q: %w", out, err)
		}
		return Memory{What: fmt.Sprintf("GPU %d memory used, nvidia-smi", device), UsedMiB: used, TotalMiB: total}, nil
	}
}

// HaveNvidiaSMI reports whether nvidia-smi runs and lists at least one GPU.
func HaveNvidiaSMI(ctx context.Context) bool {
	out, err := exec.CommandContext(ctx, "nvidia-smi", "-L").Output()
	return err == nil && bytes.Contains(out, []byte("GPU "))
}

// ProcessMemory is a Config.Memory function reading this process's
// resident memory now (VmRSS in /proc/self/status), the CPU's counterpart
// of the GPU memory in use: onnxruntime's CPU arena keeps what a session's
// largest run needed until the session closes.
func ProcessMemory(ctx context.Context) (Memory, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return Memory{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return Memory{}, fmt.Errorf("/proc/self/status VmRSS %q: %w", rest, err)
			}
			return Memory{What: "resident memory of this process, VmRSS", UsedMiB: kb / 1024}, nil
		}
	}
	if err := sc.Err(); err != nil {
		return Memory{}, err
	}
	return Memory{}, errNoReading
}

// CUDALibraries are the shared libraries the pinned CUDA provider needs at
// run time, beside the NVIDIA driver's libcuda.so.1: its ELF dependencies
// and cuDNN, which it loads by name when it starts.
var CUDALibraries = []string{"libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libcudnn.so.9"}

// PythonORT is what the machine's Python says of its onnxruntime package.
type PythonORT struct {
	// Version is onnxruntime.__version__.
	Version string `json:"version"`
	// Providers are onnxruntime.get_available_providers().
	Providers []string `json:"providers"`
	// Capi is the package's capi directory, where its libraries live.
	Capi string `json:"capi"`
	// Files lists Capi's entries.
	Files []string `json:"files"`
}

// Library returns the path of a CUDA-capable onnxruntime C library in the
// package that Vigil can load in place of the pinned set, or why not.
func (p PythonORT) Library() (string, error) {
	if !slices.Contains(p.Providers, "CUDAExecutionProvider") {
		return "", fmt.Errorf("Python onnxruntime %s has no CUDA provider (providers %s): it is the CPU package", p.Version, strings.Join(p.Providers, ", "))
	}
	if !versionAtLeast(p.Version, 1, 24) {
		return "", fmt.Errorf("Python onnxruntime %s is older than 1.24, the C API version Vigil needs", p.Version)
	}
	var lib string
	for _, f := range p.Files {
		if strings.HasPrefix(f, "libonnxruntime.so") && (lib == "" || len(f) > len(lib)) {
			lib = f // the most specific name, libonnxruntime.so.1.x.y
		}
	}
	for _, need := range []string{lib, "libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"} {
		if need == "" || !slices.Contains(p.Files, need) {
			if need == "" {
				need = "libonnxruntime.so*"
			}
			return "", fmt.Errorf("Python onnxruntime %s at %s lacks %s", p.Version, p.Capi, need)
		}
	}
	return filepath.Join(p.Capi, lib), nil
}

// versionAtLeast reports whether a "major.minor..." version is at least
// major.minor.
func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	digits := parts[1]
	if i := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		digits = digits[:i] // "24rc1" -> "24"
	}
	mi, err2 := strconv.Atoi(digits)
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// Machine is what a GPU machine offers Vigil's CUDA provider.
type Machine struct {
	// GPUs is nvidia-smi -L's output lines; empty without a GPU or driver.
	GPUs []string
	// Python is the Python onnxruntime package, nil when python cannot
	// import one; PythonErr says why.
	Python    *PythonORT
	PythonErr error
	// Libraries maps each of CUDALibraries and libcuda.so.1 found to its
	// directory; Missing lists the others.
	Libraries map[string]string
	Missing   []string
}

// probeORT is the Python program that describes the onnxruntime package.
const probeORT = `import json, os, onnxruntime as o
d = os.path.join(os.path.dirname(o.__file__), "capi")
print(json.dumps({"version": o.__version__, "providers": o.get_available_providers(), "capi": d, "files": sorted(os.listdir(d))}))`

// probeDirs is the Python program that lists the lib directories of the
// NVIDIA wheels PyTorch depends on (nvidia/<name>/lib, e.g. nvidia/cu13/lib
// and nvidia/cudnn/lib).
const probeDirs = `import glob, os, sys
for p in sys.path:
    for d in sorted(glob.glob(os.path.join(p, "nvidia", "*", "lib"))):
        print(d)`

// systemLibDirs are searched after LD_LIBRARY_PATH and the Python wheels.
var systemLibDirs = []string{"/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/local/nvidia/lib64",
	"/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"}

// DetectMachine looks at what this machine has for the CUDA provider:
// GPUs (nvidia-smi), the Python onnxruntime package (python is the
// interpreter to ask, e.g. "python3"; "" skips Python), and where each CUDA
// library lives: directories in LD_LIBRARY_PATH, then the lib directories
// of the Python NVIDIA wheels (PyTorch's CUDA 13 and cuDNN 9), then the
// usual system directories.
func DetectMachine(ctx context.Context, python string) Machine {
	var m Machine
	if out, err := exec.CommandContext(ctx, "nvidia-smi", "-L").Output(); err == nil {
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				m.GPUs = append(m.GPUs, l)
			}
		}
	}
	var dirs []string
	for _, d := range filepath.SplitList(os.Getenv("LD_LIBRARY_PATH")) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	if python == "" {
		m.PythonErr = errors.New("not asked")
	} else {
		out, err := exec.CommandContext(ctx, python, "-c", probeORT).Output()
		if err == nil {
			var p PythonORT
			if err = json.Unmarshal(out, &p); err == nil {
				m.Python = &p
			}
		}
		if err != nil {
			m.PythonErr = fmt.Errorf("%s cannot import onnxruntime: %w", python, err)
		}
		if out, err := exec.CommandContext(ctx, python, "-c", probeDirs).Output(); err == nil {
			for _, d := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if d = strings.TrimSpace(d); d != "" {
					dirs = append(dirs, d)
				}
			}
		}
	}
	dirs = append(dirs, systemLibDirs...)
	m.Libraries = map[string]string{}
	for _, lib := range append(slices.Clone(CUDALibraries), "libcuda.so.1") {
		if dir := findLib(lib, dirs); dir != "" {
			m.Libraries[lib] = dir
		} else {
			m.Missing = append(m.Missing, lib)
		}
	}
	return m
}

// findLib returns the first of dirs holding name, or "".
func findLib(name string, dirs []string) string {
	for _, d := range dirs {
		if st, err := os.Stat(filepath.Join(d, name)); err == nil && !st.IsDir() {
			return d
		}
	}
	return ""
}

// LibraryPath returns the directories of the CUDA libraries found,
// without duplicates, in CUDALibraries order, leaving out the system
// directories the dynamic loader searches anyway.
func (m Machine) LibraryPath() []string {
	var out []string
	for _, lib := range append(slices.Clone(CUDALibraries), "libcuda.so.1") {
		d, ok := m.Libraries[lib]
		if !ok || slices.Contains(out, d) || d == "/usr/lib/x86_64-linux-gnu" || d == "/usr/lib64" || d == "/usr/lib" {
			continue
		}
		out = append(out, d)
	}
	return out
}

// EnvScript returns the shell fragment "make setup-gpu" writes to
// DEPS/gpu/env.sh: an export prepending LibraryPath to LD_LIBRARY_PATH.
func (m Machine) EnvScript() string {
	var b strings.Builder
	b.WriteString("# Written by \"make setup-gpu\" (vigil-gpubench setup): the CUDA and cuDNN libraries\n")
	b.WriteString("# the CUDA provider loads. Source it before starting Vigil with --device cuda or auto.\n")
	if len(m.Missing) > 0 {
		fmt.Fprintf(&b, "# Not found on this machine: %s\n", strings.Join(m.Missing, " "))
	}
	path := m.LibraryPath()
	if len(path) == 0 {
		b.WriteString("# Nothing to add: the libraries found are in the loader's default directories.\n")
		return b.String()
	}
	fmt.Fprintf(&b, "export LD_LIBRARY_PATH=%s\"${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\"\n", shellQuote(strings.Join(path, ":")))
	return b.String()
}

// shellQuote single-quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
