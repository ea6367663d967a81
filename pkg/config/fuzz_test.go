package config

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the YAML parser (seeded from the table tests; corpus in
// testdata/fuzz/FuzzParse). Properties: no panic; every error is a *FieldError naming the file;
// whatever parses and validates survives Marshal and Parse unchanged.
func FuzzParse(f *testing.F) {
	f.Add(Example())
	for _, s := range []string{
		"", "analyze:\n  max_bach: 4\n", "analyze:\n  workers: two\n", "analyze:\n  max_wait: 10\n",
		"jetstream:\n  results:\n    max_bytes: 1.5GiB\n", "log:\n  level: info\n  level: debug\n",
		"ingest:\n  streams:\n    - {name: a, source: x.mp4, fps: 2}\n", "nats: nats://x:4222\n",
		"- a\n- b\n", "nats:\n  url: [\n", "log: {}\n---\nlog: {}\n", "ingest:\n  fps: .inf\n",
		"a: &a [x, x]\nb: [*a, *a]\n", "sink: {await: [a, b], lost_after: 1m}\n", "nats: {tls: {ca_file: c}}\n",
		"jetstream: {partitions: 4}\ntrack: {partition: 3}\n", "? [a]\n: b\n", "analyze: {heads: !!binary aGVsbG8=}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, _, err := Parse("fuzz.yaml", data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.File != "fuzz.yaml" {
				t.Fatalf("error %T %v is not a *FieldError for the file", err, err)
			}
			return
		}
		if c.Validate() != nil {
			return
		}
		b, err := c.Marshal(false)
		if err != nil {
			t.Fatalf("marshal a valid config: %v", err)
		}
		back, _, err := Parse("again.yaml", b)
		if err != nil {
			t.Fatalf("reparse: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v\n%s", c, back, b)
		}
	})
}
