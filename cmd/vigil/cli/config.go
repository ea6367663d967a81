package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/onnx"
)

// flagPaths ties every configuration flag to its key in the YAML file. A flag a command
// registers gets the file's value (when the file sets the key) before the environment and the
// command line are applied; afterwards the flag's final value is copied back into the typed
// configuration, which is then validated. Flags for lists (--source, --stream, --await,
// --webhook, --webhook-types, --webhook-streams) are handled by their commands.
//
// vigil run's --events-db (frontFlags) shares sink.events_db with vigil sink's: one key names
// the event history's file for either.
func flagPaths() map[string]string {
	return map[string]string{
		"log-level": "log.level", "log-json": "log.json",

		"nats-url": "nats.url", "nats-user": "nats.user", "nats-password": "nats.password", "nats-token": "nats.token",
		"nats-nkey": "nats.nkey_seed_file", "nats-creds": "nats.creds_file",
		"nats-ca": "nats.tls.ca_file", "nats-cert": "nats.tls.cert_file", "nats-key": "nats.tls.key_file",

		"jetstream": "jetstream.enabled", "js-replicas": "jetstream.replicas", "js-storage": "jetstream.storage",
		"results-max-age": "jetstream.results.max_age", "results-max-bytes": "jetstream.results.max_bytes",
		"events-max-age": "jetstream.events.max_age", "events-max-bytes": "jetstream.events.max_bytes",
		"js-duplicates": "jetstream.duplicates", "js-partitions": "jetstream.partitions",

		"metrics-addr": "metrics.addr",

		"nats-host": "run.nats_host", "nats-port": "run.nats_port", "store-dir": "run.store_dir",

		"fps": "ingest.fps", "max-width": "ingest.max_width", "max-height": "ingest.max_height",
		"jpeg-quality": "ingest.jpeg_quality", "full-frames": "ingest.full_frames", "decode-slots": "ingest.decode_slots", "once": "ingest.once", "realtime": "ingest.realtime", "loop": "ingest.loop",

		"deps": "analyze.deps", "heads": "analyze.heads", "on-demand-heads": "analyze.on_demand_heads", "late-heads": "analyze.late_heads",
		"workers": "analyze.workers", "max-batch": "analyze.max_batch", "max-wait": "analyze.max_wait",
		"deadline": "analyze.deadline", "keep-embeddings": "analyze.keep_embeddings",
		"gender-threshold": "analyze.gender_threshold", "liveness-threshold": "analyze.liveness_threshold",
		"face-gate": "analyze.face_gate", "detect-tiles": "analyze.detect_tiles", "device": "analyze.device",

		"jsonl": "sink.jsonl", "jsonl-append": "sink.jsonl_append", "quiet": "sink.quiet", "durable": "sink.durable",
		"deliver": "sink.deliver", "ack-wait": "sink.ack_wait", "max-ack-pending": "sink.max_ack_pending",
		"lost-after": "sink.lost_after", "jsonl-max-size": "sink.jsonl_max_size", "jsonl-max-age": "sink.jsonl_max_age",
		"jsonl-keep": "sink.jsonl_keep", "events-db": "sink.events_db", "events-dsn": "sink.events_dsn",
		"webhook-secret-file": "sink.webhook.secret_file", "webhook-identified": "sink.webhook.identified",
		"webhook-max-attempts": "sink.webhook.max_attempts", "webhook-timeout": "sink.webhook.timeout",

		"privacy": "serve.privacy",
	}
}

// emptyMeansFlagDefault lists keys whose empty value in a file leaves the flag's own default.
func emptyMeansFlagDefault(path string) bool {
	return path == "analyze.deps" || path == "analyze.device"
}

// settings is a role command's configuration, built in order: config.Default(), the YAML file
// named by --config (or VIGIL_CONFIG), VIGIL_* variables, flags, then validation.
type settings struct {
	cfg  config.Config
	src  *config.Source
	file string
	// fileVals are the values the file gave to flags, to tell later which ones the environment
	// or the command line replaced.
	fileVals map[string]string
	check    bool
}

// newSettings loads the file named by --config in args or by VIGIL_CONFIG, before the flags are
// parsed, so that its values become the flags' starting values.
func newSettings(env Env, args []string) (*settings, error) {
	s := &settings{cfg: config.Default(), fileVals: map[string]string{}}
	s.file = env.Getenv("VIGIL_CONFIG")
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				break // flag parsing reports the missing value
			}
			val = args[i+1]
		}
		s.file = val
	}
	if s.file != "" {
		cfg, src, err := config.Load(s.file)
		if err != nil {
			return nil, err
		}
		s.cfg, s.src = cfg, src
	}
	return s, nil
}

// registerCommon adds --config and --check-config.
func (s *settings) registerCommon(fs *flag.FlagSet) {
	fs.String("config", s.file, "YAML configuration file (see \"vigil config example\"); the environment and flags override it")
	fs.BoolVar(&s.check, "check-config", false, "validate the configuration (file, environment, flags), print it and exit")
}

