// Package config is Vigil's configuration: one YAML format for every role, with a shared nats:
// section (server URLs, credentials, TLS), a jetstream: section (the results and events streams'
// limits and replicas) and one section per role (ingest, analyze, track, sink, serve, run).
//
// Precedence, lowest first: Default(), then a YAML file (Load or Parse), then VIGIL_* environment
// variables and command-line flags (applied by cmd/vigil/cli, which binds each flag to a field here),
// then Validate. Every field's comment gives its YAML key and its default.
//
// A role reads only the sections it needs, but a file is always parsed and validated whole, so
// one file can serve every process of a deployment. Unknown keys, duplicate keys, wrong types and
// out-of-range values are errors that name the file, the line and the key path
// (for example "vigil.yaml:12: analyze.max_batch: 0 is outside 1..256").
//
// The package is pure Go.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/heads"
	"github.com/vigil-video/vigil/pkg/privacy"
)

// Config is a whole Vigil configuration file.
type Config struct {
	// NATS is how every role connects to the bus (yaml "nats").
	NATS NATS `yaml:"nats"`
	// JetStream configures the durable streams results and events are captured in (yaml "jetstream").
	JetStream JetStream `yaml:"jetstream"`
	// Log configures logging (yaml "log").
	Log Log `yaml:"log"`
	// Metrics configures the Prometheus endpoint (yaml "metrics").
	Metrics Metrics `yaml:"metrics"`
	// Run configures `vigil run`'s embedded NATS server (yaml "run").
	Run Run `yaml:"run"`
	// Ingest configures the ingest role (yaml "ingest").
	Ingest Ingest `yaml:"ingest"`
	// Analyze configures the analyze role (yaml "analyze").
	Analyze Analyze `yaml:"analyze"`
	// Track configures the track role (yaml "track").
	Track Track `yaml:"track"`
	// Sink configures the sink role (yaml "sink").
	Sink Sink `yaml:"sink"`
	// Serve configures the serve role (yaml "serve").
	Serve Serve `yaml:"serve"`
}

// NATS is a client's connection to the NATS servers. At most one of user/password, token,
// nkey_seed_file and creds_file may be set. Secrets are best passed as files or through the
// environment (VIGIL_NATS_PASSWORD, VIGIL_NATS_TOKEN), not written into a shared file.
type NATS struct {
	// URL is the server list, comma-separated (nats://, tls://, ws://, wss:// or host:port); the
	// client connects to one and fails over to the others. Key "url", default
	// "nats://127.0.0.1:4222".
	URL string `yaml:"url"`
	// User and Password authenticate with a user name. Keys "user", "password"; default none.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// Token authenticates with a token. Key "token"; default none.
	Token string `yaml:"token"`
	// NKeySeedFile is a file holding an nkey seed (a line starting "SU"). Key "nkey_seed_file";
	// default none.
	NKeySeedFile string `yaml:"nkey_seed_file"`
	// CredsFile is a decentralised-auth credentials file (user JWT and nkey seed). Key
	// "creds_file"; default none.
	CredsFile string `yaml:"creds_file"`
	// TLS configures TLS to the servers (yaml "tls").
	TLS TLS `yaml:"tls"`
}

