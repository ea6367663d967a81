package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/metrics"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/privacy"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/vision"
	"github.com/vigil-video/vigil/sink"
	"github.com/vigil-video/vigil/sink/eventstore"
	"github.com/vigil-video/vigil/sink/eventstore/postgres"
	"github.com/vigil-video/vigil/sink/eventstore/snapshot"
	"github.com/vigil-video/vigil/sink/eventstore/sqlite"
	"github.com/vigil-video/vigil/sink/jsonl"
	"github.com/vigil-video/vigil/sink/webhook"
)

// DemoVideo is the recording `vigil run` analyses when no --source is given (Debian opencv-doc).
const DemoVideo = "/usr/share/doc/opencv-doc/examples/data/Megamind.avi"

// ingestFlags configure the ingest role.
type ingestFlags struct {
	sources, streams    stringList
	fps                 float64
	maxWidth, maxHeight int
	quality             int
	fullFrames          bool
	decodeSlots         int
	once                bool
	realtime, loop      bool
}

func (f *ingestFlags) register(fs *flag.FlagSet, demo bool) {
	help := "video source: a file path, file://, rtsp://, rtsps://, http(s):// URL or device:N (repeatable)"
	if demo {
		help += "; default the demo video " + DemoVideo
	}
	fs.Var(&f.sources, "source", help)
	d := config.Default().Ingest
	fs.Var(&f.streams, "stream", "stream name for the --source at the same position (repeatable; default derived from the source; [A-Za-z0-9_-], at most 64)")
	fs.Float64Var(&f.fps, "fps", d.FPS, "frames per second of video analysed per stream")
	fs.IntVar(&f.maxWidth, "max-width", d.MaxWidth, "published frames are scaled down to at most this width")
	fs.IntVar(&f.maxHeight, "max-height", d.MaxHeight, "published frames are scaled down to at most this height")
	fs.IntVar(&f.quality, "jpeg-quality", d.JPEGQuality, "JPEG quality of published frames, 1-100")
	fs.BoolVar(&f.fullFrames, "full-frames", d.FullFrames, "publish every frame at full size (default: frames at least 1280 wide that request no heads go at half size, "+
		"what detection needs; set it when analyzers run heads on every frame)")
	fs.IntVar(&f.decodeSlots, "decode-slots", d.DecodeSlots, "file sources decoding a frame at the same time, the others waiting their turn "+
		"(0: one per CPU; -1: no bound): the analyzers keep their share of the cores however many streams there are")
	fs.BoolVar(&f.once, "once", d.Once, "read each file source to its end once, wait until every frame has a result or a counted drop, then exit")
	fs.BoolVar(&f.realtime, "realtime", d.Realtime, "pace file sources at their own frame rate, as a camera would (ignored with --once)")
	fs.BoolVar(&f.loop, "loop", d.Loop, "restart file sources at their end (ignored with --once)")
}

// slots returns the DecodeSlots --decode-slots asks for, for every ingest of the process.
func (f *ingestFlags) slots() *ingest.DecodeSlots {
	n := f.decodeSlots
	if n == 0 {
		n = runtime.NumCPU()
	}
	return ingest.NewDecodeSlots(n)
}

