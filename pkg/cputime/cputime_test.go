package cputime

import (
	"runtime"
	"testing"
	"time"
)

// TestThreadCountsWorkNotSleep: a thread's CPU clock advances by about the work it does, and
// not while it sleeps.
func TestThreadCountsWorkNotSleep(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0, err := Thread()
	if err != nil {
		t.Skip(err)
	}
	time.Sleep(100 * time.Millisecond)
	c1, _ := Thread()
	if slept := c1 - c0; slept > 20*time.Millisecond {
		t.Fatalf("sleeping 100 ms cost %v of thread CPU", slept)
	}
	x := 1.0
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
		x = x*1.0000001 + 1e-9
	}
	c2, _ := Thread()
	if worked := c2 - c1; worked < 5*time.Millisecond {
		t.Fatalf("50 ms of spinning counted %v of thread CPU (x=%v)", worked, x)
	}
}
