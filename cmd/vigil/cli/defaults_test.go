package cli

import (
	"flag"
	"testing"

	"github.com/vigil-video/vigil/pkg/config"
)

// TestFlagDefaultsAreConfigDefaults: every flag tied to a configuration key starts from
// config.Default()'s value for that key, in every command that registers it, so `vigil run
// --help`, the single-role commands and a configuration file left empty all agree.
func TestFlagDefaultsAreConfigDefaults(t *testing.T) {
	def := config.Default()
	paths := flagPaths()
	// Keys whose flag default is computed where the program runs (config leaves them empty).
	computed := map[string]bool{"analyze.deps": true, "analyze.device": true}

	sets := map[string]*flag.FlagSet{}
	st := &settings{cfg: config.Default()}
	_, sets["run"] = newRunFlags(st)

	// The single-role commands register the same groups; their own variants are checked here.
	role := flag.NewFlagSet("roles", flag.ContinueOnError)
	rst := &settings{cfg: config.Default()}
	var (
		inf ingestFlags
		af  analyzeFlags
		sf  sinkFlags
		tf  trackFlags
	)
	inf.register(role, false)
	af.register(role)
	sf.register(role, &rst.cfg.Sink)
	sf.registerWebhooks(role)
	sf.registerEventStore(role)
	rst.registerNATS(role)
	rst.registerJetStream(role)
	rst.registerMetrics(role)
	sets["roles"] = role
	track := flag.NewFlagSet("track", flag.ContinueOnError) // --stream means something else there
	tf.register(track, true)
	sets["track"] = track
	// serve, the image commands and vigil eval load the models through modelFlags.
	image := flag.NewFlagSet("image", flag.ContinueOnError)
	var mf modelFlags
	mf.register(image)
	sets["image"] = image

	checked := 0
	for name, fs := range sets {
		fs.VisitAll(func(fl *flag.Flag) {
			path, ok := paths[fl.Name]
			if !ok || computed[path] {
				return
			}
			if _, ok := fl.Value.(secret); ok {
				return
			}
			want, err := def.Get(path)
			if err != nil {
				t.Fatalf("%s: --%s: %v", name, fl.Name, err)
			}
			// Compare as the flag parses config's value: formats may differ ("1GiB", "1073741824").
			// The flag sets are throwaway: setting the value changes nothing else.
			if err := fl.Value.Set(want); err != nil {
				t.Fatalf("%s: --%s cannot take config.Default's %s=%q: %v", name, fl.Name, path, want, err)
			}
			if got := fl.Value.String(); got != fl.DefValue {
				t.Errorf("%s: --%s defaults to %q, config.Default() has %s=%q", name, fl.Name, fl.DefValue, path, got)
			}
			checked++
		})
	}
	if checked < 40 {
		t.Fatalf("checked %d flags, want every configuration flag of run and the roles", checked)
	}
}
