package cli

import (
	"flag"

	"github.com/vigil-video/vigil/detect"
	"github.com/vigil-video/vigil/pkg/config"
)

// registerFaceGate registers --face-gate, the face-quality gate's tolerance (key
// analyze.face_gate), defaulting to config.Default()'s.
func registerFaceGate(fs *flag.FlagSet, v *float64) {
	fs.Float64Var(v, "face-gate", config.Default().Analyze.FaceGate, "face-quality gate: drop a detection whose landmarks move by more than this share of its side "+
		"(plus 1 px) when the face is mirrored (animals, letters, textures); larger keeps more, 0 or negative turns the gate off")
}

// mirrorTolerance maps --face-gate to analyze.PipelineConfig.MirrorTolerance (where 0 means the
// default and negative no gate).
func mirrorTolerance(gate float64) float32 {
	if gate <= 0 {
		return -1
	}
	return float32(gate)
}

// tilesIf returns the default tiling when on, nil otherwise.
func tilesIf(on bool) *detect.TileConfig {
	if on {
		return &detect.TileConfig{}
	}
	return nil
}
