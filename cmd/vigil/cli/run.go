package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/event"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/analyze/track"
	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/ingest/webrtc"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/metrics"
	"github.com/vigil-video/vigil/pkg/rungroup"
	"github.com/vigil-video/vigil/sink"
	"github.com/vigil-video/vigil/sink/web"
)

// runCmd is `vigil run`: every role in one process around an embedded NATS server. It builds the
// roles one constructor at a time (each registers what runCmd closes when it returns), then runs
// them as one group whose order is the shutdown order: ingest, analyze, track, sink, outputs.
func runCmd(ctx context.Context, env Env, args []string) error {
	f, err := parseRunFlags(env, args)
	if err != nil {
		return err
	}
	if f.st.check {
		return f.st.report(env)
	}
	if err := f.prepare(ctx); err != nil {
		return err
	}
	r := &runStack{runFlags: f, ctx: ctx, env: env}
	defer r.close()
	if err := r.build(); err != nil {
		return err
	}
	r.sinksOwned = false // the sink role closes them from now on
	return r.finish(r.group().Run())
}

// build builds the roles one constructor at a time; what each opened is closed by r.close.
func (r *runStack) build() error {
	for _, build := range []func() error{
		r.openSinks, r.loadAnalyzer, r.startBus, r.newSinkRole, r.startFront,
		r.newAnalyzeRole, r.newTrackRole, r.newIngest, r.startMetrics,
	} {
		if err := build(); err != nil {
			return err
		}
	}
	return nil
}

// runFlags are vigil run's flags and settings, parsed and checked.
type runFlags struct {
	st      *settings
	log     *slog.Logger
	lf      logFlags
	inf     ingestFlags
	af      analyzeFlags
	sf      sinkFlags
	tf      trackFlags
	ff      frontFlags
	stf     streamFlags
	wf      webFlags
	streams []ingest.StreamConfig
	started *atomic.Bool // set once the web view's URL is logged: info lines pass from then on
}

// newRunFlags registers vigil run's flags on a new flag set, bound to st's configuration.
func newRunFlags(st *settings) (*runFlags, *flag.FlagSet) {
	fs := newFlagSet("run", "Runs every role in one process with an embedded NATS server: ingest reads the sources,\n"+
		"analyze runs the face models, track follows faces; results go to NATS (vigil.results.<stream>), the web view and the\n"+
		"event history, and to stdout as JSON lines with --print (the default with --once). Ctrl-C stops cleanly.")
	f := &runFlags{st: st}
	f.lf.register(fs)
	f.inf.register(fs, true)
	f.af.register(fs)
	f.sf.register(fs, &st.cfg.Sink)
	f.sf.registerWebhooks(fs)
	f.sf.registerPrint(fs)
	f.tf.register(fs, false)
	f.ff.register(fs)
	f.stf.register(fs)
	f.wf.register(fs)
	st.registerCommon(fs)
	st.registerRun(fs)
	st.registerJetStream(fs)
	st.registerMetrics(fs)
	return f, fs
}

// parseRunFlags registers vigil run's flags, parses the settings (defaults, file, environment,
// flags) and checks them.
func parseRunFlags(env Env, args []string) (*runFlags, error) {
	st, err := newSettings(env, args)
	if err != nil {
		return nil, err
	}
	f, fs := newRunFlags(st)
	if err := st.parse(fs, env, args); err != nil {
		return nil, err
	}
	if err := f.sf.applyPrint(f.inf.once); err != nil {
		return nil, err
	}
	if f.log, err = f.lf.logger(env.Stderr); err != nil {
		return nil, err
	}
	f.log, f.started = quietStartup(f.log) // the web view's URL comes first (runIngest)
	if len(f.inf.sources) == 0 && len(st.cfg.Ingest.Streams) == 0 {
		f.inf.sources = stringList{DemoVideo}
	}
	if heads, err := analyze.ParseHeads(f.af.heads); err == nil && len(heads) > 0 {
		f.inf.fullFrames = true // heads run on every frame: they need its pixels
	}
	if f.streams, err = f.inf.streamConfigs(st.cfg.Ingest.Streams); err != nil {
		return nil, err
	}
	if err := st.annotate(checkRoles(&st.cfg)); err != nil {
		return nil, err
	}
	return f, nil
}

