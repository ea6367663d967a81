// Package e2e holds the web UI's end-to-end tests: a real headless Chromium (package
// sink/web/webtest) on the page, against the real pipeline on an embedded NATS server: ingest of
// the shared face video, the analyzer (onnxruntime and the face models), the track role with
// the gallery, the face API with the real gallery for enrollment, and the UI. It has no code of
// its own; it is apart from package web because these tests need cgo (gocv, onnxruntime) and
// package web, tests included, stays pure Go.
//
// Screenshots go to $VIGIL_SCREENSHOTS when set, else to the test's temporary directory.
package e2e
