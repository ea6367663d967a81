package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/sink"
)

func runCmd(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("run", "Runs every role in one process with an embedded NATS server: ingest reads the sources,\n"+
		"analyze runs the face models, sink prints results as JSON lines. Ctrl-C stops cleanly.")
	var (
		lf       logFlags
		inf      ingestFlags
		af       analyzeFlags
		sf       sinkFlags
		natsHost string
		natsPort int
		storeDir string
	)
	lf.register(fs)
	inf.register(fs, true)
	af.register(fs)
	sf.register(fs)
	fs.StringVar(&natsHost, "nats-host", "127.0.0.1", "address the embedded NATS server listens on")
	fs.IntVar(&natsPort, "nats-port", 4222, "port of the embedded NATS server (0: any free port)")
	fs.StringVar(&storeDir, "store-dir", "", "JetStream storage directory of the embedded server (default: a temporary directory)")
	if err := parse(fs, env, args); err != nil {
		return err
	}
	log, err := lf.logger(env.Stderr)
	if err != nil {
		return err
	}
	if len(inf.sources) == 0 {
		inf.sources = stringList{DemoVideo}
	}
	streams, err := inf.streamConfigs()
	if err != nil {
		return err
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
	sinks, err := sf.sinks(env)
	if err != nil {
		return err
	}
	an, err := af.loadAnalyzer(log)
	if err != nil {
		closeSinks(sinks)
		return err
	}
	defer an.Close()

	if storeDir == "" {
		dir, err := os.MkdirTemp("", "vigil-nats-")
		if err != nil {
			closeSinks(sinks)
			return err
		}
		defer os.RemoveAll(dir)
		storeDir = dir
	}
	srv := &bus.EmbeddedServer{Host: natsHost, Port: natsPort, StoreDir: storeDir, Logger: log}
	if err := srv.Start(ctx); err != nil {
		closeSinks(sinks)
		return err
	}
	defer srv.Close()
	url := srv.ClientURL()
	log.Info("NATS ready: results on vigil.results.<stream>", "url", url, "try", fmt.Sprintf("nats sub 'vigil.results.>' --server %s", url))

	conns := map[string]*nats.Conn{}
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for _, role := range []string{"ingest", "analyze", "sink"} {
		nc, err := connect(ctx, url, role, log)
		if err != nil {
			closeSinks(sinks)
			return err
		}
		conns[role] = nc
	}

	// Each role gets its own context so shutdown can go in pipeline order: stop ingest, let the
	// analyzer finish what it holds, let the sink write what arrived, then stop.
	sinkRole := &sink.Role{Conn: conns["sink"], Sinks: sinks, Log: log.With("role", "sink")}
	if inf.once {
		for _, s := range streams {
			sinkRole.Await = append(sinkRole.Await, s.Name)
		}
	}
	anRole := af.role(conns["analyze"], an, log.With("role", "analyze"))
	inRole := &ingest.Role{Conn: conns["ingest"], Streams: streams, Log: log.With("role", "ingest")}

	sinkCtx, stopSink := context.WithCancel(context.WithoutCancel(ctx))
	anCtx, stopAn := context.WithCancel(context.WithoutCancel(ctx))
	inCtx, stopIn := context.WithCancel(ctx)
	defer stopSink()
	defer stopAn()
	defer stopIn()

	var wg sync.WaitGroup
	sinkDone, anDone, inDone := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	wg.Add(3)
	go func() { defer wg.Done(); sinkDone <- sinkRole.Run(sinkCtx) }()
	go func() { defer wg.Done(); anDone <- anRole.Run(anCtx) }()
	defer wg.Wait()
	// Start reading sources only once the analyzer and the sink are subscribed, so a short
	// recording loses no frame to a subscription not yet in place.
	for _, ready := range []<-chan struct{}{anRole.Ready(), sinkRole.Ready()} {
		select {
		case <-ready:
		case err := <-anDone:
			anDone <- err
		case err := <-sinkDone:
			sinkDone <- err
		case <-ctx.Done():
		}
	}
	go func() { defer wg.Done(); inDone <- inRole.Run(inCtx) }()

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
	if sinkDone != nil {
		_ = conns["sink"].Flush() // everything routed to the sink so far is now in its buffer
		stopSink()
		if err := <-sinkDone; err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
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
		log.Info("stream summary", attrs...)
	}
	if len(analyzerDrops) > 0 {
		log.Info("analyzer drops", "by_reason", analyzerDrops)
	}
}

func ingestCmd(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("ingest", "Runs the ingest role: reads the sources and publishes sampled JPEG frames on vigil.frames.<stream>.")
	var (
		lf  logFlags
		inf ingestFlags
		url string
	)
	lf.register(fs)
	inf.register(fs, false)
	fs.StringVar(&url, "nats-url", nats.DefaultURL, "NATS server URL(s), comma-separated")
	if err := parse(fs, env, args); err != nil {
		return err
	}
	log, err := lf.logger(env.Stderr)
	if err != nil {
		return err
	}
	if len(inf.sources) == 0 {
		return errors.New("no --source given")
	}
	streams, err := inf.streamConfigs()
	if err != nil {
		return err
	}
	if err := probeFiles(ctx, streams); err != nil {
		return err
	}
	nc, err := connect(ctx, url, "ingest", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	err = (&ingest.Role{Conn: nc, Streams: streams, Log: log}).Run(ctx)
	if derr := nc.Drain(); derr != nil && err == nil {
		err = derr
	}
	return err
}

func analyzeCmd(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("analyze", "Runs the analyze role: joins the analyzers' queue group on vigil.frames.*, runs the face models\n"+
		"in batches and publishes results on vigil.results.<stream>. SIGTERM drains in-flight batches first.")
	var (
		lf  logFlags
		af  analyzeFlags
		url string
	)
	lf.register(fs)
	af.register(fs)
	fs.StringVar(&url, "nats-url", nats.DefaultURL, "NATS server URL(s), comma-separated")
	if err := parse(fs, env, args); err != nil {
		return err
	}
	log, err := lf.logger(env.Stderr)
	if err != nil {
		return err
	}
	an, err := af.loadAnalyzer(log)
	if err != nil {
		return err
	}
	defer an.Close()
	nc, err := connect(ctx, url, "analyze", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	role := af.role(nc, an, log)
	role.Name = hostname() + fmt.Sprintf("-%d", os.Getpid())
	err = role.Run(ctx)
	reportProgress(log, nil, role.Stats().Dropped)
	return err
}

func sinkCmd(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("sink", "Runs the sink role: writes every result on vigil.results.* as a JSON line.")
	var (
		lf    logFlags
		sf    sinkFlags
		url   string
		await stringList
	)
	lf.register(fs)
	sf.register(fs)
	fs.StringVar(&url, "nats-url", nats.DefaultURL, "NATS server URL(s), comma-separated")
	fs.Var(&await, "await", "exit once these streams (repeatable) have ended and every frame has a result or drop")
	if err := parse(fs, env, args); err != nil {
		return err
	}
	log, err := lf.logger(env.Stderr)
	if err != nil {
		return err
	}
	sinks, err := sf.sinks(env)
	if err != nil {
		return err
	}
	nc, err := connect(ctx, url, "sink", log)
	if err != nil {
		closeSinks(sinks)
		return err
	}
	defer nc.Close()
	role := &sink.Role{Conn: nc, Sinks: sinks, Await: await, Log: log}
	err = role.Run(ctx)
	reportProgress(log, role.Progress(), nil)
	return err
}

// waitTimeout is used by tests and bench to bound waits.
const waitTimeout = 2 * time.Minute
