package cli

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestRunSharesOneFrameSubscription: a live `vigil run` receives the frames once (one
// subscription to vigil.frames.* outside the analyzers' queue group, counted on the embedded
// server), and both parts that keep recent frames, the web view and the event snapshots' ring,
// get them from it.
func TestRunSharesOneFrameSubscription(t *testing.T) {
	video := filepath.Join(testenv.TestData(t), "video", "fer_test.mp4")
	deps := testenv.DepsDir(t)
	var stdout, stderr syncBuffer
	env := Env{Args: []string{"run", "--nats-port", "0", "--source", video, "--stream", "fer", "--loop", "--heads", "none"},
		Stdout: &stdout, Stderr: &stderr, Version: "test", Getenv: liveEnv(deps)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f, err := parseRunFlags(env, env.Args[1:])
	if err != nil {
		t.Fatal(err)
	}
	if err := f.prepare(ctx); err != nil {
		t.Fatal(err)
	}
	r := &runStack{runFlags: f, ctx: ctx, env: env}
	defer r.close()
	if err := r.build(); err != nil {
		t.Fatal(err)
	}
	r.sinksOwned = false
	done := make(chan error, 1)
	go func() { done <- r.group().Run() }()

	testenv.Eventually(t, 2*time.Minute, "frames in the web view and in the snapshot ring", func() bool {
		select {
		case err := <-done:
			t.Fatalf("vigil run returned early: %v\n%s", err, stderr.String())
		default:
		}
		web := uint64(0)
		for _, s := range r.ui.Streams() {
			if s.Name == "fer" {
				web = s.Frames
			}
		}
		return web > 0 && r.fr.ring.Stats().Frames > 0
	})
	subs, err := r.natsSrv.Subscriptions("vigil.frames.fer")
	if err != nil {
		t.Fatal(err)
	}
	plain, analyzers := 0, 0
	for _, s := range subs {
		switch s.Queue {
		case "":
			plain++
		case bus.AnalyzeQueue:
			analyzers++
		}
	}
	if plain != 1 || analyzers != 1 {
		t.Fatalf("vigil.frames.fer reaches %d subscriptions outside a queue group and %d analyzers, want 1 and 1: %+v", plain, analyzers, subs)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v\n%s", err, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("vigil run did not stop within a minute of Ctrl-C")
	}
}
