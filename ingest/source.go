// Package ingest is the ingest role: it opens video sources, samples their frames to a target
// rate, downsizes and JPEG-encodes them and publishes them on vigil.frames.<stream>.
//
// Sources are chosen by URL scheme in exactly one place, Open.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"gocv.io/x/gocv"
)

// ErrEndOfStream is returned by Source.Read when a finite source has no more frames.
var ErrEndOfStream = errors.New("end of stream")

// RawFrame is one decoded frame. The receiver owns Mat and must Close it.
type RawFrame struct {
	// Mat is the decoded 8-bit BGR image.
	Mat gocv.Mat
	// Media is the frame's position in the source's own timeline (presentation time for files;
	// time since open for live sources). Sampling uses it.
	Media time.Duration
	// Captured is when the frame was decoded.
	Captured time.Time
	// Sampled is true when the source already asked OpenOptions.Sample about this frame and
	// was told to keep it: the caller must not sample it again.
	Sampled bool
	// Skipped counts the frames of the source before this one that Sample or Wants refused:
	// decoded but not converted to BGR, or not decoded at all.
	Skipped int
}

// Source is a video source.
//
// Contract: Read returns the next frame, ErrEndOfStream when a finite source is exhausted, or an
// error describing why the source failed. Read may block until a frame arrives but returns when
// ctx ends. Read and Close are called from one goroutine only; Close is never called while Read
// runs, and it releases everything the source holds. A Source is used once: after Close or an
// error from Read it is not read again (the caller reopens through Open).
type Source interface {
	Read(ctx context.Context) (RawFrame, error)
	Close() error
	// Live reports whether the source produces frames in real time (a camera, RTSP) rather
	// than as fast as it is read (a file).
	Live() bool
}

// OpenOptions tune how Open opens a source.
type OpenOptions struct {
	// Loop restarts a file at its end instead of returning ErrEndOfStream. Default false.
	Loop bool
	// Realtime paces a file at its own frame rate, as a camera would deliver it. Default false.
	Realtime bool
	// Sample, when set, is asked about each frame of a file (or of a network stream: see
	// NetworkOptions.Sample, which it becomes; it must then be safe for concurrent use) by its
	// media time before the frame is converted to BGR: frames it refuses are not converted
	// (about a third of a 720p frame's decode cost) and are counted in the next RawFrame's
	// Skipped; the frames it keeps come back with Sampled set. Frames skipped after a file's
	// last kept frame are not counted (no RawFrame carries them). Default nil: every frame is
	// converted.
	Sample func(media time.Duration) bool
	// Wants, when set with Sample, is asked before a file's frame is decoded, by its media time
	// and the spacing of the file's frames, whether Sample may keep it; it must not change
	// Sample's schedule (Sampler.Wants). Frames it refuses are left undecoded where no later
	// frame depends on them (H.264/HEVC non-reference frames) and counted in Skipped. Default
	// nil: every frame is decoded.
	Wants func(media, span time.Duration) bool
	// DecodeThreads is a file decoder's thread count. Default 0: FFmpeg picks one per core.
	DecodeThreads int
	// Decode bounds the file sources decoding at the same time (those read through FFmpeg's
	// libraries, avdecode): a frame is decoded and converted only while holding one of its
	// slots. Default nil: no bound.
	Decode *DecodeSlots
}

// with returns o looping and paced as asked.
func (o OpenOptions) with(loop, realtime bool) OpenOptions {
	o.Loop, o.Realtime = loop, realtime
	return o
}

// Open opens the source named by spec, dispatching on its scheme:
//
//	/path/to/file, ./file, file:///path  a video or image file, decoded by FFmpeg (avdecode; OpenCV
//	                                       when FFmpeg alone cannot open it)
//	rtsp://, rtsps://                      an RTSP stream over TCP (OpenNetwork, FFmpeg backend)
//	http://, https://                      multipart MJPEG or a video over HTTP (OpenNetwork)
//	device:N, /dev/videoN                  a V4L2 camera
//
// Network streams and cameras are live (see OpenLive): the first connection is made now and
// its failure returned at once with the reason; later failures reconnect with backoff, and a
// reader goroutine keeps only the newest frame. Anything else is refused with an error naming
// the supported forms.
func Open(ctx context.Context, spec string, opts OpenOptions) (Source, error) {
	kind, target, err := Classify(spec)
	if err != nil {
		return nil, err
	}
	switch kind {
	case KindFile:
		return openFile(ctx, target, opts)
	case KindNetwork:
		return openNetworkLive(ctx, target, NetworkOptions{Sample: opts.Sample})
	case KindDevice:
		return openDeviceLive(ctx, target)
	}
	return nil, fmt.Errorf("source %q: unsupported kind %v", spec, kind)
}

// Kind is the class of a source spec.
type Kind int

// Source kinds.
const (
	KindFile Kind = iota + 1
	KindNetwork
	KindDevice
)

// Classify parses a source spec into its kind and the target to open: a file path, a URL, or a
// device index. It does not touch the file system or the network.
func Classify(spec string) (Kind, string, error) {
	if spec == "" {
		return 0, "", fmt.Errorf("empty source: give a file path or an rtsp://, http:// or device:N URL")
	}
	if strings.HasPrefix(spec, "device:") {
		n := strings.TrimPrefix(spec, "device:")
		if i, err := strconv.Atoi(n); err != nil || i < 0 {
			return 0, "", fmt.Errorf("source %q: device index %q is not a number >= 0", spec, n)
		}
		return KindDevice, n, nil
	}
	if strings.HasPrefix(spec, "/dev/video") {
		n := strings.TrimPrefix(spec, "/dev/video")
		if i, err := strconv.Atoi(n); err != nil || i < 0 {
			return 0, "", fmt.Errorf("source %q: not a /dev/videoN device", spec)
		}
		return KindDevice, n, nil
	}
	if !strings.Contains(spec, "://") {
		return KindFile, spec, nil
	}
	u, err := url.Parse(spec)
	if err != nil {
		return 0, "", fmt.Errorf("source %q: %w", spec, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "file":
		if u.Path == "" {
			return 0, "", fmt.Errorf("source %q: file URL without a path", spec)
		}
		return KindFile, u.Path, nil
	case "rtsp", "rtsps", "http", "https":
		if u.Hostname() == "" {
			return 0, "", fmt.Errorf("source %s: URL without a host", u.Redacted())
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return 0, "", fmt.Errorf("source %s: port %q outside 1..65535", u.Redacted(), p)
			}
		}
		return KindNetwork, spec, nil
	}
	return 0, "", fmt.Errorf("source %q: unsupported URL scheme %q (use a file path, file://, rtsp://, rtsps://, http://, https:// or device:N)", spec, u.Scheme)
}

func openFile(ctx context.Context, path string, opts OpenOptions) (Source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", path, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("source %s: is a directory, not a video file", path)
	}
	s, avErr := openAV(path, opts)
	if avErr == nil {
		return s, nil
	}
	c, err := openCapture(ctx, path, false, opts) // what FFmpeg alone cannot open, OpenCV may
	if err != nil {
		return nil, fmt.Errorf("source %s: cannot decode it as video (unsupported or corrupt): %w", path, avErr)
	}
	return c, nil
}
