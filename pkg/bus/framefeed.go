package bus

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Defaults of the FrameFeed fields: what waits for the receivers, as one snapshot ring of 64
// frames a stream bounds it.
const (
	DefaultFeedPendingMsgs  = 256
	DefaultFeedPendingBytes = 64 << 20
)

// FrameFeed is one subscription to every stream's frames (vigil.frames.*, without a queue
// group: it sees every frame), shared by the parts of a process that each keep recent frames
// (`vigil run`: the web view's live ring and the event snapshots' ring), so the server sends
// each frame to the process once and the parts share its bytes. Each message is handed, in
// arrival order and on one goroutine (the NATS client's for the subscription), to every
// receiver added; a receiver must return quickly and must not modify the message. Frames are
// ephemeral: when the receivers fall behind, the NATS client drops frames (slow consumer),
// never queues them without bound.
//
// Fill Conn, Add the receivers, then Run it: Run's caller owns the subscription.
type FrameFeed struct {
	// Conn is the connection Run subscribes with. Required.
	Conn *nats.Conn
	// PendingMsgs and PendingBytes bound the frames waiting for the receivers. Default
	// DefaultFeedPendingMsgs and DefaultFeedPendingBytes.
	PendingMsgs, PendingBytes int

	mu        sync.Mutex
	receivers []func(*nats.Msg)
	readyOnce sync.Once
	ready     chan struct{}
}

// Add adds a receiver of every frame message. Add receivers before Run; one added later gets
// the frames that arrive after it.
func (f *FrameFeed) Add(receive func(*nats.Msg)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.receivers = append(f.receivers[:len(f.receivers):len(f.receivers)], receive) // a new slice: deliver reads the old one unlocked
}

// Receivers returns how many receivers were added. With none, nothing would receive the
// frames: the owner need not Run the feed.
func (f *FrameFeed) Receivers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.receivers)
}

// Ready is closed once Run's subscription is confirmed by the server: every frame published
// after reaches the receivers.
func (f *FrameFeed) Ready() <-chan struct{} {
	f.readyOnce.Do(func() { f.ready = make(chan struct{}) })
	return f.ready
}

func (f *FrameFeed) deliver(m *nats.Msg) {
	f.mu.Lock()
	rs := f.receivers
	f.mu.Unlock()
	for _, receive := range rs {
		receive(m)
	}
}

// Run subscribes, closes Ready once the server has confirmed it, and delivers the frames until
// ctx ends; it then unsubscribes and returns nil. It fails when it cannot subscribe. Run it
// once.
func (f *FrameFeed) Run(ctx context.Context) error {
	if f.Conn == nil {
		return fmt.Errorf("frame feed: no Conn")
	}
	msgs, bytes := f.PendingMsgs, f.PendingBytes
	if msgs <= 0 {
		msgs = DefaultFeedPendingMsgs
	}
	if bytes <= 0 {
		bytes = DefaultFeedPendingBytes
	}
	subj := All(FramesPrefix)
	sub, err := f.Conn.Subscribe(subj, f.deliver)
	if err != nil {
		return fmt.Errorf("frame feed: subscribe %s: %w", subj, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := sub.SetPendingLimits(msgs, bytes); err != nil {
		return fmt.Errorf("frame feed: %w", err)
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = f.Conn.FlushWithContext(fctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("frame feed: %w", err)
	}
	f.Ready()
	close(f.ready)
	<-ctx.Done()
	return nil
}
