package cli

import (
	"errors"
	"flag"
	"strconv"

	"github.com/vigil-video/vigil/pkg/config"
)

// printFlag is vigil run's --print: a boolean flag that remembers whether it was given, since
// its default depends on --once.
type printFlag struct{ set, v bool }

func (p *printFlag) String() string {
	if p == nil {
		return "false"
	}
	return strconv.FormatBool(p.v)
}

func (p *printFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	p.v, p.set = v, true
	return nil
}

func (p *printFlag) IsBoolFlag() bool { return true }

// registerPrint adds vigil run's --print; call it after register. Results of vigil run always
// reach NATS, the web view and the history, so sinks never refuses a run that prints nothing.
func (f *sinkFlags) registerPrint(fs *flag.FlagSet) {
	f.elsewhere = true
	fs.Var(&f.print, "print", "print every result as a JSON line on stdout (default: only with --once, a batch job whose output is stdout; "+
		"a live run's results are in the web view, on NATS and in the history, and at 5 a second per stream they would bury the log)")
}

// applyPrint decides, once the flags are parsed, whether vigil run prints its results on
// stdout: as --print says when given, else only with --once; never with --quiet (sink.quiet).
func (f *sinkFlags) applyPrint(once bool) error {
	if f.print.set && f.print.v && f.cfg.Quiet {
		return errors.New("--print and --quiet (sink.quiet) contradict each other: give one")
	}
	print := once
	if f.print.set {
		print = f.print.v
	}
	if !print {
		f.cfg.Quiet = true
	}
	return nil
}

// checkSinkQuiet is vigil sink's check that results go somewhere: --quiet (sink.quiet) needs a
// JSON-lines file, a webhook or an event store. (vigil run's results always go to NATS, the web
// view and its history: it has no such check.)
func checkSinkQuiet(cfg *config.Config) error {
	s := cfg.Sink
	if s.Quiet && s.JSONL == "" && len(s.Webhook.URLs) == 0 && !s.StoresEvents() {
		return &config.FieldError{Path: "sink.quiet", Msg: "quiet without jsonl, webhook.urls, events_db or events_dsn leaves results nowhere to go"}
	}
	return nil
}
