// Package rtsptest runs a real RTSP server on loopback for tests: a gortsplib server that
// accepts one publisher (ANNOUNCE/RECORD) per path and serves it to any number of readers
// (DESCRIBE/SETUP/PLAY, TCP transport), fed by Debian's ffmpeg publishing a real video. Helpers
// kill, freeze (SIGSTOP) and thaw the publisher and stop and restart the server on the same
// port, so sources can be tested against the failures real cameras have.
//
// Only tests import it. It needs the ffmpeg binary with libx264; New skips the test when ffmpeg
// is missing.
package rtsptest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// Options configure a Server. The zero value is not enough: set Video or Input.
type Options struct {
	// Path is the stream's path. Default "live".
	Path string
	// Video is a file ffmpeg publishes in an endless loop at its own frame rate
	// (-re -stream_loop -1 -i Video). Ignored when Input is set.
	Video string
	// Input replaces ffmpeg's input arguments (those before the encoder options), e.g.
	// {"-f", "rawvideo", "-pix_fmt", "bgr24", "-s", "1280x720", "-r", "30", "-i", "-"} with Feed.
	Input []string
	// Feed, when set, writes ffmpeg's standard input until ctx ends or a write fails. It runs
	// in a goroutine the publisher owns and must return when ctx ends.
	Feed func(ctx context.Context, w io.Writer) error
	// GOP is the H.264 keyframe interval in frames. Default 25.
	GOP int
	// TLS serves rtsps:// with a self-signed certificate instead of rtsp://. Default false.
	TLS bool
	// ReadyTimeout bounds waiting for the publisher to start recording. Default 20 s.
	ReadyTimeout time.Duration
	// SessionTimeout is how long the server waits for a silent publisher (a frozen one)
	// before it ends the stream. Default 60 s, so a test decides when a freeze ends.
	SessionTimeout time.Duration
}

// Server is a running RTSP test server and its ffmpeg publisher.
type Server struct {
	// URL is the stream's address, rtsp://127.0.0.1:PORT/PATH (rtsps:// with TLS).
	URL string
	// Addr is the server's host:port; it stays the same across Stop and Start.
	Addr string

	t    testing.TB
	opts Options
	tls  *tls.Config

	mu    sync.Mutex
	srv   *gortsplib.Server
	h     *handler
	pub   *publisher
	plays int
}

// New starts a server on a free loopback port and its publisher, waits until the publisher is
// recording, and stops both when the test ends. It fails the test on any error and skips it
// when ffmpeg is not installed.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if err := requireFFmpeg(); err != nil {
		t.Skipf("rtsptest: %v", err)
	}
	if opts.Path == "" {
		opts.Path = "live"
	}
	if opts.GOP == 0 {
		opts.GOP = 25
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 20 * time.Second
	}
	if opts.SessionTimeout == 0 {
		opts.SessionTimeout = 60 * time.Second
	}
	if opts.Video == "" && opts.Input == nil {
		t.Fatal("rtsptest: Options need Video or Input")
	}
	s := &Server{t: t, opts: opts}
	scheme := "rtsp"
	if opts.TLS {
		cfg, err := selfSignedTLS()
		if err != nil {
			t.Fatalf("rtsptest: %v", err)
		}
		s.tls = cfg
		scheme = "rtsps"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("rtsptest: listen: %v", err)
	}
	s.Addr = ln.Addr().String()
	s.URL = fmt.Sprintf("%s://%s/%s", scheme, s.Addr, opts.Path)
	t.Cleanup(s.Stop)
	if err := s.start(ln); err != nil {
		t.Fatalf("rtsptest: %v", err)
	}
	return s
}

// Start restarts a stopped server on the same port, then its publisher, and waits until the
// publisher records. Starting a running server is an error.
func (s *Server) Start() error {
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		return errors.New("rtsptest: server already running")
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("rtsptest: listen again on %s: %w", s.Addr, err)
	}
	return s.start(ln)
}

func (s *Server) start(ln net.Listener) error {
	h := &handler{s: s, path: s.opts.Path, recording: make(chan struct{})}
	srv := &gortsplib.Server{
		Handler:     h,
		RTSPAddress: s.Addr,
		TLSConfig:   s.tls,
		ReadTimeout: s.opts.SessionTimeout,
		Listen: func(string, string) (net.Listener, error) {
			return ln, nil
		},
	}
	h.srv = srv
	if err := srv.Start(); err != nil {
		ln.Close()
		return fmt.Errorf("start server: %w", err)
	}
	s.mu.Lock()
	s.srv, s.h = srv, h
	s.mu.Unlock()
	if err := s.StartPublisher(); err != nil {
		s.Stop()
		return err
	}
	return nil
}

