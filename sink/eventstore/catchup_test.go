package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/bus/bustest"
	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/sink/eventstore"
	"github.com/vigil-video/vigil/sink/eventstore/eventstoretest"
)

// gated is an EventSink that takes events only while its gate is open.
type gated struct {
	flaky
	gate chan struct{}
}

func (g *gated) WriteEvent(ctx context.Context, ev event.Event, snap []byte) error {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.flaky.WriteEvent(ctx, ev, snap)
}

// TestConsumerCatchUp: CatchUp returns only once every stored event reached the sinks (what
// vigil run waits for before it stops the history, so that the face.left events the track role
// publishes at shutdown are kept), and says how many are still pending when it gives up.
func TestConsumerCatchUp(t *testing.T) {
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
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, bus.EventsStreamConfig(config.JetStream{Storage: "memory"})); err != nil {
		t.Fatal(err)
	}
	const n = 40
	at := time.Unix(1795306514, 0)
	// Stored before the consumer exists: a consumer that starts later catches up with them.
	for i := range n {
		publishEvent(t, js, nc, eventstoretest.Event("lobby", fmt.Sprintf("t%d", i), event.KindLeft, at))
	}
	g := &gated{gate: make(chan struct{})}
	c := &eventstore.Consumer{Conn: nc, JetStream: js, Sinks: []eventstore.EventSink{g}, Buffer: 8}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(cctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// The sink takes nothing: CatchUp must not return before its deadline.
	short, stop := context.WithTimeout(ctx, 300*time.Millisecond)
	err = c.CatchUp(short)
	stop()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CatchUp with the sink blocked: %v, want a deadline error", err)
	}
	if g.count() != 0 {
		t.Fatalf("the blocked sink took %d events", g.count())
	}
	close(g.gate)
	wait, stop := context.WithTimeout(ctx, 20*time.Second)
	defer stop()
	if err := c.CatchUp(wait); err != nil {
		t.Fatal(err)
	}
	if got := g.count(); got != n { // no polling: CatchUp returned, so every event is in
		t.Fatalf("after CatchUp the sink holds %d of %d events", got, n)
	}
	publishEvent(t, js, nc, eventstoretest.Event("lobby", "last", event.KindLeft, at))
	if err := c.CatchUp(wait); err != nil {
		t.Fatal(err)
	}
	if got := g.count(); got != n+1 {
		t.Fatalf("after the second CatchUp the sink holds %d of %d events", got, n+1)
	}
}

// TestConsumerCatchUpNotRunning: CatchUp on a consumer that never ran gives up with ctx.
func TestConsumerCatchUpNotRunning(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := (&eventstore.Consumer{}).CatchUp(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CatchUp without Run: %v", err)
	}
}
