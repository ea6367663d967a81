package ingest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/pkg/vision/videoio"
)

// Backend picks how a network stream is decoded.
type Backend int

const (
	// BackendFFmpeg decodes through OpenCV's FFmpeg backend: RTSP (interleaved over TCP, which
	// OpenCV forces while OPENCV_FFMPEG_CAPTURE_OPTIONS is unset; never set it without
	// rtsp_transport;tcp), RTSPS, HTTP(S) multipart MJPEG and HTTP(S) video files, with open
	// and read timeouts. The default.
	BackendFFmpeg Backend = iota
	// BackendGStreamer decodes RTSP/RTSPS H.264 through a GStreamer pipeline (rtspsrc latency=0
	// over TCP, avdec_h264, appsink drop=true max-buffers=1): lower glass-to-frame latency
	// (BenchmarkRTSPLatency, 720p30 on 2 loaded vCPUs: p50 ~8 ms against ~73 ms for FFmpeg),
	// but OpenCV 4.6's GStreamer backend accepts no timeouts, so a publisher that freezes while
	// its server keeps the session open blocks Read until the server drops the session (a dead
	// server or a broken connection is noticed at once). H.264 only; HTTP is refused.
	BackendGStreamer
)

// String names the backend.
func (b Backend) String() string {
	switch b {
	case BackendFFmpeg:
		return "ffmpeg"
	case BackendGStreamer:
		return "gstreamer"
	}
	return "Backend(" + strconv.Itoa(int(b)) + ")"
}

// NetworkOptions tune one connection to a network stream. The zero value uses the defaults.
type NetworkOptions struct {
	// OpenTimeout bounds connecting to and probing the stream (FFmpeg probes ~1 s of an RTSP
	// stream before the first frame). Default 10 s.
	OpenTimeout time.Duration
	// ReadTimeout bounds waiting for one frame (FFmpeg backend); when it passes, Read fails, so
	// a frozen camera is noticed in seconds rather than OpenCV's 30 s. Default 5 s.
	ReadTimeout time.Duration
	// Backend picks the decoder. Default BackendFFmpeg.
	Backend Backend
	// KeepBurst keeps the frames FFmpeg delivers in a burst right after connecting (the ~1 s it
	// buffered while probing, stale on arrival). Default false: they are skipped.
	KeepBurst bool
	// Sample, when set, is asked about each decoded frame by its media time (since the
	// connection) before it is converted to BGR, as OpenOptions.Sample is for files: a refused
	// frame is counted in the next frame's Skipped and never converted, and kept frames come back
	// with Sampled set. It is called from the reader goroutine OpenLive starts, so it must be
	// safe for use beside the consumer. Default nil: every frame is converted.
	Sample func(media time.Duration) bool
}

func (o NetworkOptions) withDefaults() NetworkOptions {
	if o.OpenTimeout <= 0 {
		o.OpenTimeout = 10 * time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 5 * time.Second
	}
	return o
}

// burstWindow bounds how long after connecting frames may be skipped as the stale burst.
const burstWindow = 3 * time.Second

