// Package gstdec decodes an RTP video stream (VP8 or H.264) into 8-bit BGR Mats with OpenCV's
// GStreamer backend. RTP packets written to a Decoder travel, length-prefixed as RFC 4571 frames,
// through an in-process pipe whose read end is the pipeline's fdsrc:
//
//	fdsrc fd=N ! application/x-rtp-stream,... ! rtpstreamdepay ! rtpjitterbuffer latency=50 !
//	rtpvp8depay ! vp8dec ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=2 sync=false
//
// (H.264: rtph264depay ! h264parse ! avdec_h264). Closing the write end ends the stream
// cleanly: fdsrc reads end-of-file, the pipeline drains and the capture reports no more frames.
// The appsink keeps at most two decoded frames and drops older ones, so a slow reader gets recent
// frames rather than a backlog.
//
// It is a cgo leaf (through gocv) and needs GStreamer's good (rtp, vpx), bad (rtpstreamdepay's
// sibling elements, h264parse) and libav (avdec_h264) plugins.
package gstdec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"gocv.io/x/gocv"
	"golang.org/x/sys/unix"
)

// Codec names an RTP video encoding the decoder handles, as in SDP's rtpmap (case-insensitive
// there; canonical here).
type Codec string

// Codecs the decoder handles.
const (
	VP8  Codec = "VP8"
	H264 Codec = "H264"
)

// ParseCodec maps an SDP encoding name or a MIME type ("VP8", "video/VP8", "h264") to its Codec.
func ParseCodec(name string) (Codec, error) {
	n := strings.ToUpper(strings.TrimPrefix(strings.ToLower(name), "video/"))
	switch Codec(n) {
	case VP8, H264:
		return Codec(n), nil
	}
	return "", fmt.Errorf("gstdec: unsupported video codec %q (VP8 and H264 are)", name)
}

// MaxPacket is the largest RTP packet WriteRTP accepts: the RFC 4571 length prefix is 16 bits.
const MaxPacket = 65535

// ErrOpen is wrapped by the error Run returns when GStreamer cannot build or start the pipeline.
var ErrOpen = errors.New("gstdec: cannot open the GStreamer pipeline")

// ErrStopped is wrapped by the error Run returns when the pipeline stopped producing frames
// although the write end was still open (a decoder error, a corrupt stream).
var ErrStopped = errors.New("gstdec: the pipeline stopped before the stream ended")

// Pipeline returns the GStreamer pipeline that decodes codec with RTP payload type pt read,
// RFC 4571-framed, from file descriptor fd.
func Pipeline(codec Codec, pt uint8, fd uintptr) (string, error) {
	var decode string
	switch codec {
	case VP8:
		decode = "rtpvp8depay ! vp8dec"
	case H264:
		// Slice threads, not frame threads: frame threading holds each frame back by one more
		// frame (+33 ms at 30 fps) for no gain on a single-slice WebRTC stream.
		decode = "rtph264depay ! h264parse ! avdec_h264 thread-type=slice"
	default:
		return "", fmt.Errorf("gstdec: unsupported video codec %q", codec)
	}
	if pt > 127 {
		return "", fmt.Errorf("gstdec: RTP payload type %d outside 0..127", pt)
	}
	return fmt.Sprintf("fdsrc fd=%d ! application/x-rtp-stream,media=video,encoding-name=%s,clock-rate=90000,payload=%d"+
		" ! rtpstreamdepay ! rtpjitterbuffer latency=50 ! %s"+
		" ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=2 sync=false",
		fd, codec, pt, decode), nil
}

// Decoder decodes one RTP video stream. Its write side (WriteRTP, CloseWrite) is used by one
// goroutine, though CloseWrite may also be called from another to abort a blocked WriteRTP; its
// read side is Run, called once from one goroutine, which owns the OpenCV capture for its whole
// life. A Decoder is not reused.
type Decoder struct {
	codec    Codec
	pt       uint8
	pipeline string

	r, w *os.File // the pipe; r's descriptor is fdsrc's, valid in this process until Run returns

	buf         []byte // WriteRTP's frame buffer
	writeClosed atomic.Bool
	closeWOnce  sync.Once
	started     atomic.Bool
	readOnce    sync.Once
}

