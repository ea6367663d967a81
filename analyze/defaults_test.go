package analyze

import (
	"testing"

	"github.com/vigil-video/vigil/pkg/config"
)

// TestRoleDefaultsAreConfigDefaults: a Role left at zero batches as `vigil analyze` does without
// flags (config.Default() is the one source; the Role once said 8 where the flag said 4).
func TestRoleDefaultsAreConfigDefaults(t *testing.T) {
	def := config.Default().Analyze
	r := &Role{}
	r.setDefaults()
	if r.MaxBatch != def.MaxBatch || r.MaxWait != def.MaxWait {
		t.Fatalf("Role defaults MaxBatch %d, MaxWait %s; config.Default() has %d, %s", r.MaxBatch, r.MaxWait, def.MaxBatch, def.MaxWait)
	}
}