// OpenNetwork makes one connection to an rtsp://, rtsps://, http:// or https:// stream and
// returns it as a Source; the first failed read ends it (a Reconnector reopens: see OpenLive,
// which Open uses). When the stream cannot be opened, the error says why in terms a user can act
// on (connection refused, RTSP 404 or 401, HTTP status, a web page instead of video, a
// timeout), found by a short probe of the server after OpenCV fails. Errors and logs name the
// URL without its password.
//
// OpenCV's calls cannot be interrupted: ctx is checked before the open, which OpenTimeout
// bounds, and before each read, which ReadTimeout bounds (wrap the source in a Latest, as
// OpenLive does, for a Read that returns as soon as ctx ends). A finite video served over HTTP
// is read as fast as it decodes and then fails as an ended stream; to pace a recording, give a
// file path with OpenOptions.Realtime. TLS certificates (rtsps, https) are not verified: that is
// FFmpeg's default, and OpenCV 4.6 offers no per-capture way to change it.
func OpenNetwork(ctx context.Context, rawURL string, o NetworkOptions) (Source, error) {
	o = o.withDefaults()
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("source: invalid URL: %w", err)
	}
	name := u.Redacted()
	scheme := strings.ToLower(u.Scheme)
	switch scheme {
	case "rtsp", "rtsps", "http", "https":
	default:
		return nil, fmt.Errorf("source %s: not a network stream URL (rtsp, rtsps, http or https)", name)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("source %s: URL without a host", name)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	target, api, params := rawURL, gocv.VideoCaptureFFmpeg, videoio.Timeouts(o.OpenTimeout, o.ReadTimeout)
	if o.Backend == BackendGStreamer {
		if target, err = gstreamerPipeline(u, o.OpenTimeout); err != nil {
			return nil, fmt.Errorf("source %s: %w", name, err)
		}
		api, params = gocv.VideoCaptureGstreamer, nil // OpenCV 4.6's GStreamer backend refuses timeouts
	} else if o.Backend != BackendFFmpeg {
		return nil, fmt.Errorf("source %s: unknown backend %v", name, o.Backend)
	}
	started := time.Now()
	c, openErr := videoio.Open(target, api, params...)
	if openErr != nil {
		return nil, fmt.Errorf("source %s: cannot open the stream: %w", name, diagnose(ctx, u, o, time.Since(started)))
	}
	s := &networkSource{name: name, cap: c, readTimeout: o.ReadTimeout, opened: time.Now(),
		skipping: !o.KeepBurst && o.Backend == BackendFFmpeg, lastPos: -1, sample: o.Sample}
	if fps := c.Get(gocv.VideoCaptureFPS); fps > 0 && fps < 1000 {
		s.period = time.Duration(float64(time.Second) / fps)
	} else {
		s.period = 40 * time.Millisecond
	}
	if o.Backend == BackendGStreamer {
		s.readTimeout = 0
	}
	return s, nil
}

// diagnose explains why OpenCV could not open u, which took took.
func diagnose(ctx context.Context, u *url.URL, o NetworkOptions, took time.Duration) error {
	if took >= o.OpenTimeout-50*time.Millisecond {
		return fmt.Errorf("no stream within the open timeout of %v (server silent or too slow)", o.OpenTimeout)
	}
	probe := min(o.OpenTimeout, 5*time.Second)
	var err error
	switch strings.ToLower(u.Scheme) {
	case "rtsp", "rtsps":
		err = diagnoseRTSP(ctx, u, probe)
	default:
		err = diagnoseHTTP(ctx, u, probe)
	}
	if o.Backend == BackendGStreamer {
		return fmt.Errorf("%w (GStreamer backend: H.264 over RTSP only)", err)
	}
	return err
}

// networkSource is one connection to a network stream through the videoio shim.
type networkSource struct {
	name        string // URL without password
	cap         *videoio.Capture
	readTimeout time.Duration // 0: none (GStreamer)
	period      time.Duration // nominal frame period
	opened      time.Time
	skipping    bool    // still skipping the stale burst after connecting
	lastPos     float64 // media position of the previous frame, ms; -1 before the first
	sample      func(time.Duration) bool
}

