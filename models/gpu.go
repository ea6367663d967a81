package models

import (
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// gpuManifestJSON is models/gpu.json as built into the binary: the pinned
// onnxruntime build with the CUDA execution provider.
//
//go:embed gpu.json
var gpuManifestJSON string

// Names of the files in models/gpu.json. The three libraries must sit in
// one directory: onnxruntime loads its provider libraries from the
// directory of libonnxruntime.so.
const (
	// GPULibrary is onnxruntime built with the CUDA provider bridge
	// (libonnxruntime.so), the library a GPU analyzer loads.
	GPULibrary = "onnxruntime-gpu"
	// GPUProvidersShared is libonnxruntime_providers_shared.so.
	GPUProvidersShared = "onnxruntime-providers-shared"
	// GPUProviderCUDA is libonnxruntime_providers_cuda.so, the CUDA
	// execution provider (built for CUDA 13 and cuDNN 9, which it loads at
	// run time).
	GPUProviderCUDA = "onnxruntime-providers-cuda"
)

// GPU set paths, relative to the deps directory, that "make setup-gpu"
// writes besides the pinned files.
const (
	// GPUMachineFile holds the absolute path of a CUDA-capable onnxruntime
	// library that "make setup-gpu" found on the machine (for example
	// Python's onnxruntime-gpu): when it exists, FindGPURuntime prefers that
	// library to the pinned set, and setup-gpu fetches nothing.
	GPUMachineFile = "gpu/onnxruntime.path"
	// GPUEnvFile is a shell fragment ("export LD_LIBRARY_PATH=...") naming
	// the directories of the CUDA and cuDNN libraries "make setup-gpu"
	// found on the machine; source it before starting Vigil on a GPU.
	GPUEnvFile = "gpu/env.sh"
)

// LoadGPU parses and validates the GPU manifest built into the binary
// (models/gpu.json), with the rules Parse checks. It fails only if that
// file is invalid, which the package's tests rule out.
func LoadGPU() (Manifest, error) {
	m, err := Parse([]byte(gpuManifestJSON))
	if err != nil {
		return Manifest{}, fmt.Errorf("embedded models/gpu.json: %w", err)
	}
	return m, nil
}

// GPU runtime sources, as GPURuntime.Source reports them.
const (
	// GPUSourcePinned is the set models/gpu.json pins, sha256-checked.
	GPUSourcePinned = "pinned"
	// GPUSourceMachine is a library recorded in GPUMachineFile.
	GPUSourceMachine = "machine"
)

// GPURuntime is the onnxruntime library a CUDA-enabled process loads.
type GPURuntime struct {
	// Library is the absolute path of libonnxruntime to load.
	Library string
	// Source is GPUSourcePinned or GPUSourceMachine.
	Source string
}

// FindGPURuntime returns the CUDA-capable onnxruntime library under
// depsDir: the machine's library recorded in GPUMachineFile when that file
// exists (its provider libraries must sit beside it), else the pinned set,
// every file of which is sha256-checked. Errors are one line and say to
// run "make setup-gpu"; a missing set gives an error for which
// errors.Is(err, fs.ErrNotExist) holds.
func FindGPURuntime(depsDir string) (GPURuntime, error) {
	recorded := filepath.Join(depsDir, filepath.FromSlash(GPUMachineFile))
	data, err := os.ReadFile(recorded)
	switch {
	case err == nil:
		return machineRuntime(recorded, strings.TrimSpace(string(data)))
	case !errors.Is(err, fs.ErrNotExist):
		return GPURuntime{}, fmt.Errorf("%s: %w", recorded, err)
	}
	m, err := LoadGPU()
	if err != nil {
		return GPURuntime{}, err
	}
	var lib string
	for _, f := range m.Files {
		p, err := m.VerifyPath(depsDir, f.Name)
		if err != nil {
			return GPURuntime{}, gpuHint(err)
		}
		if f.Name == GPULibrary {
			lib = p
		}
	}
	return GPURuntime{Library: lib, Source: GPUSourcePinned}, nil
}

// machineRuntime checks the library path recorded in the file recorded.
func machineRuntime(recorded, lib string) (GPURuntime, error) {
	if !filepath.IsAbs(lib) || strings.ContainsAny(lib, "\n\x00") {
		return GPURuntime{}, fmt.Errorf("%s: %q is not an absolute path: run \"make setup-gpu\" again", recorded, lib)
	}
	dir := filepath.Dir(lib)
	for _, p := range []string{lib, filepath.Join(dir, "libonnxruntime_providers_shared.so"), filepath.Join(dir, "libonnxruntime_providers_cuda.so")} {
		st, err := os.Stat(p)
		if err == nil && !st.Mode().IsRegular() {
			err = errors.New("not a regular file")
		}
		if err != nil {
			return GPURuntime{}, fmt.Errorf("%s names %s, but %s: %w: run \"make setup-gpu\" again", recorded, lib, p, err)
		}
	}
	return GPURuntime{Library: lib, Source: GPUSourceMachine}, nil
}

// gpuFileError is a *FileError about a GPU set file; its message says to
// run "make setup-gpu" rather than "make setup".
type gpuFileError struct{ fe *FileError }

// Error returns the FileError's message with the GPU remedy.
func (e gpuFileError) Error() string {
	return strings.Replace(e.fe.Error(), fixHint, `run "make setup-gpu"`, 1)
}

// Unwrap returns the *FileError.
func (e gpuFileError) Unwrap() error { return e.fe }

// gpuHint turns a *FileError into a gpuFileError; other errors pass.
func gpuHint(err error) error {
	var fe *FileError
	if errors.As(err, &fe) {
		return gpuFileError{fe}
	}
	return err
}
