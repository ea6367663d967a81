package eventstore

import (
	"context"
	"fmt"
	"time"

	"github.com/vigil-video/vigil/pkg/bus"
)

// CatchUp waits, while Run runs, until the consumer has handled every event stored so far: with
// JetStream, until its durable consumer has none pending and none awaiting acknowledgement (an
// event is acknowledged only once every sink took it); with core NATS, until the connection has
// flushed (events already received are handled before Run returns). Call it before cancelling
// Run's context on the way out, so that the last events (the track role ends its tracks at
// shutdown: face.left) reach the sinks. It returns ctx's error when ctx ends first, and an
// error when Run has not become ready by then.
func (c *Consumer) CatchUp(ctx context.Context) error {
	select {
	case <-c.Ready():
	case <-ctx.Done():
		return fmt.Errorf("eventstore consumer: catch up: not running: %w", ctx.Err())
	}
	if c.JetStream == nil {
		if err := c.Conn.FlushWithContext(ctx); err != nil {
			return fmt.Errorf("eventstore consumer: catch up: %w", err)
		}
		return nil
	}
	cons, err := c.JetStream.Consumer(ctx, bus.EventsStream, c.Durable)
	if err != nil {
		return fmt.Errorf("eventstore consumer: catch up: %s: %w", c.Durable, err)
	}
	// The server may count a just-stored event in the consumer's pending a moment after it
	// acknowledged the publish: an unfiltered consumer also waits for its acknowledgement floor
	// to reach the stream's last event, and every consumer for two polls in a row to agree.
	var last uint64
	if len(c.Streams) == 0 {
		if s, err := c.JetStream.Stream(ctx, bus.EventsStream); err == nil {
			if si, err := s.Info(ctx); err == nil {
				last = si.State.LastSeq
			}
		}
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	agreed := 0
	for {
		info, err := cons.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= last {
			if agreed++; agreed == 2 {
				return nil
			}
		} else {
			agreed = 0
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("eventstore consumer: catch up: %w (last error: %w)", ctx.Err(), err)
			}
			return fmt.Errorf("eventstore consumer: catch up: %w with %d events pending, %d unacknowledged", ctx.Err(), info.NumPending, info.NumAckPending)
		case <-tick.C:
		}
	}
}
