package cli

import (
	"flag"
	"io"
	"strings"
	"testing"
)

// TestFiniteFlags: NaN and infinities in a float flag, from the command line or the
// environment, are usage errors naming the flag.
func TestFiniteFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
	}{
		{args: []string{"--match-threshold", "NaN"}},
		{args: []string{"--rate-limit=+Inf"}},
		{env: map[string]string{"VIGIL_MAX_UPLOAD_MB": "-inf"}},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		var hf httpFlags
		var gf galleryFlags
		hf.register(fs)
		gf.register(fs)
		var stderr strings.Builder
		env := Env{Stderr: &stderr, Getenv: func(k string) string { return c.env[k] }}
		if err := parse(fs, env, c.args); err == nil || !strings.Contains(stderr.String(), "finite") {
			t.Errorf("%v %v: %v %q, want a usage error about a finite number", c.args, c.env, err, stderr.String())
		}
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var hf httpFlags
	hf.register(fs)
	if err := parse(fs, Env{Stderr: io.Discard, Getenv: func(string) string { return "" }}, []string{"--rate-limit", "60"}); err != nil {
		t.Fatal(err)
	}
}