// prepare applies what --once implies and checks that the files to read are there.
func (f *runFlags) prepare(ctx context.Context) error {
	if f.inf.once {
		f.af.deadline = 0 // a recording is analysed completely: the credit window bounds the backlog
	}
	if err := probeFiles(ctx, f.streams); err != nil {
		if strings.Contains(err.Error(), DemoVideo) {
			err = fmt.Errorf("%w: run \"make setup\" (apt package opencv-doc) or pass --source", err)
		}
		return err
	}
	return nil
}

// runStack is vigil run while it is built and run: the parts every role shares, each role, and
// what to close when runCmd returns (in reverse order of opening, as defers would).
type runStack struct {
	*runFlags
	ctx     context.Context
	env     Env
	closers []func()

	reg            *prometheus.Registry // nil without --metrics-addr
	sinks          []sink.Sink
	sinksOwned     bool // closed by runCmd until the sink role runs
	keepEmbeddings bool // asked by --keep-embeddings (the analyzer keeps them for the track role)
	onDemand       []string
	an             *analyzer
	storeDir       string
	url            string
	natsSrv        *bus.EmbeddedServer
	conns          map[string]*nats.Conn // one connection per role
	frames         *bus.FrameFeed        // the one frame subscription: the web view's and the snapshots' frames; nil when neither runs
	clients        []natsClient
	jsSink         jetstream.JetStream // nil without JetStream

	sinkRole *sink.Role
	outs     *sinkOutputs
	fr       *front
	ui       *web.UI
	anRole   *analyze.Role
	trRole   *track.Role // nil without the track role
	inRole   *ingest.Role
	managed  *managedIngest // nil with --once
	attached *ingest.Attached
}

// onClose registers fn to run when runCmd returns, before everything registered earlier.
func (r *runStack) onClose(fn func()) { r.closers = append(r.closers, fn) }

// close runs the registered closers, the latest first.
func (r *runStack) close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}

// openSinks opens the sink role's writers (and the metrics registry they report to).
func (r *runStack) openSinks() error {
	if r.st.cfg.Metrics.Addr != "" {
		r.reg = metrics.NewRegistry()
	}
	sinks, err := r.sf.sinks(r.env, registerer(r.reg))
	if err != nil {
		return err
	}
	r.sinks, r.sinksOwned = sinks, true
	r.onClose(func() {
		if r.sinksOwned {
			closeSinks(r.sinks)
		}
	})
	return nil
}

// loadAnalyzer checks the track role's flags, then loads the models.
func (r *runStack) loadAnalyzer() error {
	// The track role needs every face's embedding; it drops them from the results it republishes
	// unless --keep-embeddings asked for them.
	r.keepEmbeddings = r.af.keepEmbeddings
	if r.tf.enabled {
		r.af.keepEmbeddings = true
	}
	onDemand, err := analyze.ParseHeads(r.af.onDemand)
	if err != nil {
		return fmt.Errorf("--on-demand-heads: %w", err)
	}
	r.onDemand = onDemand
	if _, err := r.tf.role(nil, r.onDemand, r.keepEmbeddings, nil, r.log); err != nil {
		return err
	}
	if r.an, err = r.af.loadAnalyzer(r.log); err != nil {
		return err
	}
	r.onClose(func() { r.an.Close() })
	return nil
}

