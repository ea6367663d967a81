package gallery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// unit returns a random unit vector of n values from seed.
func unit(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	e, _ := normalize(v)
	return e
}

// near returns a unit vector with cosine similarity sim to the unit vector v.
func near(v []float32, sim float64, seed uint64) []float32 {
	o := unit(seed, len(v))
	d := float64(dot(o, v))
	for i := range o { // orthogonalise o against v
		o[i] -= float32(d) * v[i]
	}
	o, _ = normalize(o)
	out := make([]float32, len(v))
	s := math.Sqrt(1 - sim*sim)
	for i := range v {
		out[i] = float32(sim)*v[i] + float32(s)*o[i]
	}
	return out
}

func TestIndexSearch(t *testing.T) {
	x := NewIndex()
	a, b := unit(1, 512), unit(2, 512)
	x.Put("alice", "Alice", [][]float32{a, unit(3, 512)}, 1)
	x.Put("bob", "Bob", [][]float32{b}, 2)
	x.Put("short", "Short", [][]float32{unit(4, 128)}, 3) // another model's length: never matches

	q := near(a, 0.7, 9)
	got := x.Search(q, 5, -1)
	if len(got) != 2 || got[0].ID != "alice" || math.Abs(float64(got[0].Similarity)-0.7) > 1e-4 {
		t.Fatalf("Search = %+v, want alice at 0.7 first, and bob", got)
	}
	if name, sim, ok := x.Match(q, 0.6); !ok || name != "Alice" || sim < 0.69 {
		t.Fatalf("Match(0.6) = %q %v %v", name, sim, ok)
	}
	if name, sim, ok := x.Match(q, 0.75); ok || name != "" || sim < 0.69 {
		t.Fatalf("Match(0.75) = %q %v %v, want no match with the best similarity", name, sim, ok)
	}
	// Revisions: an older update is ignored, a newer one applies.
	x.Put("alice", "Old Alice", [][]float32{b}, 0+1-1+0) // rev 0 always applies (no revision known)
	x.Put("alice", "Alice", [][]float32{a}, 5)
	x.Put("alice", "Stale", [][]float32{b}, 4)
	if c := x.Search(q, 1, 0.5); len(c) != 1 || c[0].Name != "Alice" {
		t.Fatalf("after a stale update: %+v", c)
	}
	x.Remove("alice", 3) // older than 5: ignored
	if x.Len() != 3 {
		t.Fatalf("Len = %d after a stale remove, want 3", x.Len())
	}
	x.Remove("alice", 6)
	if _, _, ok := x.Match(q, 0.5); ok || x.Len() != 2 {
		t.Fatalf("alice still matches after removal (len %d)", x.Len())
	}
	x.Put("alice", "Alice", [][]float32{a}, 6) // same revision as the removal: not older, applies
	if x.Search(nil, 1, 0) != nil || x.Search(q, 0, 0) != nil {
		t.Fatal("empty query or k=0 returned candidates")
	}
}

