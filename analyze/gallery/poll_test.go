package gallery

import "time"

// runtimeGosched waits a moment between polls (a timer, not a sleep in the test's logic).
func runtimeGosched() { <-time.After(5 * time.Millisecond) }
