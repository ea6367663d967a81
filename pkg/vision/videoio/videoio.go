// Package videoio is a cgo leaf wrapping the part of OpenCV's cv::VideoCapture that gocv v0.31
// does not expose: opening a stream with parameters (open and read timeouts above all), so a
// dead or frozen network camera fails a read in seconds instead of blocking for FFmpeg's 30 s.
// Frames are decoded straight into caller-owned gocv Mats.
//
// A Capture is not safe for concurrent use: one goroutine opens, reads and closes it, and Close
// must never run while Read does (OpenCV would free the stream under the reader).
package videoio

/*
#cgo pkg-config: opencv4
#cgo CXXFLAGS: --std=c++11
#include <stdlib.h>
#include "videoio.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"gocv.io/x/gocv"
)

// Capture properties of OpenCV 4.6 that gocv v0.31 lacks, for Open's params.
const (
	// PropOpenTimeoutMsec bounds opening a stream, in milliseconds (FFmpeg and GStreamer
	// backends). OpenCV's own default is 30000.
	PropOpenTimeoutMsec = 53
	// PropReadTimeoutMsec bounds one Read, in milliseconds (FFmpeg backend). OpenCV's own
	// default is 30000.
	PropReadTimeoutMsec = 54
)

// ErrClosed is returned for operations on a closed Capture.
var ErrClosed = errors.New("videoio: capture is closed")

// Capture is an open cv::VideoCapture. The zero value is not usable; get one from Open.
type Capture struct {
	p C.VioCapture
}

// Timeouts returns the params that bound opening a stream and each read, rounded up to whole
// milliseconds; a zero duration leaves OpenCV's default (30 s) in place.
func Timeouts(open, read time.Duration) []int {
	var p []int
	if open > 0 {
		p = append(p, PropOpenTimeoutMsec, ceilMillis(open))
	}
	if read > 0 {
		p = append(p, PropReadTimeoutMsec, ceilMillis(read))
	}
	return p
}

func ceilMillis(d time.Duration) int {
	return int((d + time.Millisecond - 1) / time.Millisecond)
}

// Open opens url (a file, a network URL or a GStreamer pipeline) with the backend api and the
// OpenCV capture params given as (key, value) pairs, e.g. Timeouts(5*time.Second, 2*time.Second).
// It blocks until the stream is open or fails (bounded by PropOpenTimeoutMsec for network
// streams). The caller must Close the returned Capture.
func Open(url string, api gocv.VideoCaptureAPI, params ...int) (*Capture, error) {
	if len(params)%2 != 0 {
		return nil, fmt.Errorf("videoio: open %s: %d params, want (key, value) pairs", url, len(params))
	}
	p := C.vio_new()
	if p == nil {
		return nil, fmt.Errorf("videoio: open %s: cannot allocate a capture", url)
	}
	curl := C.CString(url)
	defer C.free(unsafe.Pointer(curl))
	var cparams *C.int
	if len(params) > 0 {
		buf := make([]C.int, len(params)) // Go memory without Go pointers: may be passed to C
		for i, v := range params {
			buf[i] = C.int(v)
		}
		cparams = &buf[0]
	}
	var cerr *C.char
	ok := C.vio_open(p, curl, C.int(api), cparams, C.int(len(params)), &cerr)
	if err := takeError(cerr); err != nil {
		C.vio_free(p)
		return nil, fmt.Errorf("videoio: open %s: %w", url, err)
	}
	if ok == 0 {
		C.vio_free(p)
		return nil, fmt.Errorf("videoio: open %s: OpenCV could not open it", url)
	}
	return &Capture{p: p}, nil
}

// takeError converts and frees a message from the shim.
func takeError(cerr *C.char) error {
	if cerr == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(cerr))
	return fmt.Errorf("OpenCV: %s", C.GoString(cerr))
}

func matPtr(m *gocv.Mat) (unsafe.Pointer, error) {
	if m == nil || m.Ptr() == nil {
		return nil, errors.New("videoio: read into a nil or closed Mat")
	}
	return unsafe.Pointer(m.Ptr()), nil
}

// Read grabs and decodes the next frame into m, which the caller owns (it is reallocated as
// needed). It returns false with a nil error when no frame came: the stream ended, broke, or
// PropReadTimeoutMsec passed; an error means OpenCV threw or the Capture or Mat is unusable.
func (c *Capture) Read(m *gocv.Mat) (bool, error) {
	if c.p == nil {
		return false, ErrClosed
	}
	mp, err := matPtr(m)
	if err != nil {
		return false, err
	}
	var cerr *C.char
	ok := C.vio_read(c.p, mp, &cerr)
	if err := takeError(cerr); err != nil {
		return false, fmt.Errorf("videoio: read: %w", err)
	}
	return ok != 0, nil
}

// Grab reads the next frame without converting it to BGR (cheaper than Read when the frame is
// to be skipped). Results as for Read.
func (c *Capture) Grab() (bool, error) {
	if c.p == nil {
		return false, ErrClosed
	}
	var cerr *C.char
	ok := C.vio_grab(c.p, &cerr)
	if err := takeError(cerr); err != nil {
		return false, fmt.Errorf("videoio: grab: %w", err)
	}
	return ok != 0, nil
}

// Retrieve converts the last grabbed frame into m. Results as for Read.
func (c *Capture) Retrieve(m *gocv.Mat) (bool, error) {
	if c.p == nil {
		return false, ErrClosed
	}
	mp, err := matPtr(m)
	if err != nil {
		return false, err
	}
	var cerr *C.char
	ok := C.vio_retrieve(c.p, mp, &cerr)
	if err := takeError(cerr); err != nil {
		return false, fmt.Errorf("videoio: retrieve: %w", err)
	}
	return ok != 0, nil
}

// Get returns a capture property such as gocv.VideoCaptureFPS or gocv.VideoCapturePosMsec;
// 0 when the backend does not know it or the Capture is closed.
func (c *Capture) Get(prop gocv.VideoCaptureProperties) float64 {
	if c.p == nil {
		return 0
	}
	return float64(C.vio_get(c.p, C.int(prop)))
}

// Backend names the OpenCV backend serving the capture ("FFMPEG", "GSTREAMER", ...), or "" when
// the Capture is closed.
func (c *Capture) Backend() string {
	if c.p == nil {
		return ""
	}
	s := C.vio_backend(c.p)
	if s == nil {
		return ""
	}
	defer C.free(unsafe.Pointer(s))
	return C.GoString(s)
}

// Close releases the stream. It is idempotent and must not run while another goroutine is in
// Read, Grab or Retrieve.
func (c *Capture) Close() error {
	if c.p == nil {
		return nil
	}
	C.vio_free(c.p)
	c.p = nil
	return nil
}
