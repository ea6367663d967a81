package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/ingest/streams"
	"github.com/vigil-video/vigil/pkg/httpapi"
)

// noBucket is the --streams-bucket value that keeps the stream list in the process only.
const noBucket = "none"

// streamFlags configure the managed stream list of `vigil ingest` and `vigil run`: streams
// from --source flags and --streams-file, changed at run time through /v1/streams and
// vigil.control.streams, persisted in a JetStream key-value bucket.
type streamFlags struct {
	file    string
	bucket  string
	node    string
	policy  streams.SourcePolicy
	keyFile string
	details bool
	// runKey, runKeyTemp: vigil run's default key (see useRunStore).
	runKey     string
	runKeyTemp bool
}

func (f *streamFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.file, "streams-file", "", "YAML file with a \"streams:\" list (name, source, fps, max_width, max_height, jpeg_quality, enabled, node, loop, realtime; source \"push\" for pushed frames); "+
		"written to the stream list at start, replacing the stored streams of the same names")
	fs.StringVar(&f.bucket, "streams-bucket", streams.DefaultBucket, "JetStream key-value bucket the stream list persists in, shared by every ingest; a restarted ingest resumes its streams from it "+
		"(\""+noBucket+"\", or JetStream disabled: this process only, lost at exit)")
	fs.StringVar(&f.node, "node", "", "this ingest's node name: it runs the streams whose node is this name (streams from its --source and --streams-file get it); "+
		"unset: it runs every stream (one ingest). Name every ingest that shares a bucket")
	f.registerPolicy(fs)
}

// load reads and validates --streams-file (nil without one).
func (f *streamFlags) load() ([]streams.Spec, error) {
	if f.file == "" {
		return nil, nil
	}
	specs, err := streams.LoadFile(f.file, func(src string) error { _, _, err := ingest.Classify(src); return err })
	if err != nil {
		return nil, fmt.Errorf("--streams-file: %w", err)
	}
	return specs, nil
}

// check validates the flags without connecting anywhere (for --check-config).
func (f *streamFlags) check() error {
	if err := streams.ValidateNode(f.node); err != nil {
		return fmt.Errorf("--node: %w", err)
	}
	if err := f.policy.Validate(); err != nil {
		return err
	}
	_, err := f.load()
	return err
}

// managedIngest is the ingest role with a changing stream list: a Manager running what a
// Registry assigns to this node. Build it with newManaged, Mount and Register as needed, Start,
// and Close before draining its connection.
type managedIngest struct {
	mgr *ingest.Manager
	reg *streams.Registry
	// from names where the stream list persists, for the log of resumed streams; vigil run
	// adds its --store-dir.
	from string
}

// newManaged builds (without starting anything) the managed ingest publishing on nc: the list is
// seeded with flagStreams (from --source; Once streams are refused: --once runs the fixed
// ingest.Role) and the --streams-file streams, and persisted in the --streams-bucket bucket
// (replicas copies) when js is not nil and the flag is not "none", else in memory.
func (f *streamFlags) newManaged(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, replicas int, flagStreams []ingest.StreamConfig,
	log *slog.Logger) (*managedIngest, error) {
	fromFile, err := f.load()
	if err != nil {
		return nil, err
	}
	var seed []streams.Spec
	for _, c := range flagStreams {
		if c.Once {
			return nil, errors.New("--once reads each file once and exits: it runs without the managed stream list")
		}
		seed = append(seed, ingest.SpecOf(c))
	}
	seed = append(seed, fromFile...)
	var store streams.Store = &streams.MemoryStore{}
	from := "this process's memory"
	if js != nil && f.bucket != noBucket {
		from = "JetStream key-value bucket " + f.bucket
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		kv, err := streams.OpenKV(sctx, js, f.bucket, replicas)
		cancel()
		if err != nil {
			return nil, err
		}
		if kv.Sealer, err = f.sealer(log); err != nil {
			return nil, err
		}
		store = kv
	} else {
		log.Info("streams: the stream list is kept in this process only (no JetStream bucket)")
	}
	m := &managedIngest{mgr: &ingest.Manager{Conn: nc, Log: log}, from: from}
	if err := m.mgr.Initialize(); err != nil {
		return nil, err
	}
	m.reg = &streams.Registry{Runner: m.mgr, Store: store, Node: f.node, Seed: seed, Policy: f.policy, SourceErrorDetails: f.details, Log: log}
	return m, nil
}

// Mount mounts /v1/streams on srv; call it before srv starts.
func (m *managedIngest) Mount(srv *httpapi.Server) { m.reg.Mount(srv) }

// Register registers the streams' metrics on reg.
func (m *managedIngest) Register(reg prometheus.Registerer) error { return m.mgr.Register(reg) }

// Start writes the seed streams to the list, starts every stream of this node (resuming those
// in the bucket) and answers vigil.control.streams on the Manager's connection.
func (m *managedIngest) Start(ctx context.Context) error {
	if err := m.reg.Start(ctx); err != nil {
		return err
	}
	logResumed(m.reg.Log, m.reg.List(), m.reg.Seed, m.from)
	return m.reg.ServeNATS(m.mgr.Conn)
}

// Close stops answering requests, then stops every stream and waits for them. The streams stay
// in the bucket for the next start.
func (m *managedIngest) Close() error {
	return errors.Join(m.reg.Close(), m.mgr.Close())
}
