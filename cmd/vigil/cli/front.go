package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/analyze/classify"
	"github.com/vigil-video/vigil/analyze/classify/api"
	"github.com/vigil-video/vigil/analyze/classify/project"
	"github.com/vigil-video/vigil/analyze/classify/selection"
	"github.com/vigil-video/vigil/analyze/classify/store"
	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/privacy"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/sink"
	"github.com/vigil-video/vigil/sink/eventstore"
	"github.com/vigil-video/vigil/sink/eventstore/snapshot"
	"github.com/vigil-video/vigil/sink/eventstore/sqlite"
	"github.com/vigil-video/vigil/sink/unknowns"
)

// frontFlags configure what `vigil run` serves besides the pipeline: the HTTP server (face API,
// gallery, classifiers, event history), the classifiers the analyzer runs, the event store.
type frontFlags struct {
	http             httpFlags
	gallery          galleryFlags
	classifiers      string
	classifierBucket string
	eventsDB         string
	unknownsMaxAge   time.Duration
	privacy          string
}

func (f *frontFlags) register(fs *flag.FlagSet) {
	f.http.register(fs)
	f.gallery.register(fs)
	fs.StringVar(&f.classifiers, "classifiers", "", "which custom classifiers run on which streams, e.g. \"lobby,door=helmet; parking=*; *=-\" (empty: every registered classifier on every stream)")
	fs.StringVar(&f.classifierBucket, "classifier-bucket", store.DefaultBucket, "JetStream object store holding the custom classifiers")
	fs.StringVar(&f.privacy, "privacy", config.Default().Serve.Privacy, "blur faces, irreversibly, in everything the server shows or stores: the web UI's live frames (blurred before they leave the server), face crops and event snapshots, the event history's snapshots and /v1/annotate's image: off, blur-unknown (faces without identity) or blur-all")
	fs.DurationVar(&f.unknownsMaxAge, "unknowns-max-age", unknowns.DefaultMaxAge, "unknown people (tracks without identity, clustered by face; /v1/unknowns) expire when unseen this long")
	fs.StringVar(&f.eventsDB, "events-db", "", "SQLite file keeping the face events and snapshots for the history (default: events.db in the NATS store directory; \"off\": none)")
}

// front is the running set: the HTTP server and everything mounted on it, plus the parts the
// pipeline roles use (the gallery as the track role's matcher, the classifier runner as the
// analyzer's). Close stops everything it started, in order, and waits.
type front struct {
	srv      *httpapi.Server
	faces    *faceService
	registry *classify.Registry
	runner   *classify.Runner
	projects *project.Manager
	events   *eventstore.Store
	ring     *snapshot.Ring
	consumer *eventstore.Consumer
	// privacy is the --privacy mode (the web UI blurs with it too).
	privacy privacy.Mode
	// unknowns are the unknown people, fed by the event consumer.
	unknowns *unknowns.Store
	results  *sink.Role // result summaries into events, for /v1/history/results

	cancel context.CancelFunc
	alive  context.Context // ends when the event consumer's Run returned
	wg     sync.WaitGroup
	log    *slog.Logger
}

// frontDeps is what the front needs from `vigil run`.
type frontDeps struct {
	nc       *nats.Conn     // the front's own NATS connection
	frames   *bus.FrameFeed // the frame subscription vigil run shares: the snapshot ring's frames
	an       *analyzer      // the loaded analyzer: runtime and models are shared
	pipeline analyze.PipelineConfig
	storeDir string
	deps     string
	version  string
	log      *slog.Logger
}

