package ingest_test

import (
	"testing"

	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/pkg/config"
)

// TestStreamDefaultsAreConfigDefaults: a stream left at zero is sampled and encoded as `vigil
// ingest` does without flags.
func TestStreamDefaultsAreConfigDefaults(t *testing.T) {
	def := config.Default().Ingest
	var c ingest.StreamConfig
	c.SetDefaults()
	if c.FPS != def.FPS || c.MaxWidth != def.MaxWidth || c.MaxHeight != def.MaxHeight || c.JPEGQuality != def.JPEGQuality {
		t.Fatalf("stream defaults %v fps %dx%d q%d; config.Default() has %v fps %dx%d q%d", c.FPS, c.MaxWidth, c.MaxHeight, c.JPEGQuality,
			def.FPS, def.MaxWidth, def.MaxHeight, def.JPEGQuality)
	}
}