func TestRecordRoundTrip(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	in := Identity{ID: "zo_eb_", Name: "Zoë", CreatedAt: now, UpdatedAt: now, Model: "fr_feature",
		Photos: []Photo{{ID: "0123456789abcdef", SHA256: "ab", AddedAt: now, Embedding: unit(1, 512)},
			{ID: "fedcba9876543210", AddedAt: now, Embedding: unit(2, 512)}}}
	data, err := encodeRecord(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodeRecord("zo_eb_", data)
	if err != nil {
		t.Fatal(err)
	}
	if out.Name != in.Name || len(out.Photos) != 2 || Cosine(out.Photos[1].Embedding, in.Photos[1].Embedding) < 0.99999 {
		t.Fatalf("round trip: %+v", out)
	}
	if _, err := decodeRecord("zoe", data); !errors.Is(err, ErrRecord) {
		t.Fatalf("record under another key: %v", err)
	}
	in.Photos[1].Embedding = unit(2, 128)
	if _, err := encodeRecord(in); !errors.Is(err, ErrRecord) {
		t.Fatalf("mixed embedding lengths encoded: %v", err)
	}
}

// FuzzDecodeRecord: any bytes under any key either decode into a record that re-encodes to the
// same identity or fail with ErrRecord; never a panic.
func FuzzDecodeRecord(f *testing.F) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	good, _ := encodeRecord(Identity{ID: "ann", Name: "Ann", CreatedAt: now, UpdatedAt: now, Model: "fr_feature",
		Photos: []Photo{{ID: "0123456789abcdef", AddedAt: now, Embedding: unit(1, 4)}}})
	f.Add("ann", good)
	f.Add("ann", []byte(`{"schema":1,"id":"ann","name":"Ann","dim":4,"photos":[{"id":"0123456789abcdef","embedding":"AAAAAAAAAAAAAAAAAAAAAA=="}]}`))
	f.Add("ann", []byte(`{"schema":1,"id":"ann","name":"Ann","dim":-1}`))
	f.Add("x", []byte(`null`))
	f.Add("ann", []byte(`{"schema":2}`))
	f.Fuzz(func(t *testing.T, id string, data []byte) {
		out, err := decodeRecord(id, data)
		if err != nil {
			if !errors.Is(err, ErrRecord) {
				t.Fatalf("error %v does not wrap ErrRecord", err)
			}
			return
		}
		if got, _ := IDFor(out.Name); got != id || !ValidID(id) {
			t.Fatalf("decoded a record for id %q named %q", id, out.Name)
		}
		again, err := encodeRecord(out)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		out2, err := decodeRecord(id, again)
		if err != nil || len(out2.Photos) != len(out.Photos) {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
	})
}

// newStore starts a real NATS server with JetStream and opens a store on it.
func newStore(t *testing.T, cfg StoreConfig) (*Store, *nats.Conn) {
	t.Helper()
	ctx := context.Background()
	srv := &bus.EmbeddedServer{StoreDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	nc, err := bus.Connect(ctx, srv.ClientURL(), "gallery-test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, nc
}

// revisionOf returns the key's last revision in the bucket (0 when absent).
func revisionOf(t *testing.T, s *Store, id string) uint64 {
	t.Helper()
	e, err := s.kv.Get(context.Background(), key(id))
	if err != nil {
		return 0
	}
	return e.Revision()
}

func TestStoreLifecycle(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, StoreConfig{MaxPhotos: 3})
	if l, err := s.List(ctx); err != nil || len(l) != 0 {
		t.Fatalf("empty bucket lists %v, %v", l, err)
	}
	a := unit(1, 512)
	ob, err := s.Create(ctx, "  Barack   Obama ", []NewPhoto{{Embedding: a, SHA256: "aa"}})
	if err != nil {
		t.Fatal(err)
	}
	if ob.ID != "barack-obama" || ob.Name != "Barack Obama" || len(ob.Photos) != 1 || ob.Revision == 0 || ob.Model != DefaultModel {
		t.Fatalf("created %+v", ob)
	}
	if _, err := s.Create(ctx, "barack-OBAMA", nil); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), `"Barack Obama"`) {
		t.Fatalf("duplicate name: %v, want ErrExists naming the existing identity", err)
	}
	if _, err := s.Create(ctx, "a/b", nil); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("invalid name: %v", err)
	}
	if _, err := s.Create(ctx, "Zero", []NewPhoto{{Embedding: make([]float32, 512)}}); !errors.Is(err, ErrEmbedding) {
		t.Fatalf("zero embedding: %v", err)
	}
	if _, err := s.Get(ctx, "zero"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed create left something behind: %v", err)
	}
	rev := revisionOf(t, s, ob.ID)

	// Adding: duplicates, too many photos and bad embeddings write nothing.
	for _, bad := range []struct {
		photos []NewPhoto
		want   error
	}{
		{[]NewPhoto{{Embedding: unit(2, 512), SHA256: "bb"}, {Embedding: unit(3, 512), SHA256: "aa"}}, ErrDuplicatePhoto},
		{[]NewPhoto{{Embedding: unit(2, 512)}, {Embedding: unit(3, 512)}, {Embedding: unit(4, 512)}}, ErrTooManyPhotos},
		{[]NewPhoto{{Embedding: unit(2, 512)}, {Embedding: unit(3, 128)}}, ErrEmbedding},
		{[]NewPhoto{{Embedding: []float32{float32(math.NaN()), 1}}}, ErrEmbedding},
	} {
		if _, _, err := s.AddPhotos(ctx, ob.ID, bad.photos); !errors.Is(err, bad.want) {
			t.Fatalf("AddPhotos: %v, want %v", err, bad.want)
		}
		if r := revisionOf(t, s, ob.ID); r != rev {
			t.Fatalf("a refused AddPhotos wrote revision %d (was %d)", r, rev)
		}
	}
	got, added, err := s.AddPhotos(ctx, ob.ID, []NewPhoto{{Embedding: unit(2, 512), SHA256: "bb"}})
	if err != nil || len(got.Photos) != 2 || len(added) != 1 || got.Revision <= rev {
		t.Fatalf("AddPhotos = %+v, %+v, %v", got, added, err)
	}
	if _, _, err := s.AddPhotos(ctx, "nobody", []NewPhoto{{Embedding: a}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("AddPhotos to an unknown id: %v", err)
	}
	if _, err := s.RemovePhoto(ctx, ob.ID, "0000000000000000"); !errors.Is(err, ErrPhotoNotFound) {
		t.Fatalf("RemovePhoto of an unknown photo: %v", err)
	}
	got, err = s.RemovePhoto(ctx, ob.ID, added[0].ID)
	if err != nil || len(got.Photos) != 1 || got.Photos[0].ID != ob.Photos[0].ID {
		t.Fatalf("RemovePhoto = %+v, %v", got, err)
	}
	if _, err := s.Create(ctx, "Joe Biden", nil); err != nil {
		t.Fatal(err)
	}
	l, err := s.List(ctx)
	if err != nil || len(l) != 2 || l[0].ID != "barack-obama" || l[1].ID != "joe-biden" {
		t.Fatalf("List = %+v, %v", l, err)
	}
	for _, id := range []string{"nobody", "../etc", "identity.>", ""} {
		if _, err := s.Get(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%q) = %v, want ErrNotFound", id, err)
		}
		if err := s.Delete(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Delete(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if err := s.Delete(ctx, ob.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, ob.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	// The purge left no earlier revision holding the embeddings.
	if h, err := s.kv.History(ctx, key(ob.ID)); err != nil || len(h) != 1 || h[0].Operation() != jetstream.KeyValuePurge {
		t.Fatalf("history after delete: %d entries, %v", len(h), err)
	}
	// The name is free again.
	if _, err := s.Create(ctx, "Barack Obama", []NewPhoto{{Embedding: a}}); err != nil {
		t.Fatalf("re-create after delete: %v", err)
	}
}

// TestConcurrentAdds: writers racing on one identity each get their photo in; none is lost.
func TestConcurrentAdds(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, StoreConfig{})
	if _, err := s.Create(ctx, "Ann", nil); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := s.AddPhotos(ctx, "ann", []NewPhoto{{Embedding: unit(uint64(i+10), 64), SHA256: fmt.Sprint(i)}})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Get(ctx, "ann"); err != nil || len(got.Photos) != 6 {
		t.Fatalf("after 6 concurrent adds: %d photos, %v", len(got.Photos), err)
	}
}

// TestGalleryFollowsTheBucket: a Gallery started before and one started after a write both see
// it, within a second, and see deletions; a corrupt record is skipped and logged.
func TestGalleryFollowsTheBucket(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, StoreConfig{})
	a, b := unit(1, 512), unit(2, 512)
	if _, err := s.Create(ctx, "Before", []NewPhoto{{Embedding: b}}); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	g1 := Watch(s, WatchConfig{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	defer g1.Close()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := g1.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	if name, _, ok := g1.Match(near(b, 0.9, 3)); !ok || name != "Before" {
		t.Fatalf("existing identity not loaded at start: %q %v", name, ok)
	}
	if _, sim, ok := g1.Match(a); ok || sim > 0.3 {
		t.Fatalf("unenrolled face matched: %v %v", sim, ok)
	}
	start := time.Now()
	if _, err := s.Create(ctx, "Alice", []NewPhoto{{Embedding: a}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Second, "enrollment reaches the watcher", func() bool { _, _, ok := g1.Match(near(a, 0.8, 4)); return ok })
	t.Logf("enrollment visible to the watcher after %v", time.Since(start))

	g2 := Watch(s, WatchConfig{Threshold: 0.95, Log: slog.New(slog.DiscardHandler)})
	defer g2.Close()
	if err := g2.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	if g2.Len() != 2 || g2.Threshold() != 0.95 {
		t.Fatalf("second gallery: %d identities, threshold %v", g2.Len(), g2.Threshold())
	}
	if _, _, ok := g2.Match(near(a, 0.8, 4)); ok {
		t.Fatal("0.8 matched at threshold 0.95")
	}

	// A record written by something else that is not valid is skipped, not fatal.
	if _, err := s.kv.Put(ctx, key("mallory"), []byte(`{"schema":1,"name":"garbage"`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Second, "deletion reaches the watcher", func() bool { _, _, ok := g1.Match(a); return !ok })
	// g2 too: Carol below is enrolled with Alice's embedding, and a g2 still holding Alice
	// would name her.
	testenv.Eventually(t, time.Second, "deletion reaches the second watcher", func() bool { _, _, ok := g2.Match(a); return !ok })
	testenv.Eventually(t, time.Second, "the corrupt record is logged", func() bool { return strings.Contains(logs.String(), "mallory") })
	if g1.Len() != 1 {
		t.Fatalf("%d identities after delete, want 1", g1.Len())
	}
	// Write-through: Apply makes a write visible before the watcher delivers it, and a stale
	// delivery does not undo it.
	id, err := s.Create(ctx, "Carol", []NewPhoto{{Embedding: a}})
	if err != nil {
		t.Fatal(err)
	}
	g2.Apply(id)
	if name, _, ok := g2.Match(a); !ok || name != "Carol" {
		t.Fatal("Apply did not take effect at once")
	}
	faces := []result.Face{{}, {}, {}}
	if n := g2.Label(faces, [][]float32{near(a, 0.97, 11), nil, unit(99, 512)}); n != 1 || faces[0].Identity == nil ||
		faces[0].Identity.Name != "Carol" || faces[1].Identity != nil || faces[2].Identity != nil {
		t.Fatalf("Label: %d matched, %+v", n, faces)
	}
	g2.Forget(id.ID, id.Revision)
	if _, _, ok := g2.Match(a); ok {
		t.Fatal("Forget did not take effect at once")
	}
	if _, err := s.List(ctx); err == nil || !errors.Is(err, ErrRecord) {
		t.Fatalf("List with a corrupt record: %v, want ErrRecord joined", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
