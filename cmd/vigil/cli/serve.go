package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/analyze/faceapi"
	"github.com/vigil-video/vigil/analyze/faceengine"
	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/admit"
	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/metrics"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/privacy"
	"github.com/vigil-video/vigil/sink/eventstore"
	"github.com/vigil-video/vigil/sink/unknowns"
)

// httpFlags configure the HTTP server and its policy (vigil serve; vigil run can take them too).
type httpFlags struct {
	addr        string
	maxUploadMB float64
	cors        stringList
	docs        bool
	apiKeys     stringList
	apiKeysFile string
	rateLimit   float64
	rateBurst   int
	hosts       stringList
	limits      routeLimitFlags // the routes' own upload limits
}

func (f *httpFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "http-addr", "127.0.0.1:8080", "address the HTTP API listens on (port 0: any free port)")
	fs.Float64Var(&f.maxUploadMB, "max-upload-mb", 10, "largest request body in MiB; a larger upload gets 413 (0: no limit)")
	fs.Var(&f.cors, "cors-origins", "origins browsers may call the API from, e.g. https://app.example.com (comma-separated or repeated; * for any)")
	fs.BoolVar(&f.docs, "enable-docs", true, "serve the OpenAPI document at /openapi.json and its docs page at /docs")
	fs.Var(&f.apiKeys, "api-keys", "API keys clients must send as \"Authorization: Bearer KEY\" (comma-separated; none: no authentication). "+
		"Prefer VIGIL_API_KEYS or --api-keys-file: flags show in the process list")
	fs.StringVar(&f.apiKeysFile, "api-keys-file", "", "file with one API key per line (blank lines and # comments ignored), added to --api-keys")
	fs.Float64Var(&f.rateLimit, "rate-limit", 0, "requests per minute per API key (per client address without keys); more get 429 (0: no limit)")
	fs.IntVar(&f.rateBurst, "rate-burst", 0, "requests a caller may make at once after being idle (0: the --rate-limit value)")
	f.limits.register(fs)
	fs.Var(&f.hosts, "allowed-hosts", "host names clients may reach the API by besides IP addresses, localhost and this machine's name, "+
		"e.g. vigil.example.com,*.corp.example (* for any); other Host headers get 421, which stops DNS rebinding")
}

// server returns an httpapi.Server with the flags' policy, not started.
func (f *httpFlags) server(log *slog.Logger, version string) (*httpapi.Server, error) {
	keys := append([]string(nil), f.apiKeys...)
	if f.apiKeysFile != "" {
		fk, err := readKeysFile(f.apiKeysFile)
		if err != nil {
			return nil, err
		}
		keys = append(keys, fk...)
	}
	if f.maxUploadMB < 0 {
		return nil, fmt.Errorf("--max-upload-mb %v: must not be negative (0 means no limit)", f.maxUploadMB)
	}
	limit := int64(f.maxUploadMB * (1 << 20))
	if limit == 0 {
		limit = -1 // httpapi: negative is unlimited
	}
	routeLimits, err := f.limits.values()
	if err != nil {
		return nil, err
	}
	s := &httpapi.Server{Addr: f.addr, Log: log, MaxUploadBytes: limit, CORSOrigins: f.cors, APIKeys: keys,
		RatePerMinute: f.rateLimit, RateBurst: f.rateBurst, AllowedHosts: f.hosts, DisableDocs: !f.docs, Title: "Vigil face API", Version: version, Limits: routeLimits}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

func readKeysFile(path string) ([]string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--api-keys-file: %w", err)
	}
	defer fh.Close()
	var keys []string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			keys = append(keys, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--api-keys-file %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("--api-keys-file %s holds no key", path)
	}
	return keys, nil
}

// galleryFlags choose the gallery's bucket and match threshold (every command that uses the
// gallery; vigil run's analyzer can match with the same).
type galleryFlags struct {
	bucket    string
	threshold float64
}

