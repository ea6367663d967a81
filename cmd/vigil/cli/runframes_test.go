package cli

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// testRun is a `vigil run` built and running in the test, reading fer_test.mp4 in a loop as
// stream fer.
type testRun struct {
	r      *runStack
	done   chan error
	cancel context.CancelFunc
	stderr *syncBuffer
}

// startTestRun builds and runs `vigil run` on fer_test.mp4 with extra flags; it skips when the
// test data or the models are absent. Stop it with stop.
func startTestRun(t *testing.T, extra ...string) *testRun {
	t.Helper()
	video := filepath.Join(testenv.TestData(t), "video", "fer_test.mp4")
	deps := testenv.DepsDir(t)
	var stdout syncBuffer
	lr := &testRun{done: make(chan error, 1), stderr: &syncBuffer{}}
	args := append([]string{"run", "--nats-port", "0", "--source", video, "--stream", "fer", "--loop", "--heads", "none"}, extra...)
	env := Env{Args: args, Stdout: &stdout, Stderr: lr.stderr, Version: "test", Getenv: liveEnv(deps)}
	ctx, cancel := context.WithCancel(context.Background())
	lr.cancel = cancel
	t.Cleanup(cancel)
	f, err := parseRunFlags(env, env.Args[1:])
	if err != nil {
		t.Fatal(err)
	}
	if err := f.prepare(ctx); err != nil {
		t.Fatal(err)
	}
	lr.r = &runStack{runFlags: f, ctx: ctx, env: env}
	t.Cleanup(lr.r.close)
	if err := lr.r.build(); err != nil {
		t.Fatal(err)
	}
	lr.r.sinksOwned = false
	go func() { lr.done <- lr.r.group().Run() }()
	return lr
}

// running fails the test when the run has returned.
func (lr *testRun) running(t *testing.T) {
	t.Helper()
	select {
	case err := <-lr.done:
		t.Fatalf("vigil run returned early: %v\n%s", err, lr.stderr.String())
	default:
	}
}

// frameSubscriptions counts the subscriptions vigil.frames.fer reaches on the embedded server:
// those outside a queue group and the analyzers'.
func (lr *testRun) frameSubscriptions(t *testing.T) (plain, analyzers int) {
	t.Helper()
	subs, err := lr.r.natsSrv.Subscriptions("vigil.frames.fer")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		switch s.Queue {
		case "":
			plain++
		case bus.AnalyzeQueue:
			analyzers++
		}
	}
	return plain, analyzers
}

// stop interrupts the run (Ctrl-C) and checks it returns cleanly within a minute.
func (lr *testRun) stop(t *testing.T) {
	t.Helper()
	lr.cancel()
	select {
	case err := <-lr.done:
		if err != nil {
			t.Fatalf("run: %v\n%s", err, lr.stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("vigil run did not stop within a minute of Ctrl-C")
	}
}

// TestRunSharesOneFrameSubscription: a live `vigil run` receives the frames once (one
// subscription to vigil.frames.* outside the analyzers' queue group, counted on the embedded
// server), and both parts that keep recent frames, the web view and the event snapshots' ring,
// get them from it.
func TestRunSharesOneFrameSubscription(t *testing.T) {
	lr := startTestRun(t)
	testenv.Eventually(t, 2*time.Minute, "frames in the web view and in the snapshot ring", func() bool {
		lr.running(t)
		web := uint64(0)
		for _, s := range lr.r.ui.Streams() {
			if s.Name == "fer" {
				web = s.Frames
			}
		}
		return web > 0 && lr.r.fr.ring.Stats().Frames > 0
	})
	if plain, analyzers := lr.frameSubscriptions(t); plain != 1 || analyzers != 1 {
		t.Fatalf("vigil.frames.fer reaches %d subscriptions outside a queue group and %d analyzers, want 1 and 1", plain, analyzers)
	}
	lr.stop(t)
}

// TestRunWithoutFrameReceiversDoesNotSubscribe: with neither the web view nor the event history
// (--web=false --events-db off) nothing keeps recent frames, so `vigil run` analyses them
// without subscribing to vigil.frames.* outside the analyzers' queue group.
func TestRunWithoutFrameReceiversDoesNotSubscribe(t *testing.T) {
	lr := startTestRun(t, "--web=false", "--events-db", "off")
	if lr.r.frames != nil {
		t.Error("vigil run kept a frame feed with nothing to receive its frames")
	}
	testenv.Eventually(t, 2*time.Minute, "frames analysed", func() bool {
		lr.running(t)
		return lr.r.anRole.Stats().Analyzed > 0
	})
	if plain, analyzers := lr.frameSubscriptions(t); plain != 0 || analyzers != 1 {
		t.Fatalf("vigil.frames.fer reaches %d subscriptions outside a queue group and %d analyzers, want 0 and 1", plain, analyzers)
	}
	lr.stop(t)
}
