//go:build cgo

package testenv

import (
	"bytes"
	"fmt"

	"github.com/vigil-video/vigil/pkg/vision"
)

// unclosedMats describes the gocv Mats still open (with -tags matprofile), or is empty. Only
// cgo builds have Mats: without cgo (the pure-Go packages' check) the other file says none.
func unclosedMats() string {
	n, ok := vision.LiveMats()
	if !ok || n == 0 {
		return ""
	}
	var b bytes.Buffer
	_ = vision.WriteMatProfile(&b)
	return fmt.Sprintf("%d gocv Mats were not closed:\n%s", n, b.String())
}
