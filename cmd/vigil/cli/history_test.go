package cli

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/sink/eventstore"
)

// TestRunOnceHistory: vigil run --once keeps the whole event history: every track that appeared
// has left (the track role ends its tracks at shutdown, and the history catches up with the
// stored events before it stops), and the results are summarised for /v1/history/results.
func TestRunOnceHistory(t *testing.T) {
	video := filepath.Join(testenv.TestData(t), "video", "fer_test.mp4")
	dir := t.TempDir()
	code, _, stderr := vigil(t, nil, "run", "--once", "--nats-port", "0", "--source", video, "--stream", "fer", "--store-dir", dir)
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
	}
	st := openHistory(t, filepath.Join(dir, "events.db"))
	ctx := context.Background()
	evs, err := st.Events(ctx, eventstore.EventFilter{Stream: "fer", Limit: eventstore.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, e := range evs {
		kinds[e.Kind]++
	}
	if kinds[event.KindAppeared] == 0 || kinds[event.KindLeft] != kinds[event.KindAppeared] {
		t.Fatalf("history holds %v: want every appeared track to have left", kinds)
	}
	res, err := st.Results(ctx, eventstore.ResultFilter{Stream: "fer", Limit: eventstore.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	// About 23 frames at 5 fps, one face in most.
	if len(res) < 15 {
		t.Fatalf("%d result summaries in the history, want one per frame with a face (about 20)", len(res))
	}
}