// startBus starts the embedded NATS server (JetStream in --store-dir, else a temporary
// directory), connects each role and ensures the JetStream streams.
func (r *runStack) startBus() error {
	r.storeDir = r.st.cfg.Run.StoreDir
	if r.storeDir == "" {
		dir, err := os.MkdirTemp("", "vigil-nats-")
		if err != nil {
			return err
		}
		r.onClose(func() { os.RemoveAll(dir) })
		r.storeDir = dir
	}
	srv, client, err := startEmbeddedNATS(r.ctx, r.st.cfg.Run, r.st.cfg.NATS, r.storeDir, r.log, r.env.Stderr)
	if err != nil {
		return err
	}
	r.onClose(srv.Close)
	r.natsSrv = srv
	r.url = srv.ClientURL()
	r.log.Debug("NATS ready", "url", r.url)

	r.conns = map[string]*nats.Conn{}
	r.onClose(func() {
		for _, nc := range r.conns {
			nc.Close()
		}
	})
	for _, role := range []string{"ingest", "analyze", "track", "sink", "api", "web"} {
		ev := new(bus.Events)
		nc, err := dial(r.ctx, client, role, r.log, ev)
		if err != nil {
			return err
		}
		r.conns[role] = nc
		r.clients = append(r.clients, natsClient{role, nc, ev})
	}
	r.frames = &bus.FrameFeed{Conn: r.conns["web"]} // subscribed when the group runs, if anything receives frames
	// The embedded server is a single node: one replica whatever the file says.
	jsCfg := r.st.cfg.JetStream
	jsCfg.Replicas = 1
	r.jsSink, err = setupJetStream(r.ctx, r.conns["sink"], jsCfg, r.log)
	return err
}

// jetStream is JetStream on role's connection, or nil when JetStream is off.
func (r *runStack) jetStream(role string) (jetstream.JetStream, error) {
	if r.jsSink == nil {
		return nil, nil
	}
	return jetstream.New(r.conns[role])
}

// newSinkRole builds the sink role and its outputs (webhooks, each on its own consumer).
func (r *runStack) newSinkRole() error {
	log := r.log.With("role", "sink")
	outs, err := r.sf.openOutputs(r.ctx, r.conns["sink"], r.jsSink, log)
	if err != nil {
		return err
	}
	r.outs = outs
	r.onClose(outs.close) // after the roles returned
	r.sinkRole = r.sf.role(r.conns["sink"], r.jsSink, r.sinks, log)
	r.sinkRole.Await = nil
	if r.inf.once {
		for _, s := range r.streams {
			r.sinkRole.Await = append(r.sinkRole.Await, s.Name)
		}
	}
	return nil
}

// startFront starts the HTTP API's parts (faces, gallery, classifiers, event history) and
// mounts the web view; the server itself starts once the pipeline is subscribed.
func (r *runStack) startFront() error {
	fr, err := r.ff.startFront(r.ctx, frontDeps{nc: r.conns["api"], frames: r.frames, an: r.an, storeDir: r.storeDir, deps: r.af.deps, version: r.env.Version,
		log: r.log, pipeline: analyze.PipelineConfig{GenderThreshold: float32(r.af.genderThr), LivenessThreshold: float32(r.af.livenessThr)}})
	if err != nil {
		return err
	}
	r.fr = fr
	r.onClose(func() { fr.Close() })
	if r.ui, err = r.wf.mount(fr.srv, r.conns["web"], r.frames, fr.faces, fr.privacy, r.log.With("role", "web")); err != nil {
		return err
	}
	r.onClose(func() { r.ui.Close() }) // before the HTTP server closes: live views end first
	if r.frames.Receivers() == 0 {
		r.frames = nil // no web view, no event snapshots (--web=false --events-db off): no frame subscription
	}
	return nil
}

// newAnalyzeRole builds the analyze role; with the track role its results go to
// vigil.analyzed.<stream>, a core-NATS hop (the track role's results are the durable ones).
func (r *runStack) newAnalyzeRole() error {
	var jsAn jetstream.JetStream
	if !r.tf.enabled {
		var err error
		if jsAn, err = r.jetStream("analyze"); err != nil {
			return err
		}
	}
	r.anRole = r.af.role(r.conns["analyze"], jsAn, r.an, r.log.With("role", "analyze"))
	r.anRole.Classifiers = classifyFrames{r.fr.runner}
	if r.tf.enabled {
		r.anRole.ResultsPrefix = event.AnalyzedPrefix
	}
	return nil
}

// newTrackRole builds the track role when it is enabled, matching against the gallery.
func (r *runStack) newTrackRole() error {
	if !r.tf.enabled {
		return nil
	}
	var err error
	if r.trRole, err = r.tf.role(r.conns["track"], r.onDemand, r.keepEmbeddings, r.fr.faces.Gallery, r.log.With("role", "track")); err != nil {
		return err
	}
	js, err := r.jetStream("track")
	if err != nil {
		return err
	}
	if js != nil {
		r.trRole.Publisher = &bus.StreamPublisher{JS: js}
		// Faces and events of tracks without identity carry the unknown person they match.
		x, err := openUnknownIndex(r.ctx, js, r.log.With("role", "track"))
		if err != nil {
			return err
		}
		r.onClose(x.Close)
		r.trRole.Unknowns = x
	}
	return nil
}

