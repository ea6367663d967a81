//go:build !linux

package lowprio

import "runtime"

// Lock wires the calling goroutine to its OS thread and returns ErrUnsupported: outside Linux
// the work runs at normal priority.
func Lock(nice int) error {
	runtime.LockOSThread()
	return ErrUnsupported
}

// Nice returns ErrUnsupported outside Linux.
func Nice() (int, error) { return 0, ErrUnsupported }