// registerNATS adds the connection flags (nats: section).
func (s *settings) registerNATS(fs *flag.FlagSet) {
	n := &s.cfg.NATS
	fs.StringVar(&n.URL, "nats-url", n.URL, "NATS server URL(s), comma-separated; the client fails over between them")
	fs.StringVar(&n.User, "nats-user", n.User, "NATS user name (with --nats-password)")
	fs.Var(secret{&n.Password}, "nats-password", "NATS password (prefer VIGIL_NATS_PASSWORD)")
	fs.Var(secret{&n.Token}, "nats-token", "NATS token (prefer VIGIL_NATS_TOKEN)")
	fs.StringVar(&n.NKeySeedFile, "nats-nkey", n.NKeySeedFile, "file holding an nkey seed to authenticate with")
	fs.StringVar(&n.CredsFile, "nats-creds", n.CredsFile, "NATS .creds file (user JWT and seed)")
	fs.StringVar(&n.TLS.CAFile, "nats-ca", n.TLS.CAFile, "PEM file of the CAs that sign the NATS servers' certificates (turns TLS on)")
	fs.StringVar(&n.TLS.CertFile, "nats-cert", n.TLS.CertFile, "client certificate (PEM) for servers that verify clients (with --nats-key)")
	fs.StringVar(&n.TLS.KeyFile, "nats-key", n.TLS.KeyFile, "client certificate key (PEM)")
}

// registerJetStream adds the JetStream flags (jetstream: section).
func (s *settings) registerJetStream(fs *flag.FlagSet) {
	j := &s.cfg.JetStream
	fs.BoolVar(&j.Enabled, "jetstream", j.Enabled, "capture results in JetStream: analyzers wait for acknowledgements, sinks read through durable consumers")
	fs.IntVar(&j.Replicas, "js-replicas", j.Replicas, "servers each stream and consumer is stored on (3 in a 3-node cluster)")
	fs.StringVar(&j.Storage, "js-storage", j.Storage, "JetStream storage: file or memory")
	fs.DurationVar(&j.Results.MaxAge, "results-max-age", j.Results.MaxAge, "VIGIL_RESULTS discards messages older than this (0: no limit)")
	fs.Var(&j.Results.MaxBytes, "results-max-bytes", "VIGIL_RESULTS size limit, e.g. 1GiB (-1: none)")
	fs.DurationVar(&j.Events.MaxAge, "events-max-age", j.Events.MaxAge, "VIGIL_EVENTS discards messages older than this (0: no limit)")
	fs.Var(&j.Events.MaxBytes, "events-max-bytes", "VIGIL_EVENTS size limit (-1: none)")
	fs.DurationVar(&j.Duplicates, "js-duplicates", j.Duplicates, "window in which a republished result is stored only once")
	fs.IntVar(&j.Partitions, "js-partitions", j.Partitions, "store results as vigil.results.<partition>.<stream> for this many track partitions (0: none)")
}

// registerMetrics adds --metrics-addr.
func (s *settings) registerMetrics(fs *flag.FlagSet) {
	fs.StringVar(&s.cfg.Metrics.Addr, "metrics-addr", s.cfg.Metrics.Addr, "serve Prometheus metrics on this host:port at /metrics (empty: off)")
	fs.Var((*stringList)(&s.cfg.Metrics.AllowedHosts), "metrics-allowed-hosts", "host names the metrics endpoint answers to besides IP addresses, localhost, "+
		"this machine's name and --allowed-hosts, e.g. a Prometheus scraping analyze:9090 (comma-separated; other Host headers get 421)")
}

// registerRun adds the embedded server's flags (run: section).
func (s *settings) registerRun(fs *flag.FlagSet) {
	r := &s.cfg.Run
	fs.StringVar(&r.NATSHost, "nats-host", r.NATSHost, "address the embedded NATS server listens on")
	fs.IntVar(&r.NATSPort, "nats-port", r.NATSPort, "port of the embedded NATS server (0: any free port)")
	fs.StringVar(&r.StoreDir, "store-dir", r.StoreDir, "JetStream storage directory of the embedded server (default: a temporary directory)")
	fs.StringVar(&s.cfg.NATS.User, "nats-user", s.cfg.NATS.User, "user every client of the embedded NATS server must log in as (default: no login on a loopback --nats-host; "+
		"on any other host \"vigil\" with a generated password, printed at start)")
	fs.Var(secret{&s.cfg.NATS.Password}, "nats-password", "password of --nats-user on the embedded NATS server (prefer VIGIL_NATS_PASSWORD)")
}

// secret is a string flag whose value is never shown (usage defaults, errors).
type secret struct{ p *string }

func (s secret) String() string { return "" }

func (s secret) Set(v string) error {
	*s.p = v
	return nil
}

