package ingest

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"gocv.io/x/gocv"
)

// captureSource reads frames through an OpenCV VideoCapture (FFmpeg backend).
type captureSource struct {
	target   string
	live     bool
	opts     OpenOptions
	cap      *gocv.VideoCapture
	opened   time.Time
	frames   int
	inLoop   int           // frames read since the last rewind
	loopBase time.Duration // media time accumulated over previous loops
	lastPos  time.Duration
	period   time.Duration // nominal frame period, from the container's FPS
	wallBase time.Time     // wall clock at media time 0 (Realtime pacing)
}

func openCapture(_ context.Context, target string, live bool, opts OpenOptions) (*captureSource, error) {
	c, err := gocv.OpenVideoCaptureWithAPI(target, gocv.VideoCaptureFFmpeg)
	if err != nil || !c.IsOpened() {
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("source %s: OpenCV cannot open it as video (missing, unsupported or corrupt): %v", target, err)
	}
	s := &captureSource{target: target, live: live, opts: opts, cap: c, opened: time.Now()}
	if fps := c.Get(gocv.VideoCaptureFPS); fps > 0 && fps < 1000 {
		s.period = time.Duration(float64(time.Second) / fps)
	} else {
		s.period = 40 * time.Millisecond
	}
	s.wallBase = s.opened
	return s, nil
}

func openDevice(ctx context.Context, index string) (Source, error) {
	n, err := strconv.Atoi(index)
	if err != nil {
		return nil, fmt.Errorf("device %q: %w", index, err)
	}
	c, err := gocv.OpenVideoCaptureWithAPI(n, gocv.VideoCaptureV4L2)
	if err != nil || !c.IsOpened() {
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("camera /dev/video%d: cannot open it (no such device, busy, or no permission: is the user in the video group?)", n)
	}
	return &captureSource{target: "/dev/video" + index, live: true, cap: c, opened: time.Now(), period: 33 * time.Millisecond}, nil
}

func (s *captureSource) Live() bool { return s.live }

func (s *captureSource) Read(ctx context.Context) (RawFrame, error) {
	if err := ctx.Err(); err != nil {
		return RawFrame{}, err
	}
	sampling := s.opts.Sample != nil && !s.live
	skipped, presampled := 0, false
	if sampling && s.frames > 0 {
		var err error
		if skipped, presampled, err = s.skipRefused(ctx); err != nil {
			return RawFrame{}, err
		}
	}
	m := gocv.NewMat()
	for attempt := 0; ; attempt++ {
		if s.cap.Read(&m) && !m.Empty() {
			break
		}
		if s.live {
			m.Close()
			return RawFrame{}, fmt.Errorf("source %s: read failed (stream ended or camera gone)", s.target)
		}
		if s.frames == 0 {
			m.Close()
			return RawFrame{}, fmt.Errorf("source %s: no decodable video frame (corrupt or not a video)", s.target)
		}
		if !s.opts.Loop || attempt > 0 {
			m.Close()
			return RawFrame{}, ErrEndOfStream
		}
		// Loop: rewind and continue the media timeline after the last frame.
		s.loopBase += s.lastPos + s.period
		s.inLoop = 0
		s.cap.Set(gocv.VideoCapturePosFrames, 0)
	}
	now := time.Now()
	var media time.Duration
	if s.live {
		media = now.Sub(s.opened)
	} else {
		pos := time.Duration(s.cap.Get(gocv.VideoCapturePosMsec) * float64(time.Millisecond))
		if pos <= 0 && s.inLoop > 0 {
			pos = time.Duration(s.inLoop) * s.period // container without timestamps
		}
		media = s.loopBase + pos
		s.lastPos = pos
	}
	s.frames++
	s.inLoop++
	if s.opts.Realtime && !s.live {
		if err := sleepUntil(ctx, s.wallBase.Add(media)); err != nil {
			m.Close()
			return RawFrame{}, err
		}
		now = time.Now()
	}
	if m.Type() != gocv.MatTypeCV8UC3 {
		conv := gocv.NewMat()
		switch m.Channels() {
		case 1:
			gocv.CvtColor(m, &conv, gocv.ColorGrayToBGR)
		case 4:
			gocv.CvtColor(m, &conv, gocv.ColorBGRAToBGR)
		default:
			conv.Close()
			m.Close()
			return RawFrame{}, fmt.Errorf("source %s: unsupported pixel format (type %v)", s.target, m.Type())
		}
		m.Close()
		m = conv
	}
	if sampling && !presampled {
		// The first frame (or one after a rewind): ask now; a refusal is left to the caller.
		presampled = s.opts.Sample(media)
	}
	return RawFrame{Mat: m, Media: media, Captured: now, Sampled: presampled, Skipped: skipped}, nil
}

// skipRefused grabs, without converting them, the frames Sample refuses, predicting each next
// frame's media time from the last one and the nominal period. It returns how many it skipped
// and whether Sample accepted the frame Read converts next (false when the file ended first).
func (s *captureSource) skipRefused(ctx context.Context) (int, bool, error) {
	skipped := 0
	for {
		if s.opts.Sample(s.loopBase + s.lastPos + s.period) {
			return skipped, true, nil
		}
		if err := ctx.Err(); err != nil {
			return skipped, false, err
		}
		before := s.cap.Get(gocv.VideoCapturePosFrames)
		s.cap.Grab(1)
		if s.cap.Get(gocv.VideoCapturePosFrames) == before {
			return skipped, false, nil // at the end: Read reports it
		}
		pos := time.Duration(s.cap.Get(gocv.VideoCapturePosMsec) * float64(time.Millisecond))
		if pos <= s.lastPos {
			pos = s.lastPos + s.period // container without timestamps
		}
		s.lastPos = pos
		s.frames++
		s.inLoop++
		skipped++
	}
}

func (s *captureSource) Close() error {
	if s.cap == nil {
		return nil
	}
	err := s.cap.Close()
	s.cap = nil
	return err
}