// Read returns the next live frame. It skips the stale burst after connecting: while a frame
// is grabbed in less than half its media interval (it was already buffered, not awaited), and
// for at most burstWindow, frames are dropped undecoded. A read that fails, or that takes the
// read timeout, fails the source.
func (s *networkSource) Read(ctx context.Context) (RawFrame, error) {
	if s.cap == nil {
		return RawFrame{}, ErrClosed
	}
	skipped := 0
	for {
		if err := ctx.Err(); err != nil {
			return RawFrame{}, err
		}
		start := time.Now()
		ok, err := s.cap.Grab()
		took := time.Since(start)
		if err != nil {
			return RawFrame{}, fmt.Errorf("source %s: %w", s.name, err)
		}
		if s.readTimeout > 0 && took >= s.readTimeout {
			return RawFrame{}, fmt.Errorf("source %s: no frame within the read timeout of %v (stream frozen or network down)", s.name, s.readTimeout)
		}
		if !ok {
			return RawFrame{}, fmt.Errorf("source %s: stream ended or connection lost", s.name)
		}
		if s.skipping && s.isBurst(took) {
			continue
		}
		media := time.Since(s.opened)
		if s.sample != nil && !s.sample(media) {
			skipped++ // decoded (Grab), never converted
			continue
		}
		m := gocv.NewMat()
		ok, err = s.cap.Retrieve(&m)
		if err != nil || !ok || m.Empty() {
			m.Close()
			if err == nil {
				err = errors.New("frame does not decode")
			}
			return RawFrame{}, fmt.Errorf("source %s: %w", s.name, err)
		}
		now := time.Now()
		bgr, err := toBGR(m)
		if err != nil {
			return RawFrame{}, fmt.Errorf("source %s: %w", s.name, err)
		}
		return RawFrame{Mat: bgr, Media: media, Captured: now, Sampled: s.sample != nil, Skipped: skipped}, nil
	}
}

// isBurst reports whether the frame just grabbed, in took, belongs to the stale burst, and
// ends the skipping at the first frame that was awaited or when burstWindow has passed.
func (s *networkSource) isBurst(took time.Duration) bool {
	pos := s.cap.Get(gocv.VideoCapturePosMsec)
	interval := time.Duration((pos - s.lastPos) * float64(time.Millisecond))
	if s.lastPos < 0 || interval <= 0 || interval > time.Second {
		interval = s.period
	}
	s.lastPos = pos
	if took < interval/2 && time.Since(s.opened) < burstWindow {
		return true
	}
	s.skipping = false
	return false
}

// toBGR returns m as 8-bit BGR, converting grey or BGRA; it takes ownership of m.
func toBGR(m gocv.Mat) (gocv.Mat, error) {
	if m.Type() == gocv.MatTypeCV8UC3 {
		return m, nil
	}
	defer m.Close()
	conv := gocv.NewMat()
	switch {
	case m.Type() == gocv.MatTypeCV8UC1:
		gocv.CvtColor(m, &conv, gocv.ColorGrayToBGR)
	case m.Type() == gocv.MatTypeCV8UC4:
		gocv.CvtColor(m, &conv, gocv.ColorBGRAToBGR)
	default:
		conv.Close()
		return gocv.Mat{}, fmt.Errorf("unsupported pixel format (type %v)", m.Type())
	}
	return conv, nil
}

// Close releases the connection. Never call it while Read runs (the Source contract).
func (s *networkSource) Close() error {
	if s.cap == nil {
		return nil
	}
	err := s.cap.Close()
	s.cap = nil
	return err
}

// Live reports true.
func (s *networkSource) Live() bool { return true }

// openNetworkLive opens a network stream for Open: the first connection now (its error at
// once), then reconnection with backoff and newest-frame reading.
func openNetworkLive(ctx context.Context, rawURL string, o NetworkOptions) (Source, error) {
	name := rawURL
	if u, err := url.Parse(rawURL); err == nil {
		name = u.Redacted()
	}
	return OpenLive(ctx, name, func(ctx context.Context) (Source, error) {
		return OpenNetwork(ctx, rawURL, o)
	}, Backoff{}, nil)
}

// gstreamerPipeline builds the low-latency GStreamer pipeline for an RTSP(S) URL. The URL is
// quoted into the pipeline text, so characters that could end the quoting or start another
// element are refused rather than escaped.
func gstreamerPipeline(u *url.URL, openTimeout time.Duration) (string, error) {
	switch strings.ToLower(u.Scheme) {
	case "rtsp", "rtsps":
	default:
		return "", fmt.Errorf("the GStreamer backend reads rtsp:// and rtsps:// only, not %s://", u.Scheme)
	}
	raw := u.String()
	for _, r := range raw {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`"'\!`, r) {
			return "", fmt.Errorf("URL contains %q, which a GStreamer pipeline cannot carry safely", r)
		}
	}
	tcpTimeout := int64(openTimeout / time.Microsecond)
	return fmt.Sprintf(`rtspsrc location="%s" latency=0 protocols=tcp tcp-timeout=%d ! rtph264depay ! h264parse ! avdec_h264 ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false`,
		raw, tcpTimeout), nil
}