// New creates a decoder for codec with RTP payload type pt: the pipe and the pipeline
// description. Nothing runs until Run. Call Run (or Close, if Run will never be called) so the
// pipe is released.
func New(codec Codec, pt uint8) (*Decoder, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("gstdec: pipe: %w", err)
	}
	// Fd puts r in blocking mode, as fdsrc expects; the descriptor keeps its close-on-exec flag,
	// so a child process never holds the pipe open. w stays non-blocking so that CloseWrite
	// interrupts a WriteRTP blocked on a full pipe.
	fd := r.Fd()
	// A larger pipe absorbs a keyframe burst while GStreamer's thread is busy; best effort.
	_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20)
	p, err := Pipeline(codec, pt, fd)
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	return &Decoder{codec: codec, pt: pt, pipeline: p, r: r, w: w}, nil
}

// Codec is the codec the decoder was created for.
func (d *Decoder) Codec() Codec { return d.codec }

// PipelineString is the GStreamer pipeline Run opens.
func (d *Decoder) PipelineString() string { return d.pipeline }

// WriteRTP writes one RTP packet (header and payload, as received) into the pipeline. It blocks
// while the pipe is full and fails once CloseWrite was called or Run has returned. Packets larger
// than MaxPacket or empty are refused.
func (d *Decoder) WriteRTP(pkt []byte) error {
	if len(pkt) == 0 || len(pkt) > MaxPacket {
		return fmt.Errorf("gstdec: RTP packet of %d bytes (want 1..%d)", len(pkt), MaxPacket)
	}
	d.buf = AppendFrame(d.buf[:0], pkt)
	if _, err := d.w.Write(d.buf); err != nil {
		return fmt.Errorf("gstdec: write RTP: %w", err)
	}
	return nil
}

// AppendFrame appends pkt to dst as one RFC 4571 frame: a 16-bit big-endian length, then pkt.
// len(pkt) must not exceed MaxPacket.
func AppendFrame(dst, pkt []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(pkt)))
	return append(dst, pkt...)
}

// CloseWrite ends the stream: the pipeline decodes what it has, then Run returns nil. A
// WriteRTP blocked in another goroutine returns an error. It is idempotent.
func (d *Decoder) CloseWrite() error {
	var err error
	d.closeWOnce.Do(func() {
		d.writeClosed.Store(true)
		err = d.w.Close()
	})
	return err
}

// Close releases the decoder when Run was never called; otherwise it is CloseWrite (Run releases
// the read side when it returns).
func (d *Decoder) Close() error {
	err := d.CloseWrite()
	if d.started.CompareAndSwap(false, true) {
		d.closeRead()
	}
	return err
}

func (d *Decoder) closeRead() { d.readOnce.Do(func() { d.r.Close() }) }

// Run opens the pipeline and hands each decoded frame to emit, which takes ownership of the Mat
// (an 8-bit, 3-channel BGR image) and must Close it. Run blocks until the stream ends: it
// returns nil after CloseWrite once the pipeline has drained, an error wrapping ErrOpen when
// GStreamer cannot start the pipeline, or one wrapping ErrStopped when the pipeline ended while
// the write end was open. Opening blocks until the first frame decodes (or the stream ends).
// The capture is created, read and closed in Run's goroutine only; the pipe's read end is
// closed after the capture, so the descriptor fdsrc reads is never reused under it.
func (d *Decoder) Run(emit func(gocv.Mat)) error {
	if !d.started.CompareAndSwap(false, true) {
		return errors.New("gstdec: Run called twice, or after Close")
	}
	defer d.closeRead()
	vc, err := gocv.OpenVideoCaptureWithAPI(d.pipeline, gocv.VideoCaptureGstreamer)
	if err != nil || !vc.IsOpened() {
		if vc != nil {
			vc.Close()
		}
		if d.writeClosed.Load() {
			return nil // the stream ended before its first frame
		}
		return fmt.Errorf("%w %q (missing GStreamer plugin, or no decodable frame): %v", ErrOpen, d.pipeline, err)
	}
	defer vc.Close()
	for {
		m := gocv.NewMat()
		if !vc.Read(&m) || m.Empty() {
			m.Close()
			break
		}
		if m.Type() != gocv.MatTypeCV8UC3 {
			m.Close()
			return fmt.Errorf("%w: frame of type %v, want 8-bit BGR", ErrStopped, m.Type())
		}
		emit(m)
	}
	if d.writeClosed.Load() {
		return nil
	}
	return ErrStopped
}