// streamConfigs turns the flags into validated stream configurations. The --source and
// --stream flags, when given, replace the configuration file's streams (fromFile).
func (f *ingestFlags) streamConfigs(fromFile []config.Stream) ([]ingest.StreamConfig, error) {
	if len(f.streams) > len(f.sources) {
		return nil, fmt.Errorf("%d --stream names for %d --source flags", len(f.streams), len(f.sources))
	}
	list := fromFile
	if len(f.sources) > 0 {
		list = nil
		for i, src := range f.sources {
			st := config.Stream{Source: src}
			if i < len(f.streams) {
				st.Name = f.streams[i]
			}
			list = append(list, st)
		}
	}
	var out []ingest.StreamConfig
	used := map[string]bool{}
	taken := map[string]bool{} // explicit names, which derived names avoid
	for _, st := range list {
		taken[st.Name] = st.Name != ""
	}
	for _, st := range list {
		name, src := st.Name, st.Source
		if name == "" {
			avoid := map[string]bool{}
			for k, v := range taken {
				avoid[k] = v
			}
			for k, v := range used {
				avoid[k] = avoid[k] || v
			}
			name = uniqueName(StreamNameFor(src), avoid)
		}
		if used[name] {
			return nil, fmt.Errorf("stream name %q used twice: give each --source its own --stream", name)
		}
		used[name] = true
		fps := f.fps
		if st.FPS > 0 {
			fps = st.FPS
		}
		c := ingest.StreamConfig{Name: name, Source: src, FPS: fps, MaxWidth: f.maxWidth, MaxHeight: f.maxHeight,
			JPEGQuality: f.quality, Once: f.once, Loop: f.loop && !f.once, Realtime: f.realtime && !f.once, FullFrames: f.fullFrames}
		c.SetDefaults()
		if fps == 0 {
			c.FPS = 0 // every frame
		}
		if err := c.Validate(); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// StreamNameFor derives a valid stream name from a source: a file's base name without extension,
// a URL's host and path, a device's index; characters outside [A-Za-z0-9_-] become '-'.
func StreamNameFor(src string) string {
	base := src
	if kind, target, err := ingest.Classify(src); err == nil {
		switch kind {
		case ingest.KindFile:
			base = strings.TrimSuffix(filepath.Base(target), filepath.Ext(target))
		case ingest.KindDevice:
			base = "camera" + target
		case ingest.KindNetwork:
			base = target[strings.Index(target, "://")+3:]
			if at := strings.LastIndex(base, "@"); at >= 0 {
				base = base[at+1:] // never put credentials in a subject
			}
		}
	}
	b := []byte(strings.ToLower(base))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	name := strings.Trim(string(b), "-")
	if len(name) > frame.MaxStreamLen {
		name = name[:frame.MaxStreamLen]
	}
	if name == "" {
		name = "stream"
	}
	return name
}

func uniqueName(name string, used map[string]bool) string {
	if !used[name] {
		return name
	}
	for i := 2; ; i++ {
		suffix := fmt.Sprintf("-%d", i)
		cand := name
		if len(cand)+len(suffix) > frame.MaxStreamLen {
			cand = cand[:frame.MaxStreamLen-len(suffix)]
		}
		if !used[cand+suffix] {
			return cand + suffix
		}
	}
}

// probeFiles opens every file source and decodes its first frame, so an unreadable or corrupt
// file is reported before anything starts.
func probeFiles(ctx context.Context, streams []ingest.StreamConfig) error {
	for _, s := range streams {
		if kind, _, _ := ingest.Classify(s.Source); kind != ingest.KindFile {
			continue
		}
		src, err := ingest.Open(ctx, s.Source, ingest.OpenOptions{})
		if err != nil {
			return fmt.Errorf("stream %s: %w", s.Name, err)
		}
		raw, err := src.Read(ctx)
		src.Close()
		if err != nil {
			if errors.Is(err, ingest.ErrEndOfStream) {
				err = fmt.Errorf("source %s: no video frames", s.Source)
			}
			return fmt.Errorf("stream %s: %w", s.Name, err)
		}
		raw.Mat.Close()
	}
	return nil
}

// analyzeFlags configure the analyze role.
type analyzeFlags struct {
	deps           string
	heads          string
	onDemand       string
	lateHeads      string   // --late-heads
	late           []string // its heads, parsed by loadAnalyzer (empty, not nil, for none)
	workers        int
	maxBatch       int
	maxWait        time.Duration
	deadline       time.Duration
	keepEmbeddings bool
	genderThr      float64
	livenessThr    float64
	faceGate       float64    // --face-gate: analyze.PipelineConfig.MirrorTolerance
	detectTiles    bool       // --detect-tiles: analyze.PipelineConfig.Tiles
	device         deviceFlag // --device, gpu.go
}

func (f *analyzeFlags) register(fs *flag.FlagSet) {
	d := config.Default().Analyze
	fs.StringVar(&f.deps, "deps", models.DefaultDepsDir(), "directory \"make setup\" filled with onnxruntime and the models")
	fs.StringVar(&f.heads, "heads", d.Heads, "face heads to run on every face of every frame: comma-separated from "+strings.Join(analyze.AllHeads, ", ")+
		"; or all, default ("+strings.Join(analyze.DefaultHeads, ",")+"), none (detection and landmarks only; the track role asks for heads per track). "+
		"default or all is the every-frame mode")
	fs.StringVar(&f.onDemand, "on-demand-heads", d.OnDemandHeads, "heads loaded but run only on frames that request them (the track role asks per track: new, until its identity settles, on a schedule, on a better view); same syntax as --heads")
	fs.StringVar(&f.lateHeads, "late-heads", d.LateHeads, "on-demand heads that, requested on a live frame, run after its result is published, at low priority, "+
		"joining the track a moment later (results never wait for them); same syntax as --heads, none: every head runs with its frame")
	fs.IntVar(&f.workers, "workers", d.Workers, "batches analysed in parallel, one onnxruntime thread each (0: one per CPU)")
	fs.IntVar(&f.maxBatch, "max-batch", d.MaxBatch, "most frames per model batch (on CPU small batches and one worker per core win; raise it for GPUs)")
	fs.DurationVar(&f.maxWait, "max-wait", d.MaxWait, "how long a batch waits for more frames after its first")
	fs.DurationVar(&f.deadline, "deadline", d.Deadline, "drop frames older than this when a worker takes them (0: never; --once sets 0)")
	fs.BoolVar(&f.keepEmbeddings, "keep-embeddings", d.KeepEmbeddings, "include each face's 512-d embedding in results")
	fs.Float64Var(&f.genderThr, "gender-threshold", d.GenderThreshold, "gender score above which a face is labelled male")
	fs.Float64Var(&f.livenessThr, "liveness-threshold", d.LivenessThreshold, "liveness score from which a face is called real")
	registerFaceGate(fs, &f.faceGate)
	fs.BoolVar(&f.detectTiles, "detect-tiles", d.DetectTiles, "also detect on overlapping 480x360 tiles of larger frames, finding faces under about 20 px; "+
		"one more detector run per tile (6 for 1024x559, 24 for 1080p; vigil bench shows the cost)")
	f.device.register(fs)
}

// analyzer is a loaded pipeline and what it owns.
type analyzer struct {
	rt       *onnx.Runtime
	models   *analyze.ModelSet
	pipeline *analyze.Pipeline
}

func (a *analyzer) Close() {
	if a.models != nil {
		_ = a.models.Close()
	}
	if a.rt != nil {
		_ = a.rt.Close()
	}
}

// loadAnalyzer verifies and loads onnxruntime and the models the heads need.
func (f *analyzeFlags) loadAnalyzer(log *slog.Logger) (*analyzer, error) {
	heads, err := analyze.ParseHeads(f.heads)
	if err != nil {
		return nil, fmt.Errorf("--heads: %w", err)
	}
	onDemand, err := analyze.ParseHeads(f.onDemand)
	if err != nil {
		return nil, fmt.Errorf("--on-demand-heads: %w", err)
	}
	late, err := analyze.ParseHeads(f.lateHeads)
	if err != nil {
		return nil, fmt.Errorf("--late-heads: %w", err)
	}
	f.late = append([]string{}, late...)
	man, err := models.Load()
	if err != nil {
		return nil, err
	}
	lib, dev, err := f.runtime(man, log)
	if err != nil {
		return nil, err
	}
	a := &analyzer{}
	if a.rt, err = onnx.NewRuntime(lib); err != nil {
		return nil, err
	}
	a.models = analyze.NewModelSet(a.rt, man, f.deps, onnx.SessionOptions{IntraOpThreads: 1, MaxBatch: max(f.maxBatch, 1) * 4, Device: dev, Log: log})
	a.pipeline, err = analyze.NewPipeline(analyze.PipelineConfig{
		Heads: heads, OnDemand: onDemand, KeepEmbeddings: f.keepEmbeddings,
		GenderThreshold: float32(f.genderThr), LivenessThreshold: float32(f.livenessThr),
		MirrorTolerance: mirrorTolerance(f.faceGate), Tiles: tilesIf(f.detectTiles),
	}, a.models.Get)
	if err == nil {
		err = f.settleDevice(a.models, log)
	}
	if err != nil {
		a.Close()
		return nil, err
	}
	log.Info("models loaded", "heads", strings.Join(a.pipeline.Heads(), ","),
		"on_demand_heads", strings.Join(a.pipeline.OnDemandHeads(), ","), "onnxruntime", a.rt.Version())
	return a, nil
}

// role builds the analyze role; with js set results and drops are published with JetStream
// acknowledgements.
func (f *analyzeFlags) role(nc *nats.Conn, js jetstream.JetStream, a *analyzer, log *slog.Logger) *analyze.Role {
	var pub bus.Publisher
	if js != nil {
		pub = &bus.StreamPublisher{JS: js}
	}
	return &analyze.Role{Conn: nc, Analyzer: a.pipeline, Workers: f.workers, MaxBatch: f.maxBatch, MaxWait: f.maxWait,
		Deadline: f.deadline, Publisher: pub, LateHeads: f.late, Log: log}
}

// sinkFlags configure the sink role; they are bound to the configuration's sink: section.
//
// register adds the flags of the results the role writes itself (stdout, the JSON-lines file,
// rotated or not), which vigil run shares. registerWebhooks and registerEventStore add those of
// the outputs that read through consumers of their own, which openOutputs opens (only those
// registered: vigil run has an event store of its own, and its --events-db). A command that
// registers them runs them beside the sink role:
//
//	outs, err := sf.openOutputs(ctx, nc, js, log) // after sf.sinks
//	defer outs.close()                             // after the roles returned
//	go func() { done <- outs.run(runCtx, stop) }() // beside the sink role, same runCtx
type sinkFlags struct {
	cfg *config.Sink
	// log receives the rotating writer's logs (nil: slog's default). vigil sink sets it.
	log *slog.Logger
	// webhooks and store are set by registerWebhooks and registerEventStore: the command runs
	// those outputs.
	webhooks, store bool
	// privacy is --privacy, registered with the event store: its snapshots are blurred as vigil
	// run's and vigil serve's are (key serve.privacy, shared with them).
	privacy string
	// writer is the rotating JSON-lines writer sinks opened, if any (its metrics).
	writer *jsonl.Writer
	// elsewhere is set by registerPrint (vigil run): the results reach NATS, the web view and
	// the history whatever the sinks, so printing none is fine. print is --print.
	elsewhere bool
	print     printFlag
}

func (f *sinkFlags) register(fs *flag.FlagSet, cfg *config.Sink) {
	f.cfg = cfg
	fs.StringVar(&cfg.JSONL, "jsonl", cfg.JSONL, "also write results as JSON lines to this file (truncated at start, unless --jsonl-append)")
	fs.BoolVar(&cfg.JSONLAppend, "jsonl-append", cfg.JSONLAppend, "append to the --jsonl file instead of truncating it (a restarted sink keeps what was written)")
	fs.Var(&cfg.JSONLMaxSize, "jsonl-max-size", "rotate the --jsonl file before it grows past this size, e.g. 64MiB: it is renamed to NAME-<UTC time>.EXT beside it and a new one started (0: no size limit)")
	fs.DurationVar(&cfg.JSONLMaxAge, "jsonl-max-age", cfg.JSONLMaxAge, "rotate the --jsonl file at the first write once it has been written this long, e.g. 24h (0: no age limit)")
	fs.IntVar(&cfg.JSONLKeep, "jsonl-keep", cfg.JSONLKeep, "rotated --jsonl files kept; older ones are removed (-1: keep every one)")
	fs.BoolVar(&cfg.Quiet, "quiet", cfg.Quiet, "do not print results on stdout")
	fs.StringVar(&cfg.Durable, "durable", cfg.Durable, "JetStream durable consumer the sink reads through; a restarted sink resumes from it, sinks sharing it share the work")
	fs.StringVar(&cfg.Deliver, "deliver", cfg.Deliver, "where a new durable consumer starts: all (every stored result) or new")
	fs.DurationVar(&cfg.AckWait, "ack-wait", cfg.AckWait, "a delivered result not acknowledged within this is redelivered")
	fs.IntVar(&cfg.MaxAckPending, "max-ack-pending", cfg.MaxAckPending, "most results delivered and not yet acknowledged")
	fs.DurationVar(&cfg.LostAfter, "lost-after", cfg.LostAfter, "an ended stream's frames still without result or drop this long after its last outcome are counted lost")
}

// registerWebhooks adds the webhook flags, bound to sink.webhook; call it after register. The
// list flags replace the file's lists (listFlag).
func (f *sinkFlags) registerWebhooks(fs *flag.FlagSet) {
	f.webhooks = true
	w := &f.cfg.Webhook
	fs.Var(&listFlag{dst: &w.URLs}, "webhook", "POST results and track events as JSON to this http(s) URL (repeatable; comma-separated from VIGIL_WEBHOOK). "+
		"With JetStream the n-th webhook reads through durable consumers of its own, --durable + \"-webhook-<n>\", so a receiver that is down holds up nothing else: keep the order when adding one")
	fs.StringVar(&w.SecretFile, "webhook-secret-file", w.SecretFile, "file holding the secret that signs every webhook delivery (HMAC-SHA256 in X-Vigil-Signature; receivers check it with webhook.Verify)")
	fs.Var(&listFlag{dst: &w.Types}, "webhook-types", "deliver only these payload types to webhooks: "+strings.Join(webhook.Types(), ", ")+" (comma-separated or repeated; default all)")
	fs.Var(&listFlag{dst: &w.Streams}, "webhook-streams", "deliver only these streams' results and events to webhooks (comma-separated or repeated; default every stream)")
	fs.BoolVar(&w.Identified, "webhook-identified", w.Identified, "deliver to webhooks only faces with an identity (results) and events with one")
	fs.IntVar(&w.MaxAttempts, "webhook-max-attempts", w.MaxAttempts, "attempts per webhook delivery, the first included (timeouts, 408, 429 and 5xx are retried with backoff); "+
		"after the last the document is redelivered later (JetStream)")
	fs.DurationVar(&w.Timeout, "webhook-timeout", w.Timeout, "bound on one webhook attempt (connect, send, answer)")
}

// registerEventStore adds --events-db and --events-dsn (vigil sink), bound to sink.events_db and
// sink.events_dsn; call it after register.
func (f *sinkFlags) registerEventStore(fs *flag.FlagSet) {
	f.store = true
	cfg := f.cfg
	fs.StringVar(&cfg.EventsDB, "events-db", cfg.EventsDB, "SQLite file (created if missing) to store the track events, with a face snapshot each, and a summary "+
		"of every result with a face: the history vigil serve --events-db answers at /v1/history/. Reads through its own consumers, --durable + \"-eventstore\"")
	fs.Var(secret{&cfg.EventsDSN}, "events-dsn", "store that history in PostgreSQL instead: postgres://user@host/db or \"host=... dbname=...\" (prefer VIGIL_EVENTS_DSN: flags show in the process list)")
	fs.StringVar(&f.privacy, "privacy", config.Default().Serve.Privacy, "blur faces, irreversibly, in the event snapshots stored with --events-db or --events-dsn "+
		"(give vigil serve the same mode for what it shows): off, blur-unknown (events without identity) or blur-all")
}

// listFlag is a repeatable string flag bound to a list of the configuration, so that the
// whole configuration validates with it: its first Set replaces the list the file gave, later
// ones add to it (the environment's comma-separated value and the command line's flags
// together). Each value may itself be comma-separated.
type listFlag struct {
	dst *[]string
	set bool
}

func (l *listFlag) String() string {
	if l == nil || l.dst == nil {
		return ""
	}
	return strings.Join(*l.dst, ",")
}

func (l *listFlag) Set(v string) error {
	if !l.set {
		*l.dst, l.set = nil, true
	}
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l.dst = append(*l.dst, part)
		}
	}
	return nil
}