func (f *galleryFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.bucket, "gallery-bucket", gallery.DefaultBucket, "JetStream KV bucket holding the face gallery")
	fs.Float64Var(&f.threshold, "match-threshold", gallery.DefaultThreshold,
		"cosine similarity from which two faces are the same person (verify, identify, gallery matches); "+
			"the default separates the project's labelled photos with a 0.12 margin on either side")
}

// openStore opens (creating when missing) the gallery bucket over nc.
func (f *galleryFlags) openStore(ctx context.Context, nc *nats.Conn) (*gallery.Store, error) {
	if f.threshold < -1 || f.threshold > 1 {
		return nil, fmt.Errorf("--match-threshold %v: must be within -1..1", f.threshold)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("gallery: JetStream: %w", err)
	}
	s, err := gallery.OpenStore(ctx, js, gallery.StoreConfig{Bucket: f.bucket})
	if err != nil {
		return nil, fmt.Errorf("%w (JetStream must be enabled on the NATS server: nats-server -js)", err)
	}
	return s, nil
}

// watch opens the gallery over nc and starts a watcher matching at the flags' threshold, waiting
// up to 10 s for the bucket's contents to load. An analyzer labels its faces with its Label
// method; Close it when done.
func (f *galleryFlags) watch(ctx context.Context, nc *nats.Conn, log *slog.Logger) (*gallery.Gallery, error) {
	store, err := f.openStore(ctx, nc)
	if err != nil {
		return nil, err
	}
	g := gallery.Watch(store, gallery.WatchConfig{Threshold: float32(f.threshold), Log: log})
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := g.WaitReady(wctx); err != nil {
		g.Close()
		return nil, err
	}
	log.Info("gallery loaded", "bucket", f.bucket, "identities", g.Len(), "threshold", f.threshold)
	return g, nil
}

// faceService is the face API's running parts besides the HTTP server: the gallery it matches
// against (also usable by an analyzer in the same process) and the API itself.
type faceService struct {
	Store   *gallery.Store
	Gallery *gallery.Gallery
	API     *faceapi.API
	// Engine runs the face models (search by photo uses it too).
	Engine faceapi.Engine
	// Gate admits the process's model-running requests: the face API's, search by photo's and
	// (vigil run) the classify API's share it, so that one limit bounds them together.
	Gate *admit.Gate
	// events is the event store erasure cleans (set by mountSearch before the server starts).
	events *eventstore.Store
	// unknowns are the unknown people erasure cleans (set by startUnknowns).
	unknowns *unknowns.Store
}

// Close stops the gallery watcher.
func (s *faceService) Close() {
	if s != nil && s.Gallery != nil {
		s.Gallery.Close()
	}
}

// mountFaceAPI opens the gallery over nc and starts its watcher, builds the face engine over
// models with base as the pipeline configuration (thresholds; heads are chosen per request), and
// mounts the face API with a NATS readiness check on srv, which the caller then starts. Close
// the returned service after closing srv. The service's Gate, maxConcurrent jobs (0: one per
// CPU), is the one admission gate of the process's model-running requests: mount the other
// model-running APIs with it.
//
// vigil run calls it with the analyzer's models (an.models.Get) and its own HTTP server.
func mountFaceAPI(ctx context.Context, srv *httpapi.Server, nc *nats.Conn, models analyze.Models, base analyze.PipelineConfig,
	gf galleryFlags, maxConcurrent int, mode privacy.Mode, log *slog.Logger) (*faceService, error) {
	store, err := gf.openStore(ctx, nc)
	if err != nil {
		return nil, err
	}
	eng, err := faceengine.New(faceengine.Config{Models: models, Pipeline: base})
	if err == nil {
		err = eng.Preload(faceapi.DefaultHeads(), true)
	}
	if err != nil {
		return nil, err
	}
	svc := &faceService{Store: store, Gallery: gallery.Watch(store, gallery.WatchConfig{Threshold: float32(gf.threshold), Log: log}), Engine: eng,
		Gate: &admit.Gate{MaxConcurrent: maxConcurrent}}
	svc.API, err = faceapi.Mount(srv, faceapi.Config{Engine: eng, Store: store, Gallery: svc.Gallery, Threshold: float32(gf.threshold),
		Gate: svc.Gate, Erase: svc.erase, Privacy: mode, Log: log})
	if err != nil {
		svc.Close()
		return nil, err
	}
	srv.ReadyCheck("nats", func(context.Context) error {
		if !nc.IsConnected() {
			return fmt.Errorf("not connected to NATS (%s)", nc.Status())
		}
		return nil
	})
	return svc, nil
}

