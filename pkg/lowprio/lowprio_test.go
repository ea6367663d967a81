package lowprio

import (
	"runtime"
	"testing"
)

// TestLockLowersOnlyItsThread: the locked goroutine's thread runs at the raised nice value, and
// a goroutine elsewhere keeps the process's.
func TestLockLowersOnlyItsThread(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("per-thread priority is Linux only")
	}
	base, err := Nice()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	go func() {
		if err := Lock(10); err != nil {
			t.Error(err)
		}
		n, err := Nice()
		if err != nil {
			t.Error(err)
		}
		got <- n
	}()
	if n := <-got; n != min(base+10, 19) {
		t.Fatalf("locked thread nice %d, want %d", n, min(base+10, 19))
	}
	// That thread ended with its goroutine: other goroutines keep the process's priority.
	for range 20 {
		done := make(chan int, 1)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			n, _ := Nice()
			done <- n
		}()
		if n := <-done; n != base {
			t.Fatalf("another goroutine's thread at nice %d, want %d", n, base)
		}
	}
	if err := Lock(0); err == nil {
		t.Fatal("Lock(0) should fail")
	}
}
