package models

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadGPU(t *testing.T) {
	m, err := LoadGPU()
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]bool{}
	for _, name := range []string{GPULibrary, GPUProvidersShared, GPUProviderCUDA} {
		f, err := m.File(name)
		if err != nil {
			t.Fatal(err)
		}
		if f.Kind != KindLibrary || !strings.HasPrefix(f.Dest, "gpu/lib/") {
			t.Errorf("%s = %+v, want a library under gpu/lib", name, f)
		}
		dirs[path.Dir(f.Dest)] = true
	}
	if len(dirs) != 1 || len(m.Files) != 3 {
		t.Errorf("GPU files %+v: want the three libraries in one directory", m.Files)
	}
	cpu, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		for _, c := range cpu.Files {
			if f.Dest == c.Dest {
				t.Errorf("GPU file %s has the dest of %s", f.Name, c.Name)
			}
		}
	}
}

func TestFindGPURuntime(t *testing.T) {
	dir := t.TempDir()
	_, err := FindGPURuntime(dir)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), `run "make setup-gpu"`) || strings.Contains(err.Error(), `"make setup"`) {
		t.Errorf("missing set: %v, want ErrNotExist saying make setup-gpu", err)
	}
	var fe *FileError
	if !errors.As(err, &fe) || fe.File.Name != GPULibrary {
		t.Errorf("missing set: %v does not unwrap to the library's FileError", err)
	}

	// A file with the wrong content.
	m, err := LoadGPU()
	if err != nil {
		t.Fatal(err)
	}
	f, _ := m.File(GPULibrary)
	if err := os.MkdirAll(filepath.Dir(f.Location(dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Location(dir), []byte("not onnxruntime"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FindGPURuntime(dir); err == nil || !strings.Contains(err.Error(), "sha256 mismatch") || !strings.Contains(err.Error(), "setup-gpu") {
		t.Errorf("altered library: %v", err)
	}

	// A library recorded from the machine.
	capi := t.TempDir()
	lib := filepath.Join(capi, "libonnxruntime.so.1.30.0")
	recorded := filepath.Join(dir, filepath.FromSlash(GPUMachineFile))
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(recorded, "relative/libonnxruntime.so\n")
	if _, err := FindGPURuntime(dir); err == nil || !strings.Contains(err.Error(), "not an absolute path") {
		t.Errorf("relative recorded path: %v", err)
	}
	write(recorded, lib+"\n")
	write(lib, "x")
	write(filepath.Join(capi, "libonnxruntime_providers_shared.so"), "x")
	if _, err := FindGPURuntime(dir); err == nil || !strings.Contains(err.Error(), "libonnxruntime_providers_cuda.so") {
		t.Errorf("recorded library without its CUDA provider: %v", err)
	}
	write(filepath.Join(capi, "libonnxruntime_providers_cuda.so"), "x")
	gr, err := FindGPURuntime(dir)
	if err != nil || gr.Library != lib || gr.Source != GPUSourceMachine {
		t.Errorf("recorded library: %+v, %v", gr, err)
	}
}
