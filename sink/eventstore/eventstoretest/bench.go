package eventstoretest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/vigil-video/vigil/sink/eventstore"
)

// Bench runs the store benchmarks against a backend: StoreEvent with a 5 KiB snapshot, Write
// of a result summary, and Events (a page of 100 of 10000 events filtered by stream).
func Bench(b *testing.B, newDatabase func(b *testing.B) Opener) {
	open := func(b *testing.B) *eventstore.Store {
		st := &eventstore.Store{PruneInterval: -1}
		if err := newDatabase(b)(context.Background(), st); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = st.Close() })
		return st
	}
	snap := append(JPEG(b), make([]byte, 5<<10)...)
	at := time.Unix(1795306514, 0)
	b.Run("StoreEvent", func(b *testing.B) {
		st := open(b)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := st.StoreEvent(context.Background(), Event("lobby", fmt.Sprint("t", i), event.KindRecognized, at), snap); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("WriteResult", func(b *testing.B) {
		st := open(b)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := st.Write(context.Background(), resultWith("lobby", uint64(i+1), "Ada", "")); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("EventsPage", func(b *testing.B) {
		st := open(b)
		for i := 0; i < 10000; i++ {
			stream := []string{"lobby", "door"}[i%2]
			if _, err := st.StoreEvent(context.Background(), Event(stream, fmt.Sprint("t", i), event.KindAppeared, at), nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			evs, err := st.Events(context.Background(), eventstore.EventFilter{Stream: "door", Limit: 100})
			if err != nil || len(evs) != 100 {
				b.Fatal(len(evs), err)
			}
		}
	})
}