// Stop kills the publisher and closes the server, disconnecting every reader and freeing the
// port. It is idempotent.
func (s *Server) Stop() {
	s.KillPublisher()
	s.mu.Lock()
	srv := s.srv
	s.srv, s.h = nil, nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// StartPublisher starts ffmpeg publishing to the server and waits until it records. The server
// must be running and have no publisher.
func (s *Server) StartPublisher() error {
	s.mu.Lock()
	h, pub := s.h, s.pub
	s.mu.Unlock()
	if h == nil {
		return errors.New("rtsptest: server not running")
	}
	if pub != nil && !pub.exited() {
		return errors.New("rtsptest: publisher already running")
	}
	h.resetRecording()
	pub, err := startPublisher(s.URL, s.opts)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.pub = pub
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ReadyTimeout)
	defer cancel()
	select {
	case <-h.recordingChan():
		return nil
	case <-pub.done:
		return fmt.Errorf("rtsptest: ffmpeg exited before recording: %s", pub.stderrTail())
	case <-ctx.Done():
		s.KillPublisher()
		return fmt.Errorf("rtsptest: publisher not recording after %v: %s", s.opts.ReadyTimeout, pub.stderrTail())
	}
}

// KillPublisher kills ffmpeg (SIGKILL, after thawing it) and waits for it to exit; the server
// then ends the stream and disconnects its readers. It is idempotent.
func (s *Server) KillPublisher() {
	s.mu.Lock()
	pub := s.pub
	s.pub = nil
	s.mu.Unlock()
	if pub != nil {
		pub.kill()
	}
}

// Freeze stops the publisher with SIGSTOP: its connection stays open but no packets flow, as
// with a hung camera. Thaw resumes it.
func (s *Server) Freeze() error { return s.signalPublisher(true) }

// Thaw resumes a frozen publisher with SIGCONT.
func (s *Server) Thaw() error { return s.signalPublisher(false) }

func (s *Server) signalPublisher(stop bool) error {
	s.mu.Lock()
	pub := s.pub
	s.mu.Unlock()
	if pub == nil {
		return errors.New("rtsptest: no publisher")
	}
	return pub.signal(stop)
}

// ClientTLS returns a client configuration trusting the server's self-signed certificate (with
// Options.TLS), or nil.
func (s *Server) ClientTLS() *tls.Config {
	if s.tls == nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.tls.Certificates[0].Leaf)
	return &tls.Config{RootCAs: pool}
}

// Plays counts the PLAY requests the server has accepted since New, across restarts: each
// (re)connection of a reader adds one.
func (s *Server) Plays() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.plays
}

// PublisherStderr returns the end of ffmpeg's diagnostics, for test failure messages.
func (s *Server) PublisherStderr() string {
	s.mu.Lock()
	pub := s.pub
	s.mu.Unlock()
	if pub == nil {
		return ""
	}
	return pub.stderrTail()
}

// handler serves one path: one publisher, many readers.
type handler struct {
	s    *Server
	srv  *gortsplib.Server
	path string

	mu        sync.Mutex
	stream    *gortsplib.ServerStream
	publisher *gortsplib.ServerSession
	recording chan struct{} // closed once the current publisher records
	recorded  bool
}

func (h *handler) resetRecording() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.recorded {
		h.recording = make(chan struct{})
		h.recorded = false
	}
}

func (h *handler) recordingChan() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.recording
}

func (h *handler) samePath(p string) bool {
	return strings.Trim(p, "/") == h.path
}

// OnSessionClose ends the stream when its publisher leaves, disconnecting the readers.
func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stream != nil && ctx.Session == h.publisher {
		h.stream.Close()
		h.stream, h.publisher = nil, nil
	}
}

// OnDescribe serves the published stream's description, or 404 while nobody publishes.
func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.samePath(ctx.Path) || h.stream == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, h.stream, nil
}

// OnAnnounce accepts a publisher, replacing any previous one.
func (h *handler) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.samePath(ctx.Path) {
		return &base.Response{StatusCode: base.StatusNotFound}, nil
	}
	if h.stream != nil {
		h.stream.Close()
		h.publisher.Close()
	}
	h.stream = gortsplib.NewServerStream(h.srv, ctx.Description)
	h.publisher = ctx.Session
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSetup sets up a reader on the published stream or the publisher's own media.
func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.samePath(ctx.Path) || h.stream == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	if ctx.Session == h.publisher {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, h.stream, nil
}

// OnPlay counts a reader.
func (h *handler) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	h.s.mu.Lock()
	h.s.plays++
	h.s.mu.Unlock()
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnRecord routes the publisher's packets to the readers.
func (h *handler) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	stream := h.stream
	if stream == nil || ctx.Session != h.publisher {
		return &base.Response{StatusCode: base.StatusBadRequest}, nil
	}
	ctx.Session.OnPacketRTPAny(func(medi *description.Media, _ format.Format, pkt *rtp.Packet) {
		_ = stream.WritePacketRTP(medi, pkt)
	})
	if !h.recorded {
		h.recorded = true
		close(h.recording)
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}
