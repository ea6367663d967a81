package streams

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func newSealer(t *testing.T) *Sealer {
	t.Helper()
	key, created, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "streams.key"), true)
	if err != nil || !created {
		t.Fatalf("key: %v (created %v)", err, created)
	}
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSealedPasswords: a camera password is never written to the bucket in plaintext: sealed
// with the ingest's key, opened by an ingest with the same key, refused by one with another key
// or none, and refused (400) rather than stored in the clear when the ingest has no key.
func TestSealedPasswords(t *testing.T) {
	_, conn := startJetStream(t, t.TempDir())
	nc := conn("ingest")
	kv := openKV(t, nc)
	kv.Sealer = newSealer(t)
	e := startRegistry(t, &Registry{Store: kv}, true)
	const secret = "Tr0ub4dor&3"
	r := call(t, "POST", e.url+"/v1/streams", mustJSON(t, map[string]any{"name": "gate", "source": "rtsp://admin:" + secret + "@192.0.2.4/live"}))
	if r.status != http.StatusCreated {
		t.Fatalf("create: %s", r)
	}
	raw, err := kv.KV.Get(context.Background(), "gate")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw.Value(), []byte(secret)) || !bytes.Contains(raw.Value(), []byte(sealedPrefix)) {
		t.Fatalf("stored value: %s", raw.Value())
	}
	if s, _ := e.runner.spec("gate"); s.Source != "rtsp://admin:"+secret+"@192.0.2.4/live" {
		t.Fatalf("the runner got %q, want the opened password", s.Source)
	}
	// The same bucket through a store with the same key opens it; another key or none does not.
	same := &KVStore{KV: kv.KV, Sealer: kv.Sealer}
	if got, err := same.Get(context.Background(), "gate"); err != nil || !strings.Contains(got.Spec.Source, secret) {
		t.Fatalf("same key: %+v %v", got, err)
	}
	for name, other := range map[string]*KVStore{"another key": {KV: kv.KV, Sealer: newSealer(t)}, "no key": {KV: kv.KV}} {
		if _, err := other.Get(context.Background(), "gate"); !errors.Is(err, ErrSealed) {
			t.Errorf("%s: %v, want ErrSealed", name, err)
		}
	}
	// Patching another field keeps the password (the client only ever saw it redacted).
	if r := call(t, "PATCH", e.url+"/v1/streams/gate", []byte(`{"fps":2}`)); r.status != http.StatusOK {
		t.Fatalf("patch: %s", r)
	}
	if s, _ := e.runner.spec("gate"); s.Source != "rtsp://admin:"+secret+"@192.0.2.4/live" || s.FPS != 2 {
		t.Fatalf("after the patch the runner has %q fps %v", s.Source, s.FPS)
	}

	// Without a key a password is refused, not stored in plaintext; URLs without one are fine.
	plain := startRegistry(t, &Registry{Store: &KVStore{KV: openKVBucket(t, conn("plain"), "plain-streams").KV}}, true)
	if r := call(t, "POST", plain.url+"/v1/streams", mustJSON(t, map[string]any{"name": "gate", "source": "rtsp://admin:" + secret + "@192.0.2.4/live"})); r.status != http.StatusBadRequest || !strings.Contains(r.String(), "--streams-key-file") {
		t.Fatalf("password without a key: %s, want 400 naming --streams-key-file", r)
	}
	if r := call(t, "POST", plain.url+"/v1/streams", mustJSON(t, map[string]any{"name": "open", "source": "rtsp://192.0.2.5/live"})); r.status != http.StatusCreated {
		t.Fatalf("no password without a key: %s", r)
	}
}

// TestStreamsKeyFile: a key file is created owner-only and read back; a bad one is refused.
func TestStreamsKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "streams.key")
	if _, _, err := LoadOrCreateKey(path, false); err == nil {
		t.Fatal("a missing key file was accepted without create")
	}
	k1, created, err := LoadOrCreateKey(path, true)
	if err != nil || !created || len(k1) != KeySize {
		t.Fatalf("create: %v %v %d", err, created, len(k1))
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", st.Mode(), err)
	}
	k2, created, err := LoadOrCreateKey(path, true)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("reload: %v %v", err, created)
	}
	if err := os.WriteFile(path, []byte("not hex"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateKey(path, true); err == nil {
		t.Fatal("a malformed key file was accepted")
	}
}

// openKVBucket opens (creating) the stream list in bucket.
func openKVBucket(t *testing.T, nc *nats.Conn, bucket string) *KVStore {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := OpenKV(ctx, js, bucket, 1)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}
