package cli

import (
	"bytes"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/vigil-video/vigil/pkg/config"
)

// TestRunPrint: vigil run prints results on stdout with --once (a batch job) or --print, not in
// a live run; --quiet starts (the results still reach NATS, the web view and the history) and
// contradicts --print.
func TestRunPrint(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		once      bool
		wantQuiet bool
		wantErr   string
	}{
		{nil, false, true, ""},
		{nil, true, false, ""},
		{[]string{"--print"}, false, false, ""},
		{[]string{"--print=false"}, true, true, ""},
		{[]string{"--quiet"}, true, true, ""},
		{[]string{"--quiet"}, false, true, ""},
		{[]string{"--print", "--quiet"}, false, false, "contradict"},
	} {
		var f sinkFlags
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f.register(fs, &config.Sink{})
		f.registerPrint(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		err := f.applyPrint(tc.once)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v once=%v: error %v, want %q", tc.args, tc.once, err, tc.wantErr)
			}
			continue
		}
		if err != nil || f.cfg.Quiet != tc.wantQuiet {
			t.Errorf("%v once=%v: quiet %v (%v), want %v", tc.args, tc.once, f.cfg.Quiet, err, tc.wantQuiet)
		}
		// Printing nothing is never refused: the run's results go elsewhere anyway.
		sinks, err := f.sinks(Env{Stdout: io.Discard}, nil)
		if err != nil {
			t.Errorf("%v once=%v: sinks: %v", tc.args, tc.once, err)
		}
		closeSinks(sinks)
	}
	if code, _, errOut := runCLI(t, nil, "run", "--quiet", "--check-config"); code != 0 {
		t.Errorf("vigil run --quiet: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := runCLI(t, nil, "run", "--print", "--quiet", "--check-config"); code != 1 || !strings.Contains(errOut, "contradict") {
		t.Errorf("vigil run --print --quiet: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := runCLI(t, nil, "sink", "--quiet", "--check-config"); code != 1 || !strings.Contains(errOut, "sink.quiet") {
		t.Errorf("vigil sink --quiet: exit %d, want 1 naming sink.quiet\n%s", code, errOut)
	}
}

// TestStartupHandler: until start-up ends, info records are written at debug level (dropped at
// the info level), warnings pass; afterwards info passes, in loggers derived before and after.
func TestStartupHandler(t *testing.T) {
	var b bytes.Buffer
	log, started := quietStartup(slog.New(slog.NewTextHandler(&b, nil)))
	role := log.With("role", "analyze")
	role.Info("analyzer ready")
	role.Warn("slow start")
	started.Store(true)
	log.Info("open the web view")
	role.WithGroup("g").Info("source ended")
	out := b.String()
	if strings.Contains(out, "analyzer ready") {
		t.Errorf("an info line before start-up ended passed:\n%s", out)
	}
	for _, want := range []string{"level=WARN msg=\"slow start\" role=analyze", "open the web view", "source ended"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	var d bytes.Buffer
	dlog, _ := quietStartup(slog.New(slog.NewTextHandler(&d, &slog.HandlerOptions{Level: slog.LevelDebug})))
	dlog.Info("models loaded")
	if !strings.Contains(d.String(), "level=DEBUG msg=\"models loaded\"") {
		t.Errorf("at debug level, a start-up info line is not kept as debug:\n%s", d.String())
	}
}
