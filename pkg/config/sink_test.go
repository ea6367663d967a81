package config

import (
	"strings"
	"testing"
	"time"
)

// TestSinkOutputs: the sink's rotation, webhook and event store keys parse, validate with the
// file's lines, and a DSN's password never shows.
func TestSinkOutputs(t *testing.T) {
	doc := `
sink:
  jsonl: /var/lib/vigil/results.jsonl
  jsonl_max_size: 64MiB
  jsonl_max_age: 24h
  jsonl_keep: -1
  quiet: true
  webhook:
    urls: [https://hooks.example/vigil, "http://10.0.0.5:8080/in"]
    secret_file: /run/secrets/hook
    types: [result, face.recognized]
    streams: [lobby]
    identified: true
    max_attempts: 3
    timeout: 2s
  events_dsn: host=db user=vigil password=pg-pw dbname=vigil
`
	c, _, err := Parse("s.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s := c.Sink
	if s.JSONLMaxSize != 64<<20 || s.JSONLMaxAge != 24*time.Hour || s.JSONLKeep != -1 || len(s.Webhook.URLs) != 2 ||
		s.Webhook.MaxAttempts != 3 || s.Webhook.Timeout != 2*time.Second || !s.Webhook.Identified || !s.StoresEvents() {
		t.Fatalf("sink %+v", s)
	}
	red, err := c.Marshal(true)
	if err != nil || strings.Contains(string(red), "pg-pw") || !strings.Contains(string(red), "password=xxxxx") {
		t.Fatalf("redacted: %v\n%s", err, red)
	}

	for _, tc := range []struct{ doc, want string }{
		{"sink:\n  webhook:\n    urls: [ftp://x/y]\n", `f.yaml:3: sink.webhook.urls[0]: "ftp://x/y": want an http:// or https:// URL`},
		{"sink:\n  webhook:\n    urls: [https://x/y]\n    types: [face.gone]\n", `f.yaml:4: sink.webhook.types[0]: "face.gone" is not one of`},
		{"sink:\n  webhook:\n    urls: [https://x/y]\n    max_attempts: 0\n", "f.yaml:4: sink.webhook.max_attempts: 0 is outside 1..100"},
		{"sink:\n  jsonl_keep: 0\n", "f.yaml:2: sink.jsonl_keep: 0: want 1..1000000"},
		{"sink:\n  jsonl_max_age: 1h\n", "f.yaml:2: sink.jsonl_max_age: set without sink.jsonl"},
		{"sink:\n  events_db: /e.db\n  events_dsn: postgres://u:pw@db/v\n", "f.yaml:3: sink.events_dsn: set together with sink.events_db"},
		{"sink:\n  events_dsn: mysql://u:pw@db/v\n", `sink.events_dsn: "mysql://u:xxxxx@db/v": scheme "mysql"`},
	} {
		c, src, err := Parse("f.yaml", []byte(tc.doc))
		if err != nil {
			t.Fatal(err)
		}
		err = src.Annotate(c.Validate(), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), ":pw@") {
			t.Errorf("%q: error %v\nwant %q", tc.doc, err, tc.want)
		}
	}

	for in, want := range map[string]string{
		"postgres://vigil:pw@db:5432/vigil?sslmode=disable": "postgres://vigil:xxxxx@db:5432/vigil?sslmode=disable",
		"postgres://db/vigil?password=pw&user=u":            "postgres://db/vigil?password=xxxxx&user=u",
		"host=db password=pw dbname=v":                      "host=db password=xxxxx dbname=v",
		"postgres://db/vigil":                               "postgres://db/vigil",
	} {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}
