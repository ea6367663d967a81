// Package e2e holds the track stage's end-to-end tests: the real analyzer (onnxruntime and the
// face models), real ingest of the shared face video, and the track role, on an embedded NATS
// server. It has no code of its own; it is apart from package track because these tests need cgo
// (gocv, onnxruntime) and package track, tests included, stays pure Go.
package e2e