// rotates reports whether the JSON-lines file is rotated (a size or age limit is set).
func (f *sinkFlags) rotates() bool { return f.cfg.JSONLMaxSize > 0 || f.cfg.JSONLMaxAge > 0 }

// hasOutputs reports whether the command runs webhooks or an event store.
func (f *sinkFlags) hasOutputs() bool {
	return (f.webhooks && len(f.cfg.Webhook.URLs) > 0) || (f.store && f.cfg.StoresEvents())
}

// sinks opens the configured sinks: stdout unless quiet, the JSON-lines file (a rotating
// jsonl.Writer when --jsonl-max-size or --jsonl-max-age is set), and a Prometheus sink (with
// the writer's metrics) when reg is not nil. With quiet and no file, the results must go to a
// registered webhook or event store; the role then only counts them.
func (f *sinkFlags) sinks(env Env, reg prometheus.Registerer) ([]sink.Sink, error) {
	var out []sink.Sink
	if !f.cfg.Quiet {
		out = append(out, sink.NewJSONLines(stdoutOr(env.Stdout)))
	}
	if f.cfg.JSONL != "" && f.rotates() {
		maxBytes := int64(f.cfg.JSONLMaxSize)
		if maxBytes <= 0 {
			maxBytes = -1 // rotation by age only
		}
		w := &jsonl.Writer{Path: f.cfg.JSONL, MaxBytes: maxBytes, MaxAge: f.cfg.JSONLMaxAge, Keep: f.cfg.JSONLKeep,
			Truncate: !f.cfg.JSONLAppend, Log: f.log}
		if err := w.Initialize(); err != nil {
			closeSinks(out)
			return nil, fmt.Errorf("--jsonl: %w", err)
		}
		f.writer = w
		out = append(out, w)
	} else if f.cfg.JSONL != "" {
		j, err := sink.OpenJSONLinesFile(f.cfg.JSONL, f.cfg.JSONLAppend)
		if err != nil {
			closeSinks(out)
			return nil, err
		}
		out = append(out, j)
	}
	if len(out) == 0 && !f.hasOutputs() && !f.elsewhere {
		if f.webhooks || f.store {
			return nil, errors.New("--quiet without --jsonl, --webhook, --events-db or --events-dsn leaves results nowhere to go")
		}
		return nil, errors.New("--quiet without --jsonl leaves results nowhere to go")
	}
	if reg != nil {
		p, err := sink.NewPrometheus(reg)
		if err == nil && f.writer != nil {
			err = reg.Register(jsonl.NewCollector(f.writer))
		}
		if err != nil {
			closeSinks(out)
			return nil, err
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		out = append(out, countOnly{}) // the role still counts progress and honours --await
	}
	return out, nil
}

// role builds the sink role; js nil reads with core NATS.
func (f *sinkFlags) role(nc *nats.Conn, js jetstream.JetStream, sinks []sink.Sink, log *slog.Logger) *sink.Role {
	return &sink.Role{Conn: nc, Sinks: sinks, Await: f.cfg.Await, JetStream: js, Durable: f.cfg.Durable,
		DeliverNew: f.cfg.Deliver == "new", AckWait: f.cfg.AckWait, MaxAckPending: f.cfg.MaxAckPending,
		LostAfter: lostAfter(f.cfg.LostAfter), Log: log}
}

// countOnly is the sink of a role whose results all go to outputs of their own: it takes every
// result and keeps nothing.
type countOnly struct{}

func (countOnly) Write(context.Context, result.Result) error { return nil }
func (countOnly) Close() error                               { return nil }

// keepOpen hands a sink to a role, which closes its sinks when it returns, without letting the
// role close it: its owner closes it once every reader (role and event consumer) is done.
type keepOpen struct{ sink.Sink }

func (keepOpen) Close() error { return nil }

// sinkOutputs are vigil sink's outputs that read through durable consumers of their own, so
// that one failing destination holds up no other: every webhook (results and events, consumers
// <durable>-webhook-<n>) and the event store (events with snapshots and result summaries,
// consumers <durable>-eventstore). Each has a sink.Role for results and an eventstore.Consumer
// for events, as its filter needs. Without JetStream they subscribe with core NATS.
type sinkOutputs struct {
	hooks     []*webhook.Sink
	store     *eventstore.Store
	ring      *snapshot.Ring
	roles     []*sink.Role
	consumers []*eventstore.Consumer
}

// openOutputs builds the webhooks and opens the event store (migrating its schema) and the
// snapshot ring (subscribed to the frames), those whose flags the command registered; run
// starts reading. On error nothing stays open.
func (f *sinkFlags) openOutputs(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, log *slog.Logger) (_ *sinkOutputs, err error) {
	o := &sinkOutputs{}
	defer func() {
		if err != nil {
			o.close()
		}
	}()
	cfg := f.cfg
	side := func(name, durable string, s sink.Sink) *sink.Role {
		return &sink.Role{Conn: nc, Sinks: []sink.Sink{keepOpen{s}}, JetStream: js, Durable: durable,
			DeliverNew: cfg.Deliver == "new", AckWait: cfg.AckWait, MaxAckPending: cfg.MaxAckPending,
			LostAfter: -1, Log: log.With("output", name)} // the main role counts progress and lost frames
	}
	consumer := func(name, durable string, streams []string, s eventstore.EventSink) *eventstore.Consumer {
		return &eventstore.Consumer{Conn: nc, Sinks: []eventstore.EventSink{s}, Streams: streams, JetStream: js,
			Durable: durable, DeliverNew: cfg.Deliver == "new", AckWait: cfg.AckWait, Log: log.With("output", name)}
	}

	var w config.Webhook
	if f.webhooks {
		w = cfg.Webhook
	}
	var secretKey []byte
	if len(w.URLs) > 0 && w.SecretFile != "" {
		b, err := os.ReadFile(w.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("--webhook-secret-file: %w", err)
		}
		if secretKey = bytes.TrimSpace(b); len(secretKey) == 0 {
			return nil, fmt.Errorf("--webhook-secret-file %s is empty", w.SecretFile)
		}
	}
	filter := webhook.Filter{Streams: w.Streams, Types: w.Types, Identified: w.Identified}
	results := len(w.Types) == 0 || slices.Contains(w.Types, webhook.TypeResult)
	events := len(w.Types) == 0 || slices.ContainsFunc(w.Types, func(t string) bool { return t != webhook.TypeResult })
	for i, u := range w.URLs {
		name := fmt.Sprintf("webhook-%d", i+1)
		h := &webhook.Sink{Name: name, URL: u, Secret: secretKey, Filter: filter, Timeout: w.Timeout, MaxAttempts: w.MaxAttempts,
			Log: log.With("output", name)}
		if err := h.Initialize(); err != nil {
			return nil, fmt.Errorf("--webhook #%d: %w", i+1, err)
		}
		o.hooks = append(o.hooks, h)
		durable := cfg.Durable + "-" + name
		if results {
			o.roles = append(o.roles, side(name, durable, h))
		}
		if events {
			o.consumers = append(o.consumers, consumer(name, durable, w.Streams, h))
		}
	}

	if f.store && cfg.StoresEvents() {
		mode, err := privacy.ParseMode(f.privacy)
		if err != nil {
			return nil, fmt.Errorf("--privacy: %w", err)
		}
		store := &eventstore.Store{Log: log.With("output", "eventstore")}
		if err := openEventStore(ctx, cfg.EventsDB, cfg.EventsDSN, store); err != nil {
			return nil, err
		}
		o.store = store
		o.ring = &snapshot.Ring{Conn: nc, Crop: snapshotCrop, Log: log.With("output", "eventstore")}
		if err := o.ring.Start(ctx); err != nil {
			return nil, err
		}
		durable := cfg.Durable + "-eventstore"
		o.roles = append(o.roles, side("eventstore", durable, store))
		c := consumer("eventstore", durable, nil, store)
		c.Snapshots, c.Privacy = o.ring, mode
		o.consumers = append(o.consumers, c)
	}
	return o, nil
}

// openEventStore opens st in the SQLite file db or, with dsn set, in PostgreSQL ("off" as db
// is none: an error). The caller closes st.
func openEventStore(ctx context.Context, db, dsn string, st *eventstore.Store) error {
	switch {
	case dsn != "":
		if err := postgres.Open(ctx, dsn, st); err != nil {
			return fmt.Errorf("--events-dsn %s: %w", config.RedactDSN(dsn), err)
		}
	case db != "" && db != "off":
		if err := sqlite.Open(ctx, db, st); err != nil {
			return fmt.Errorf("--events-db: %w", err)
		}
	default:
		return errors.New("no --events-db or --events-dsn")
	}
	return nil
}

// run runs every output's role and consumer until ctx ends (each role then catches up with what
// the stream holds, as the sink role does) and returns once all have returned. The first to fail
// calls stop, so that the command ends; run returns the failures.
func (o *sinkOutputs) run(ctx context.Context, stop context.CancelFunc) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(what string, err error) {
		if err == nil {
			return
		}
		mu.Lock()
		errs = append(errs, fmt.Errorf("%s: %w", what, err))
		mu.Unlock()
		stop()
	}
	for _, r := range o.roles {
		wg.Go(func() { fail(r.Durable, r.Run(ctx)) })
	}
	for _, c := range o.consumers {
		wg.Go(func() { fail(c.Durable+" (events)", c.Run(ctx)) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// collectors are the outputs' metrics: webhook deliveries, the event store, the snapshot ring,
// the event consumers, and vigil_sink_delivered_total with the rotating writer w (may be nil).
func (o *sinkOutputs) collectors(w *jsonl.Writer) []prometheus.Collector {
	var out []prometheus.Collector
	if len(o.hooks) > 0 {
		out = append(out, webhook.NewCollector(o.hooks...))
	}
	if o.store != nil {
		out = append(out, o.store.Collector(), o.ring.Collector())
	}
	if len(o.consumers) > 0 {
		out = append(out, eventConsumersMetrics(o.consumers))
	}
	type delivered struct {
		name string
		n    func() uint64
	}
	var ds []delivered
	if w != nil {
		ds = append(ds, delivered{"jsonl", w.Delivered})
	}
	for _, h := range o.hooks {
		ds = append(ds, delivered{h.Name, h.Delivered})
	}
	if o.store != nil {
		ds = append(ds, delivered{"eventstore", o.store.Delivered})
	}
	if len(ds) > 0 {
		out = append(out, metrics.NewCollector([]metrics.Family{{Name: "vigil_sink_delivered_total",
			Help: "Documents an output took: lines written (jsonl), deliveries accepted (webhook-<n>), events and result summaries stored (eventstore).",
			Type: prometheus.CounterValue, Labels: []string{"sink"},
			Collect: func() []metrics.Sample {
				s := make([]metrics.Sample, 0, len(ds))
				for _, d := range ds {
					s = append(s, metrics.Sample{Labels: []string{d.name}, Value: float64(d.n())})
				}
				return s
			}}}))
	}
	return out
}

// eventConsumersMetrics exports the Stats of several event consumers under the names of
// eventstore.Consumer.Collector (which a registry takes only once), labelled by durable.
func eventConsumersMetrics(cs []*eventstore.Consumer) *metrics.Collector {
	each := func(f func(eventstore.ConsumerStats) []float64, outcomes ...string) func() []metrics.Sample {
		return func() []metrics.Sample {
			var out []metrics.Sample
			for _, c := range cs {
				for i, v := range f(c.Stats()) {
					out = append(out, metrics.Sample{Labels: []string{c.Durable, outcomes[i]}, Value: v})
				}
			}
			return out
		}
	}
	l, counter := []string{"consumer", "outcome"}, prometheus.CounterValue
	return metrics.NewCollector([]metrics.Family{
		{Name: "vigil_events_consumed_total", Help: "Track events handled: ok (every event sink took it), failed (redelivered with JetStream), invalid (dropped).",
			Type: counter, Labels: l, Collect: each(func(s eventstore.ConsumerStats) []float64 {
				return []float64{float64(s.Events), float64(s.Failed), float64(s.Invalid)}
			}, "ok", "failed", "invalid")},
		{Name: "vigil_events_snapshots_total", Help: "Face snapshots cut for events (cut), or not (missed: the frame was no longer held or did not crop).",
			Type: counter, Labels: l, Collect: each(func(s eventstore.ConsumerStats) []float64 {
				return []float64{float64(s.Snapshots), float64(s.SnapshotMisses)}
			}, "cut", "missed")},
	})
}

// report logs what each output delivered.
func (o *sinkOutputs) report(log *slog.Logger) {
	for _, h := range o.hooks {
		s := h.Stats()
		log.Info("webhook summary", "webhook", h.Name, "delivered", s.Delivered, "filtered", s.Filtered, "retries", s.Retries,
			"rejected", s.Rejected, "gave_up", s.GaveUp, "queue_full", s.QueueFull)
	}
	if o.store != nil {
		s := o.store.Stats()
		log.Info("event store summary", "events", s.Events, "duplicates", s.Duplicates, "snapshots", s.Snapshots, "results", s.Results, "errors", s.Errors)
	}
}

// close closes the webhooks, the snapshot ring and the event store. Call it once run returned.
func (o *sinkOutputs) close() {
	for _, h := range o.hooks {
		_ = h.Close()
	}
	if o.ring != nil {
		_ = o.ring.Close()
	}
	if o.store != nil {
		_ = o.store.Close()
	}
}

// lostAfter maps the configuration's 0 ("never") to the role's negative.
func lostAfter(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// dial connects one role to the NATS servers, credentials and TLS in cfg, counting its events
// into ev for metrics.
func dial(ctx context.Context, cfg config.NATS, role string, log *slog.Logger, ev *bus.Events) (*nats.Conn, error) {
	return bus.Dial(ctx, cfg, "vigil-"+role, log.With("role", role), ev)
}

// drain drains a role's connection on the way out (bounded to 30 s), logging a failure.
func drain(nc *nats.Conn, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bus.Drain(ctx, nc); err != nil {
		log.Warn("nats drain", "err", err)
	}
}

// startMetrics serves reg on addr to requests naming an IP address, localhost, this machine or
// one of hosts (the command's --allowed-hosts); nil without an address. The caller closes it.
func startMetrics(cfg config.Metrics, apiHosts []string, reg *prometheus.Registry, log *slog.Logger) (*metrics.Server, error) {
	if cfg.Addr == "" {
		return nil, nil
	}
	hosts := append(slices.Clone(apiHosts), cfg.AllowedHosts...)
	m := &metrics.Server{Addr: cfg.Addr, Gatherer: reg, AllowedHosts: hosts, Log: log}
	if err := m.Start(); err != nil {
		return nil, err
	}
	log.Info("metrics", "url", m.URL())
	return m, nil
}

func stopMetrics(m *metrics.Server) {
	if m == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = m.Close(ctx)
}

// natsClient is one connection natsMetrics reports on.
type natsClient struct {
	name string
	nc   *nats.Conn
	ev   *bus.Events
}

// natsMetrics exports connections' counters, labelled by client (the role).
func natsMetrics(clients ...natsClient) *metrics.Collector {
	l := []string{"client"}
	v := func(f func(c natsClient) float64) func() []metrics.Sample {
		return func() []metrics.Sample {
			out := make([]metrics.Sample, 0, len(clients))
			for _, c := range clients {
				out = append(out, metrics.Sample{Labels: []string{c.name}, Value: f(c)})
			}
			return out
		}
	}
	counter := prometheus.CounterValue
	return metrics.NewCollector([]metrics.Family{
		{Name: "vigil_nats_slow_consumer_events_total", Help: "Slow-consumer notifications: a subscription's pending buffer overflowed and the client dropped messages.", Type: counter, Labels: l,
			Collect: v(func(c natsClient) float64 { return float64(c.ev.SlowConsumers.Load()) })},
		{Name: "vigil_nats_async_errors_total", Help: "Asynchronous NATS errors.", Type: counter, Labels: l,
			Collect: v(func(c natsClient) float64 { return float64(c.ev.AsyncErrors.Load()) })},
		{Name: "vigil_nats_disconnects_total", Help: "Connections lost.", Type: counter, Labels: l,
			Collect: v(func(c natsClient) float64 { return float64(c.ev.Disconnects.Load()) })},
		{Name: "vigil_nats_reconnects_total", Help: "Reconnections.", Type: counter, Labels: l,
			Collect: v(func(c natsClient) float64 { return float64(c.ev.Reconnects.Load()) })},
		{Name: "vigil_nats_connected", Help: "1 while connected to a server.", Type: prometheus.GaugeValue, Labels: l,
			Collect: v(func(c natsClient) float64 {
				if c.nc.IsConnected() {
					return 1
				}
				return 0
			})},
		{Name: "vigil_nats_in_messages_total", Help: "Messages received.", Type: counter, Labels: l,
			Collect: v(func(c natsClient) float64 { return float64(c.nc.Stats().InMsgs) })},
		{Name: "vigil_nats_out_messages_total", Help: "Messages sent.", Type: counter, Labels: l,
			Collect: v(func(c natsClient) float64 { return float64(c.nc.Stats().OutMsgs) })},
		{Name: "vigil_nats_in_bytes_total", Help: "Bytes received.", Type: counter, Labels: l,
			Collect: v(func(c natsClient) float64 { return float64(c.nc.Stats().InBytes) })},
		{Name: "vigil_nats_out_bytes_total", Help: "Bytes sent.", Type: counter, Labels: l,
			Collect: v(func(c natsClient) float64 { return float64(c.nc.Stats().OutBytes) })},
	})
}

// batchBuckets are the batch-size histogram's upper bounds.
func batchBuckets(maxBatch int) []float64 {
	var b []float64
	for n := 1; n < maxBatch; n *= 2 {
		b = append(b, float64(n))
	}
	return append(b, float64(maxBatch))
}

// analyzeMetrics exports the analyze role's counters: the autoscaling signals are
// vigil_analyze_busy_seconds_total / vigil_analyze_workers (utilisation), vigil_analyze_queue_frames
// and vigil_analyze_pending_messages (backlog) and the deadline, queue and slow-consumer drops.
func analyzeMetrics(r *analyze.Role, workers, maxBatch int) *metrics.Collector {
	counter, gauge := prometheus.CounterValue, prometheus.GaugeValue
	stats := func(f func(analyze.Stats) float64) func() []metrics.Sample {
		return func() []metrics.Sample { return metrics.One(f(r.Stats())) }
	}
	return metrics.NewCollector([]metrics.Family{
		{Name: "vigil_analyze_frames_received_total", Help: "Frames received from the queue group.", Type: counter,
			Collect: stats(func(s analyze.Stats) float64 { return float64(s.Received) })},
		{Name: "vigil_analyze_frames_analyzed_total", Help: "Frames analysed (a result published).", Type: counter,
			Collect: stats(func(s analyze.Stats) float64 { return float64(s.Analyzed) })},
		{Name: "vigil_analyze_faces_total", Help: "Faces found.", Type: counter,
			Collect: stats(func(s analyze.Stats) float64 { return float64(s.Faces) })},
		{Name: "vigil_analyze_frames_dropped_total", Help: "Frames not analysed, by stream and reason (deadline, queue, superseded, decode, inference, ...; " +
			"every stream at 0 from its first frame); stream \"\" counts frames whose stream is unknown (slow_consumer: dropped by the NATS client unread).",
			Type: counter, Labels: []string{"stream", "reason"},
			Collect: func() []metrics.Sample { return analyzeDropSamples(r.Stats()) }},
		{Name: "vigil_analyze_busy_seconds_total", Help: "Time workers spent on batches, summed over workers.", Type: counter,
			Collect: stats(func(s analyze.Stats) float64 { return s.Busy.Seconds() })},
		{Name: "vigil_analyze_workers", Help: "Workers (batches analysed in parallel).", Type: gauge,
			Collect: func() []metrics.Sample { return metrics.One(float64(workers)) }},
		{Name: "vigil_analyze_queue_frames", Help: "Frames waiting for a worker.", Type: gauge,
			Collect: stats(func(s analyze.Stats) float64 { return float64(s.Queued) })},
		{Name: "vigil_analyze_pending_messages", Help: "Frames the NATS client holds for the subscription beyond the queue (pending limit: slow consumer beyond).", Type: gauge,
			Collect: stats(func(s analyze.Stats) float64 { return float64(s.Pending) })},
		{Name: "vigil_analyze_publish_errors_total", Help: "Results and drops that could not be published (not acknowledged in time).", Type: counter,
			Collect: stats(func(s analyze.Stats) float64 { return float64(s.PublishErrors) })},
		{Name: "vigil_analyze_late_heads_total", Help: "Frames whose late heads (--late-heads: run after the frame's result, at low priority) " +
			"ran and were published (outcome ran), were skipped because the late queue was full (skipped), or failed (failed).",
			Type: counter, Labels: []string{"outcome"},
			Collect: func() []metrics.Sample {
				s := r.Stats()
				return []metrics.Sample{{Labels: []string{"ran"}, Value: float64(s.Late)}, {Labels: []string{"skipped"}, Value: float64(s.LateSkipped)},
					{Labels: []string{"failed"}, Value: float64(s.LateFailed)}}
			}},
	}, metrics.Histogram{Name: "vigil_analyze_batch_size", Help: "Frames per batch a worker took.",
		Collect: func() (map[float64]uint64, uint64, float64) {
			s := r.Stats()
			bounds := batchBuckets(maxBatch)
			buckets := make(map[float64]uint64, len(bounds))
			var count uint64
			var sum float64
			for size, n := range s.Batches {
				count += n
				sum += float64(size * int(n))
				for _, b := range bounds {
					if float64(size) <= b {
						buckets[b] += n
					}
				}
			}
			for _, b := range bounds {
				buckets[b] += 0
			}
			return buckets, count, sum
		}})
}

// sinkMetrics exports the sink role's per-stream accounting and, with JetStream, its consumer's
// lag (what a KEDA nats-jetstream scaler or an alert watches).
func sinkMetrics(r *sink.Role) *metrics.Collector {
	perStream := func(f func(sink.StreamProgress) float64) func() []metrics.Sample {
		return func() []metrics.Sample {
			var out []metrics.Sample
			for name, p := range r.Progress() {
				out = append(out, metrics.Sample{Labels: []string{name}, Value: f(p)})
			}
			return out
		}
	}
	consumer := func(f func(*jetstream.ConsumerInfo) float64) func() []metrics.Sample {
		return func() []metrics.Sample {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			info, err := r.ConsumerInfo(ctx)
			if err != nil {
				return nil
			}
			return metrics.One(f(info))
		}
	}
	st := []string{"stream"}
	counter, gauge := prometheus.CounterValue, prometheus.GaugeValue
	return metrics.NewCollector([]metrics.Family{
		{Name: "vigil_sink_drops_total", Help: "Drops received (lost: counted by the sink), by stream and reason.", Type: counter, Labels: []string{"stream", "reason"},
			Collect: func() []metrics.Sample {
				var out []metrics.Sample
				for name, p := range r.Progress() {
					for reason, n := range p.DropReasons {
						out = append(out, metrics.Sample{Labels: []string{name, reason}, Value: float64(n)})
					}
				}
				return out
			}},
		{Name: "vigil_sink_write_errors_total", Help: "Results a sink failed to take (redelivered with JetStream).", Type: counter, Labels: st,
			Collect: perStream(func(p sink.StreamProgress) float64 { return float64(p.WriteErrors) })},
		{Name: "vigil_sink_redelivered_skipped_total", Help: "Redelivered messages already written by this process, acknowledged and skipped.", Type: counter, Labels: st,
			Collect: perStream(func(p sink.StreamProgress) float64 { return float64(p.Redelivered) })},
		{Name: "vigil_sink_consumer_pending_messages", Help: "Messages stored in VIGIL_RESULTS not yet delivered to this sink's consumer (lag).", Type: gauge,
			Collect: consumer(func(i *jetstream.ConsumerInfo) float64 { return float64(i.NumPending) })},
		{Name: "vigil_sink_consumer_ack_pending_messages", Help: "Messages delivered to the consumer and not yet acknowledged.", Type: gauge,
			Collect: consumer(func(i *jetstream.ConsumerInfo) float64 { return float64(i.NumAckPending) })},
		{Name: "vigil_sink_consumer_redelivered_messages", Help: "Messages delivered more than once and not yet acknowledged.", Type: gauge,
			Collect: consumer(func(i *jetstream.ConsumerInfo) float64 { return float64(i.NumRedelivered) })},
	})
}

// ingestMetrics exports the ingest role's per-stream counters.
func ingestMetrics(r *ingest.Role) *metrics.Collector {
	perStream := func(f func(ingest.StreamStats) uint64) func() []metrics.Sample {
		return func() []metrics.Sample {
			var out []metrics.Sample
			for name, s := range r.Stats() {
				out = append(out, metrics.Sample{Labels: []string{name}, Value: float64(f(s))})
			}
			return out
		}
	}
	st := []string{"stream"}
	counter := prometheus.CounterValue
	return metrics.NewCollector([]metrics.Family{
		{Name: "vigil_ingest_frames_decoded_total", Help: "Frames decoded from the source.", Type: counter, Labels: st,
			Collect: perStream(func(s ingest.StreamStats) uint64 { return s.Decoded })},
		{Name: "vigil_ingest_frames_published_total", Help: "Sampled frames published.", Type: counter, Labels: st,
			Collect: perStream(func(s ingest.StreamStats) uint64 { return s.Published })},
		{Name: "vigil_ingest_frames_skipped_total", Help: "Frames skipped by the sampler.", Type: counter, Labels: st,
			Collect: perStream(func(s ingest.StreamStats) uint64 { return s.Skipped })},
		{Name: "vigil_ingest_errors_total", Help: "Source and publish errors.", Type: counter, Labels: st,
			Collect: perStream(func(s ingest.StreamStats) uint64 { return s.Errors })},
	})
}

// connect dials NATS for one role.
func connect(ctx context.Context, url, role string, log *slog.Logger) (*nats.Conn, error) {
	return bus.Connect(ctx, url, "vigil-"+role, log.With("role", role))
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// snapshotCrop cuts event snapshots with libjpeg-turbo (vision.CutJPEG, decoding large crops at
// reduced scale) instead of the event store's pure-Go default: 4-7 ms against 12 ms for Go's
// decode of a 720p frame alone (BenchmarkCutJPEG).
func snapshotCrop(f frame.Frame, c event.Crop) ([]byte, error) {
	return snapshot.CropWith(f, c, snapshot.Options{}, func(f frame.Frame, r image.Rectangle, w, h, quality int) ([]byte, error) {
		return vision.CutJPEG(f.Data, r, w, h, quality, 0)
	})
}