// startFront builds and starts the front. The HTTP server is created but not started: the caller
// mounts more routes (WHIP, streams, web UI) and then calls startHTTP.
func (f *frontFlags) startFront(ctx context.Context, d frontDeps) (_ *front, err error) {
	fr := &front{log: d.log.With("role", "events")}
	defer func() {
		if err != nil {
			fr.Close()
		}
	}()
	if fr.srv, err = f.http.server(d.log.With("role", "api"), d.version); err != nil {
		return nil, err
	}
	mode, err := privacy.ParseMode(f.privacy)
	if err != nil {
		return nil, fmt.Errorf("--privacy: %w", err)
	}
	fr.privacy = mode
	if fr.faces, err = mountFaceAPI(ctx, fr.srv, d.nc, d.an.models.Get, d.pipeline, f.gallery, 0, mode, d.log.With("role", "api")); err != nil {
		return nil, err
	}

	// Custom classifiers: the registry follows the object store; the analyzer runs them.
	sel, err := selection.Parse(f.classifiers)
	if err != nil {
		return nil, fmt.Errorf("--classifiers: %w", err)
	}
	js, err := jetstream.New(d.nc)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, js, store.Config{Bucket: f.classifierBucket})
	if err != nil {
		return nil, err
	}
	if fr.registry, err = classify.OpenRegistry(classify.RegistryConfig{Runtime: d.an.rt, Store: st, Log: d.log.With("role", "classifiers")}); err != nil {
		return nil, err
	}
	fr.runner = &classify.Runner{Source: fr.registry, Selection: sel, Log: d.log.With("role", "classifiers")}
	faces := pipelineFaces(d.an.pipeline)
	// Training in place: face classifiers learn on the face embedding. (Frame classifiers are
	// trained with `vigil classifiers train --backbone MODEL`, or registered ready-made.)
	man, err := models.Load()
	if err != nil {
		return nil, err
	}
	featureModel, err := man.ReadVerified(d.deps, "fr_feature")
	if err != nil {
		return nil, err
	}
	faceBackbone, err := classify.FaceBackbone("fr_feature", featureModel)
	if err != nil {
		return nil, err
	}
	backbones := map[string]classify.Backbone{"face": faceBackbone}
	trainer := &classify.ProjectTrainer{Runtime: d.an.rt, Registry: fr.registry, Faces: faces, Backbones: backbones}
	// Frame classifiers train on an ImageNet backbone uploaded once (vigil classifiers backbone add).
	if trainer.Stored, err = store.OpenBackbones(ctx, js, store.Config{}); err != nil {
		return nil, err
	}
	if fr.projects, err = project.Open(project.Config{Dir: filepath.Join(d.storeDir, "classifier-projects"), Train: trainer.Train,
		MaxUploadBytes: fr.srv.UploadLimit(api.DatasetSetting, project.DefaultMaxUploadBytes), // the route's limit, --max-dataset-mb
		Log:            d.log.With("role", "classifiers")}); err != nil {
		return nil, err
	}
	api.Mount(fr.srv, api.Config{Backend: &classify.Service{Registry: fr.registry, Faces: faces}, Projects: fr.projects, Backbones: trainer,
		Gate: fr.faces.Gate, Log: d.log.With("role", "classifiers")}) // the face API's gate: one limit for every model-running request

	// Event history: events from the track role with snapshots cut from recent frames.
	if f.eventsDB != "off" {
		path := f.eventsDB
		if path == "" {
			path = filepath.Join(d.storeDir, "events.db")
		}
		fr.events = &eventstore.Store{Log: d.log.With("role", "events")}
		if err := sqlite.Open(ctx, path, fr.events); err != nil {
			fr.events = nil
			return nil, err
		}
		(&eventstore.API{Store: fr.events}).Mount(fr.srv)
		mountSearch(fr.srv, fr.events, fr.faces)
		if fr.unknowns, err = startUnknowns(ctx, js, fr.srv, fr.events, fr.faces, f.unknownsMaxAge, d.log.With("role", "unknowns")); err != nil {
			return nil, err
		}
		fr.ring = &snapshot.Ring{Crop: snapshotCrop}
		d.frames.Add(fr.ring.Receive) // no subscription of its own: vigil run's group runs the feed
		fr.consumer = &eventstore.Consumer{Conn: d.nc, Privacy: mode, Sinks: []eventstore.EventSink{fr.events,
			&unknowns.Sink{Store: fr.unknowns, OnAssign: fr.events.SetUnknown}}, Snapshots: fr.ring,
			JetStream: js, Log: d.log.With("role", "events")}
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		fr.cancel = cancel
		alive, ended := context.WithCancel(context.Background())
		fr.alive = alive
		fr.wg.Add(1)
		go func() {
			defer fr.wg.Done()
			defer ended()
			if err := fr.consumer.Run(cctx); err != nil {
				d.log.Error("event history stopped", "err", err) // the pipeline goes on without it
			}
		}()
		// Result summaries for /v1/history/results, through a durable consumer of their own
		// (as vigil sink --events-db stores them): it resumes where it stopped, and on the way
		// out it writes what the stream holds (up to its DrainTimeout) before it returns.
		fr.results = &sink.Role{Conn: d.nc, Sinks: []sink.Sink{keepOpen{fr.events}}, JetStream: js, Durable: historyResultsDurable,
			LostAfter: -1, Log: d.log.With("role", "events")}
		fr.wg.Add(1)
		go func() {
			defer fr.wg.Done()
			if err := fr.results.Run(cctx); err != nil {
				d.log.Error("result history stopped", "err", err)
			}
		}()
	}
	return fr, nil
}

// classifyFrames adapts the classifier runner to the analyze role.
type classifyFrames struct{ r *classify.Runner }

// Runs reports whether a classifier runs on stream (the analyzer decodes other streams' frames
// at reduced size when only detection needs them).
func (c classifyFrames) Runs(stream string) bool { return c.r.Runs(stream) }

func (c classifyFrames) ClassifyFrames(ctx context.Context, frames []analyze.ClassifyFrame) ([][]result.Classification, error) {
	in := make([]classify.Frame, len(frames))
	for i, f := range frames {
		in[i] = classify.Frame{Stream: f.Stream, Image: f.Image, Faces: f.Faces}
	}
	return c.r.Classify(ctx, in)
}

// historyResultsDurable is the JetStream consumer through which vigil run stores result
// summaries in its event history.
const historyResultsDurable = "vigil-history-results"

// historyCatchUp bounds how long Close waits for the event history to take the events stored
// before it (the track role's last face.left events), as the sink role's catch-up is bounded.
const historyCatchUp = 10 * time.Second

// Close stops the front: the HTTP server first (no new requests), then the event consumer once
// it has caught up with the stored events (up to historyCatchUp), the snapshot ring, the
// classifier projects and registry, the gallery.
func (fr *front) Close() {
	if fr.srv != nil {
		_ = fr.srv.Close()
	}
	if fr.consumer != nil && fr.cancel != nil && isClosed(fr.consumer.Ready()) { // never ready (no JetStream): nothing to catch up
		ctx, cancel := context.WithTimeout(fr.alive, historyCatchUp)
		if err := fr.consumer.CatchUp(ctx); err != nil && fr.alive.Err() == nil {
			fr.log.Warn("event history: stopped before it had every event", "err", err)
		}
		cancel()
	}
	if fr.cancel != nil {
		fr.cancel()
	}
	fr.wg.Wait()
	if fr.unknowns != nil {
		fr.unknowns.Close()
	}
	if fr.ring != nil {
		_ = fr.ring.Close()
	}
	if fr.events != nil {
		_ = fr.events.Close()
	}
	if fr.projects != nil {
		_ = fr.projects.Close()
	}
	if fr.registry != nil {
		_ = fr.registry.Close()
	}
	fr.faces.Close()
}