// newIngest builds the ingest role: --once reads recordings through the Role; otherwise the
// Manager runs the stream list (flags, --streams-file, the persisted bucket, /v1/streams and
// vigil.control.streams), and browsers publish through WHIP.
func (r *runStack) newIngest() error {
	log := r.log.With("role", "ingest")
	nc := r.conns["ingest"]
	slots := r.inf.slots()
	r.inRole = &ingest.Role{Conn: nc, Streams: r.streams, DecodeSlots: slots, Log: log}
	if !r.inf.once {
		js, err := r.jetStream("ingest")
		if err != nil {
			return err
		}
		r.stf.useRunStore(r.storeDir, r.st.cfg.Run.StoreDir != "")
		if r.managed, err = r.stf.newManaged(r.ctx, nc, js, 1, r.streams, log); err != nil {
			return err
		}
		r.managed.mgr.FullFrames, r.managed.mgr.DecodeSlots = r.inf.fullFrames, slots
		r.managed.Mount(r.fr.srv)
		r.managed.from += " in --store-dir " + r.storeDir // where resumed streams come from
	}
	attached := &ingest.Attached{Conn: nc, Log: log,
		Defaults: ingest.StreamConfig{FPS: r.inf.fps, MaxWidth: r.inf.maxWidth, MaxHeight: r.inf.maxHeight, JPEGQuality: r.inf.quality, FullFrames: r.inf.fullFrames}}
	r.onClose(func() { attached.Close() })
	r.attachStreams(attached) // WHIP streams in /v1/streams and the ingest metrics
	whipEP := &webrtc.Endpoint{Log: log, OnSource: func(s *webrtc.Source) error { return attached.Attach(s.Stream(), s) }}
	if err := whipEP.Initialize(); err != nil {
		return err
	}
	r.onClose(func() { whipEP.Close() })
	whipEP.Mount(r.fr.srv)
	r.fr.srv.MarkPublic("/publish/") // the static publish page; its WHIP requests carry the key
	return nil
}

// startMetrics registers every role's collectors and serves them on --metrics-addr, if set.
func (r *runStack) startMetrics() error {
	if r.reg == nil {
		return nil
	}
	inMetrics := prometheus.Collector(ingestMetrics(r.inRole))
	if r.managed != nil {
		inMetrics = ingest.StreamsCollector(r.managed.mgr, r.attached) // browsers' WHIP streams too
	}
	r.reg.MustRegister(natsMetrics(r.clients...), sinkMetrics(r.sinkRole),
		analyzeMetrics(r.anRole, effectiveWorkers(r.af.workers), r.af.maxBatch), inMetrics)
	if r.fr != nil && r.fr.faces != nil && r.fr.faces.Gallery != nil {
		r.reg.MustRegister(galleryMetrics(r.fr.faces))
	}
	r.reg.MustRegister(r.extraCollectors()...) // HTTP requests, event history, model latency
	// The metrics endpoint serves the host names the API serves (--allowed-hosts).
	m, err := startMetrics(r.st.cfg.Metrics, r.ff.http.hosts, r.reg, r.log)
	if err != nil {
		return err
	}
	r.onClose(func() { stopMetrics(m) })
	return nil
}

