package classify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/analyze/classify"
	"github.com/vigil-video/vigil/analyze/classify/store"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// openRegistry opens a registry (one analyzer's view) on st.
func openRegistry(t testing.TB, st *store.Store) *classify.Registry {
	t.Helper()
	reg, err := classify.OpenRegistry(classify.RegistryConfig{Runtime: newRuntime(t), Store: st, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := reg.Close(); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := reg.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return reg
}

// waitFor waits until cond holds for reg, re-checking at each of its changes.
func waitFor(t testing.TB, reg *classify.Registry, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		ch := reg.Changes()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; status %+v", what, reg.Status())
		}
	}
}

func statusOf(reg *classify.Registry, name string) (classify.Status, bool) {
	for _, s := range reg.Status() {
		if s.Name == name {
			return s, true
		}
	}
	return classify.Status{}, false
}

// TestRegistryHotReload plays two analyzers sharing one object store: what one registers,
// replaces or deletes, the other loads, reloads or unloads live; a tampered model is refused by
// both.
func TestRegistryHotReload(t *testing.T) {
	testenv.NeedsTestData(t)
	ctx := context.Background()
	js := natsJS(t)
	st, err := store.Open(ctx, js, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := openRegistry(t, st), openRegistry(t, st)
	model := mobileNet(t)
	m := imageNetManifest(t, "imagenet")

	// Register on A: A runs it when Register returns, B within moments.
	sa, err := a.Register(ctx, m, model)
	if err != nil {
		t.Fatal(err)
	}
	if sa.State != classify.StateLoaded || sa.Manifest.SHA256 != store.Digest(model) {
		t.Fatalf("A after Register: %+v", sa)
	}
	if _, ok := a.Get("imagenet"); !ok {
		t.Fatal("A does not run what it registered")
	}
	waitFor(t, b, "B to load imagenet", func() bool { _, ok := b.Get("imagenet"); return ok })

	// A third analyzer starting later loads what the store holds before it is ready.
	c := openRegistry(t, st)
	if s, ok := statusOf(c, "imagenet"); !ok || s.State != classify.StateLoaded {
		t.Errorf("late analyzer: %+v", c.Status())
	}

	// Replace on B (a threshold change): A reloads.
	m2 := m.Clone()
	m2.Threshold = 0.5
	if _, err := b.Register(ctx, m2, model); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a, "A to reload imagenet", func() bool {
		cl, ok := a.Get("imagenet")
		return ok && cl.Manifest().Threshold == 0.5
	})

	// A model that is not the registered one (written past Vigil, e.g. by a compromised
	// writer): every analyzer refuses it and stops running the classifier.
	obs, err := js.ObjectStore(ctx, store.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	reg := m2.Clone()
	reg.SHA256 = store.Digest(model) // the registered digest, of the untampered model
	mj, _ := json.Marshal(reg)
	tampered := append(bytes.Clone(model[:len(model)-16]), bytes.Repeat([]byte{0}, 16)...)
	if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: "imagenet", Metadata: map[string]string{store.MetaManifest: string(mj)}},
		bytes.NewReader(tampered)); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*classify.Registry{"A": a, "B": b} {
		waitFor(t, r, name+" to refuse the tampered model", func() bool {
			s, ok := statusOf(r, "imagenet")
			return ok && s.State == classify.StateFailed
		})
		s, _ := statusOf(r, "imagenet")
		if _, running := r.Get("imagenet"); running || !strings.Contains(s.Error, "digest mismatch") {
			t.Errorf("%s: running %v, error %q", name, running, s.Error)
		}
	}

	// Registering again heals it; deleting unloads it everywhere.
	if _, err := a.Register(ctx, m, model); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, "B to load the healed classifier", func() bool { _, ok := b.Get("imagenet"); return ok })
	if err := b.Delete(ctx, "imagenet"); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*classify.Registry{"A": a, "C": c} {
		waitFor(t, r, name+" to unload", func() bool { _, ok := statusOf(r, "imagenet"); return !ok })
	}

	// Registration refuses what does not fit and stores nothing.
	bad := m.Clone()
	bad.Labels = bad.Labels[:10]
	if _, err := a.Register(ctx, bad, model); err == nil || !strings.Contains(err.Error(), "10 labels") {
		t.Errorf("Register(10 labels for 1000 outputs): %v", err)
	}
	if entries, _, _ := st.List(ctx); len(entries) != 0 {
		t.Errorf("store holds %d classifiers after a refused registration", len(entries))
	}
	if err := a.Delete(ctx, "imagenet"); err == nil {
		t.Error("deleting a deleted classifier succeeded")
	}

	// PutChecked (the command line's registration) checks without loading and every
	// analyzer picks the classifier up.
	if _, err := classify.PutChecked(ctx, newRuntime(t), st, m, model[:1000]); err == nil {
		t.Error("PutChecked stored a truncated model")
	}
	e, err := classify.PutChecked(ctx, newRuntime(t), st, m, model)
	if err != nil || e.Manifest.SHA256 != store.Digest(model) {
		t.Fatalf("PutChecked = %+v, %v", e, err)
	}
	waitFor(t, a, "A to load the classifier stored by PutChecked", func() bool { _, ok := a.Get("imagenet"); return ok })
}