// diagnoseRTSP asks the server for the stream's description, without credentials, and turns
// the answer into an error a user can act on.
func diagnoseRTSP(ctx context.Context, u *url.URL, timeout time.Duration) error {
	host := u.Host
	if u.Port() == "" {
		port := "554"
		if strings.EqualFold(u.Scheme, "rtsps") {
			port = "322"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var conn net.Conn
	var err error
	if strings.EqualFold(u.Scheme, "rtsps") {
		// The probe only reads a status line and sends no credentials; like FFmpeg, which
		// does not verify RTSPS certificates by default, it accepts any certificate.
		d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, ServerName: u.Hostname()}} //nolint:gosec // diagnosis probe, see above
		conn, err = d.DialContext(ctx, "tcp", host)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", host)
	}
	if err != nil {
		return fmt.Errorf("cannot connect to %s: %w", host, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	clean := *u
	clean.User = nil
	if _, err := fmt.Fprintf(conn, "DESCRIBE %s RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\nUser-Agent: vigil\r\n\r\n", clean.String()); err != nil {
		return fmt.Errorf("server at %s: send DESCRIBE: %w", host, err)
	}
	line, err := bufio.NewReader(io.LimitReader(conn, 4096)).ReadString('\n')
	if err != nil {
		return fmt.Errorf("server at %s accepted the connection but sent no RTSP response: %w", host, err)
	}
	code, reason, err := parseRTSPStatus(line)
	if err != nil {
		return fmt.Errorf("server at %s does not speak RTSP: %w", host, err)
	}
	switch {
	case code == 401:
		return fmt.Errorf("RTSP %d %s: the server requires credentials; check the user and password in the URL (rtsp://user:password@host/path)", code, reason)
	case code == 404:
		return fmt.Errorf("RTSP %d %s: no stream at this path (is the camera or publisher running, is the path right?)", code, reason)
	case code >= 200 && code < 300:
		return fmt.Errorf("the server describes the stream (RTSP %d) but OpenCV/FFmpeg could not open it (unsupported codec?)", code)
	}
	return fmt.Errorf("RTSP %d %s", code, reason)
}

// parseRTSPStatus parses an RTSP response status line, "RTSP/1.0 404 Not Found", into its code
// (100..599) and reason phrase.
func parseRTSPStatus(line string) (int, string, error) {
	line = strings.TrimRight(line, "\r\n")
	if len(line) > 512 {
		return 0, "", errors.New("status line too long")
	}
	version, rest, ok := strings.Cut(line, " ")
	if !ok || len(version) != 8 || !strings.HasPrefix(version, "RTSP/") ||
		!isDigit(version[5]) || version[6] != '.' || !isDigit(version[7]) {
		return 0, "", fmt.Errorf("not an RTSP status line: %q", truncate(line, 64))
	}
	codeText, reason, _ := strings.Cut(rest, " ")
	if len(codeText) != 3 || !isDigit(codeText[0]) || !isDigit(codeText[1]) || !isDigit(codeText[2]) {
		return 0, "", fmt.Errorf("bad RTSP status code %q", truncate(codeText, 16))
	}
	code, _ := strconv.Atoi(codeText)
	if code < 100 || code > 599 {
		return 0, "", fmt.Errorf("RTSP status code %d out of range", code)
	}
	for _, r := range reason {
		if r < ' ' && r != '\t' || r == 0x7f {
			return 0, "", errors.New("control character in RTSP reason phrase")
		}
	}
	return code, reason, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
