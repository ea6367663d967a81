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

// TestPipelineDefaultsAreConfigDefaults: a PipelineConfig left at zero gates and labels faces as
// the analyze flags do without a value (the face gate, the gender and liveness thresholds).
func TestPipelineDefaultsAreConfigDefaults(t *testing.T) {
	def := config.Default().Analyze
	var c PipelineConfig
	c.setDefaults()
	if c.MirrorTolerance != float32(def.FaceGate) || c.GenderThreshold != float32(def.GenderThreshold) ||
		c.LivenessThreshold != float32(def.LivenessThreshold) {
		t.Fatalf("PipelineConfig defaults gate %v, gender %v, liveness %v; config.Default() has %v, %v, %v",
			c.MirrorTolerance, c.GenderThreshold, c.LivenessThreshold, def.FaceGate, def.GenderThreshold, def.LivenessThreshold)
	}
	if c.Tiles != nil != def.DetectTiles {
		t.Fatalf("PipelineConfig tiles %v, config.Default() detect_tiles %v", c.Tiles != nil, def.DetectTiles)
	}
}
