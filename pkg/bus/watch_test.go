package bus

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestConsumeWatch: updates reach apply in order, the nil marker calls initialDone, a closed
// channel is ErrWatchClosed while ctx lives and ctx's error once it ended.
func TestConsumeWatch(t *testing.T) {
	a, b := "a", "b"
	updates := make(chan *string, 4)
	updates <- &a
	updates <- nil
	updates <- &b
	close(updates)
	var got []string
	done := 0
	err := ConsumeWatch(context.Background(), updates, func() { done++; got = append(got, "|") }, func(s *string) { got = append(got, *s) })
	if !errors.Is(err, ErrWatchClosed) || done != 1 || !slices.Equal(got, []string{"a", "|", "b"}) {
		t.Fatalf("err %v, initialDone %d times, saw %v; want ErrWatchClosed, 1, [a | b]", err, done, got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ConsumeWatch(ctx, make(chan *string), func() {}, func(*string) {}); !errors.Is(err, context.Canceled) {
		t.Fatalf("ended ctx: %v, want context.Canceled", err)
	}
	closed := make(chan *string)
	close(closed)
	if err := ConsumeWatch(ctx, closed, func() {}, func(*string) {}); !errors.Is(err, context.Canceled) {
		t.Fatalf("channel closed after ctx ended: %v, want ctx's error", err)
	}
}