// modelFlags are the flags that load the face models outside the analyze role (serve, the image
// commands, faces add): where the models are, where they run, the attribute thresholds.
type modelFlags struct{ af analyzeFlags }

func (m *modelFlags) register(fs *flag.FlagSet) {
	d := config.Default().Analyze
	fs.StringVar(&m.af.deps, "deps", models.DefaultDepsDir(), "directory \"make setup\" filled with onnxruntime and the models")
	fs.Float64Var(&m.af.genderThr, "gender-threshold", d.GenderThreshold, "gender score above which a face is labelled male")
	fs.Float64Var(&m.af.livenessThr, "liveness-threshold", d.LivenessThreshold, "liveness score from which a face is called real")
	registerFaceGate(fs, &m.af.faceGate)
	m.af.device.register(fs)
}

// pipelineConfig is the base pipeline configuration the flags give.
func (m *modelFlags) pipelineConfig() analyze.PipelineConfig {
	return analyze.PipelineConfig{GenderThreshold: float32(m.af.genderThr), LivenessThreshold: float32(m.af.livenessThr),
		MirrorTolerance: mirrorTolerance(m.af.faceGate)}
}

// load verifies and loads onnxruntime and opens the model set (models load on first use).
func (m *modelFlags) load(log *slog.Logger) (*analyzer, error) {
	man, err := models.Load()
	if err != nil {
		return nil, err
	}
	lib, dev, err := m.af.runtime(man, log)
	if err != nil {
		return nil, err
	}
	a := &analyzer{}
	if a.rt, err = onnx.NewRuntime(lib); err != nil {
		return nil, err
	}
	a.models = analyze.NewModelSet(a.rt, man, m.af.deps, onnx.SessionOptions{IntraOpThreads: 1, Device: dev, Log: log})
	return a, nil
}

