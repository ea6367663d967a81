package cli

import (
	"flag"
	"fmt"
	"math"
)

// finiteFlags refuses NaN and infinities in every floating-point flag: they pass range checks
// written as "v < lo || v > hi" and would reach the roles as thresholds or rates.
func finiteFlags(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		g, ok := f.Value.(flag.Getter)
		if !ok || err != nil {
			return
		}
		if v, ok := g.Get().(float64); ok && (math.IsNaN(v) || math.IsInf(v, 0)) {
			err = fmt.Errorf("--%s %v: want a finite number", f.Name, v)
		}
	})
	return err
}
