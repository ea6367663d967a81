package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDefaultValidates(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

// TestExample: the documented example parses, validates, sets every key the structs define
// (so the documentation cannot fall behind the code) and keeps every default except the
// example streams.
func TestExample(t *testing.T) {
	c, src, err := Parse("example.yaml", Example())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, path := range leafPaths(reflect.TypeOf(Config{}), "") {
		if src.Line(path) == 0 {
			t.Errorf("example.yaml does not document %s", path)
		}
	}
	want := Default()
	want.Ingest.Streams = c.Ingest.Streams
	if !reflect.DeepEqual(c, want) {
		t.Errorf("example.yaml changes a default:\n got %+v\nwant %+v", c, want)
	}
	if len(c.Ingest.Streams) != 2 || c.Ingest.Streams[1].FPS != 2 {
		t.Errorf("streams %+v", c.Ingest.Streams)
	}
}

// leafPaths lists the YAML key paths of every field of t (list elements as path[0]).
func leafPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		p := f.Tag.Get("yaml")
		if prefix != "" {
			p = prefix + "." + p
		}
		switch {
		case f.Type.Kind() == reflect.Struct:
			out = append(out, leafPaths(f.Type, p)...)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			out = append(out, leafPaths(f.Type.Elem(), p+"[0]")...)
		default:
			out = append(out, p)
		}
	}
	return out
}

func TestParseValues(t *testing.T) {
	doc := `
nats:
  url: nats://a:4222, nats://b:4222
  user: vigil
  tls: {ca_file: /etc/ca.pem}
jetstream:
  replicas: 3
  results: {max_age: 1h, max_bytes: 1.5GiB}
  events:
    max_bytes: 100MB
  partitions: 4
analyze:
  max_wait: 25ms
  workers: 2
  heads:          # null keeps the default
ingest:
  streams:
    - {name: cam-1, source: rtsp://x/y}
track: {partition: 3}
sink:
  await: [cam-1]
`
	c, _, err := Parse("t.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	switch {
	case c.NATS.URL != "nats://a:4222, nats://b:4222" || c.NATS.User != "vigil" || c.NATS.TLS.CAFile != "/etc/ca.pem" || !c.NATS.TLS.Enabled():
		t.Errorf("nats %+v", c.NATS)
	case c.JetStream.Replicas != 3 || c.JetStream.Results.MaxAge != time.Hour || c.JetStream.Results.MaxBytes != 3<<29:
		t.Errorf("jetstream %+v", c.JetStream)
	case c.JetStream.Events.MaxBytes != 100e6 || c.JetStream.Events.MaxAge != 7*24*time.Hour:
		t.Errorf("events %+v", c.JetStream.Events)
	case c.Analyze.MaxWait != 25*time.Millisecond || c.Analyze.Workers != 2 || c.Analyze.Heads != "none":
		t.Errorf("analyze %+v", c.Analyze)
	case len(c.Ingest.Streams) != 1 || c.Ingest.Streams[0].Name != "cam-1":
		t.Errorf("ingest %+v", c.Ingest)
	case c.Track.Partition != 3 || len(c.Sink.Await) != 1:
		t.Errorf("track %+v sink %+v", c.Track, c.Sink)
	}
}

