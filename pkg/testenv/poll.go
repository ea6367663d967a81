package testenv

import (
	"testing"
	"time"
)

// PollInterval is how often Eventually checks its condition.
const PollInterval = 5 * time.Millisecond

// Eventually checks cond every PollInterval until it holds, and fails the test (naming what was
// awaited) when it still does not hold after timeout. It is the tests' one way to wait for
// something another goroutine or process does, instead of sleeping for a guessed time.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(PollInterval)
	defer tick.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			if cond() {
				return
			}
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}
