package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/event"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/analyze/track"
)

// trackFlags configure the track role. In `vigil run` the analyzer's flags already define
// --on-demand-heads and --keep-embeddings, which the track role then shares; `vigil track`
// registers its own.
type trackFlags struct {
	enabled        bool // `vigil run` only
	threshold      float64
	headsInterval  time.Duration
	maxMisses      int
	minVotes       int
	idle           time.Duration
	streams        stringList // `vigil track` only
	onDemand       string     // `vigil track` only
	keepEmbeddings bool       // `vigil track` only
}

// register defines the track flags on fs; standalone is true for `vigil track`, false for
// `vigil run`.
func (f *trackFlags) register(fs *flag.FlagSet, standalone bool) {
	if standalone {
		fs.Var(&f.streams, "stream", "track only these streams (repeatable; default every stream): shard streams over several track roles")
		fs.StringVar(&f.onDemand, "on-demand-heads", config.Default().Analyze.OnDemandHeads,
			"heads the analyzers run on request (their --on-demand-heads): asked for per track, when new, until its identity settles (embedding, age, gender), every --heads-interval and on a better view; none: never ask")
		fs.BoolVar(&f.keepEmbeddings, "keep-embeddings", false, "keep each face's 512-d embedding in the results republished on vigil.results")
	} else {
		fs.BoolVar(&f.enabled, "track", true, "run the track role: analyzers publish on vigil.analyzed.<stream>; the track role adds track ids, identities and carried heads, republishes on vigil.results.<stream> and announces events on vigil.events.<stream>.<kind> (false: analyzers publish results directly, without tracking)")
	}
	fs.Float64Var(&f.threshold, "identity-threshold", track.DefaultThreshold, "gallery similarity from which a frame votes for an identity (same-person pairs in the test faces score 0.58 or more, different people 0.34 or less)")
	fs.DurationVar(&f.headsInterval, "heads-interval", 5*time.Second, "ask again for a track's on-demand heads once its latest output is this old (capture time); 0: never ask (heavy heads then run only where the analyzers' --heads runs them)")
	fs.IntVar(&f.maxMisses, "track-max-misses", 5, "end a track after this many analysed frames without its face")
	fs.IntVar(&f.minVotes, "track-min-votes", 3, "frames that must have voted before a track's identity can settle")
	fs.DurationVar(&f.idle, "track-idle", 10*time.Second, "end a stream's tracks (face.left, reason idle) after this long without results")
}

// role builds the track role, checking the flags first (call it before connecting to report
// bad flags early: nc may be nil then). heads are the on-demand heads to schedule per track
// (nil or empty: never ask); matcher identifies faces (nil: only identities the analyzer put on
// faces vote).
func (f *trackFlags) role(nc *nats.Conn, heads []string, keepEmbeddings bool, matcher track.Matcher, log *slog.Logger) (*track.Role, error) {
	if f.headsInterval < 0 {
		return nil, fmt.Errorf("--heads-interval %s: negative", f.headsInterval)
	}
	if f.maxMisses < 1 || f.minVotes < 1 {
		return nil, fmt.Errorf("--track-max-misses %d, --track-min-votes %d: each must be at least 1", f.maxMisses, f.minVotes)
	}
	cfg := track.TrackerConfig{Threshold: float32(f.threshold), MaxMisses: f.maxMisses, MinVotes: f.minVotes,
		Heads: heads, HeadsInterval: f.headsInterval}
	if cfg.Heads == nil {
		cfg.Heads = []string{} // nil would mean the default heads
	}
	if f.headsInterval == 0 || len(heads) == 0 {
		cfg.HeadsInterval = -1 // never ask
	}
	if f.threshold == 0 {
		cfg.Threshold = 1e-9 // an explicit 0 is not "the default"
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &track.Role{Conn: nc, Streams: f.streams, Tracker: cfg, Matcher: matcher, KeepEmbeddings: keepEmbeddings,
		IdleTimeout: f.idle, Log: log}, nil
}

func trackCmd(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("track", "Runs the track role: reads the analyzers' full results on vigil.analyzed.<stream> (vigil analyze --track),\n"+
		"follows faces across frames, votes each track's identity, asks ingest for the heavy heads per track\n"+
		"(vigil.control.heads.<stream>), republishes enriched results on vigil.results.<stream> and announces\n"+
		"face.appeared, face.recognized and face.left on vigil.events.<stream>.<kind>.")
	var (
		lf  logFlags
		tf  trackFlags
		url string
	)
	lf.register(fs)
	tf.register(fs, true)
	fs.StringVar(&url, "nats-url", nats.DefaultURL, "NATS server URL(s), comma-separated")
	if err := parse(fs, env, args); err != nil {
		return err
	}
	log, err := lf.logger(env.Stderr)
	if err != nil {
		return err
	}
	heads, err := analyze.ParseHeads(tf.onDemand)
	if err != nil {
		return fmt.Errorf("--on-demand-heads: %w", err)
	}
	role, err := tf.role(nil, heads, tf.keepEmbeddings, nil, log)
	if err != nil {
		return err
	}
	nc, err := connect(ctx, url, "track", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	role.Conn = nc
	if js, err := jetstream.New(nc); err == nil {
		// Faces and events of tracks without identity carry the unknown person they match.
		x, err := openUnknownIndex(ctx, js, log)
		if err != nil {
			return err
		}
		defer x.Close()
		role.Unknowns = x
	}
	err = role.Run(ctx)
	s := role.Stats()
	log.Info("track summary", "results", s.Results, "late", s.Late, "invalid", s.Invalid, "heads_requests", s.HeadsRequests, "heads_deferred", s.HeadsDeferred,
		"appeared", s.Events[event.KindAppeared], "recognized", s.Events[event.KindRecognized], "left", s.Events[event.KindLeft])
	return err
}