// group is the run group of the built roles. Its order is the shutdown order: stop ingest, let
// the analyzer finish what it holds, let the track role publish what it holds and end the
// tracks, let the sink write what arrived (with JetStream it catches up with the stream first),
// then let the outputs catch up. The first role to return (the sink when every --once stream is
// complete, a role that fails, or Ctrl-C) starts the shutdown.
func (r *runStack) group() *rungroup.Group {
	var g rungroup.Group
	inCtx, stopIn := context.WithCancel(r.ctx)
	g.Add(func() error { return r.runIngest(inCtx) }, stopIn)

	anCtx, stopAn := context.WithCancel(context.WithoutCancel(r.ctx))
	g.Add(func() error { return r.anRole.Run(anCtx) }, stopAn)

	if r.trRole != nil {
		trCtx, stopTr := context.WithCancel(context.WithoutCancel(r.ctx))
		g.Add(func() error { return r.trRole.Run(trCtx) }, stopTr)
	}

	sinkCtx, stopSink := context.WithCancel(context.WithoutCancel(r.ctx))
	g.Add(func() error { return r.sinkRole.Run(sinkCtx) }, func() {
		_ = r.conns["sink"].Flush() // everything routed to the sink so far is now in its buffer
		stopSink()
	})
	g.Add(func() error {
		// webhooks, each on its own consumer; the first to fail stops the sink
		err := r.outs.run(sinkCtx, stopSink)
		if err == nil {
			<-sinkCtx.Done() // no outputs, or they caught up: the sink decides when the run ends
		}
		return err
	}, stopSink)

	// The one frame subscription, the web view's and the event snapshots' frames, stops once
	// the outputs caught up: the last events' snapshots come from frames it delivered.
	if r.frames != nil {
		feedCtx, stopFeed := context.WithCancel(context.WithoutCancel(r.ctx))
		g.Add(func() error { return r.frames.Run(feedCtx) }, stopFeed)
	}

	quit := make(chan struct{})
	g.Add(func() error {
		select {
		case <-r.ctx.Done():
			r.log.Info("stopping")
		case <-quit:
		}
		return nil
	}, func() { close(quit) })
	return &g
}

// runIngest waits until the analyzer, the track role, the sink and the frame feed are subscribed (so a short
// recording loses no frame to a subscription not yet in place), starts the HTTP server, then
// runs ingest until ctx ends. Recordings read with --once end early without ending the run: the
// sink ends it once every stream is complete. An error after Ctrl-C is not reported.
func (r *runStack) runIngest(ctx context.Context) error {
	readies := []<-chan struct{}{r.anRole.Ready(), r.sinkRole.Ready()}
	if r.frames != nil {
		readies = append(readies, r.frames.Ready())
	}
	if r.trRole != nil {
		readies = append(readies, r.trRole.Ready())
	}
	for _, ready := range readies {
		select {
		case <-ready:
		case <-ctx.Done():
			return nil // another role ended first
		}
	}
	if err := r.fr.srv.Start(ctx); err != nil {
		return err
	}
	r.started.Store(true)
	r.log.Info("Vigil is running: open the web view", "url", webURL(r.fr.srv, r.ui), "api_docs", docsURL(r.fr.srv, r.ff.http.docs))
	r.log.Info("results are on NATS subjects vigil.results.<stream>", "nats", r.url, "try", fmt.Sprintf("nats sub 'vigil.results.>' --server %s", r.url))
	var err error
	if r.managed != nil {
		if err := r.managed.Start(ctx); err != nil {
			r.managed.Close()
			return err
		}
		<-ctx.Done()
		err = r.managed.Close()
	} else if err = r.inRole.Run(ctx); err == nil {
		<-ctx.Done()
	}
	if r.ctx.Err() != nil {
		return nil // interrupted by the user
	}
	return err
}

// finish reports what the run did and, with --once, fails when a stream did not complete.
func (r *runStack) finish(runErr error) error {
	r.outs.report(r.log)
	reportProgress(r.log, r.sinkRole.Progress(), r.anRole.Stats().Dropped)
	if r.inf.once && runErr == nil {
		for _, s := range r.streams {
			if p, ok := r.sinkRole.Progress()[s.Name]; !ok || !p.Complete() {
				if r.ctx.Err() != nil {
					return nil // interrupted by the user
				}
				return fmt.Errorf("stream %s did not complete", s.Name)
			}
		}
	}
	return runErr
}

// registerer returns reg as a Registerer, or nil when reg is nil (a nil *Registry in an
// interface would not be nil).
func registerer(reg *prometheus.Registry) prometheus.Registerer {
	if reg == nil {
		return nil
	}
	return reg
}

// effectiveWorkers is the analyzer's worker count once defaults apply (0: one per CPU).
func effectiveWorkers(n int) int {
	if n > 0 {
		return n
	}
	return runtime.NumCPU()
}

