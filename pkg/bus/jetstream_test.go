package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/bus/bustest"
	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/testenv"
)

func connectJS(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := bus.Connect(context.Background(), url, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// TestEnsureStreamsIdempotent: roles starting together all succeed, the streams carry the
// configured limits, and a later role with other limits keeps the first creator's.
func TestEnsureStreamsIdempotent(t *testing.T) {
	s := bustest.StartServer(t)
	_, js := connectJS(t, s.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := config.Default().JetStream
	cfg.Results.MaxAge = time.Hour
	cfg.Results.MaxBytes = 64 << 20
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = bus.EnsureStreams(ctx, js, cfg, nil) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	other := cfg
	other.Results.MaxAge = 5 * time.Hour
	if err := bus.EnsureStreams(ctx, js, other, nil); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, bus.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	c := st.CachedInfo().Config
	if c.MaxAge != time.Hour || c.MaxBytes != 64<<20 || c.Discard != jetstream.DiscardOld || c.Duplicates != 2*time.Minute {
		t.Fatalf("results stream config %+v", c)
	}
	if got := strings.Join(c.Subjects, " "); got != "vigil.results.> vigil.drops.> vigil.eos.>" {
		t.Fatalf("subjects %q", got)
	}
	ev, err := js.Stream(ctx, bus.EventsStream)
	if err != nil || ev.CachedInfo().Config.Subjects[0] != "vigil.events.>" {
		t.Fatalf("events stream: %v", err)
	}
}

// TestEnsureStreamsNoJetStream: a server without JetStream is a precise, immediate error.
func TestEnsureStreamsNoJetStream(t *testing.T) {
	srv := &bus.EmbeddedServer{} // no StoreDir: no JetStream
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, js := connectJS(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err := bus.EnsureStreams(ctx, js, config.Default().JetStream, nil)
	if err == nil || !strings.Contains(err.Error(), "jetstream") {
		t.Fatalf("err %v", err)
	}
	if time.Since(start) > 15*time.Second {
		t.Fatalf("took %s: a missing JetStream should not be retried until the deadline", time.Since(start))
	}
}

// TestPartitionMatchesServer: Partition computes what the server's {{partition(n,1)}} does, both
// through the server's own transform code and through a real stream's subject transform; the
// transform leaves drops and core subscribers alone.
func TestPartitionMatchesServer(t *testing.T) {
	const n = 4
	src, dest := bus.ResultsPartitionMapping(n)
	tr, err := server.NewSubjectTransform(src, dest)
	if err != nil {
		t.Fatal(err)
	}
	streams := []string{"lobby", "door", "cam-1", "cam-2", "cam_3", "A", "z9", "parking-lot-east", "0", "x"}
	for _, s := range streams {
		want := fmt.Sprintf("vigil.results.%d.%s", bus.Partition(s, n), s)
		if got := tr.TransformSubject("vigil.results." + s); got != want {
			t.Fatalf("server maps %s to %s, Partition says %s", s, got, want)
		}
	}

	srv := bustest.StartServer(t)
	nc, js := connectJS(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := config.Default().JetStream
	cfg.Partitions = n
	if err := bus.EnsureStreams(ctx, js, cfg, nil); err != nil {
		t.Fatal(err)
	}
	core, err := nc.SubscribeSync("vigil.results.*")
	if err != nil {
		t.Fatal(err)
	}
	pub := &bus.StreamPublisher{JS: js}
	for _, s := range streams {
		if err := pub.Publish(ctx, "vigil.results."+s, []byte(s), ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Publish(ctx, "vigil.drops.lobby", []byte("drop"), ""); err != nil {
		t.Fatal(err)
	}
	for range streams {
		m, err := core.NextMsg(5 * time.Second)
		if err != nil || m.Subject != "vigil.results."+string(m.Data) {
			t.Fatalf("core subscriber got %v, %v", m, err)
		}
	}
	// Each partition's consumer sees exactly its streams.
	got := map[string]int{}
	for p := 0; p < n; p++ {
		cons, err := js.OrderedConsumer(ctx, bus.ResultsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.PartitionFilter(p)}})
		if err != nil {
			t.Fatal(err)
		}
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if bus.Partition(string(m.Data()), n) != p {
				t.Fatalf("%s in partition %d", m.Data(), p)
			}
			got[string(m.Data())]++
		}
	}
	if len(got) != len(streams) {
		t.Fatalf("partitions hold %v, want every stream once", got)
	}
	st, _ := js.Stream(ctx, bus.ResultsStream)
	if m, err := st.GetLastMsgForSubject(ctx, "vigil.drops.lobby"); err != nil || string(m.Data) != "drop" {
		t.Fatalf("drop stored as %v, %v (want untransformed)", m, err)
	}
}

func TestPartitionEdge(t *testing.T) {
	if bus.Partition("x", 0) != 0 || bus.Partition("x", 1) != 0 {
		t.Fatal("n < 2 must give partition 0")
	}
	if bus.PartitionFilter(3) != "vigil.results.3.*" {
		t.Fatal(bus.PartitionFilter(3))
	}
}

// TestStreamPublisherDedup: republishing with the same id (as after a lost acknowledgement)
// stores one message.
func TestStreamPublisherDedup(t *testing.T) {
	s := bustest.StartServer(t)
	_, js := connectJS(t, s.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bus.EnsureStreams(ctx, js, config.Default().JetStream, nil); err != nil {
		t.Fatal(err)
	}
	pub := &bus.StreamPublisher{JS: js}
	for i := 0; i < 3; i++ {
		if err := pub.Publish(ctx, "vigil.results.cam", []byte("r1"), "cam/1/123"); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Publish(ctx, "vigil.results.cam", []byte("r2"), "cam/2/456"); err != nil {
		t.Fatal(err)
	}
	st, _ := js.Stream(ctx, bus.ResultsStream)
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != 2 {
		t.Fatalf("stream holds %d messages (%v), want 2", info.State.Msgs, err)
	}
	// A subject no stream captures is an error once the timeout passes, not a silent loss.
	short := &bus.StreamPublisher{JS: js, AttemptTimeout: 200 * time.Millisecond, Timeout: time.Second}
	if err := short.Publish(ctx, "elsewhere.x", []byte("x"), ""); err == nil {
		t.Fatal("publish to an uncaptured subject succeeded")
	}
}

// TestClusterFailover: on a 3-node cluster with replicas 3, killing the stream leader loses no
// acknowledged message and publishing continues on the other two.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster failover takes ~10 s")
	}
	c := bustest.StartCluster(t, 3)
	_, js := connectJS(t, c.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg := config.Default().JetStream
	cfg.Replicas = 3
	// A cluster just started may not have all three peers current yet ("no suitable peers for
	// placement"): wait for placement to succeed.
	var ensureErr error
	testenv.Eventually(t, 60*time.Second, "the 3-replica streams", func() bool {
		ensureErr = bus.EnsureStreams(ctx, js, cfg, nil)
		return ensureErr == nil || !strings.Contains(ensureErr.Error(), "no suitable peers")
	})
	if ensureErr != nil {
		t.Fatal(ensureErr)
	}
	pub := &bus.StreamPublisher{JS: js}
	acked := 0
	for i := 0; i < 200; i++ {
		if i == 100 {
			leader := c.StreamLeader(bus.ResultsStream)
			if leader < 0 {
				t.Fatal("no stream leader")
			}
			c.Shutdown(leader)
		}
		if err := pub.Publish(ctx, "vigil.results.cam", []byte(fmt.Sprint(i)), fmt.Sprintf("cam/%d", i)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		acked++
	}
	st, err := js.Stream(ctx, bus.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(acked) {
		t.Fatalf("stream holds %d messages after failover, %d were acknowledged", info.State.Msgs, acked)
	}
}

// TestEnsureBuckets: key-value buckets and object stores are created once and opened after,
// also by callers racing each other.
func TestEnsureBuckets(t *testing.T) {
	s := bustest.StartServer(t)
	_, js := connectJS(t, s.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	kvs := make([]jetstream.KeyValue, 3)
	errs := make([]error, 3)
	for i := range kvs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kvs[i], errs[i] = bus.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{Bucket: "vigil_test_streams", History: 1})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if _, err := kvs[0].Put(ctx, "lobby", []byte("rtsp://cam/1")); err != nil {
		t.Fatal(err)
	}
	if e, err := kvs[2].Get(ctx, "lobby"); err != nil || string(e.Value()) != "rtsp://cam/1" {
		t.Fatalf("another handle of the bucket reads %v, %v", e, err)
	}
	obs, err := bus.EnsureObjectStore(ctx, js, jetstream.ObjectStoreConfig{Bucket: "vigil_test_models"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obs.PutBytes(ctx, "model.onnx", []byte("weights")); err != nil {
		t.Fatal(err)
	}
	again, err := bus.EnsureObjectStore(ctx, js, jetstream.ObjectStoreConfig{Bucket: "vigil_test_models"})
	if err != nil {
		t.Fatal(err)
	}
	info, err := again.GetInfo(ctx, "model.onnx")
	if err != nil || info.Digest == "" {
		t.Fatalf("object info %+v, %v (want a SHA-256 digest)", info, err)
	}
}
