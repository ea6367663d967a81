package unknown_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/pkg/bus/bustest"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/pkg/unknown"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func record(t *testing.T, id string, centroid []float32) []byte {
	t.Helper()
	b, err := json.Marshal(unknown.Record{Schema: unknown.Schema, ID: id, Sightings: 1, Centroid: unknown.EncodeVec(centroid)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIndex: on real NATS, an index opened before the bucket exists starts empty and picks the
// bucket up once it is created; it follows puts and deletes; Match returns the nearest centroid
// and ok only at the threshold; a corrupt record is skipped; a second index opened later loads
// what is there before Open returns.
func TestIndex(t *testing.T) {
	srv := bustest.StartServer(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := unknown.Open(ctx, js, unknown.IndexConfig{}); err == nil {
		t.Fatal("Open without a threshold succeeded")
	}
	x, err := unknown.Open(ctx, js, unknown.IndexConfig{Threshold: 0.45, Retry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if _, _, ok := x.Match([]float32{1, 0, 0}); ok || x.Len() != 0 {
		t.Fatalf("an index without bucket matched or holds %d", x.Len())
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: unknown.DefaultBucket})
	if err != nil {
		t.Fatal(err)
	}
	a, b := "u-00000000000000aa", "u-00000000000000bb"
	if _, err := kv.Put(ctx, unknown.KeyPrefix+a, record(t, a, []float32{1, 0, 0})); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, unknown.KeyPrefix+b, record(t, b, []float32{0, 2, 0})); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, unknown.KeyPrefix+"u-00000000000000cc", []byte(`{"schema":1,"centroid":"!"}`)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the index to load the new bucket", func() bool { return x.Len() == 2 })
	if id, sim, ok := x.Match([]float32{0.2, 3, 0}); !ok || id != b || sim < 0.98 {
		t.Errorf("Match near b: %q %v %v", id, sim, ok)
	}
	if id, sim, ok := x.Match([]float32{0.5, 0.5, 3}); ok || id == "" || sim >= 0.45 {
		t.Errorf("Match far from both: %q %v %v, want the nearest, not ok", id, sim, ok)
	}
	if _, _, ok := x.Match([]float32{0, 0, 0}); ok {
		t.Error("a zero embedding matched")
	}
	y, err := unknown.Open(ctx, js, unknown.IndexConfig{Threshold: 0.45})
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	if y.Len() != 2 {
		t.Errorf("a second index holds %d unknowns when Open returns, want 2", y.Len())
	}
	if err := kv.Delete(ctx, unknown.KeyPrefix+a); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the deletion to reach the index", func() bool { return x.Len() == 1 })
	if id, _, ok := x.Match([]float32{1, 0, 0}); ok {
		t.Errorf("the deleted unknown still matches (%q)", id)
	}
	if _, _, err := unknown.ParseRecord([]byte(`{"schema":2}`)); !errors.Is(err, unknown.ErrRecord) {
		t.Errorf("schema 2: %v", err)
	}
}
