//go:build !linux

package cputime

import "time"

// Thread returns ErrUnsupported outside Linux.
func Thread() (time.Duration, error) { return 0, ErrUnsupported }
