package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/sink"
)

// DemoVideo is the recording `vigil run` analyses when no --source is given (Debian opencv-doc).
const DemoVideo = "/usr/share/doc/opencv-doc/examples/data/Megamind.avi"

// ingestFlags configure the ingest role.
type ingestFlags struct {
	sources, streams    stringList
	fps                 float64
	maxWidth, maxHeight int
	quality             int
	once                bool
	realtime, loop      bool
}

func (f *ingestFlags) register(fs *flag.FlagSet, demo bool) {
	help := "video source: a file path, file://, rtsp://, rtsps://, http(s):// URL or device:N (repeatable)"
	if demo {
		help += "; default the demo video " + DemoVideo
	}
	fs.Var(&f.sources, "source", help)
	fs.Var(&f.streams, "stream", "stream name for the --source at the same position (repeatable; default derived from the source; [A-Za-z0-9_-], at most 64)")
	fs.Float64Var(&f.fps, "fps", 5, "frames per second of video analysed per stream")
	fs.IntVar(&f.maxWidth, "max-width", 1280, "published frames are scaled down to at most this width")
	fs.IntVar(&f.maxHeight, "max-height", 720, "published frames are scaled down to at most this height")
	fs.IntVar(&f.quality, "jpeg-quality", 80, "JPEG quality of published frames, 1-100")
	fs.BoolVar(&f.once, "once", false, "read each file source to its end once, wait until every frame has a result or a counted drop, then exit")
	fs.BoolVar(&f.realtime, "realtime", true, "pace file sources at their own frame rate, as a camera would (ignored with --once)")
	fs.BoolVar(&f.loop, "loop", true, "restart file sources at their end (ignored with --once)")
}

// streamConfigs turns the flags into validated stream configurations.
func (f *ingestFlags) streamConfigs() ([]ingest.StreamConfig, error) {
	if len(f.streams) > len(f.sources) {
		return nil, fmt.Errorf("%d --stream names for %d --source flags", len(f.streams), len(f.sources))
	}
	var out []ingest.StreamConfig
	used := map[string]bool{}
	for i, src := range f.sources {
		name := ""
		if i < len(f.streams) {
			name = f.streams[i]
		} else {
			name = uniqueName(StreamNameFor(src), used)
		}
		if used[name] {
			return nil, fmt.Errorf("stream name %q used twice: give each --source its own --stream", name)
		}
		used[name] = true
		c := ingest.StreamConfig{Name: name, Source: src, FPS: f.fps, MaxWidth: f.maxWidth, MaxHeight: f.maxHeight,
			JPEGQuality: f.quality, Once: f.once, Loop: f.loop && !f.once, Realtime: f.realtime && !f.once}
		c.SetDefaults()
		if f.fps == 0 {
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
	workers        int
	maxBatch       int
	maxWait        time.Duration
	deadline       time.Duration
	keepEmbeddings bool
	genderThr      float64
	livenessThr    float64
}

func (f *analyzeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.deps, "deps", models.DefaultDepsDir(), "directory \"make setup\" filled with onnxruntime and the models")
	fs.StringVar(&f.heads, "heads", "default", "face heads to run: comma-separated from "+strings.Join(analyze.AllHeads, ", ")+
		"; or all, default ("+strings.Join(analyze.DefaultHeads, ",")+"), none")
	fs.StringVar(&f.onDemand, "on-demand-heads", "emotion,liveness,pose", "heads loaded but run only on frames that request them (the track stage asks for a new or stale track); same syntax as --heads")
	fs.IntVar(&f.workers, "workers", 0, "batches analysed in parallel, one onnxruntime thread each (0: one per CPU)")
	fs.IntVar(&f.maxBatch, "max-batch", 4, "most frames per model batch (on CPU small batches and one worker per core win; raise it for GPUs)")
	fs.DurationVar(&f.maxWait, "max-wait", 10*time.Millisecond, "how long a batch waits for more frames after its first")
	fs.DurationVar(&f.deadline, "deadline", 2*time.Second, "drop frames older than this when a worker takes them (0: never; --once sets 0)")
	fs.BoolVar(&f.keepEmbeddings, "keep-embeddings", false, "include each face's 512-d embedding in results")
	fs.Float64Var(&f.genderThr, "gender-threshold", 0.6, "gender score above which a face is labelled male")
	fs.Float64Var(&f.livenessThr, "liveness-threshold", 0.5, "liveness score from which a face is called real")
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
	man, err := models.Load()
	if err != nil {
		return nil, err
	}
	lib, err := man.VerifyPath(f.deps, "onnxruntime")
	if err != nil {
		return nil, err
	}
	a := &analyzer{}
	if a.rt, err = onnx.NewRuntime(lib); err != nil {
		return nil, err
	}
	a.models = analyze.NewModelSet(a.rt, man, f.deps, onnx.SessionOptions{IntraOpThreads: 1, MaxBatch: max(f.maxBatch, 1) * 4})
	a.pipeline, err = analyze.NewPipeline(analyze.PipelineConfig{
		Heads: heads, OnDemand: onDemand, KeepEmbeddings: f.keepEmbeddings,
		GenderThreshold: float32(f.genderThr), LivenessThreshold: float32(f.livenessThr),
	}, a.models.Get)
	if err != nil {
		a.Close()
		return nil, err
	}
	log.Info("models loaded", "heads", strings.Join(a.pipeline.Heads(), ","),
		"on_demand_heads", strings.Join(a.pipeline.OnDemandHeads(), ","), "onnxruntime", a.rt.Version())
	return a, nil
}

func (f *analyzeFlags) role(nc *nats.Conn, a *analyzer, log *slog.Logger) *analyze.Role {
	return &analyze.Role{Conn: nc, Analyzer: a.pipeline, Workers: f.workers, MaxBatch: f.maxBatch, MaxWait: f.maxWait,
		Deadline: f.deadline, Log: log}
}

// sinkFlags configure the sink role.
type sinkFlags struct {
	jsonl string
	quiet bool
}

func (f *sinkFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.jsonl, "jsonl", "", "also write results as JSON lines to this file (truncated at start)")
	fs.BoolVar(&f.quiet, "quiet", false, "do not print results on stdout")
}

func (f *sinkFlags) sinks(env Env) ([]sink.Sink, error) {
	var out []sink.Sink
	if !f.quiet {
		out = append(out, sink.NewJSONLines(stdoutOr(env.Stdout)))
	}
	if f.jsonl != "" {
		j, err := sink.CreateJSONLinesFile(f.jsonl)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	if len(out) == 0 {
		return nil, errors.New("--quiet without --jsonl leaves results nowhere to go")
	}
	return out, nil
}

// connect dials NATS for one role.
func connect(ctx context.Context, url, role string, log *slog.Logger) (*nats.Conn, error) {
	return bus.Connect(ctx, url, "vigil-"+role, log.With("role", role))
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
