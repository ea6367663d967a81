package analyze

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestRoleJetStream: with a StreamPublisher every outcome is stored in VIGIL_RESULTS, each with
// a message id, including the drops decided while receiving (queue full); a frame analysed twice
// (same stream, seq and capture time) is stored once; the batch and busy counters move.
func TestRoleJetStream(t *testing.T) {
	img := jpegOf(t, filepath.Join(testenv.TestData(t), "detect", "obama_and_biden.jpg")) // skips before anything starts
	srv := &bus.EmbeddedServer{StoreDir: t.TempDir()}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc, err := bus.Connect(ctx, srv.ClientURL(), "analyze", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, js, config.Default().JetStream, nil); err != nil {
		t.Fatal(err)
	}
	client, err := bus.Connect(ctx, srv.ClientURL(), "client", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	role := &Role{Conn: nc, Analyzer: newPipeline(t, newModelSet(t), nil), Workers: 1, MaxBatch: 1, QueueSize: 1,
		Deadline: time.Minute, Publisher: &bus.StreamPublisher{JS: js}, Name: "js"}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- role.Run(rctx) }()
	<-role.Ready()

	captured := time.Now()
	const n = 20
	for i := 1; i <= n; i++ {
		f := frame.Frame{Stream: "cam", Seq: uint64(i), Captured: captured, Width: 2000, Height: 1428, Encoding: frame.EncodingJPEG, Data: img, Complete: true}
		if i == n {
			f.Seq = 1 // the first frame again: the same outcome id
		}
		m, err := f.Msg("vigil.frames.cam")
		if err != nil {
			t.Fatal(err)
		}
		if err := client.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Flush(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, "every frame received", func() bool { return role.Stats().Received == n })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := role.Stats()
	if st.Dropped[result.ReasonQueue] == 0 || len(st.Batches) == 0 || st.Busy <= 0 || st.PublishErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
	stream, err := js.Stream(ctx, bus.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.FetchNoWait(100)
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[uint64]int{}
	stored := 0
	for m := range batch.Messages() {
		stored++
		if m.Headers().Get(jetstream.MsgIDHeader) == "" {
			t.Errorf("%s stored without a message id", m.Subject())
		}
		var doc struct{ Seq uint64 }
		if r, err := result.ParseResult(m.Data()); err == nil {
			doc.Seq = r.Seq
		} else if d, err := result.ParseDrop(m.Data()); err == nil {
			doc.Seq = d.Seq
		}
		seqs[doc.Seq]++
	}
	// Frames 1..19 each have one outcome; the repeated frame 1 was stored once (or dropped, as
	// a drop of the same frame is a different document).
	for s := uint64(2); s < n; s++ {
		if seqs[s] != 1 {
			t.Errorf("seq %d stored %d times", s, seqs[s])
		}
	}
	if seqs[1] < 1 || stored > n {
		t.Errorf("seq 1 stored %d times, %d messages in all", seqs[1], stored)
	}
}