func closeSinks(sinks []sink.Sink) {
	for _, s := range sinks {
		_ = s.Close()
	}
}

func reportProgress(log *slog.Logger, progress map[string]sink.StreamProgress, analyzerDrops map[string]uint64) {
	for name, p := range progress {
		attrs := []any{"stream", name, "results", p.Results, "faces", p.Faces, "drops", p.Drops}
		for reason, n := range p.DropReasons {
			attrs = append(attrs, "dropped_"+reason, n)
		}
		if p.Ended {
			attrs = append(attrs, "frames", p.Announced)
		}
		if p.EndError != "" {
			attrs = append(attrs, "source_error", p.EndError)
		}
		if p.Redelivered > 0 {
			attrs = append(attrs, "redelivered_skipped", p.Redelivered)
		}
		log.Info("stream summary", attrs...)
	}
	if len(analyzerDrops) > 0 {
		log.Info("analyzer drops", "by_reason", analyzerDrops)
	}
}

// roleSetup is what every single-role command shares: settings parsed, a connection with
// metrics, JetStream streams ensured, the metrics endpoint.
type roleSetup struct {
	log *slog.Logger
	nc  *nats.Conn
	js  jetstream.JetStream
	reg *prometheus.Registry
	m   *metrics.Server
	// hosts is the command's --allowed-hosts, where it has one: the metrics endpoint serves
	// the same host names as its HTTP API (IP addresses and localhost always).
	hosts []string
}

// start connects role to NATS, ensures the JetStream streams (when enabled) and prepares the
// metrics registry (when --metrics-addr is set; serve starts it once the role's collectors are
// registered).
func (st *settings) start(ctx context.Context, role string, log *slog.Logger) (*roleSetup, error) {
	rs := &roleSetup{log: log}
	ev := new(bus.Events)
	nc, err := dial(ctx, st.cfg.NATS, role, log, ev)
	if err != nil {
		return nil, err
	}
	rs.nc = nc
	if st.cfg.Metrics.Addr != "" {
		rs.reg = metrics.NewRegistry()
		rs.reg.MustRegister(natsMetrics(natsClient{role, nc, ev}))
	}
	if rs.js, err = setupJetStream(ctx, nc, st.cfg.JetStream, log); err != nil {
		nc.Close()
		return nil, err
	}
	return rs, nil
}

// serve starts the metrics endpoint, if any, with collectors registered.
func (rs *roleSetup) serve(cfg config.Metrics, collectors ...prometheus.Collector) error {
	if rs.reg == nil {
		return nil
	}
	rs.reg.MustRegister(collectors...)
	m, err := startMetrics(cfg, rs.hosts, rs.reg, rs.log)
	rs.m = m
	return err
}

// close drains the connection (finishing subscriptions, flushing publishes) and stops metrics.
func (rs *roleSetup) close() {
	drain(rs.nc, rs.log)
	stopMetrics(rs.m)
}