// TestErrors: each bad file fails with a message naming the file, the line and the key path.
func TestErrors(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown key", "analyze:\n  max_bach: 4\n", `f.yaml:2: analyze.max_bach: unknown key (did you mean "max_batch"?)`},
		{"unknown section", "analyse: {}\n", `f.yaml:1: analyse: unknown key (did you mean "analyze"?)`},
		{"wrong type", "analyze:\n  workers: two\n", `f.yaml:2: analyze.workers: want an integer, got "two"`},
		{"duration without unit", "analyze:\n  max_wait: 10\n", `f.yaml:2: analyze.max_wait: want a duration such as 500ms, 2s or 24h, got "10"`},
		{"bad size", "jetstream:\n  results:\n    max_bytes: lots\n", `f.yaml:3: jetstream.results.max_bytes: size "lots"`},
		{"duplicate key", "log:\n  level: info\n  level: debug\n", `f.yaml:3: log.level: set twice (first at line 2)`},
		{"list expected", "ingest:\n  streams: rtsp://x\n", `f.yaml:2: ingest.streams: want a list, got "rtsp://x"`},
		{"mapping expected", "nats: nats://x:4222\n", `f.yaml:1: nats: want a mapping of keys, got "nats://x:4222"`},
		{"not a mapping", "- a\n- b\n", `f.yaml:1: want a mapping of sections`},
		{"syntax", "nats:\n  url: [\n", `f.yaml:2: invalid YAML`},
		{"two documents", "log: {}\n---\nlog: {}\n", `second YAML document`},
		{"infinity", "ingest:\n  fps: .inf\n", `f.yaml:2: ingest.fps: want a finite number`},
		{"stream field", "ingest:\n  streams:\n    - source: a.mp4\n      fsp: 2\n", `f.yaml:4: ingest.streams[0].fsp: unknown key (did you mean "fps"?)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse("f.yaml", []byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("%T is not a *FieldError", err)
			}
		})
	}
}

// TestValidateErrors: values that parse but make no sense, each reported with its path and,
// through Annotate, the file line it came from.
func TestValidateErrors(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"max batch", "analyze:\n  max_batch: 0\n", "f.yaml:2: analyze.max_batch: 0 is outside 1..256"},
		{"replicas", "jetstream:\n  replicas: 7\n", "f.yaml:2: jetstream.replicas: 7 is outside 1..5"},
		{"storage", "jetstream:\n  storage: disk\n", `f.yaml:2: jetstream.storage: "disk" is not one of file, memory`},
		{"two credentials", "nats:\n  token: t\n  creds_file: /x.creds\n", "f.yaml:1: nats: more than one of"},
		{"password alone", "nats:\n  password: p\n", "f.yaml:2: nats.password: set without nats.user"},
		{"cert without key", "nats:\n  tls:\n    cert_file: c.pem\n", "f.yaml:2: nats.tls: cert_file and key_file go together"},
		{"url scheme", "nats:\n  url: http://x:4222\n", `f.yaml:2: nats.url: "http://x:4222": scheme "http"`},
		{"stream name", "ingest:\n  streams:\n    - {name: a.b, source: x.mp4}\n", `f.yaml:3: ingest.streams[0].name: invalid stream name`},
		{"duplicate stream", "ingest:\n  streams:\n    - {name: a, source: x.mp4}\n    - {name: a, source: y.mp4}\n", `f.yaml:4: ingest.streams[1].name: "a" is also the name of ingest.streams[0]`},
		{"missing source", "ingest:\n  streams:\n    - {name: a}\n", "f.yaml:3: ingest.streams[0].source: empty"},
		{"deliver", "sink:\n  deliver: latest\n", `f.yaml:2: sink.deliver: "latest" is not one of all, new`},
		{"partition", "jetstream: {partitions: 2}\ntrack: {partition: 2}\n", "f.yaml:2: track.partition: 2 is outside -1..1"},
		{"duplicates window", "jetstream:\n  results: {max_age: 1m}\n  duplicates: 5m\n", "f.yaml:3: jetstream.duplicates: 5m0s is longer than"},
		{"metrics addr", "metrics: {addr: 9090}\n", `f.yaml:1: metrics.addr: "9090" is not host:port`},
		{"url password hidden", "nats:\n  url: http://u:pw123@x:4222\n", `f.yaml:2: nats.url: "http://u:xxxxx@x:4222": scheme "http"`},
		{"zero size", "jetstream:\n  events: {max_bytes: 0}\n", "f.yaml:2: jetstream.events.max_bytes: 0: want a positive size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, src, err := Parse("f.yaml", []byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			err = src.Annotate(c.Validate(), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// TestAnnotateSkipsOverridden: a value a flag replaced is not blamed on the file.
func TestAnnotateSkipsOverridden(t *testing.T) {
	c, src, err := Parse("f.yaml", []byte("analyze:\n  max_batch: 8\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.Analyze.MaxBatch = 0 // as if --max-batch 0
	err = src.Annotate(c.Validate(), map[string]bool{"analyze.max_batch": true})
	if err == nil || err.Error() != "analyze.max_batch: 0 is outside 1..256" {
		t.Fatalf("got %v", err)
	}
}

func TestEmptyFile(t *testing.T) {
	for _, doc := range []string{"", "# only a comment\n", "---\n"} {
		c, _, err := Parse("e.yaml", []byte(doc))
		if err != nil || !reflect.DeepEqual(c, Default()) {
			t.Fatalf("%q: %v %+v", doc, err, c)
		}
	}
}

func TestAliasBomb(t *testing.T) {
	doc := "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n" +
		"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n" +
		"ingest:\n  streams: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
	if _, _, err := Parse("bomb.yaml", []byte(doc)); err == nil {
		t.Fatal("accepted")
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"1024": 1024, "-1": -1, "1KiB": 1024, "1.5 GiB": 3 << 29, "2mb": 2e6, "10 B": 10, "3G": 3 << 30} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-5MiB", "1e3KB", "nanMB", "1 XB", "1.5"} {
		if v, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", in, v)
		}
	}
	for _, v := range []ByteSize{0, -1, 1, 1023, 1 << 30, 3 << 29, 1<<40 + 1} {
		back, err := ParseByteSize(v.String())
		if err != nil || back != v {
			t.Errorf("%d -> %q -> %d, %v", v, v.String(), back, err)
		}
	}
}

// TestMarshalRoundTrip: what Marshal writes, Parse reads back identically; secrets redact.
func TestMarshalRoundTrip(t *testing.T) {
	c, _, err := Parse("example.yaml", Example())
	if err != nil {
		t.Fatal(err)
	}
	c.NATS.User, c.NATS.Password = "u", "hunter2-pw" // not "secret": sink.webhook.secret_file is a key
	b, err := c.Marshal(false)
	if err != nil {
		t.Fatal(err)
	}
	back, _, err := Parse("m.yaml", b)
	if err != nil || !reflect.DeepEqual(back, c) {
		t.Fatalf("round trip: %v\n%s", err, b)
	}
	red, _ := c.Marshal(true)
	if strings.Contains(string(red), "hunter2-pw") {
		t.Fatalf("redacted output has the password:\n%s", red)
	}
}

func TestGetSet(t *testing.T) {
	c := Default()
	for path, val := range map[string]string{
		"analyze.max_wait": "25ms", "jetstream.results.max_bytes": "512MiB", "analyze.gender_threshold": "0.7",
		"ingest.once": "true", "nats.url": "nats://x:1", "run.nats_port": "0", "nats.tls.ca_file": "/ca.pem",
	} {
		if err := c.Set(path, val); err != nil {
			t.Fatalf("Set(%s, %s): %v", path, val, err)
		}
		if got, err := c.Get(path); err != nil || got != val {
			t.Fatalf("Get(%s) = %q, %v; want %q", path, got, err, val)
		}
	}
	if c.Analyze.MaxWait != 25*time.Millisecond || c.JetStream.Results.MaxBytes != 512<<20 || !c.Ingest.Once {
		t.Fatalf("%+v", c)
	}
	for _, path := range []string{"analyze", "ingest.streams", "nope.x", "analyze.nope"} {
		if _, err := c.Get(path); err == nil {
			t.Errorf("Get(%s) succeeded", path)
		}
	}
	if err := c.Set("analyze.workers", "many"); err == nil || !strings.Contains(err.Error(), "analyze.workers: want an integer") {
		t.Fatalf("Set bad int: %v", err)
	}
}

func TestAnnotateNested(t *testing.T) {
	c, src, err := Parse("f.yaml", []byte("analyze:\n  max_batch: 0\nsink:\n  deliver: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = src.Annotate(errors.Join(c.Validate(), &FieldError{Path: "analyze.heads", Msg: "bad"}), nil)
	for _, want := range []string{"f.yaml:2: analyze.max_batch", "f.yaml:4: sink.deliver", "analyze.heads: bad"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from %v", want, err)
		}
	}
}
