// Package sinktest is the conformance suite every sink.Sink passes (as eventstoretest is for
// event store backends): results reach the destination whole, in arrival order, by the time
// Write returns; a Write with a context already ended returns instead of blocking; Close
// returns nil after a clean run. Only tests import it.
package sinktest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/sink"
)

// Destination is one Sink under test and a way to read back what reached its destination.
type Destination struct {
	// Sink is initialised and ready for Write.
	Sink sink.Sink
	// Read returns the results that reached the destination so far, in arrival order, as the
	// destination keeps them (fields it does not keep are zero). nil: the destination keeps no
	// copy to read (a metrics sink); the suite then checks the calls' contract only.
	Read func() ([]result.Result, error)
	// Complete is set when the destination keeps every field of a result: the suite then
	// compares what it reads back with what it wrote, whole. Otherwise it compares stream,
	// seq and the number of faces.
	Complete bool
}

// Factory makes a fresh Destination for the test t; what it starts ends with t.
type Factory func(t *testing.T) Destination

// Run runs the suite, each check on a fresh Destination.
func Run(t *testing.T, open Factory) {
	t.Run("WriteReachesDestinationInOrder", func(t *testing.T) { testInOrder(t, open(t)) })
	t.Run("EveryFieldSurvives", func(t *testing.T) { testWhole(t, open(t)) })
	t.Run("EndedContextReturns", func(t *testing.T) { testEndedContext(t, open(t)) })
	t.Run("CloseAfterNoWrite", func(t *testing.T) {
		if err := open(t).Sink.Close(); err != nil {
			t.Fatalf("Close without a Write: %v", err)
		}
	})
}

// Result is a complete result: every field of the schema set, one face with every head's
// output, a classification. Results of one stream differ by seq.
func Result(stream string, seq uint64) result.Result {
	captured := time.Date(2026, 11, 22, 0, 5, 14, 0, time.UTC).Add(time.Duration(seq) * 200 * time.Millisecond)
	age := float32(31.5)
	return result.Result{
		Schema: result.SchemaVersion, Stream: stream, Seq: seq, CapturedAt: captured,
		AnalyzedAt: captured.Add(120 * time.Millisecond), LatencyMS: 120, Width: 1280, Height: 720, Analyzer: "conformance",
		Faces: []result.Face{{
			Box: result.Box{X1: 100, Y1: 60, X2: 180, Y2: 140}, Score: 0.98,
			Landmarks: []result.Point{{X: 120, Y: 90}, {X: 160, Y: 90}, {X: 140, Y: 110}, {X: 125, Y: 125}, {X: 155, Y: 125}},
			TrackID:   "t1", Identity: &result.Identity{Name: "ada", Similarity: 0.71},
			Age: &age, Gender: &result.Gender{Label: "female", Score: 0.91},
			Emotion:  &result.Emotion{Label: "happy", Scores: map[string]float32{"happy": 0.8, "neutral": 0.2}},
			Liveness: &result.Liveness{Real: true, Score: 0.93}, Pose: &result.Pose{Yaw: 3, Pitch: -2, Roll: 1},
			HeadsSeq: seq, HeadsCapturedAt: &captured,
		}},
		Classifications: []result.Classification{{Model: "helmet", Label: "no", Score: 0.8, Target: "frame"}},
	}
}

func write(t *testing.T, s sink.Sink, r result.Result) {
	t.Helper()
	if err := s.Write(context.Background(), r); err != nil {
		t.Fatalf("Write %s/%d: %v", r.Stream, r.Seq, err)
	}
}

func read(t *testing.T, d Destination) []result.Result {
	t.Helper()
	got, err := d.Read()
	if err != nil {
		t.Fatalf("reading the destination: %v", err)
	}
	return got
}

func testInOrder(t *testing.T, d Destination) {
	var want []result.Result
	for i := range 6 {
		r := Result([]string{"lobby", "door"}[i%2], uint64(i/2+1))
		write(t, d.Sink, r)
		want = append(want, r)
		if d.Read == nil {
			continue
		}
		// Write returns once the result is handed to the destination: it is there now.
		if got := read(t, d); len(got) != len(want) {
			t.Fatalf("after %d Writes returned, the destination holds %d results", len(want), len(got))
		}
	}
	if err := d.Sink.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d.Read == nil {
		return
	}
	got := read(t, d)
	if len(got) != len(want) {
		t.Fatalf("the destination holds %d results, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Stream != want[i].Stream || got[i].Seq != want[i].Seq || len(got[i].Faces) != len(want[i].Faces) {
			t.Fatalf("result %d is %s/%d with %d faces, want %s/%d with %d (arrival order)", i,
				got[i].Stream, got[i].Seq, len(got[i].Faces), want[i].Stream, want[i].Seq, len(want[i].Faces))
		}
	}
}

func testWhole(t *testing.T, d Destination) {
	if d.Read == nil || !d.Complete {
		_ = d.Sink.Close()
		t.Skip("the destination does not keep whole results")
	}
	want := Result("lobby", 7)
	write(t, d.Sink, want)
	if err := d.Sink.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := read(t, d)
	if len(got) != 1 {
		t.Fatalf("the destination holds %d results, want 1", len(got))
	}
	if a, b := jsonOf(t, got[0]), jsonOf(t, want); a != b {
		t.Fatalf("read back\n%s\nwrote\n%s", a, b)
	}
}

func testEndedContext(t *testing.T, d Destination) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Either outcome is allowed (a local write may finish anyway); blocking is not: the test
	// would hang here and time out.
	_ = d.Sink.Write(ctx, Result("lobby", 1))
	if err := d.Sink.Close(); err != nil {
		t.Fatalf("Close after a Write with an ended context: %v", err)
	}
}

func jsonOf(t *testing.T, r result.Result) string {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(fmt.Errorf("marshal: %w", err))
	}
	return string(b)
}