func ingestCmd(ctx context.Context, env Env, args []string) error {
	st, err := newSettings(env, args)
	if err != nil {
		return err
	}
	fs := newFlagSet("ingest", "Runs the ingest role: reads the sources and publishes sampled JPEG frames on vigil.frames.<stream>.\n"+
		"Files read once (--once, or --loop=false) end the process when they end. Otherwise it runs the managed stream list (flags, --streams-file, the JetStream bucket shared by every\n"+
		"ingest) and serves /v1/streams, push mode (POST /v1/streams/{stream}/frames) and WHIP (/whip/{stream},\n"+
		"/publish/{stream}) on --http-addr.")
	var (
		lf  logFlags
		inf ingestFlags
		stf streamFlags
		hf  httpFlags
	)
	lf.register(fs)
	inf.register(fs, false)
	stf.register(fs)
	hf.register(fs)
	const ingestHTTP = "127.0.0.1:8081" // beside `vigil serve` on 8080
	fs.Lookup("http-addr").DefValue, hf.addr = ingestHTTP, ingestHTTP
	st.registerCommon(fs)
	st.registerNATS(fs)
	st.registerJetStream(fs)
	st.registerMetrics(fs)
	if err := st.parse(fs, env, args); err != nil {
		return err
	}
	log, err := lf.logger(env.Stderr)
	if err != nil {
		return err
	}
	if inf.once && len(inf.sources) == 0 && len(st.cfg.Ingest.Streams) == 0 {
		return errors.New("--once needs a --source (or ingest.streams in --config)")
	}
	streams, err := inf.streamConfigs(st.cfg.Ingest.Streams)
	if err != nil {
		return err
	}
	if err := stf.check(); err != nil {
		return err
	}
	if err := st.annotate(checkRoles(&st.cfg)); err != nil {
		return err
	}
	if st.check {
		return st.report(env)
	}
	if err := probeFiles(ctx, streams); err != nil {
		return err
	}
	rs, err := st.start(ctx, "ingest", log)
	if err != nil {
		return err
	}
	defer rs.close()
	rs.hosts = hf.hosts
	if inf.once || finite(streams) {
		// Recordings read to their end (--once, or files without --loop): a batch job that
		// exits when they have ended, as before the managed stream list existed.
		role := &ingest.Role{Conn: rs.nc, Streams: streams, DecodeSlots: inf.slots(), Log: log}
		if err := rs.serve(st.cfg.Metrics, ingestMetrics(role)); err != nil {
			return err
		}
		return role.Run(ctx)
	}
	managed, err := stf.newManaged(ctx, rs.nc, rs.js, max(1, st.cfg.JetStream.Replicas), streams, log)
	if err != nil {
		return err
	}
	managed.mgr.FullFrames, managed.mgr.DecodeSlots = inf.fullFrames, inf.slots()
	srv, err := hf.server(log.With("role", "http"), env.Version)
	if err != nil {
		return err
	}
	managed.Mount(srv)
	attached := &ingest.Attached{Conn: rs.nc, Log: log,
		Defaults: ingest.StreamConfig{FPS: inf.fps, MaxWidth: inf.maxWidth, MaxHeight: inf.maxHeight, JPEGQuality: inf.quality, FullFrames: inf.fullFrames}}
	defer attached.Close()
	managed.reg.Attached = attached.Statuses // WHIP streams in /v1/streams
	whipEP := &webrtc.Endpoint{Log: log, OnSource: func(s *webrtc.Source) error { return attached.Attach(s.Stream(), s) }}
	if err := whipEP.Initialize(); err != nil {
		return err
	}
	defer whipEP.Close()
	whipEP.Mount(srv)
	srv.MarkPublic("/publish/")
	if err := rs.serve(st.cfg.Metrics, ingest.StreamsCollector(managed.mgr, attached), httpMetrics(srv)); err != nil {
		return err
	}
	if err := managed.Start(ctx); err != nil {
		managed.Close()
		return err
	}
	if err := srv.Start(ctx); err != nil {
		managed.Close()
		return err
	}
	log.Info("ingest running", "http", srv.URL(), "streams", srv.URL()+"/v1/streams", "publish_page", srv.URL()+"/publish/<stream>")
	<-ctx.Done()
	// Stop taking requests, then stop the streams (they stay in the bucket for the next start).
	_ = srv.Close()
	return managed.Close()
}

// finite reports whether streams is non-empty and every stream is a file read once (no loop):
// such an ingest ends with its recordings.
func finite(streams []ingest.StreamConfig) bool {
	for _, s := range streams {
		if kind, _, _ := ingest.Classify(s.Source); kind != ingest.KindFile || s.Loop {
			return false
		}
	}
	return len(streams) > 0
}

