package bus

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/testenv"
)

// The feed is one subscription on the server whatever the number of receivers; every receiver
// gets every frame, in order, sharing the message; Run's end removes the subscription.
func TestFrameFeed(t *testing.T) {
	ctx := context.Background()
	srv := &EmbeddedServer{}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sub, err := Connect(ctx, srv.ClientURL(), "feed", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	pub, err := Connect(ctx, srv.ClientURL(), "pub", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	feed := &FrameFeed{Conn: sub}
	var mu sync.Mutex
	got := [2][]string{}
	var msgs [2][]*nats.Msg
	for i := range got {
		feed.Add(func(m *nats.Msg) {
			mu.Lock()
			got[i] = append(got[i], string(m.Data))
			msgs[i] = append(msgs[i], m)
			mu.Unlock()
		})
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- feed.Run(runCtx) }()
	select {
	case <-feed.Ready():
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("feed not ready after 10 s")
	}
	subs, err := srv.Subscriptions("vigil.frames.cam")
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 1 {
		t.Fatalf("%d subscriptions receive vigil.frames.cam, want the feed's one: %+v", len(subs), subs)
	}
	for _, s := range []string{"1", "2", "3"} {
		if err := pub.Publish("vigil.frames.cam", []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "both receivers get the three frames", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got[0]) == 3 && len(got[1]) == 3
	})
	mu.Lock()
	for i := range got {
		if got[i][0] != "1" || got[i][1] != "2" || got[i][2] != "3" {
			t.Errorf("receiver %d got %q, want 1 2 3 in order", i, got[i])
		}
	}
	if msgs[0][0] != msgs[1][0] {
		t.Error("the receivers got copies: they should share one message")
	}
	mu.Unlock()

	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	testenv.Eventually(t, 10*time.Second, "the subscription removed", func() bool {
		subs, err := srv.Subscriptions("vigil.frames.cam")
		return err == nil && len(subs) == 0
	})
}
