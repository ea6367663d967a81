package lowprio

import (
	"fmt"
	"runtime"
	"syscall"
)

// Lock wires the calling goroutine to its OS thread and raises that thread's nice value by
// nice (1..19; the kernel caps the result at 19): under contention the thread then gets a small
// share of a CPU. The goroutine must not unlock the thread: when it exits, still locked, Go ends
// the thread instead of handing its lowered priority to other goroutines. (On Linux a thread's
// nice value is its own; an unprivileged process cannot lower it again.)
func Lock(nice int) error {
	if nice < 1 || nice > 19 {
		return fmt.Errorf("lowprio: nice %d outside 1..19", nice)
	}
	runtime.LockOSThread()
	tid := syscall.Gettid()
	cur, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		return fmt.Errorf("lowprio: getpriority: %w", err)
	}
	// The raw getpriority system call returns 20 - nice.
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, min(20-cur+nice, 19)); err != nil {
		return fmt.Errorf("lowprio: setpriority: %w", err)
	}
	return nil
}

// Nice returns the nice value of the calling OS thread (meaningful while the goroutine is
// locked to it).
func Nice() (int, error) {
	cur, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	if err != nil {
		return 0, fmt.Errorf("lowprio: getpriority: %w", err)
	}
	return 20 - cur, nil
}
