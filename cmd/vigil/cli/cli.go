// Package cli implements the vigil command line: subcommand dispatch, flags (each also settable
// from a VIGIL_* environment variable), logging setup and the orchestration of roles. The main
// package only wires it to the process.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
)

// Env is what a command invocation sees of its process.
type Env struct {
	Args           []string
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	Version        string
}

type command struct {
	name, summary string
	run           func(ctx context.Context, env Env, args []string) error
}

func commands() []command {
	return []command{
		{"run", "every role in one process with an embedded NATS server (the laptop setup)", runCmd},
		{"ingest", "the ingest role alone: read sources, publish sampled frames to NATS", ingestCmd},
		{"analyze", "the analyze role alone: frames from NATS in, face results out (with IMAGE arguments: analyze images, print JSON)", analyzeOrImagesCmd},
		{"track", "the track role alone: track ids, identity votes, heads per track, face events", trackCmd},
		{"sink", "the sink role alone: results and events from NATS to stdout, JSON lines, webhooks, an event store", sinkCmd},
		{"serve", "the face HTTP API alone: detect, analyze, verify, identify images; the face gallery", serveCmd},
		{"detect", "detect the faces in images; print JSON (vigil analyze IMAGE... adds attributes)", detectCmd},
		{"represent", "print the faces' embeddings of images as JSON", representCmd},
		{"verify", "are the faces in two images the same person? (JSON)", verifyCmd},
		{"faces", "manage the face gallery in NATS: add, list, show, rm", facesCmd},
		{"search", "where was this person seen? search a running Vigil's event store by photo (JSON)", searchCmd},
		{"classifiers", "custom image classifiers in NATS: list, register, delete, train, classify", classifiersCmd},
		{"config", "check a YAML configuration file (config check FILE), print an example, show one merged with the defaults", configCmd},
		{"bench", "measure model latency, batching and analyzer throughput on this machine", benchCmd},
		{"eval", "measure the face models on labelled photos: eval faces DIR (verification), eval detect DIR (face counts)", evalCmd},
		{"version", "print the version", func(_ context.Context, env Env, _ []string) error {
			fmt.Fprintf(env.Stdout, "vigil %s\n", env.Version)
			return nil
		}},
	}
}

// errUsage marks errors already reported with usage; Main exits 2 for them.
var errUsage = errors.New("usage")

// Main runs the command line and returns the process exit code: 0 on success, 2 for usage
// errors, 1 for everything else (with one line on stderr saying what to do).
func Main(ctx context.Context, env Env) int {
	if len(env.Args) == 0 || env.Args[0] == "-h" || env.Args[0] == "--help" || env.Args[0] == "help" {
		usage(env.Stdout)
		return 0
	}
	if env.Args[0] == "--version" || env.Args[0] == "-version" {
		env.Args[0] = "version"
	}
	for _, c := range commands() {
		if c.name != env.Args[0] {
			continue
		}
		err := c.run(ctx, env, env.Args[1:])
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		default:
			fmt.Fprintf(env.Stderr, "vigil %s: %s\n", c.name, oneLine(err))
			return 1
		}
	}
	fmt.Fprintf(env.Stderr, "vigil: unknown command %q (run \"vigil --help\")\n", env.Args[0])
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Vigil: live video in, face analytics out, over NATS.")
	fmt.Fprintln(w, "\nUsage: vigil COMMAND [flags]   (vigil COMMAND --help for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nEvery flag can also be set from the environment: --nats-url is VIGIL_NATS_URL, and so on.")
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// parse parses args into fs after applying VIGIL_* environment variables (flags win over the
// environment). A usage problem is reported on stderr and returned as errUsage.
func parse(fs *flag.FlagSet, env Env, args []string) error {
	fs.SetOutput(env.Stderr)
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "VIGIL_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := env.Getenv(name); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		fmt.Fprintf(env.Stderr, "vigil %s: %v\n", fs.Name(), envErr)
		return errUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "vigil %s: unexpected argument %q (flags only; see --help)\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	if err := finiteFlags(fs); err != nil {
		fmt.Fprintf(env.Stderr, "vigil %s: %v\n", fs.Name(), err)
		return errUsage
	}
	return nil
}

// newFlagSet returns a flag set whose usage text lists flags sorted, under a summary line.
func newFlagSet(name, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: vigil %s [flags]\n\n%s\n\nFlags (each also from VIGIL_<FLAG>, e.g. --nats-url is VIGIL_NATS_URL):\n", name, summary)
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		sort.Strings(names)
		for _, n := range names {
			f := fs.Lookup(n)
			def := ""
			if f.DefValue != "" && f.DefValue != "[]" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(w, "  --%s\n        %s%s\n", f.Name, f.Usage, def)
		}
	}
	return fs
}

// stringList is a repeatable string flag; from the environment it takes a comma-separated list.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*s = append(*s, part)
		}
	}
	return nil
}

// logFlags are the logging flags every command takes.
type logFlags struct {
	level string
	json  bool
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&l.json, "log-json", false, "write logs as JSON lines instead of text")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if l.json {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// stdoutOr returns w, or os.Stdout when w is nil.
func stdoutOr(w io.Writer) io.Writer {
	if w == nil {
		return os.Stdout
	}
	return w
}