func analyzeCmd(ctx context.Context, env Env, args []string) error {
	st, err := newSettings(env, args)
	if err != nil {
		return err
	}
	fs := newFlagSet("analyze", "Runs the analyze role: joins the analyzers' queue group on vigil.frames.*, runs the face models\n"+
		"in batches and publishes results on vigil.results.<stream> (acknowledged by JetStream). SIGTERM drains:\n"+
		"queued frames are analysed and their results acknowledged before the process exits.")
	var (
		lf logFlags
		af analyzeFlags
	)
	lf.register(fs)
	af.register(fs)
	st.registerCommon(fs)
	st.registerNATS(fs)
	st.registerJetStream(fs)
	st.registerMetrics(fs)
	if err := st.parse(fs, env, args); err != nil {
		return err
	}
	log, err := lf.logger(env.Stderr)
	if err != nil {
		return err
	}
	if err := st.annotate(checkRoles(&st.cfg)); err != nil {
		return err
	}
	if st.check {
		return st.report(env)
	}
	an, err := af.loadAnalyzer(log)
	if err != nil {
		return err
	}
	defer an.Close()
	rs, err := st.start(ctx, "analyze", log)
	if err != nil {
		return err
	}
	defer rs.close()
	role := af.role(rs.nc, rs.js, an, log)
	role.Name = hostname() + fmt.Sprintf("-%d", os.Getpid())
	if err := rs.serve(st.cfg.Metrics, analyzeMetrics(role, effectiveWorkers(af.workers), af.maxBatch), modelMetrics{an.rt}); err != nil {
		return err
	}
	err = role.Run(ctx)
	s := role.Stats()
	log.Info("analyzer summary", "received", s.Received, "analyzed", s.Analyzed, "faces", s.Faces, "busy", s.Busy.Round(time.Millisecond).String())
	reportProgress(log, nil, s.Dropped)
	return err
}

func sinkCmd(ctx context.Context, env Env, args []string) error {
	st, err := newSettings(env, args)
	if err != nil {
		return err
	}
	fs := newFlagSet("sink", "Runs the sink role: writes every result as a JSON line (stdout, --jsonl with rotation), POSTs\n"+
		"results and track events to --webhook URLs (signed, retried, filtered) and stores the event history\n"+
		"(--events-db, --events-dsn). With JetStream (the default) it reads VIGIL_RESULTS and VIGIL_EVENTS through\n"+
		"durable consumers and acknowledges each document once written, so a restarted sink resumes where it\n"+
		"stopped; every webhook and the event store read through consumers of their own, so one that fails holds\n"+
		"up nothing else. SIGTERM: it catches up with what is stored (up to 10 s), then exits.")
	var (
		lf    logFlags
		sf    sinkFlags
		await stringList
	)
	lf.register(fs)
	sf.register(fs, &st.cfg.Sink)
	sf.registerWebhooks(fs)
	sf.registerEventStore(fs)
	fs.Var(&await, "await", "exit once these streams (repeatable) have ended and every frame has a result or drop")
	st.registerCommon(fs)
	st.registerNATS(fs)
	st.registerJetStream(fs)
	st.registerMetrics(fs)
	if err := st.parse(fs, env, args); err != nil {
		return err
	}
	if len(await) > 0 {
		st.cfg.Sink.Await = await
		if err := st.cfg.Validate(); err != nil {
			return err
		}
	}
	if err := st.annotate(checkSinkQuiet(&st.cfg)); err != nil {
		return err
	}
	log, err := lf.logger(env.Stderr)
	if err != nil {
		return err
	}
	if st.check {
		return st.report(env)
	}
	var reg prometheus.Registerer
	var rs *roleSetup
	if rs, err = st.start(ctx, "sink", log); err != nil {
		return err
	}
	defer rs.close()
	reg = registerer(rs.reg)
	sf.log = log
	sinks, err := sf.sinks(env, reg)
	if err != nil {
		return err
	}
	outs, err := sf.openOutputs(ctx, rs.nc, rs.js, log)
	if err != nil {
		closeSinks(sinks)
		return err
	}
	defer outs.close() // after every role and consumer returned; before the connection drains
	role := sf.role(rs.nc, rs.js, sinks, log)
	if err := rs.serve(st.cfg.Metrics, append([]prometheus.Collector{sinkMetrics(role)}, outs.collectors(sf.writer)...)...); err != nil {
		closeSinks(sinks)
		return err
	}
	// The outputs run beside the role until it ends (ctx, or --await complete), then catch up
	// with what is stored; one that fails stops everything.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	outsDone := make(chan error, 1)
	go func() { outsDone <- outs.run(runCtx, stop) }()
	err = role.Run(runCtx)
	stop()
	err = errors.Join(err, <-outsDone)
	reportProgress(log, role.Progress(), nil)
	outs.report(log)
	return err
}
