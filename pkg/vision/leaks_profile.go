//go:build matprofile

package vision

import (
	"io"

	"gocv.io/x/gocv"
)

// LiveMats returns the number of gocv Mats not yet closed and true, when the binary was built
// with -tags matprofile; otherwise 0 and false.
func LiveMats() (int, bool) { return gocv.MatProfile.Count(), true }

// WriteMatProfile writes the stacks that created the live Mats (with -tags matprofile).
func WriteMatProfile(w io.Writer) error { return gocv.MatProfile.WriteTo(w, 1) }
