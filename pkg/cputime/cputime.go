// Package cputime reads the CPU time of the calling OS thread, for costs measured where the work
// runs (an onnxruntime invocation, a decode loop) rather than in wall time, which a loaded
// machine inflates. A caller measuring a span must hold its thread (runtime.LockOSThread) from
// the first reading to the last.
package cputime

import "errors"

// ErrUnsupported is returned where the system offers no per-thread CPU clock.
var ErrUnsupported = errors.New("cputime: no thread CPU clock on this system")
