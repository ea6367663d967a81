// Package lowprio runs work on an OS thread of lowered scheduling priority, so that a costly
// background task (a late head) takes only the CPU the latency-bound work leaves. Pure Go.
package lowprio

import "errors"

// ErrUnsupported is returned where threads cannot be given a priority of their own.
var ErrUnsupported = errors.New("lowprio: per-thread priority is not supported on this system")