// parse applies the file to fs's flags, then the environment and args (see parse in cli.go),
// copies the flags back into the configuration and validates it whole. Errors name the file
// line for values that came from the file.
func (s *settings) parse(fs *flag.FlagSet, env Env, args []string) error {
	paths := flagPaths()
	for name, path := range paths {
		fl := fs.Lookup(name)
		if !s.src.Has(path) {
			continue
		}
		val, err := s.cfg.Get(path)
		if err != nil {
			return err
		}
		if val == "" && emptyMeansFlagDefault(path) {
			continue
		}
		if fl == nil {
			if path == "analyze.device" && fs.Lookup("heads") != nil {
				return &config.FieldError{File: s.file, Line: s.src.Line(path), Path: path, Msg: "this build has no --device flag"}
			}
			continue
		}
		if err := fs.Set(name, val); err != nil {
			return &config.FieldError{File: s.file, Line: s.src.Line(path), Path: path, Msg: fmt.Sprintf("--%s: %v", name, err)}
		}
		s.fileVals[name] = fl.Value.String()
	}
	if err := parse(fs, env, args); err != nil {
		return err
	}
	skip := map[string]bool{}
	for name, path := range paths {
		fl := fs.Lookup(name)
		if fl == nil {
			continue
		}
		if _, ok := fl.Value.(secret); ok {
			continue // bound to the configuration directly; its String hides the value
		}
		if v, fromFile := s.fileVals[name]; !fromFile || v != fl.Value.String() {
			skip[path] = true // the environment or a flag gave it
		}
		if err := s.cfg.Set(path, fl.Value.String()); err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
	}
	return s.src.Annotate(s.cfg.Validate(), skip)
}

// annotate adds the file line to err's *config.FieldErrors.
func (s *settings) annotate(err error) error { return s.src.Annotate(err, nil) }

// report prints the effective configuration for --check-config.
func (s *settings) report(env Env) error {
	b, err := s.cfg.Marshal(true)
	if err != nil {
		return err
	}
	src := "defaults"
	if s.file != "" {
		src = s.file
	}
	fmt.Fprintf(stdoutOr(env.Stdout), "# configuration OK (%s + environment + flags)\n%s", src, b)
	return nil
}

// checkRoles runs the checks config.Validate cannot (it is pure Go): head names, device syntax,
// source forms. Each error is a *config.FieldError with its key path.
func checkRoles(cfg *config.Config) error {
	var errs []error
	fail := func(path string, err error) {
		errs = append(errs, &config.FieldError{Path: path, Msg: oneLine(err)})
	}
	if _, err := analyze.ParseHeads(cfg.Analyze.Heads); err != nil {
		fail("analyze.heads", err)
	}
	if _, err := analyze.ParseHeads(cfg.Analyze.OnDemandHeads); err != nil {
		fail("analyze.on_demand_heads", err)
	}
	if _, err := analyze.ParseHeads(cfg.Analyze.LateHeads); err != nil {
		fail("analyze.late_heads", err)
	}
	if cfg.Analyze.Device != "" {
		if _, err := onnx.ParseDevice(cfg.Analyze.Device); err != nil {
			fail("analyze.device", err)
		}
	}
	for i, st := range cfg.Ingest.Streams {
		if strings.TrimSpace(st.Source) == "" {
			continue // Validate reported it
		}
		if _, _, err := ingest.Classify(st.Source); err != nil {
			fail(fmt.Sprintf("ingest.streams[%d].source", i), err)
		}
	}
	return errors.Join(errs...)
}

// configCmd is `vigil config check FILE | example | show FILE`.
func configCmd(_ context.Context, env Env, args []string) error {
	usage := func() error {
		fmt.Fprintln(env.Stderr, "Usage: vigil config check FILE   validate a configuration file (exit 1 with file:line: key: problem)")
		fmt.Fprintln(env.Stderr, "       vigil config show FILE    print the file merged with the defaults (secrets redacted)")
		fmt.Fprintln(env.Stderr, "       vigil config example      print a commented file with every key and its default")
		return errUsage
	}
	if len(args) == 0 {
		return usage()
	}
	switch args[0] {
	case "-h", "--help", "help":
		_ = usage()
		return flag.ErrHelp
	case "example":
		if len(args) != 1 {
			return usage()
		}
		_, err := stdoutOr(env.Stdout).Write(config.Example())
		return err
	case "check", "show":
		if len(args) != 2 {
			return usage()
		}
		cfg, src, err := config.Load(args[1])
		if err != nil {
			return err
		}
		if err := src.Annotate(errors.Join(cfg.Validate(), checkRoles(&cfg)), nil); err != nil {
			return err
		}
		if args[0] == "check" {
			fmt.Fprintf(stdoutOr(env.Stdout), "%s: OK\n", args[1])
			return nil
		}
		b, err := cfg.Marshal(true)
		if err != nil {
			return err
		}
		_, err = stdoutOr(env.Stdout).Write(b)
		return err
	}
	return usage()
}

// setupJetStream returns a JetStream context on nc after making sure the results and events
// streams exist, or nil when JetStream is disabled. A cluster still electing its leader is
// waited for (up to a minute).
func setupJetStream(ctx context.Context, nc *nats.Conn, cfg config.JetStream, log *slog.Logger) (jetstream.JetStream, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := bus.EnsureStreams(sctx, js, cfg, log); err != nil {
		return nil, err
	}
	return js, nil
}