func serveCmd(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("serve", "Runs the face HTTP API against a NATS server with JetStream: detect, analyze, represent, verify,\n"+
		"identify and annotate uploaded images, and manage the face gallery (/v1/identities), which every analyzer\n"+
		"watches. The web view is at / (--web), and with --events-db or --events-dsn the event history that vigil\n"+
		"sink stores is at /v1/history/. Docs at /docs, OpenAPI at /openapi.json, probes at /healthz and /readyz.")
	var (
		lf            logFlags
		hf            httpFlags
		gf            galleryFlags
		mf            modelFlags
		wf            webFlags
		url           string
		maxConcurrent int
		eventsDB      string
		eventsDSN     string
		privacyMode   string
		metricsAddr   string
	)
	lf.register(fs)
	hf.register(fs)
	gf.register(fs)
	mf.register(fs)
	wf.register(fs)
	fs.StringVar(&url, "nats-url", nats.DefaultURL, "NATS server URL(s), comma-separated; the server needs JetStream")
	fs.StringVar(&privacyMode, "privacy", config.Default().Serve.Privacy, "blur faces, irreversibly, in /v1/annotate's image and in the web UI's live frames, face crops and event snapshots: off, blur-unknown (faces without identity) or blur-all")
	fs.IntVar(&maxConcurrent, "max-concurrent", 0, "images analysed at once (0: one per CPU); more requests wait, and beyond 4x that get 503")
	fs.StringVar(&eventsDB, "events-db", "", "SQLite file of the event history (what vigil sink --events-db stores) to serve at /v1/history/ (empty or off: no history)")
	fs.StringVar(&metricsAddr, "metrics-addr", config.Default().Metrics.Addr, "serve Prometheus metrics on this host:port at /metrics (empty: off): "+
		"HTTP requests by route and code as vigil run records them, model latency, the gallery's corrupt records")
	fs.Var(secret{&eventsDSN}, "events-dsn", "PostgreSQL DSN of the event history instead (vigil sink --events-dsn); prefer VIGIL_EVENTS_DSN: flags show in the process list")
	if err := parse(fs, env, args); err != nil {
		return err
	}
	log, err := lf.logger(env.Stderr)
	if err != nil {
		return err
	}
	if eventsDB != "" && eventsDSN != "" {
		return errors.New("--events-db and --events-dsn: choose SQLite or PostgreSQL")
	}
	srv, err := hf.server(log, env.Version)
	if err != nil {
		return err
	}
	an, err := mf.load(log)
	if err != nil {
		return err
	}
	defer an.Close()
	nc, err := connect(ctx, url, "serve", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	mode, err := privacy.ParseMode(privacyMode)
	if err != nil {
		return fmt.Errorf("--privacy: %w", err)
	}
	svc, err := mountFaceAPI(ctx, srv, nc, an.models.Get, mf.pipelineConfig(), gf, maxConcurrent, mode, log)
	if err != nil {
		return err
	}
	defer svc.Close()
	history := false
	if (eventsDB != "" && eventsDB != "off") || eventsDSN != "" {
		// vigil sink writes the history and applies its retention; serve only reads it.
		store := &eventstore.Store{PruneInterval: -1, Log: log.With("role", "events")}
		if err := openEventStore(ctx, eventsDB, eventsDSN, store); err != nil {
			return err
		}
		defer store.Close() // after the HTTP server closed
		(&eventstore.API{Store: store}).Mount(srv)
		mountSearch(srv, store, svc)
		// The unknown people vigil run files (list, enrol, merge, delete; clustering runs there).
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		unk, err := startUnknowns(ctx, js, srv, store, svc, unknowns.DefaultMaxAge, log.With("role", "unknowns"))
		if err != nil {
			return err
		}
		defer unk.Close()
		history = true
	}
	ui, err := wf.mount(srv, nc, nil, svc, mode, log.With("role", "web"))
	if err != nil {
		return err
	}
	defer ui.Close() // on the error path; below it closes before the HTTP server
	m, err := serveMetrics(metricsAddr, hf.hosts, srv, an, svc, log)
	if err != nil {
		return err
	}
	defer stopMetrics(m)
	if err := srv.Start(ctx); err != nil {
		return err
	}
	historyURL := "off"
	if history {
		historyURL = srv.URL() + eventstore.PathEvents
	}
	log.Info("face API listening", "url", srv.URL(), "web", webURL(srv, ui), "docs", docsURL(srv, hf.docs), "history", historyURL,
		"gallery", gf.bucket, "api_keys", len(srv.APIKeys), "max_upload_mb", hf.maxUploadMB)
	<-ctx.Done()
	log.Info("stopping the face API")
	ui.Close() // live views end first, so the server's shutdown does not wait for them
	if err := srv.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// serveMetrics starts vigil serve's metrics endpoint on addr (nil when addr is empty), serving
// hosts as the API does: the API's requests by route and code (vigil_http_requests_total, as
// vigil run records them), the models' inference latency and the gallery's corrupt records.
func serveMetrics(addr string, hosts []string, srv *httpapi.Server, an *analyzer, svc *faceService, log *slog.Logger) (*metrics.Server, error) {
	if addr == "" {
		return nil, nil
	}
	reg := metrics.NewRegistry()
	reg.MustRegister(httpMetrics(srv), modelMetrics{an.rt}, galleryMetrics(svc))
	return startMetrics(config.Metrics{Addr: addr}, hosts, reg, log)
}

func docsURL(srv *httpapi.Server, on bool) string {
	if !on {
		return "off"
	}
	return srv.URL() + httpapi.PathDocs
}
