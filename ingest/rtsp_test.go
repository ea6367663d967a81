package ingest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/ingest/rtsptest"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// readFrames reads n frames, checks their size and closes them.
func readFrames(ctx context.Context, t *testing.T, src Source, n, w, h int) {
	t.Helper()
	for i := 0; i < n; i++ {
		f, err := src.Read(ctx)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		cols, rows, typ := f.Mat.Cols(), f.Mat.Rows(), f.Mat.Type()
		f.Mat.Close()
		if cols != w || rows != h || typ != gocv.MatTypeCV8UC3 {
			t.Fatalf("frame %d: %dx%d type %v, want %dx%d BGR", i, cols, rows, typ, w, h)
		}
	}
}

// readFrameAfter reads until a frame decoded after t0 arrives (older ones are closed).
func readFrameAfter(ctx context.Context, t *testing.T, src Source, t0 time.Time) {
	t.Helper()
	for {
		f, err := src.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for a frame after %v: %v", t0.Format(time.StampMilli), err)
		}
		f.Mat.Close()
		if f.Captured.After(t0) {
			return
		}
	}
}

func liveStats(t *testing.T, src Source) LiveStats {
	t.Helper()
	ss, ok := src.(StatsSource)
	if !ok {
		t.Fatalf("%T does not report LiveStats", src)
	}
	return ss.Stats()
}

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestRTSPFrames: a real RTSP stream, published by ffmpeg through gortsplib, read through Open.
func TestRTSPFrames(t *testing.T) {
	srv := rtsptest.New(t, rtsptest.Options{Video: faceVideo(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := Open(ctx, srv.URL, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if !src.Live() {
		t.Error("an RTSP source is not live")
	}
	readFrames(ctx, t, src, 25, 596, 336)
	st := liveStats(t, src)
	if st.State != StateLive || st.FramesRead < 25 || st.Reconnects != 0 || st.Failures != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Read(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v, want ErrClosed", err)
	}
	if st := liveStats(t, src); st.State != StateClosed {
		t.Fatalf("state after Close: %v", st.State)
	}
}

// TestRTSPS: the same over TLS (FFmpeg, like most RTSP clients, does not verify the
// certificate by default).
func TestRTSPS(t *testing.T) {
	srv := rtsptest.New(t, rtsptest.Options{Video: faceVideo(t), TLS: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := Open(ctx, srv.URL, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	readFrames(ctx, t, src, 10, 596, 336)
}

// TestRTSPServerRestart: killing the server makes the source back off (visible in its state)
// and it resumes by itself when the server returns on the same port.
func TestRTSPServerRestart(t *testing.T) {
	srv := rtsptest.New(t, rtsptest.Options{Video: faceVideo(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src, err := Open(ctx, srv.URL, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	readFrames(ctx, t, src, 5, 596, 336)

	srv.Stop()
	testenv.Eventually(t, 10*time.Second, "the source to back off", func() bool {
		return liveStats(t, src).State == StateBackoff
	})
	st := liveStats(t, src)
	if st.Failures == 0 || !strings.Contains(st.LastError, "connection") {
		t.Fatalf("after the server died: %+v", st)
	}
	t.Logf("server down: %+v", st)

	restarted := time.Now()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	readFrameAfter(ctx, t, src, restarted)
	st = liveStats(t, src)
	if st.State != StateLive || st.Reconnects < 1 || srv.Plays() < 2 {
		t.Fatalf("after the server returned: %+v, %d PLAY requests", st, srv.Plays())
	}
	t.Logf("resumed %v after the restart: %+v", time.Since(restarted).Round(time.Millisecond), st)
}

// TestRTSPFreeze: a publisher stopped with SIGSTOP keeps its connection but sends nothing; the
// read timeout notices within seconds (not FFmpeg's 30 s), and the source reconnects once the
// publisher resumes.
func TestRTSPFreeze(t *testing.T) {
	srv := rtsptest.New(t, rtsptest.Options{Video: faceVideo(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const readTimeout = 1500 * time.Millisecond
	src, err := OpenLive(ctx, "frozen", func(ctx context.Context) (Source, error) {
		return OpenNetwork(ctx, srv.URL, NetworkOptions{OpenTimeout: 3 * time.Second, ReadTimeout: readTimeout})
	}, Backoff{Initial: 200 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	readFrames(ctx, t, src, 5, 596, 336)

	frozen := time.Now()
	if err := srv.Freeze(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the read timeout", func() bool { return src.Stats().Failures > 0 })
	noticed := time.Since(frozen)
	st := src.Stats()
	t.Logf("freeze noticed after %v: %+v", noticed.Round(time.Millisecond), st)
	if noticed > readTimeout+2*time.Second {
		t.Fatalf("freeze noticed after %v, want about the read timeout %v", noticed, readTimeout)
	}
	if !strings.Contains(st.LastError, "read timeout") {
		t.Fatalf("last error %q, want a read timeout", st.LastError)
	}

	thawed := time.Now()
	if err := srv.Thaw(); err != nil {
		t.Fatal(err)
	}
	readFrameAfter(ctx, t, src, thawed)
	st = src.Stats()
	if st.Reconnects < 1 || st.State != StateLive {
		t.Fatalf("after thawing: %+v", st)
	}
	t.Logf("resumed %v after thawing: %+v", time.Since(thawed).Round(time.Millisecond), st)
}

// frameAge returns how long ago the clock publisher stamped f.
func frameAge(t testing.TB, f RawFrame, now time.Time) time.Duration {
	t.Helper()
	b, err := f.Mat.DataPtrUint8()
	if err != nil {
		t.Fatal(err)
	}
	stamp, ok := rtsptest.ReadClock(b, f.Mat.Cols(), f.Mat.Rows(), f.Mat.Step())
	if !ok {
		t.Fatal("frame carries no clock stamp")
	}
	return now.Sub(stamp)
}

// TestRTSPSlowConsumer: a consumer at 5 fps on a 25 fps camera gets the newest frame each
// time: the frames in between are replaced, and the age of what it gets (glass to consumer)
// stays bounded instead of growing with a backlog. The first frame is live too (the stale
// burst after connecting is skipped).
func TestRTSPSlowConsumer(t *testing.T) {
	srv := rtsptest.New(t, rtsptest.ClockOptions(640, 360, 25))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src, err := Open(ctx, srv.URL, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	f, err := src.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := frameAge(t, f, f.Captured)
	f.Mat.Close()
	t.Logf("first frame: %v from glass to Mat", first)
	if first > 600*time.Millisecond {
		t.Errorf("the first frame is %v old: the stale burst was not skipped", first)
	}

	// The consumer is paced by a ticker, standing in for analysis that takes 200 ms a frame.
	pace := time.NewTicker(200 * time.Millisecond)
	defer pace.Stop()
	var worst time.Duration
	const reads = 15
	for i := 0; i < reads; i++ {
		<-pace.C
		f, err := src.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		age := frameAge(t, f, time.Now())
		f.Mat.Close()
		worst = max(worst, age)
	}
	st := liveStats(t, src)
	t.Logf("worst age %v over %d slow reads; %+v", worst, reads, st)
	if worst > 500*time.Millisecond {
		t.Errorf("a frame handed to the slow consumer was %v old; latency must stay bounded", worst)
	}
	if st.FramesReplaced < reads*2 {
		t.Errorf("%d frames replaced; a 5 fps consumer of a 25 fps stream should skip ~4 in 5", st.FramesReplaced)
	}
}

// TestRTSPSampledBeforeConversion: with OpenOptions.Sample, a live stream's frames are sampled
// on the reader goroutine before conversion: at 5 of 25 frames a second, the frames handed over
// come already Sampled at the sampler's rate, carry the refused ones in Skipped, and stay fresh.
func TestRTSPSampledBeforeConversion(t *testing.T) {
	srv := rtsptest.New(t, rtsptest.ClockOptions(640, 360, 25))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	s := NewSampler(5)
	keep := func(m time.Duration) bool { mu.Lock(); defer mu.Unlock(); return s.Keep(m) }
	src, err := Open(ctx, srv.URL, OpenOptions{Sample: keep})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var first, last time.Duration
	skipped, worst := 0, time.Duration(0)
	const reads = 15
	for i := range reads {
		f, err := src.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !f.Sampled {
			t.Fatalf("frame %d at %s not Sampled", i, f.Media)
		}
		if i > 0 { // the first frame's Skipped holds the burst's end
			skipped += f.Skipped
			worst = max(worst, frameAge(t, f, time.Now()))
		} else {
			first = f.Media
		}
		last = f.Media
		f.Mat.Close()
	}
	rate := float64(reads-1) / (last - first).Seconds()
	t.Logf("%.1f frames/s kept, %d refused before conversion, worst age %s", rate, skipped, worst)
	if rate < 4 || rate > 6 || skipped < 3*(reads-1) || worst > 500*time.Millisecond {
		t.Fatalf("kept %.1f frames/s with %d refused (want ~5/s and ~4 refused per kept frame), worst age %s", rate, skipped, worst)
	}
}

// TestRTSPOpenErrors: what cannot be opened fails at once with the reason.
func TestRTSPOpenErrors(t *testing.T) {
	srv := rtsptest.New(t, rtsptest.Options{Video: faceVideo(t)})
	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()
	ctx := context.Background()
	cases := []struct{ url, want string }{
		{"rtsp://" + freePort(t) + "/cam", "connection refused"},
		{strings.TrimSuffix(srv.URL, "/live") + "/nothing", "RTSP 404"},
		{"rtsp://" + strings.TrimPrefix(web.URL, "http://") + "/cam", "does not speak RTSP"},
		{"rtsp://user:secret@" + freePort(t) + "/cam", "connection refused"},
	}
	for _, c := range cases {
		start := time.Now()
		src, err := Open(ctx, c.url, OpenOptions{})
		took := time.Since(start)
		if err == nil {
			src.Close()
			t.Errorf("%s: opened", c.url)
			continue
		}
		t.Logf("%s: %v (%v)", c.url, err, took.Round(time.Millisecond))
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.url, err, c.want)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows the password: %v", c.url, err)
		}
		if took > 3*time.Second {
			t.Errorf("%s: failing took %v", c.url, took)
		}
	}
	srv.KillPublisher()
	// The server ends the killed publisher's session asynchronously: until it has, the path may
	// still describe a (dying) stream. Once it has, opening must fail with a 404.
	deadline := time.Now().Add(10 * time.Second)
	for {
		src, err := Open(ctx, srv.URL, OpenOptions{})
		if err != nil {
			if !strings.Contains(err.Error(), "no stream at this path") {
				t.Errorf("stream without publisher: %v", err)
			}
			break
		}
		src.Close()
		if time.Now().After(deadline) {
			t.Fatal("the stream still opens 10 s after its publisher was killed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestInvalidSourceURLs: malformed network URLs are refused before anything is dialled.
func TestInvalidSourceURLs(t *testing.T) {
	ctx := context.Background()
	for _, spec := range []string{
		"rtsp://", "rtsp:///path", "http://:8080/x", "rtsp://host:0/x", "rtsp://host:99999/x",
		"rtsp://host:port/x", "http://ho st/x", "rtsp://h/\x7f", "gopher://host/x", "rtsp//host/x",
	} {
		src, err := Open(ctx, spec, OpenOptions{})
		if err == nil {
			src.Close()
			t.Errorf("Open(%q) succeeded", spec)
			continue
		}
		t.Logf("%q: %v", spec, err)
	}
	if _, err := OpenNetwork(ctx, "file:///x.mp4", NetworkOptions{}); err == nil {
		t.Error("OpenNetwork accepted a file URL")
	}
	if _, err := OpenNetwork(ctx, "rtsp://h/x", NetworkOptions{Backend: Backend(9)}); err == nil {
		t.Error("OpenNetwork accepted an unknown backend")
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := OpenNetwork(canceled, "rtsp://127.0.0.1:1/x", NetworkOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("OpenNetwork with a canceled context: %v", err)
	}
}

// TestGStreamerBackend: the optional GStreamer pipeline reads the same stream and, kept alive
// by OpenLive, survives a server restart; what it cannot carry is refused.
func TestGStreamerBackend(t *testing.T) {
	srv := rtsptest.New(t, rtsptest.Options{Video: faceVideo(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src, err := OpenLive(ctx, "gst", func(ctx context.Context) (Source, error) {
		return OpenNetwork(ctx, srv.URL, NetworkOptions{Backend: BackendGStreamer})
	}, Backoff{Initial: 200 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	readFrames(ctx, t, src, 10, 596, 336)
	srv.Stop()
	testenv.Eventually(t, 10*time.Second, "the loss to be noticed", func() bool { return src.Stats().Failures > 0 })
	restarted := time.Now()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	readFrameAfter(ctx, t, src, restarted)
	if st := src.Stats(); st.Reconnects < 1 {
		t.Fatalf("after the restart: %+v", st)
	}

	if _, err := OpenNetwork(ctx, "http://127.0.0.1:1/x.mjpg", NetworkOptions{Backend: BackendGStreamer}); err == nil ||
		!strings.Contains(err.Error(), "rtsp:// and rtsps:// only") {
		t.Errorf("GStreamer over HTTP: %v", err)
	}
	// Quotes or '!' in the URL could end the quoted location and start another element.
	for _, bad := range []string{`rtsp://127.0.0.1:1/x?a="!fakesrc`, `rtsp://127.0.0.1:1/x!fakesrc`} {
		if _, err := OpenNetwork(ctx, bad, NetworkOptions{Backend: BackendGStreamer}); err == nil ||
			!strings.Contains(err.Error(), "cannot carry safely") {
			t.Errorf("pipeline injection %s: %v", bad, err)
		}
	}
}
