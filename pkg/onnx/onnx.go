// Package onnx runs float32 ONNX models with onnxruntime, in batches,
// through github.com/yalue/onnxruntime_go: on the CPU, or on a GPU through
// onnxruntime's CUDA execution provider (SessionOptions.Device, provider.go),
// falling back to the CPU or failing as the Device asks when CUDA cannot be
// used.
//
// A Runtime loads the onnxruntime shared library; a Session, made by
// Runtime.NewSession, runs one model. NewSession rewrites the model with
// graph.MakeBatchDynamic so that models exported with a fixed batch of 1
// accept any batch, and Session.Run splits work into batches of at most
// SessionOptions.MaxBatch samples.
//
// The shared library is opened with dlopen at run time, so building this
// package needs cgo but no onnxruntime headers or libraries.
package onnx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// ErrClosed is wrapped by the errors of operations on a closed Runtime or
// Session.
var ErrClosed = errors.New("onnx: closed")

// env counts the open Runtimes. onnxruntime_go keeps the loaded library and
// the onnxruntime environment in process-global variables, which can be
// initialized once and must not be destroyed while a session exists; env
// makes several Runtimes (and their Close calls) share that one environment
// safely: the first NewRuntime initializes it and the last Close destroys
// it. Apart from the ErrClosed sentinel this is the only package-level
// state.
var env struct {
	mu     sync.Mutex
	refs   int        // open Runtimes
	lib    string     // absolute path of the loaded library while refs > 0
	legacy *legacyAPI // the library's OrtApi for the V1 CUDA call; nil if unavailable
	// cudaErr is why the CUDA provider could not be added to session
	// options, once that failed: later sessions reuse it rather than load
	// the provider library again.
	cudaErr error
}

// Runtime is a handle on the process-wide onnxruntime environment. Create
// it with NewRuntime and Close it when done; its methods are safe for
// concurrent use.
type Runtime struct {
	mu       sync.Mutex
	closed   bool
	sessions map[*Session]struct{}
}

// NewRuntime loads the onnxruntime shared library at libPath (for example
// build/deps/lib/libonnxruntime.so.1) and initializes the onnxruntime
// environment, or shares the one already initialized by another open
// Runtime. All open Runtimes must use the same library file. A missing or
// unloadable library gives a one-line error that says to run `make setup`.
func NewRuntime(libPath string) (*Runtime, error) {
	if libPath == "" {
		return nil, errors.New("onnx: no onnxruntime library path given (run `make setup` to install build/deps/lib/libonnxruntime.so.1)")
	}
	abs, err := filepath.Abs(libPath)
	if err != nil {
		return nil, fmt.Errorf("onnx: onnxruntime library path %q: %w", libPath, err)
	}
	env.mu.Lock()
	defer env.mu.Unlock()
	if env.refs > 0 {
		if abs != env.lib {
			return nil, fmt.Errorf("onnx: onnxruntime already loaded from %s, cannot also load %s", env.lib, abs)
		}
	} else {
		if ort.IsInitialized() {
			return nil, errors.New("onnx: onnxruntime environment was initialized outside package onnx")
		}
		if fi, err := os.Stat(abs); err != nil || fi.IsDir() {
			if err == nil {
				err = errors.New("is a directory")
			} else if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
				err = pe.Err // the path is already in the message
			}
			return nil, fmt.Errorf("onnx: onnxruntime library not found at %s (run `make setup`): %w", abs, err)
		}
		ort.SetSharedLibraryPath(abs)
		if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
			return nil, fmt.Errorf("onnx: cannot load onnxruntime library %s (run `make setup`): %s", abs, oneLine(err))
		}
		env.lib = abs
		env.legacy, _ = openLegacyAPI(abs) // nil: CUDA then needs the V2 options
	}
	env.refs++
	return &Runtime{sessions: map[*Session]struct{}{}}, nil
}

// Version returns the version of the loaded onnxruntime library, or "" once
// r is closed.
func (r *Runtime) Version() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ""
	}
	return ort.GetVersion()
}

// Close closes the sessions of r that are still open (waiting for their
// running Run calls) and releases r's share of the onnxruntime
// environment, which is destroyed when the last Runtime closes. Closing an
// already closed Runtime does nothing and returns nil.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	sessions := r.sessions
	r.sessions = nil
	r.mu.Unlock()

	var errs []error
	for s := range sessions {
		errs = append(errs, s.close())
	}
	env.mu.Lock()
	defer env.mu.Unlock()
	env.refs--
	if env.refs == 0 {
		env.lib = ""
		if err := ort.DestroyEnvironment(); err != nil {
			errs = append(errs, fmt.Errorf("onnx: destroy onnxruntime environment: %w", err))
		}
		env.legacy.close()
		env.legacy, env.cudaErr = nil, nil
	}
	return errors.Join(errs...)
}

// oneLine flattens an error message onto a single line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
