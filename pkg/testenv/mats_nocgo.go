//go:build !cgo

package testenv

// unclosedMats is empty without cgo: no gocv Mat can exist, and the pure-Go packages' tests
// (CGO_ENABLED=0 in make test's purity check) use testenv too.
func unclosedMats() string { return "" }
