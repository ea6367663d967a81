package sink

import (
	"testing"

	"github.com/vigil-video/vigil/pkg/config"
)

// TestRoleDefaultsAreConfigDefaults: a Role left at zero reads as `vigil sink` does without flags.
func TestRoleDefaultsAreConfigDefaults(t *testing.T) {
	def := config.Default().Sink
	r := &Role{}
	r.setDefaults()
	if r.Durable != def.Durable || r.AckWait != def.AckWait || r.MaxAckPending != def.MaxAckPending || r.LostAfter != def.LostAfter {
		t.Fatalf("Role defaults %q %s %d %s; config.Default() has %q %s %d %s", r.Durable, r.AckWait, r.MaxAckPending, r.LostAfter,
			def.Durable, def.AckWait, def.MaxAckPending, def.LostAfter)
	}
}
