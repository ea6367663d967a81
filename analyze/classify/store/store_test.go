package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/analyze/classify/manifest"
	"github.com/vigil-video/vigil/analyze/classify/store"
	"github.com/vigil-video/vigil/pkg/bus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// open starts a real NATS server with JetStream and opens a store on it.
func open(t *testing.T, cfg store.Config) (*store.Store, jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	srv := &bus.EmbeddedServer{StoreDir: t.TempDir(), Logger: quiet}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	nc, err := bus.Connect(ctx, srv.ClientURL(), "store-test", quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, js
}

func testManifest(name string) manifest.Manifest {
	m := manifest.Manifest{Name: name, Labels: []string{"a", "b"}, Input: manifest.Input{Width: 8, Height: 8}}
	m.SetDefaults()
	return m
}

func TestStore(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t, store.Config{})
	model := bytes.Repeat([]byte("model bytes "), 30000) // several chunks
	e, err := s.Put(ctx, testManifest("clothes"), model)
	if err != nil {
		t.Fatal(err)
	}
	if e.Manifest.SHA256 != store.Digest(model) || e.Size != uint64(len(model)) || e.NUID == "" {
		t.Errorf("entry %+v", e)
	}
	got, data, err := s.Get(ctx, "clothes")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, model) || got.Manifest.SHA256 != e.Manifest.SHA256 || got.NUID != e.NUID {
		t.Errorf("Get = %+v, %d bytes", got, len(data))
	}
	// Re-registration replaces the object with a new version.
	e2, err := s.Put(ctx, testManifest("clothes"), []byte("another model"))
	if err != nil {
		t.Fatal(err)
	}
	if e2.NUID == e.NUID || e2.Manifest.SHA256 == e.Manifest.SHA256 {
		t.Error("replacement kept the old version")
	}
	if _, err := s.Put(ctx, testManifest("helmet"), []byte("helmet model")); err != nil {
		t.Fatal(err)
	}
	list, bad, err := s.List(ctx)
	if err != nil || len(bad) != 0 || len(list) != 2 || list[0].Manifest.Name != "clothes" || list[1].Manifest.Name != "helmet" {
		t.Fatalf("List = %+v, %v, %v", list, bad, err)
	}
	if err := s.Delete(ctx, "helmet"); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		func() error { _, err := s.Info(ctx, "helmet"); return err }(),
		func() error { _, _, err := s.Get(ctx, "helmet"); return err }(),
		s.Delete(ctx, "nothing"),
		s.Delete(ctx, "helmet"), // twice
		func() error { _, err := s.Info(ctx, "../bad name"); return err }(),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("error = %v, want ErrNotFound", err)
		}
	}
}

func TestStoreDigest(t *testing.T) {
	ctx := context.Background()
	s, js := open(t, store.Config{MaxModelBytes: 1 << 10})
	m := testManifest("x")
	m.SHA256 = store.Digest([]byte("what was registered"))
	if _, err := s.Put(ctx, m, []byte("something else")); !errors.Is(err, store.ErrDigest) {
		t.Errorf("Put with a manifest digest of other bytes: %v", err)
	}
	if _, err := s.Put(ctx, testManifest("big"), make([]byte, 2<<10)); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("Put over MaxModelBytes: %v", err)
	}
	// Objects other writers left: a model that is not the registered one, no manifest, the
	// manifest of another classifier.
	obs, err := js.ObjectStore(ctx, store.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	raw := func(name string, mj []byte, model []byte) {
		meta := jetstream.ObjectMeta{Name: name}
		if mj != nil {
			meta.Metadata = map[string]string{store.MetaManifest: string(mj)}
		}
		if _, err := obs.Put(ctx, meta, bytes.NewReader(model)); err != nil {
			t.Fatal(err)
		}
	}
	mj, _ := json.Marshal(m) // registers the digest of "what was registered"
	raw("x", mj, []byte("tampered model"))
	if _, _, err := s.Get(ctx, "x"); !errors.Is(err, store.ErrDigest) {
		t.Errorf("Get of a tampered model: %v", err)
	}
	raw("nometa", nil, []byte("m"))
	other, _ := json.Marshal(testManifest("someone"))
	raw("impostor", other, []byte("m"))
	if _, err := s.Info(ctx, "nometa"); !errors.Is(err, store.ErrBadObject) {
		t.Errorf("Info(no manifest): %v", err)
	}
	if _, err := s.Info(ctx, "impostor"); !errors.Is(err, store.ErrBadObject) {
		t.Errorf("Info(another's manifest): %v", err)
	}
	raw("big", mustJSON(t, withDigest(testManifest("big"), make([]byte, 2<<10))), make([]byte, 2<<10))
	if _, _, err := s.Get(ctx, "big"); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("Get over MaxModelBytes: %v", err)
	}
	list, bad, err := s.List(ctx)
	if err != nil || len(list) != 2 || len(bad) != 2 {
		t.Errorf("List = %d entries, %d bad (%v), %v; want x and big listed, 2 bad", len(list), len(bad), bad, err)
	}
}

func withDigest(m manifest.Manifest, model []byte) manifest.Manifest {
	m.SHA256 = store.Digest(model)
	return m
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
