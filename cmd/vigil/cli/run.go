package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/analyze/track"
	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/ingest/webrtc"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/metrics"
	"github.com/vigil-video/vigil/sink"
)

func runCmd(ctx context.Context, env Env, args []string) error {
	st, err := newSettings(env, args)
	if err != nil {
		return err
	}
	fs := newFlagSet("run", "Runs every role in one process with an embedded NATS server: ingest reads the sources,\n"+
		"analyze runs the face models, sink prints results as JSON lines. Ctrl-C stops cleanly.")
	var (
		lf  logFlags
		inf ingestFlags
		af  analyzeFlags
		sf  sinkFlags
		tf  trackFlags
		ff  frontFlags
		stf streamFlags
		wf  webFlags
	)
	lf.register(fs)
	inf.register(fs, true)
	af.register(fs)
	sf.register(fs, &st.cfg.Sink)
	sf.registerWebhooks(fs)
	tf.register(fs, false)
	ff.register(fs)
	stf.register(fs)
	wf.register(fs)
	st.registerCommon(fs)
	st.registerRun(fs)
	st.registerJetStream(fs)
	st.registerMetrics(fs)
	if err := st.parse(fs, env, args); err != nil {
		return err
	}
	log, err := lf.logger(env.Stderr)
	if err != nil {
		return err
	}
	if len(inf.sources) == 0 && len(st.cfg.Ingest.Streams) == 0 {
		inf.sources = stringList{DemoVideo}
	}
	streams, err := inf.streamConfigs(st.cfg.Ingest.Streams)
	if err != nil {
		return err
	}
	if err := st.annotate(checkRoles(&st.cfg)); err != nil {
		return err
	}
	if st.check {
		return st.report(env)
	}
	if inf.once {
		af.deadline = 0 // a recording is analysed completely: the credit window bounds the backlog
	}
	if err := probeFiles(ctx, streams); err != nil {
		if strings.Contains(err.Error(), DemoVideo) {
			err = fmt.Errorf("%w: run \"make setup\" (apt package opencv-doc) or pass --source", err)
		}
		return err
	}
	var reg *prometheus.Registry
	if st.cfg.Metrics.Addr != "" {
		reg = metrics.NewRegistry()
	}
	sinks, err := sf.sinks(env, registerer(reg))
	if err != nil {
		return err
	}
	// The sink role closes the sinks once it runs; until then every error return closes them here.
	sinksOwned := true
	defer func() {
		if sinksOwned {
			closeSinks(sinks)
		}
	}()
	// The track role needs every face's embedding; it drops them from the results it republishes
	// unless --keep-embeddings asked for them.
	keepEmbeddings := af.keepEmbeddings
	if tf.enabled {
		af.keepEmbeddings = true
	}
	onDemand, err := analyze.ParseHeads(af.onDemand)
	if err != nil {
		return fmt.Errorf("--on-demand-heads: %w", err)
	}
	if _, err := tf.role(nil, onDemand, keepEmbeddings, nil, log); err != nil {
		return err
	}
	an, err := af.loadAnalyzer(log)
	if err != nil {
		return err
	}
	defer an.Close()

	storeDir := st.cfg.Run.StoreDir
	if storeDir == "" {
		dir, err := os.MkdirTemp("", "vigil-nats-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		storeDir = dir
	}
	srv := &bus.EmbeddedServer{Host: st.cfg.Run.NATSHost, Port: st.cfg.Run.NATSPort, StoreDir: storeDir, Logger: log}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	defer srv.Close()
	url := srv.ClientURL()
	log.Debug("NATS ready", "url", url)

	conns := map[string]*nats.Conn{}
	var clients []natsClient
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for _, role := range []string{"ingest", "analyze", "track", "sink", "api", "web"} {
		ev := new(bus.Events)
		nc, err := dial(ctx, config.NATS{URL: url}, role, log, ev)
		if err != nil {
			return err
		}
		conns[role] = nc
		clients = append(clients, natsClient{role, nc, ev})
	}
	// The embedded server is a single node: one replica whatever the file says.
	jsCfg := st.cfg.JetStream
	jsCfg.Replicas = 1
	jsSink, err := setupJetStream(ctx, conns["sink"], jsCfg, log)
	if err != nil {
		return err
	}
	var jsAn jetstream.JetStream
	if jsSink != nil {
		if jsAn, err = jetstream.New(conns["analyze"]); err != nil {
			return err
		}
	}

	// Each role gets its own context so shutdown can go in pipeline order: stop ingest, let the
	// analyzer finish what it holds, let the sink write what arrived, then stop.
	outs, err := sf.openOutputs(ctx, conns["sink"], jsSink, log.With("role", "sink"))
	if err != nil {
		return err
	}
	defer outs.close() // after the roles returned
	sinkRole := sf.role(conns["sink"], jsSink, sinks, log.With("role", "sink"))
	sinkRole.Await = nil
	if inf.once {
		for _, s := range streams {
			sinkRole.Await = append(sinkRole.Await, s.Name)
		}
	}
	fr, err := ff.startFront(ctx, frontDeps{nc: conns["api"], an: an, storeDir: storeDir, deps: af.deps, version: env.Version,
		log: log, pipeline: analyze.PipelineConfig{GenderThreshold: float32(af.genderThr), LivenessThreshold: float32(af.livenessThr)}})
	if err != nil {
		return err
	}
	defer fr.Close()
	ui, err := wf.mount(fr.srv, conns["web"], fr.faces, log.With("role", "web"))
	if err != nil {
		return err
	}
	defer ui.Close() // before the HTTP server closes: live views end first
	if tf.enabled {
		jsAn = nil // vigil.analyzed is a core-NATS hop; the track role's results are the durable ones
	}
	anRole := af.role(conns["analyze"], jsAn, an, log.With("role", "analyze"))
	anRole.Classifiers = classifyFrames{fr.runner}
	var trRole *track.Role
	if tf.enabled {
		anRole.ResultsPrefix = event.AnalyzedPrefix
		if trRole, err = tf.role(conns["track"], onDemand, keepEmbeddings, fr.faces.Gallery, log.With("role", "track")); err != nil {
			return err
		}
		if jsSink != nil {
			js, err := jetstream.New(conns["track"])
			if err != nil {
				return err
			}
			trRole.Publisher = &bus.StreamPublisher{JS: js}
		}
	}
	// Ingest: --once reads recordings through the Role; otherwise the Manager runs the stream
	// list (flags, --streams-file, the persisted bucket, /v1/streams and vigil.control.streams),
	// and browsers publish through WHIP.
	inLog := log.With("role", "ingest")
	inRole := &ingest.Role{Conn: conns["ingest"], Streams: streams, Log: inLog}
	var managed *managedIngest
	if !inf.once {
		var jsIn jetstream.JetStream
		if jsSink != nil {
			if jsIn, err = jetstream.New(conns["ingest"]); err != nil {
				return err
			}
		}
		if managed, err = stf.newManaged(ctx, conns["ingest"], jsIn, 1, streams, inLog); err != nil {
			return err
		}
		managed.Mount(fr.srv)
	}
	attached := &ingest.Attached{Conn: conns["ingest"], Log: inLog,
		Defaults: ingest.StreamConfig{FPS: inf.fps, MaxWidth: inf.maxWidth, MaxHeight: inf.maxHeight, JPEGQuality: inf.quality}}
	defer attached.Close()
	whipEP := &webrtc.Endpoint{Log: inLog, OnSource: func(s *webrtc.Source) error { return attached.Attach(s.Stream(), s) }}
	if err := whipEP.Initialize(); err != nil {
		return err
	}
	defer whipEP.Close()
	whipEP.Mount(fr.srv)
	fr.srv.MarkPublic("/publish/") // the static publish page; its WHIP requests carry the key
	if reg != nil {
		inMetrics := prometheus.Collector(ingestMetrics(inRole))
		if managed != nil {
			inMetrics = managed.mgr.Collector()
		}
		reg.MustRegister(natsMetrics(clients...), sinkMetrics(sinkRole), analyzeMetrics(anRole, effectiveWorkers(af.workers), af.maxBatch), inMetrics)
		m, err := startMetrics(st.cfg.Metrics.Addr, reg, log)
		if err != nil {
			return err
		}
		defer stopMetrics(m)
	}

	sinkCtx, stopSink := context.WithCancel(context.WithoutCancel(ctx))
	trCtx, stopTr := context.WithCancel(context.WithoutCancel(ctx))
	anCtx, stopAn := context.WithCancel(context.WithoutCancel(ctx))
	inCtx, stopIn := context.WithCancel(ctx)
	defer stopSink()
	defer stopTr()
	defer stopAn()
	defer stopIn()

	var wg sync.WaitGroup
	sinkDone, trDone, anDone, inDone := make(chan error, 1), make(chan error, 1), make(chan error, 1), make(chan error, 1)
	wg.Add(2)
	sinksOwned = false
	go func() { defer wg.Done(); sinkDone <- sinkRole.Run(sinkCtx) }()
	outsDone := make(chan error, 1)
	go func() { outsDone <- outs.run(sinkCtx, stopSink) }() // webhooks, each on its own consumer
	go func() { defer wg.Done(); anDone <- anRole.Run(anCtx) }()
	readies := []<-chan struct{}{anRole.Ready(), sinkRole.Ready()}
	if trRole != nil {
		wg.Add(1)
		go func() { defer wg.Done(); trDone <- trRole.Run(trCtx) }()
		readies = append(readies, trRole.Ready())
	} else {
		trDone <- nil
	}
	defer wg.Wait()
	// Start reading sources only once the analyzer, the track role and the sink are subscribed,
	// so a short recording loses no frame to a subscription not yet in place.
	for _, ready := range readies {
		select {
		case <-ready:
		case err := <-anDone:
			anDone <- err
		case err := <-sinkDone:
			sinkDone <- err
		case <-ctx.Done():
		}
	}
	if err := fr.srv.Start(ctx); err != nil {
		return err
	}
	log.Info("Vigil is running: open the web view", "url", webURL(fr.srv, ui), "api_docs", docsURL(fr.srv, ff.http.docs))
	log.Info("results are on NATS subjects vigil.results.<stream>", "nats", url, "try", fmt.Sprintf("nats sub 'vigil.results.>' --server %s", url))
	wg.Add(1)
	if managed != nil {
		if err := managed.Start(inCtx); err != nil {
			managed.Close()
			return err
		}
		go func() { defer wg.Done(); <-inCtx.Done(); inDone <- managed.Close() }()
	} else {
		go func() { defer wg.Done(); inDone <- inRole.Run(inCtx) }()
	}

	var runErr, inErr error
	inFinished, sinkFinished := false, false
	for !sinkFinished {
		select {
		case inErr = <-inDone:
			inFinished = true
			inDone = nil
			if inErr != nil {
				runErr = inErr
			}
			if !inf.once || inErr != nil {
				// Live sources ended or failed: nothing more will come.
				sinkFinished = true
			}
		case err := <-sinkDone:
			// With --once every stream is complete; otherwise the sink only stops on ctx.
			sinkDone = nil
			sinkFinished = true
			if err != nil {
				runErr = errors.Join(runErr, err)
			}
		case <-ctx.Done():
			log.Info("stopping")
			sinkFinished = true
		}
	}
	// Orderly shutdown: ingest, then analyzer (drains), then sink (writes what arrived).
	stopIn()
	if !inFinished {
		if err := <-inDone; err != nil && runErr == nil && ctx.Err() == nil {
			runErr = err
		}
	}
	stopAn()
	if err := <-anDone; err != nil {
		runErr = errors.Join(runErr, err)
	}
	stopTr() // the track role publishes what it holds and ends the tracks
	if err := <-trDone; err != nil {
		runErr = errors.Join(runErr, err)
	}
	if sinkDone != nil {
		_ = conns["sink"].Flush() // everything routed to the sink so far is now in its buffer
		stopSink()                // with JetStream it catches up with the stream first
		if err := <-sinkDone; err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	stopSink()
	if err := <-outsDone; err != nil {
		runErr = errors.Join(runErr, err)
	}
	outs.report(log)
	reportProgress(log, sinkRole.Progress(), anRole.Stats().Dropped)
	if inf.once && runErr == nil {
		for _, s := range streams {
			if p, ok := sinkRole.Progress()[s.Name]; !ok || !p.Complete() {
				if ctx.Err() != nil {
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
func (rs *roleSetup) serve(addr string, collectors ...prometheus.Collector) error {
	if rs.reg == nil {
		return nil
	}
	rs.reg.MustRegister(collectors...)
	m, err := startMetrics(addr, rs.reg, rs.log)
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
	if inf.once || finite(streams) {
		// Recordings read to their end (--once, or files without --loop): a batch job that
		// exits when they have ended, as before the managed stream list existed.
		role := &ingest.Role{Conn: rs.nc, Streams: streams, Log: log}
		if err := rs.serve(st.cfg.Metrics.Addr, ingestMetrics(role)); err != nil {
			return err
		}
		return role.Run(ctx)
	}
	managed, err := stf.newManaged(ctx, rs.nc, rs.js, max(1, st.cfg.JetStream.Replicas), streams, log)
	if err != nil {
		return err
	}
	srv, err := hf.server(log.With("role", "http"), env.Version)
	if err != nil {
		return err
	}
	managed.Mount(srv)
	attached := &ingest.Attached{Conn: rs.nc, Log: log,
		Defaults: ingest.StreamConfig{FPS: inf.fps, MaxWidth: inf.maxWidth, MaxHeight: inf.maxHeight, JPEGQuality: inf.quality}}
	defer attached.Close()
	whipEP := &webrtc.Endpoint{Log: log, OnSource: func(s *webrtc.Source) error { return attached.Attach(s.Stream(), s) }}
	if err := whipEP.Initialize(); err != nil {
		return err
	}
	defer whipEP.Close()
	whipEP.Mount(srv)
	srv.MarkPublic("/publish/")
	if err := rs.serve(st.cfg.Metrics.Addr, managed.mgr.Collector()); err != nil {
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
	if err := rs.serve(st.cfg.Metrics.Addr, analyzeMetrics(role, effectiveWorkers(af.workers), af.maxBatch)); err != nil {
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
	if err := rs.serve(st.cfg.Metrics.Addr, append([]prometheus.Collector{sinkMetrics(role)}, outs.collectors(sf.writer)...)...); err != nil {
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