// TLS are a client's TLS settings. Setting any file turns TLS on, whatever the URL scheme.
type TLS struct {
	// CAFile is a PEM bundle of the CAs that sign the servers' certificates. Key "ca_file";
	// default the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate and its key (PEM), for servers that
	// verify clients; set both or neither. Keys "cert_file", "key_file"; default none.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether any TLS setting is present.
func (t TLS) Enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// JetStream configures the streams that capture results and events (pkg/bus creates them,
// idempotently, in whichever role starts first).
type JetStream struct {
	// Enabled makes analyzers publish results with JetStream acknowledgements and sinks read
	// them through durable consumers. Off, everything is core NATS and a restarting sink misses
	// what was published meanwhile. Key "enabled", default true.
	Enabled bool `yaml:"enabled"`
	// Replicas is the number of servers each stream and consumer is stored on: 1, or 3 (or 5)
	// in a cluster so that losing a server loses nothing. Key "replicas", default 1.
	Replicas int `yaml:"replicas"`
	// Storage is "file" (survives server restarts) or "memory". Key "storage", default "file".
	Storage string `yaml:"storage"`
	// Results limits the VIGIL_RESULTS stream (results, drops and end-of-stream records). Key
	// "results", default max_age 24h, max_bytes 1GiB.
	Results StreamLimits `yaml:"results"`
	// Events limits the VIGIL_EVENTS stream (track events). Key "events", default max_age 168h,
	// max_bytes 256MiB.
	Events StreamLimits `yaml:"events"`
	// Duplicates is the window in which a republished result (same message id, after a lost
	// acknowledgement) is stored only once. Key "duplicates", default 2m.
	Duplicates time.Duration `yaml:"duplicates"`
	// Partitions, when above 0, stores vigil.results.<stream> as
	// vigil.results.<partition>.<stream> inside the stream (a JetStream subject transform with
	// {{partition(N,1)}}), so N track instances can each consume one partition. Key
	// "partitions", default 0 (no partitioning). See bus.Partition.
	Partitions int `yaml:"partitions"`
}

// StreamLimits bound one JetStream stream; the oldest messages go first.
type StreamLimits struct {
	// MaxAge discards messages older than this; 0 keeps them regardless of age. Key "max_age".
	MaxAge time.Duration `yaml:"max_age"`
	// MaxBytes bounds the stream's size ("512MiB", "1GB", a plain byte count, or -1 for no
	// limit). Key "max_bytes".
	MaxBytes ByteSize `yaml:"max_bytes"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Key "level", default "info".
	Level string `yaml:"level"`
	// JSON writes logs as JSON lines. Key "json", default false.
	JSON bool `yaml:"json"`
}

// Metrics configures the Prometheus endpoint each role process can serve.
type Metrics struct {
	// Addr is the host:port of a listener serving GET /metrics; empty serves none. Key "addr",
	// default "".
	Addr string `yaml:"addr"`
	// AllowedHosts are host names the metrics endpoint answers to besides IP addresses,
	// localhost, the machine's name and the command's own --allowed-hosts (a Prometheus that
	// scrapes by service name, e.g. analyze:9090; other Host headers get 421). Key
	// "allowed_hosts", default none.
	AllowedHosts []string `yaml:"allowed_hosts"`
}

// Run configures the NATS server `vigil run` embeds.
type Run struct {
	// NATSHost is the listen address. Key "nats_host", default "127.0.0.1".
	NATSHost string `yaml:"nats_host"`
	// NATSPort is the client port; 0 picks a free one. Key "nats_port", default 4222.
	NATSPort int `yaml:"nats_port"`
	// StoreDir is the JetStream directory; empty uses a temporary directory removed at exit.
	// Key "store_dir", default "".
	StoreDir string `yaml:"store_dir"`
}

// Ingest configures the ingest role. Per-stream settings default to the section's.
type Ingest struct {
	// Streams are the sources to read. Key "streams"; default none (`vigil run` uses the demo
	// video). The --source and --stream flags replace this list.
	Streams []Stream `yaml:"streams"`
	// FPS is the analysis rate, frames per second of video; 0 publishes every frame. Key "fps",
	// default 5.
	FPS float64 `yaml:"fps"`
	// MaxWidth and MaxHeight bound published frames (scaled down, aspect kept). Keys
	// "max_width", "max_height", default 1280x720.
	MaxWidth  int `yaml:"max_width"`
	MaxHeight int `yaml:"max_height"`
	// JPEGQuality is the published frames' JPEG quality, 1-100. Key "jpeg_quality", default 80.
	JPEGQuality int `yaml:"jpeg_quality"`
	// FullFrames publishes every frame at full size. Key "full_frames", default false: frames
	// at least 1280 wide that request no heads are published at half size (what detection
	// needs); `vigil run` sets it when --heads runs heads on every frame.
	FullFrames bool `yaml:"full_frames"`
	// DecodeSlots is how many file sources may decode a frame at the same time (the others wait
	// their turn): 0 is one per CPU, negative no bound. Key "decode_slots", default 0. Without
	// a bound, 16 paced 720p30 files on 2 cores left the analyzers a few frames a second.
	DecodeSlots int `yaml:"decode_slots"`
	// Once reads each file to its end once, as fast as the analyzers keep up, and ends. Key
	// "once", default false.
	Once bool `yaml:"once"`
	// Realtime paces file sources at their frame rate (ignored with once). Key "realtime",
	// default true.
	Realtime bool `yaml:"realtime"`
	// Loop restarts file sources at their end (ignored with once). Key "loop", default true.
	Loop bool `yaml:"loop"`
}

// Stream is one source to ingest.
type Stream struct {
	// Name is the stream id ([A-Za-z0-9_-], at most 64); it names the NATS subjects. Key
	// "name"; default derived from the source by the CLI.
	Name string `yaml:"name"`
	// Source is a file path or URL (file://, rtsp://, rtsps://, http(s)://, device:N). Key
	// "source", required.
	Source string `yaml:"source"`
	// FPS overrides the section's fps for this stream; 0 inherits it. Key "fps".
	FPS float64 `yaml:"fps"`
}

// Analyze configures the analyze role.
type Analyze struct {
	// Deps is the directory `make setup` filled with onnxruntime and the models. Key "deps",
	// default "" (the CLI's default: $VIGIL_DEPS, build/deps or /opt/vigil/deps).
	Deps string `yaml:"deps"`
	// Heads are the face heads to run on every face of every frame: a comma-separated list, or
	// all, default, none. Key "heads", default "none": detection and landmarks run on every
	// frame, and the track role asks for the heads per track (OnDemandHeads). "default" or "all"
	// is the every-frame mode.
	Heads string `yaml:"heads"`
	// OnDemandHeads are loaded but run only on frames that request them (the track role asks
	// per track: new, until its identity settles, on a schedule, on a better view); same syntax
	// as heads. Key "on_demand_heads", default "all".
	OnDemandHeads string `yaml:"on_demand_heads"`
	// LateHeads are on-demand heads that, requested on a live frame, run after the frame's
	// result is published, at low priority, their outputs joining the track a moment later
	// (result.Face.PendingHeads); same syntax as heads, none runs every head with its frame.
	// Key "late_heads", default heads.Costly() (emotion).
	LateHeads string `yaml:"late_heads"`
	// Workers is the batches analysed in parallel, one onnxruntime thread each; 0 is one per
	// CPU. Key "workers", default 0.
	Workers int `yaml:"workers"`
	// MaxBatch is the most frames in one model batch. Key "max_batch", default 4.
	MaxBatch int `yaml:"max_batch"`
	// MaxWait is how long a batch waits for more frames after its first. Key "max_wait",
	// default 10ms.
	MaxWait time.Duration `yaml:"max_wait"`
	// Deadline drops frames older than this when a worker takes them; 0 never drops. Key
	// "deadline", default 2s.
	Deadline time.Duration `yaml:"deadline"`
	// KeepEmbeddings includes each face's embedding in results. Key "keep_embeddings", default
	// false.
	KeepEmbeddings bool `yaml:"keep_embeddings"`
	// GenderThreshold is the score above which a face is labelled male. Key
	// "gender_threshold", default 0.6.
	GenderThreshold float64 `yaml:"gender_threshold"`
	// LivenessThreshold is the score from which a face is called real. Key
	// "liveness_threshold", default 0.5.
	LivenessThreshold float64 `yaml:"liveness_threshold"`
	// FaceGate is the face-quality gate's tolerance: a detection whose five landmarks move by
	// more than this share of its side (plus 1 px) when the face is mirrored is dropped as not a
	// face (animals, letters, textures); 0 or negative turns the gate off. Key "face_gate",
	// default 0.03: on the shared test photos the real faces need at least 0.022 to pass (a
	// 142 px portrait at 0.029 mirror error, a 25 px face in a crowd at 0.059, each less its
	// 1 px allowance) and the false faces are caught up to 0.040 (the cat's face, 0.047 at
	// 147 px; a false face beside two people, 0.060 at 132 px; one in a portrait crop, 0.148).
	FaceGate float64 `yaml:"face_gate"`
	// DetectTiles also runs the detector on overlapping 480x360 tiles of larger stream frames,
	// finding faces under about 20 px at one more detector run per tile. Key "detect_tiles",
	// default false (images, in the API and the image commands, are always tiled).
	DetectTiles bool `yaml:"detect_tiles"`
	// Device selects the execution provider through the analyze command's --device flag (e.g.
	// cpu); empty keeps that flag's default. A build without --device refuses a non-empty value.
	// Key "device", default "".
	Device string `yaml:"device"`
}

// Track configures the track role (per-stream state). Extend it here as the role grows.
type Track struct {
	// Durable names the track role's JetStream consumer. Key "durable", default "vigil-track".
	Durable string `yaml:"durable"`
	// Partition is the result partition this instance consumes when jetstream.partitions is
	// set (0..partitions-1); -1 consumes every stream. Key "partition", default -1.
	Partition int `yaml:"partition"`
}

// Sink configures the sink role.
type Sink struct {
	// JSONL also writes results as JSON lines to this file. Key "jsonl", default "".
	JSONL string `yaml:"jsonl"`
	// JSONLAppend appends to the jsonl file instead of truncating it (a restarted sink keeps
	// what its predecessor wrote). Key "jsonl_append", default false.
	JSONLAppend bool `yaml:"jsonl_append"`
	// JSONLMaxSize rotates the jsonl file before a line would make it larger than this: the file
	// is renamed to <name>-<UTC time><ext> beside it and a new one started (sink/jsonl). 0: no
	// size limit. Key "jsonl_max_size", default 0.
	JSONLMaxSize ByteSize `yaml:"jsonl_max_size"`
	// JSONLMaxAge rotates the jsonl file at the first write once it has been the active file
	// this long. 0: no age limit. Key "jsonl_max_age", default 0.
	JSONLMaxAge time.Duration `yaml:"jsonl_max_age"`
	// JSONLKeep is how many rotated jsonl files are kept, the oldest beyond it removed; -1 keeps
	// every one. It applies when jsonl_max_size or jsonl_max_age rotates the file. Key
	// "jsonl_keep", default 10.
	JSONLKeep int `yaml:"jsonl_keep"`
	// Quiet does not print results on stdout. vigil sink refuses it when nothing else takes the
	// results (jsonl, webhook.urls, events_db, events_dsn); vigil run, whose results go to NATS,
	// the web view and the history anyway, prints them only with --print. Key "quiet", default
	// false.
	Quiet bool `yaml:"quiet"`
	// Durable names the JetStream consumer the sink reads through; sinks sharing a name share
	// the work, a restarted sink resumes where it stopped. Key "durable", default "vigil-sink".
	Durable string `yaml:"durable"`
	// Deliver is where a new durable consumer starts: "all" stored results or only "new" ones.
	// Key "deliver", default "all".
	Deliver string `yaml:"deliver"`
	// AckWait is how long a delivered, unacknowledged result waits before it is redelivered.
	// Key "ack_wait", default 30s.
	AckWait time.Duration `yaml:"ack_wait"`
	// MaxAckPending bounds the results delivered but not yet acknowledged. Key
	// "max_ack_pending", default 1024.
	MaxAckPending int `yaml:"max_ack_pending"`
	// LostAfter counts a finite stream's frames that still have no result or drop this long
	// after its end and its last outcome as lost (an analyzer died holding them). Key
	// "lost_after", default 15s.
	LostAfter time.Duration `yaml:"lost_after"`
	// Await makes the sink exit once these streams have ended and every frame has an outcome.
	// Key "await", default none.
	Await []string `yaml:"await"`
	// Webhook POSTs results and track events to HTTP endpoints (yaml "webhook"; vigil sink).
	Webhook Webhook `yaml:"webhook"`
	// EventsDB is a SQLite file (created if missing) in which vigil sink stores the track events,
	// with a face snapshot each, and a summary of every result with a face: the history that
	// vigil serve --events-db answers at /v1/history/. "" or "off": none (vigil run: "" keeps
	// events.db in its store directory, "off" keeps none). Key "events_db", default "".
	EventsDB string `yaml:"events_db"`
	// EventsDSN stores the same history in PostgreSQL instead: a postgres:// URL or a
	// "host=... dbname=..." keyword string. Prefer VIGIL_EVENTS_DSN to writing a password here.
	// Key "events_dsn", default "".
	EventsDSN string `yaml:"events_dsn"`
}

// StoresEvents reports whether an event store is configured (events_db or events_dsn).
func (s *Sink) StoresEvents() bool {
	return (s.EventsDB != "" && s.EventsDB != "off") || s.EventsDSN != ""
}

// Webhook configures the sink's webhooks (sink/webhook): every URL receives the results and
// track events the filter selects, as JSON POSTs signed with HMAC-SHA256 when a secret is set,
// retried with backoff. With JetStream the n-th URL (from 1) reads through consumers of its own
// named <sink.durable>-webhook-<n>, so a receiver that is down holds up no other output: keep
// the order of the URLs when adding one.
type Webhook struct {
	// URLs are the http:// or https:// endpoints. Key "urls", default none.
	URLs []string `yaml:"urls"`
	// SecretFile is a file holding the shared secret (surrounding white space is ignored) that
	// signs every delivery (header X-Vigil-Signature); receivers check it with webhook.Verify.
	// Key "secret_file", default "" (unsigned).
	SecretFile string `yaml:"secret_file"`
	// Types limits what is delivered to these payload types: result, face.appeared,
	// face.recognized, face.left. Key "types", default all of them.
	Types []string `yaml:"types"`
	// Streams limits deliveries to these streams. Key "streams", default every stream.
	Streams []string `yaml:"streams"`
	// Identified delivers only faces with an identity (results) and events with one. Key
	// "identified", default false.
	Identified bool `yaml:"identified"`
	// MaxAttempts bounds the attempts per document, the first included; after the last the
	// document is redelivered later (JetStream). Key "max_attempts", default 5.
	MaxAttempts int `yaml:"max_attempts"`
	// Timeout bounds one attempt. Key "timeout", default 5s.
	Timeout time.Duration `yaml:"timeout"`
}

// WebhookTypes are the payload types a webhook may be limited to (sink/webhook.Types).
func WebhookTypes() []string {
	return []string{"result", "face.appeared", "face.recognized", "face.left"}
}

// Serve configures the serve role (HTTP API). Extend it here as the role grows.
type Serve struct {
	// Addr is the HTTP listen address. Key "addr", default "127.0.0.1:8080".
	Addr string `yaml:"addr"`
	// Privacy blurs faces, irreversibly, in what the HTTP server shows or stores (live-view
	// frames, face crops, event snapshots, /v1/annotate's image): "off", "blur-unknown" (faces
	// without identity) or "blur-all" (pkg/privacy modes). Key "privacy", default "off"; flag
	// --privacy of vigil run and vigil serve.
	Privacy string `yaml:"privacy"`
}

// Default returns the configuration with every default filled in.
func Default() Config {
	return Config{
		NATS: NATS{URL: "nats://127.0.0.1:4222"},
		JetStream: JetStream{
			Enabled:    true,
			Replicas:   1,
			Storage:    "file",
			Results:    StreamLimits{MaxAge: 24 * time.Hour, MaxBytes: 1 << 30},
			Events:     StreamLimits{MaxAge: 7 * 24 * time.Hour, MaxBytes: 256 << 20},
			Duplicates: 2 * time.Minute,
		},
		Log:     Log{Level: "info"},
		Run:     Run{NATSHost: "127.0.0.1", NATSPort: 4222},
		Ingest:  Ingest{FPS: 5, MaxWidth: 1280, MaxHeight: 720, JPEGQuality: 80, Realtime: true, Loop: true},
		Analyze: Analyze{Heads: "none", OnDemandHeads: "all", LateHeads: strings.Join(heads.Costly(), ","), MaxBatch: 4, MaxWait: 10 * time.Millisecond, Deadline: 2 * time.Second, GenderThreshold: 0.6, LivenessThreshold: 0.5, FaceGate: 0.03},
		Track:   Track{Durable: "vigil-track", Partition: -1},
		Sink: Sink{Durable: "vigil-sink", Deliver: "all", AckWait: 30 * time.Second, MaxAckPending: 1024, LostAfter: 15 * time.Second,
			JSONLKeep: 10, Webhook: Webhook{MaxAttempts: 5, Timeout: 5 * time.Second}},
		Serve: Serve{Addr: "127.0.0.1:8080", Privacy: string(privacy.Off)},
	}
}

// FieldError is a configuration error at one key path (for example "analyze.max_batch").
// File and Line locate the value when it came from a file.
type FieldError struct {
	File string
	Line int
	Path string
	Msg  string
}

// Error formats the error as "file:line: path: message", leaving out what is unknown.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
		if e.Line > 0 {
			b.WriteString(strconv.Itoa(e.Line))
			b.WriteString(":")
		}
		b.WriteString(" ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

type checker struct{ errs []error }

func (c *checker) fail(path, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) intRange(path string, v, lo, hi int) {
	if v < lo || v > hi {
		c.fail(path, "%d is outside %d..%d", v, lo, hi)
	}
}

func (c *checker) floatRange(path string, v, lo, hi float64) {
	if !(v >= lo && v <= hi) { // also refuses NaN
		c.fail(path, "%v is outside %v..%v", v, lo, hi)
	}
}

func (c *checker) durRange(path string, v, lo, hi time.Duration) {
	if v < lo || v > hi {
		c.fail(path, "%s is outside %s..%s", v, lo, hi)
	}
}

func (c *checker) oneOf(path, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	c.fail(path, "%q is not one of %s", v, strings.Join(allowed, ", "))
}

func (c *checker) hostPort(path, v string, required bool) {
	if v == "" {
		if required {
			c.fail(path, "empty: want host:port")
		}
		return
	}
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		c.fail(path, "%q is not host:port: %v", v, err)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		c.fail(path, "%q: port %q is not 0..65535", v, port)
	}
}

// consumerName checks a JetStream durable name: 1-64 of [A-Za-z0-9_-].
func (c *checker) consumerName(path, v string) {
	if err := frame.ValidateStream(v); err != nil {
		c.fail(path, "%q is not a valid consumer name: use 1-64 characters from A-Z a-z 0-9 _ -", v)
	}
}

// Validate checks every section and returns all problems found, joined; each is a *FieldError.
// It checks form and ranges, not reachability: files and servers are checked when a role starts.
func (c *Config) Validate() error {
	var k checker
	c.NATS.validate(&k, "nats")
	c.JetStream.validate(&k, "jetstream")
	k.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	k.hostPort("metrics.addr", c.Metrics.Addr, false)
	if c.Run.NATSHost == "" {
		k.fail("run.nats_host", "empty: want a listen address such as 127.0.0.1 or 0.0.0.0")
	}
	k.intRange("run.nats_port", c.Run.NATSPort, 0, 65535)
	c.Ingest.validate(&k, "ingest")
	c.Analyze.validate(&k, "analyze")
	k.consumerName("track.durable", c.Track.Durable)
	if c.JetStream.Partitions > 0 {
		k.intRange("track.partition", c.Track.Partition, -1, c.JetStream.Partitions-1)
	} else if c.Track.Partition != -1 {
		k.fail("track.partition", "%d set but jetstream.partitions is 0: use -1, or set jetstream.partitions", c.Track.Partition)
	}
	c.Sink.validate(&k, "sink")
	k.hostPort("serve.addr", c.Serve.Addr, true)
	if _, err := privacy.ParseMode(c.Serve.Privacy); err != nil || c.Serve.Privacy == "" {
		k.fail("serve.privacy", "%q: want off, blur-unknown or blur-all", c.Serve.Privacy)
	}
	return errors.Join(k.errs...)
}

func (n *NATS) validate(k *checker, p string) {
	if strings.TrimSpace(n.URL) == "" {
		k.fail(p+".url", "empty: want one or more comma-separated server URLs such as nats://127.0.0.1:4222")
	}
	for _, u := range strings.Split(n.URL, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		if err := checkServerURL(u); err != nil {
			k.fail(p+".url", "%v", err)
		}
	}
	methods := 0
	for _, set := range []bool{n.User != "" || n.Password != "", n.Token != "", n.NKeySeedFile != "", n.CredsFile != ""} {
		if set {
			methods++
		}
	}
	if methods > 1 {
		k.fail(p, "more than one of user/password, token, nkey_seed_file and creds_file is set: choose one")
	}
	if n.Password != "" && n.User == "" {
		k.fail(p+".password", "set without nats.user")
	}
	if (n.TLS.CertFile == "") != (n.TLS.KeyFile == "") {
		k.fail(p+".tls", "cert_file and key_file go together: set both or neither")
	}
}

// checkServerURL accepts nats://, tls://, ws://, wss:// URLs and bare host:port. Its messages
// never repeat a password embedded in the URL.
func checkServerURL(s string) error {
	if !strings.Contains(s, "://") {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return fmt.Errorf("%q is neither a URL nor host:port", hidePassword(s))
		}
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", hidePassword(s))
	}
	shown := u.Redacted()
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("%q: scheme %q is not nats, tls, ws or wss", shown, u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", shown)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return fmt.Errorf("%q: a server URL has no path or query", shown)
	}
	return nil
}

// hidePassword replaces what sits between "://" and "@" in s.
func hidePassword(s string) string {
	if i, j := strings.Index(s, "://"), strings.LastIndex(s, "@"); i >= 0 && j > i {
		return s[:i+3] + "xxxxx" + s[j:]
	}
	return s
}

func (j *JetStream) validate(k *checker, p string) {
	k.intRange(p+".replicas", j.Replicas, 1, 5)
	k.oneOf(p+".storage", j.Storage, "file", "memory")
	for name, l := range map[string]StreamLimits{"results": j.Results, "events": j.Events} {
		k.durRange(p+"."+name+".max_age", l.MaxAge, 0, 100*365*24*time.Hour)
		if l.MaxBytes == 0 || l.MaxBytes < -1 {
			k.fail(p+"."+name+".max_bytes", "%d: want a positive size such as 1GiB, or -1 for no limit", int64(l.MaxBytes))
		}
	}
	k.durRange(p+".duplicates", j.Duplicates, 0, 24*time.Hour)
	if j.Results.MaxAge > 0 && j.Duplicates > j.Results.MaxAge {
		k.fail(p+".duplicates", "%s is longer than jetstream.results.max_age %s", j.Duplicates, j.Results.MaxAge)
	}
	k.intRange(p+".partitions", j.Partitions, 0, 1024)
}

func (in *Ingest) validate(k *checker, p string) {
	k.floatRange(p+".fps", in.FPS, 0, 240)
	k.intRange(p+".max_width", in.MaxWidth, 16, frame.MaxDimension)
	k.intRange(p+".max_height", in.MaxHeight, 16, frame.MaxDimension)
	k.intRange(p+".jpeg_quality", in.JPEGQuality, 1, 100)
	k.intRange(p+".decode_slots", in.DecodeSlots, -1, 1024)
	seen := map[string]int{}
	for i, s := range in.Streams {
		sp := fmt.Sprintf("%s.streams[%d]", p, i)
		if strings.TrimSpace(s.Source) == "" {
			k.fail(sp+".source", "empty: want a file path or URL")
		}
		if s.Name != "" {
			if err := frame.ValidateStream(s.Name); err != nil {
				k.fail(sp+".name", "%v", err)
			} else if j, dup := seen[s.Name]; dup {
				k.fail(sp+".name", "%q is also the name of %s.streams[%d]", s.Name, p, j)
			} else {
				seen[s.Name] = i
			}
		}
		k.floatRange(sp+".fps", s.FPS, 0, 240)
	}
}

func (a *Analyze) validate(k *checker, p string) {
	if strings.TrimSpace(a.Heads) == "" {
		k.fail(p+".heads", "empty: use none for detection only")
	}
	k.intRange(p+".workers", a.Workers, 0, 1024)
	k.intRange(p+".max_batch", a.MaxBatch, 1, 256)
	k.durRange(p+".max_wait", a.MaxWait, time.Microsecond, 10*time.Second)
	k.durRange(p+".deadline", a.Deadline, 0, time.Hour)
	k.floatRange(p+".gender_threshold", a.GenderThreshold, 0, 1)
	k.floatRange(p+".liveness_threshold", a.LivenessThreshold, 0, 1)
	k.floatRange(p+".face_gate", a.FaceGate, -1, 1)
}

func (s *Sink) validate(k *checker, p string) {
	k.consumerName(p+".durable", s.Durable)
	k.oneOf(p+".deliver", s.Deliver, "all", "new")
	k.durRange(p+".ack_wait", s.AckWait, time.Second, time.Hour)
	k.intRange(p+".max_ack_pending", s.MaxAckPending, 1, 1<<20)
	k.durRange(p+".lost_after", s.LostAfter, 0, 24*time.Hour)
	if s.JSONLAppend && s.JSONL == "" {
		k.fail(p+".jsonl_append", "set without sink.jsonl")
	}
	if s.JSONLMaxSize < 0 {
		k.fail(p+".jsonl_max_size", "%d: want a size such as 64MiB, or 0 for no size limit", int64(s.JSONLMaxSize))
	}
	k.durRange(p+".jsonl_max_age", s.JSONLMaxAge, 0, 100*365*24*time.Hour)
	if s.JSONLKeep == 0 || s.JSONLKeep < -1 || s.JSONLKeep > 1_000_000 {
		k.fail(p+".jsonl_keep", "%d: want 1..1000000 rotated files, or -1 to keep every one", s.JSONLKeep)
	}
	if s.JSONL == "" {
		if s.JSONLMaxSize > 0 {
			k.fail(p+".jsonl_max_size", "set without sink.jsonl")
		}
		if s.JSONLMaxAge > 0 {
			k.fail(p+".jsonl_max_age", "set without sink.jsonl")
		}
	}
	for i, name := range s.Await {
		if err := frame.ValidateStream(name); err != nil {
			k.fail(fmt.Sprintf("%s.await[%d]", p, i), "%v", err)
		}
	}
	s.Webhook.validate(k, p+".webhook")
	if n := len(s.Webhook.URLs); n > 0 {
		// Each webhook reads through consumers of its own, named after the sink's.
		if last := fmt.Sprintf("%s-webhook-%d", s.Durable, n); frame.ValidateStream(last) != nil {
			k.fail(p+".durable", "%q is too long for the webhooks' consumers (%s): use at most %d characters",
				s.Durable, last, frame.MaxStreamLen-(len(last)-len(s.Durable)))
		}
	}
	if s.StoresEvents() {
		if last := s.Durable + "-eventstore"; frame.ValidateStream(last) != nil {
			k.fail(p+".durable", "%q is too long for the event store's consumers (%s): use at most %d characters",
				s.Durable, last, frame.MaxStreamLen-(len(last)-len(s.Durable)))
		}
	}
	if s.EventsDSN != "" {
		if s.EventsDB != "" && s.EventsDB != "off" {
			k.fail(p+".events_dsn", "set together with sink.events_db: choose SQLite (events_db) or PostgreSQL (events_dsn)")
		}
		if err := checkDSN(s.EventsDSN); err != nil {
			k.fail(p+".events_dsn", "%v", err)
		}
	}
}

func (w *Webhook) validate(k *checker, p string) {
	for i, raw := range w.URLs {
		if err := checkWebhookURL(raw); err != nil {
			k.fail(fmt.Sprintf("%s.urls[%d]", p, i), "%v", err)
		}
	}
	for i, t := range w.Types {
		k.oneOf(fmt.Sprintf("%s.types[%d]", p, i), t, WebhookTypes()...)
	}
	for i, name := range w.Streams {
		if err := frame.ValidateStream(name); err != nil {
			k.fail(fmt.Sprintf("%s.streams[%d]", p, i), "%v", err)
		}
	}
	k.intRange(p+".max_attempts", w.MaxAttempts, 1, 100)
	k.durRange(p+".timeout", w.Timeout, time.Millisecond, 10*time.Minute)
	if w.SecretFile != "" && len(w.URLs) == 0 {
		k.fail(p+".secret_file", "set without sink.webhook.urls")
	}
}

// checkWebhookURL accepts http:// and https:// URLs with a host and without credentials (they
// would show in logs: send them in headers). Its messages never repeat a password.
func checkWebhookURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", hidePassword(s))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an http:// or https:// URL with a host", u.Redacted())
	}
	if u.User != nil {
		return fmt.Errorf("%q: credentials in a webhook URL would show in logs; sign with webhook.secret_file instead", u.Redacted())
	}
	return nil
}

// checkDSN accepts a postgres:// or postgresql:// URL, or a keyword string ("host=... dbname=...").
// Its messages never repeat a password.
func checkDSN(s string) error {
	if !strings.Contains(s, "://") {
		if !strings.Contains(s, "=") {
			return fmt.Errorf("want a postgres:// URL or \"host=... dbname=...\" keywords")
		}
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", hidePassword(s))
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("%q: scheme %q is not postgres or postgresql", u.Redacted(), u.Scheme)
	}
	return nil
}

// RedactDSN hides the password of a PostgreSQL DSN, in URL or keyword form.
func RedactDSN(s string) string {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "<redacted>"
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	f := strings.Fields(s)
	for i, kv := range f {
		if k, _, ok := strings.Cut(kv, "="); ok && strings.TrimSpace(k) == "password" {
			f[i] = "password=xxxxx"
		}
	}
	return strings.Join(f, " ")
}
